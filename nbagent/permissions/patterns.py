"""The three pattern languages of permission rules, compiled once to regular expressions.

- command patterns (``bash``): ``*`` is any text, but a ``*`` glued to a word only extends it by whole
  words: ``git status*`` matches ``git status`` and ``git status --short``, never ``git status-all``;
  a trailing `` *`` also matches nothing (``git commit *`` matches ``git commit``).
- path patterns (read, edit, glob, grep, external_directory): gitignore's wildmatch (compiled by
  pathspec), relative to the project root; absolute (``/etc/**``) and home (``~/.ssh/**``) patterns
  match paths outside it. A folder matches ``docs/`` and ``src/**`` itself, and paths inside a match.
- plain patterns (every other key: URLs, tool names, code): ``*`` is any text, ``?`` one character.
"""

from __future__ import annotations

import os
import re
from functools import lru_cache
from pathlib import Path

CATCH_ALL = frozenset({"*", "**"})


def _glob_piece(text: str, star: str, qmark: str) -> str:
    """Translate ``*``, ``?`` and ``[...]`` of a glob fragment; escape the rest."""
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c == "*":
            out.append(star)
        elif c == "?":
            out.append(qmark)
        elif c == "[":
            j = text.find("]", i + 2 if i + 1 < n and text[i + 1] in "!^" else i + 1)
            if j == -1:
                out.append(re.escape(c))
            else:
                body = text[i + 1 : j]
                if body[:1] in ("!", "^"):
                    body = "^" + body[1:]
                body = body[:1] + "".join("\\" + ch if ch in "[&~|\\" else ch for ch in body[1:])
                out.append("[" + (body if body[:1] != "\\" else "\\" + body) + "]")
                i = j
        else:
            out.append(re.escape(c))
        i += 1
    return "".join(out)


@lru_cache(maxsize=4096)
def command_regex(pattern: str) -> re.Pattern[str]:
    words = pattern.split()
    if not words:
        return re.compile(r"\A\Z")
    tail = ""
    if words[-1] == "*" and len(words) > 1:
        words.pop()
        tail = r"(?: .*)?"
    elif words[-1].endswith("*") and words[-1] != "*" and not words[-1].endswith(("\\*", "**")):
        # 'ls*': the word itself, then optionally more words; never a longer word ('lsblk').
        words[-1] = words[-1][:-1]
        tail = r"(?: .*)?"
    body = " ".join(_glob_piece(w, ".*", ".") for w in words)
    return re.compile(r"\A" + body + tail + r"\Z", re.DOTALL)


def match_command(pattern: str, command: str) -> bool:
    """``command`` is the normalised command text: the argv joined by single spaces."""
    if pattern == "*":
        return True
    return command_regex(pattern).match(command) is not None


@lru_cache(maxsize=4096)
def plain_regex(pattern: str) -> re.Pattern[str]:
    return re.compile(r"\A" + _glob_piece(pattern, ".*", ".") + r"\Z", re.DOTALL)


def match_plain(pattern: str, text: str) -> bool:
    if pattern == "*":
        return True
    return plain_regex(pattern).match(text) is not None


def _gitignore_regex(pattern: str) -> re.Pattern[str]:
    """A gitignore pattern compiled by pathspec (the reference implementation of git's wildmatch)."""
    from pathspec.patterns.gitignore.spec import GitIgnoreSpecPattern

    compiled = GitIgnoreSpecPattern(pattern).regex
    if compiled is None:  # a comment or blank: matches nothing
        return re.compile(r"(?!)")
    return compiled if isinstance(compiled, re.Pattern) else re.compile(str(compiled))


class PathPattern:
    """One gitignore-style pattern, compiled. ``absolute`` patterns match absolute paths."""

    __slots__ = ("absolute", "catch_all", "regex", "text")

    def __init__(self, text: str, root: Path) -> None:
        self.text = text
        self.catch_all = text in CATCH_ALL
        p = text.strip()
        self.absolute = False
        if p.startswith("~"):
            p = os.path.expanduser(p)
        if p.startswith("/") and _is_filesystem_path(p, root):
            # an absolute path: the same wildmatch rules, anchored at the file system's root
            self.absolute = True
            p = p.rstrip("/") or "/"
            self.regex = _gitignore_regex("/" + p.lstrip("/")) if p != "/" else re.compile(r"(?s:.*)")
            return
        if p.startswith("./"):
            p = "/" + p[2:]
        if p.strip("/") in ("", "."):
            self.regex = re.compile(r"(?s:.*)")  # '.', './': the whole project
            return
        self.regex = _gitignore_regex(p)

    def match(self, rel: str | None, absolute: str) -> bool:
        """``rel``: the path relative to the root (posix, '.' for the root) or None when outside."""
        if self.catch_all:
            return True
        if self.absolute:
            path = absolute.lstrip("/")
        elif rel is None:
            return False
        else:
            path = rel
        # a folder matches 'docs/' and 'src/**' itself too, and what is inside a match is matched
        return self.regex.match(path) is not None or self.regex.match(path + "/") is not None


def _is_filesystem_path(pattern: str, root: Path) -> bool:
    """Tell an absolute pattern (``/etc/**``) from a root-anchored gitignore one (``/build``)."""
    root_s = str(root)
    if pattern == root_s or pattern.startswith(root_s.rstrip("/") + "/"):
        return True
    first = pattern.lstrip("/").split("/", 1)[0]
    if not first or any(c in first for c in "*?["):
        return False
    return os.path.isdir("/" + first) and not os.path.exists(os.path.join(root_s, first))


@lru_cache(maxsize=4096)
def path_pattern(text: str, root: str) -> PathPattern:
    return PathPattern(text, Path(root))


def static_prefix(pattern: str) -> str:
    """The directory part of a glob before its first wildcard: ``src/**/*.py`` -> ``src``."""
    parts = pattern.split("/")
    keep: list[str] = []
    for part in parts:
        if any(c in part for c in "*?["):
            break
        keep.append(part)
    if len(keep) == len(parts):
        return pattern
    joined = "/".join(keep)
    if not joined and pattern.startswith("/"):
        return "/"
    return joined or "."


def has_glob(text: str) -> bool:
    return any(c in text for c in "*?[")
