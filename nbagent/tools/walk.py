"""Walking a folder without ripgrep: the files ``glob`` and ``grep`` would see, and gitignore-style globs.

Like ripgrep, the walk skips hidden entries (unless asked), what .gitignore files exclude, and
VCS/dependency folders, and it never follows a symbolic link: a link inside the project that leads out
of it (``notes -> ~/.ssh``) or to a protected file is not a way around the permission rules.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pathspec

SKIP_DIRS = frozenset({".git", ".hg", ".svn", "node_modules", ".venv", "venv", "__pycache__"})


def glob_regex(pattern: str) -> re.Pattern[str]:
    """A gitignore-style glob as a regex over '/'-separated relative paths.

    ``*`` and ``?`` stay within a folder, ``**`` crosses folders, ``{a,b}`` alternates. A pattern
    without '/' matches the file name at any depth (as ripgrep's ``--glob`` does).
    """
    anchored = "/" in pattern.rstrip("/")
    pattern = pattern.strip("/")
    out: list[str] = []
    i, n, braces = 0, len(pattern), 0
    while i < n:
        c = pattern[i]
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
            continue
        if pattern.startswith("**", i):
            out.append(".*")
            i += 2
            continue
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[":
            end = pattern.find("]", i + 1)
            if end == -1:
                out.append(re.escape(c))
            else:
                body = pattern[i + 1 : end]
                if body.startswith("!"):
                    body = "^" + body[1:]
                out.append("[" + body.replace("\\", "\\\\") + "]")
                i = end
        elif c == "{":
            braces += 1
            out.append("(?:")
        elif c == "}" and braces:
            braces -= 1
            out.append(")")
        elif c == "," and braces:
            out.append("|")
        else:
            out.append(re.escape(c))
        i += 1
    body = "".join(out) + ")" * braces
    prefix = "" if anchored else "(?:.*/)?"
    return re.compile(f"^{prefix}{body}$", re.DOTALL)


@dataclass
class _IgnoreRules:
    """The .gitignore files from the walk's top down to a folder, matched by pathspec (git's rules,
    negation included; a deeper file's verdict wins)."""

    rules: list[tuple[Path, pathspec.GitIgnoreSpec]] = field(default_factory=list)

    def extended(self, folder: Path) -> _IgnoreRules:
        gitignore = folder / ".gitignore"
        if not gitignore.is_file():
            return self
        try:
            lines = gitignore.read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError:
            return self
        return _IgnoreRules([*self.rules, (folder, pathspec.GitIgnoreSpec.from_lines(lines))])

    def ignored(self, path: Path, is_dir: bool) -> bool:
        verdict: bool | None = None
        for base, spec in self.rules:
            try:
                rel = path.relative_to(base).as_posix() + ("/" if is_dir else "")
            except ValueError:
                continue
            include = spec.check_file(rel).include
            if include is not None:
                verdict = include
        return bool(verdict)


def walk_files(top: Path, *, hidden: bool = False) -> Iterator[Path]:
    """Files under ``top``, skipping VCS/dependency folders, hidden entries, .gitignored paths and
    symbolic links (as ripgrep does). ``top`` itself may be a link: it was named, and asked for."""
    if top.is_file():
        yield top
        return
    stack: list[tuple[Path, _IgnoreRules]] = [(top, _IgnoreRules().extended(top))]
    while stack:
        folder, rules = stack.pop()
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError:
            continue
        for entry in entries:
            if entry.name.startswith(".") and not hidden:
                continue
            path = Path(entry.path)
            try:
                is_dir = entry.is_dir(follow_symlinks=False)
                is_file = entry.is_file(follow_symlinks=False)
            except OSError:
                continue
            if is_dir:
                if entry.name in SKIP_DIRS or rules.ignored(path, True):
                    continue
                stack.append((path, rules.extended(path)))
            elif is_file and not rules.ignored(path, False):
                yield path
