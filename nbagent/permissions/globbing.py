"""What a shell glob and a recursive reader reach, with bash's rules, for checking every path.

- ``expand``: the files a glob argument matches now. Bash semantics, not Python's: ``[^.]`` and
  ``[!.]`` negate, ``[[:alpha:]]`` classes work, ``*`` and ``?`` never match a leading dot.
- ``could_match_protected``: whether a glob could match a secret's name even if no such file exists
  yet (``.e?v``, ``.[^.]*``, ``*.pem``).
- ``first_protected``: walks a folder a recursive reader (``grep -r``, ``rg``) would read and returns
  the first protected file in it, within a limit.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from functools import lru_cache

_CLASSES = {
    "alpha": "a-zA-Z", "digit": "0-9", "alnum": "a-zA-Z0-9", "upper": "A-Z", "lower": "a-z",
    "space": r" \t\n\r\f\v", "blank": r" \t", "punct": r"!-/:-@\[-`{-~", "xdigit": "0-9A-Fa-f",
    "word": r"\w", "print": r" -~", "graph": r"!-~", "cntrl": r"\x00-\x1f\x7f",
}  # fmt: skip
# Names a glob is tested against when it could match a secret that does not exist yet.
SECRET_SAMPLES = (".env", ".env.local", ".env.production", ".netrc", ".git-credentials", ".npmrc", ".pypirc",
                  ".pgpass", "id_rsa", "id_ed25519", "server.pem", "server.key", "credentials",
                  "credentials.json", "secrets.env", "cert.p12")  # fmt: skip


def _bracket(text: str, i: int) -> tuple[str, int] | None:
    """Translate the bracket expression starting at ``text[i] == '['``: (regex, index after it)."""
    j = i + 1
    negate = j < len(text) and text[j] in "!^"
    if negate:
        j += 1
    parts: list[str] = []
    first = True
    while j < len(text):
        c = text[j]
        if c == "]" and not first:
            body = "".join(parts)
            return ("[^" if negate else "[") + body + "]", j + 1
        first = False
        if c == "[" and text.startswith("[:", j):
            end = text.find(":]", j + 2)
            if end < 0:
                return None
            cls = _CLASSES.get(text[j + 2 : end])
            if cls is None:
                return None
            parts.append(cls)
            j = end + 2
            continue
        if c == "\\" and j + 1 < len(text):
            parts.append(re.escape(text[j + 1]))
            j += 2
            continue
        if c == "-" and parts and j + 1 < len(text) and text[j + 1] != "]":
            parts.append("-")
            j += 1
            continue
        parts.append(re.escape(c))
        j += 1
    return None


@lru_cache(maxsize=2048)
def segment_regex(segment: str) -> re.Pattern[str] | None:
    """One path segment's glob as a regex (bash rules), or None if it is not a valid pattern."""
    out: list[str] = []
    i = 0
    while i < len(segment):
        c = segment[i]
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[":
            br = _bracket(segment, i)
            if br is None:
                out.append(re.escape(c))
            else:
                out.append(br[0])
                i = br[1]
                continue
        elif c == "\\" and i + 1 < len(segment):
            out.append(re.escape(segment[i + 1]))
            i += 2
            continue
        else:
            out.append(re.escape(c))
        i += 1
    try:
        return re.compile(r"\A" + "".join(out) + r"\Z", re.DOTALL)
    except re.error:
        return None


def _segment_matches(segment: str, name: str) -> bool:
    if name in (".", ".."):
        return segment == name
    if name.startswith(".") and not segment.startswith("."):
        return False  # bash: a leading dot must be matched explicitly
    rx = segment_regex(segment)
    return rx is not None and rx.match(name) is not None


def has_magic(segment: str) -> bool:
    return any(c in segment for c in "*?[")


def expand(pattern: str, base: str, limit: int = 500) -> tuple[list[str], bool]:
    """Files matching ``pattern`` (relative to ``base`` unless absolute): (matches, complete)."""
    absolute = pattern.startswith("/")
    segments = [s for s in pattern.split("/") if s]
    current = ["/" if absolute else ""]
    for k, seg in enumerate(segments):
        nxt: list[str] = []
        last = k == len(segments) - 1
        for prefix in current:
            folder = os.path.join(base, prefix) if not absolute else (prefix or "/")
            if not has_magic(seg):
                cand = os.path.join(prefix, seg) if prefix else seg
                if last or os.path.isdir(os.path.join(base, cand) if not absolute else cand):
                    nxt.append(cand)
                continue
            try:
                names = os.listdir(folder or ".")
            except OSError:
                continue
            for name in names:
                if _segment_matches(seg, name):
                    cand = os.path.join(prefix, name) if prefix else name
                    nxt.append(cand)
                    if len(nxt) > limit:
                        return nxt[:limit], False
        current = nxt
    found = [c for c in current if os.path.lexists(os.path.join(base, c) if not absolute else c)]
    return found, True


def could_match_protected(pattern: str) -> str | None:
    """A secret's name the glob's last segment could match, or None."""
    last = pattern.rstrip("/").rsplit("/", 1)[-1]
    if not has_magic(last):
        return None
    for sample in SECRET_SAMPLES:
        if _segment_matches(last, sample):
            return sample
    return None


def first_protected(
    folder: str,
    is_protected: Callable[[str], str | None],
    *,
    hidden: bool = True,
    follow: bool = False,
    limit: int = 20_000,
) -> tuple[str | None, bool]:
    """(why the first protected file under ``folder`` is protected, complete): what a recursive reader
    would open. Symlinks are checked by their target; with ``follow`` linked folders are entered."""
    why = is_protected(folder)
    if why is not None:
        return why, True
    if not os.path.isdir(folder):
        return None, True
    seen = 0
    stack = [folder]
    visited: set[tuple[int, int]] = set()
    while stack:
        current = stack.pop()
        try:
            entries = list(os.scandir(current))
        except OSError:
            continue
        for entry in entries:
            seen += 1
            if seen > limit:
                return None, False
            if not hidden and entry.name.startswith("."):
                continue
            if entry.name == ".git" and current == folder:
                continue  # git's object store: compressed data, not the project's files
            path = entry.path
            try:
                is_link = entry.is_symlink()
                if is_link:
                    target = os.path.realpath(path)
                    why = is_protected(target) or is_protected(path)
                    if why is not None:
                        return why, True
                    if follow and os.path.isdir(target):
                        st = os.stat(target)
                        if (st.st_dev, st.st_ino) not in visited:
                            visited.add((st.st_dev, st.st_ino))
                            stack.append(path)
                    continue
                why = is_protected(path)
                if why is not None:
                    return why, True
                if entry.is_dir(follow_symlinks=False):
                    stack.append(path)
            except OSError:
                continue
    return None, True
