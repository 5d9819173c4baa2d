"""The ``glob`` tool, and the path helpers ``glob`` and ``grep`` share.

``glob`` lists the files under a folder whose path matches a pattern, newest first, with ripgrep when
it is on PATH (fast, respects .gitignore) or a pure-Python walk otherwise; it follows no symbolic
links. The folder is asked for with its real location (``external_directory`` outside the project);
a protected file's name is listed (names are not secrets, its content is), but a path a ``glob`` rule
denies is not. The helpers below it (hidden parts, literal prefixes, newest-first ordering, the
"path must exist" check) are used by :mod:`nbagent.tools.search_grep` too.
"""

from __future__ import annotations

import asyncio
import os
import re
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from nbagent.tools.base import PermissionQuery, Tool, ToolContext, ToolFailure, ToolResult
from nbagent.tools.ripgrep import rg_lines, rg_path, type_filter
from nbagent.tools.screening import path_patterns, screen_paths
from nbagent.tools.walk import glob_regex, walk_files

__all__ = ["GLOB_CHARS", "MAX_GLOB_RESULTS", "MAX_SCAN_FILES", "GlobParams", "GlobTool"]

MAX_GLOB_RESULTS = 100
MAX_SCAN_FILES = 20_000  # files-with-matches: how many paths we collect before sorting by mtime
GLOB_CHARS = frozenset("*?[{")


# ---------------------------------------------------------------------------------------------
# Shared helpers


def _has_hidden_part(pattern: str | None) -> bool:
    """Does the pattern name a dot-folder or dot-file explicitly (``.github/**``)? Then search hidden paths."""
    if not pattern:
        return False
    return any(part.startswith(".") and part not in (".", "..") for part in re.split(r"[/\\]", pattern))


def _must_exist(target: Path, *, want_dir: bool) -> None:
    """Checked after the path was asked for: whether an outside path exists is not told for free."""
    if not target.exists():
        raise ToolFailure(f"Path not found: {target}. Give a directory inside the project, or omit path.")
    if want_dir and not target.is_dir():
        raise ToolFailure(f"{target} is a file, not a directory. Pass its folder as path, or use read.")


def _literal_prefix(pattern: str) -> tuple[str, str]:
    """``src/pkg/**/*.py`` -> (``src/pkg``, ``**/*.py``); ``src/*.py`` -> (``src``, ``/*.py``).

    The fixed leading folders become the place to search; the rest stays anchored there if it was.
    """
    anchored = "/" in pattern.rstrip("/")
    parts = pattern.strip("/").split("/")
    i = 0
    while i < len(parts) - 1 and parts[i] and not GLOB_CHARS & set(parts[i]) and parts[i] != "**":
        i += 1
    prefix, rest = "/".join(parts[:i]), "/".join(parts[i:])
    if anchored and "/" not in rest:
        rest = "/" + rest
    return prefix, rest


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


# ---------------------------------------------------------------------------------------------
# glob


class GlobParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    pattern: str = Field(description='Glob, e.g. "**/*.py" or "src/**/test_*.ts".')
    path: str | None = Field(default=None, description="Folder to search in (default: project root).")


class GlobTool(Tool[GlobParams]):
    name = "glob"
    params = GlobParams
    read_only = True

    async def run(self, args: GlobParams, ctx: ToolContext) -> ToolResult:
        pattern = args.pattern.strip()
        if not pattern:
            raise ToolFailure('Empty pattern. Give a glob such as "**/*.py".')
        base, pattern = _glob_base(ctx, pattern, args.path)
        prefix, pattern = _literal_prefix(pattern)
        target = Path(_join(base, prefix))
        where = f" in {ctx.display(base)}" if args.path else ""
        query = PermissionQuery(
            permission="glob", patterns=path_patterns(ctx, target), title=f"glob {args.pattern}{where}"
        )
        await ctx.ask(query)
        _must_exist(base, want_dir=True)
        # What the user approved for the folder covers the names in it; a path that asks or is denied
        # beyond that (a glob rule on a subfolder) is left out.
        ceiling = ctx.screen(query)
        files: list[str] = []
        more = False
        if await asyncio.to_thread(target.is_dir):
            hidden = _has_hidden_part(pattern)
            regex = glob_regex(pattern)
            if rg_path():

                def keep(line: bytes) -> bool:
                    return bool(regex.match(os.fsdecode(line).removeprefix("./")))

                rg_args = ["--files", *type_filter(pattern), *(["--hidden"] if hidden else []), "."]
                lines, more, code, stderr = await rg_lines(rg_args, target, MAX_SCAN_FILES, keep)
                if code == 2 and not lines:
                    raise ToolFailure(f"glob failed: {stderr.strip()[:1000]}")
                files = [_join(target, os.fsdecode(line)) for line in lines]
            else:
                files, more = await asyncio.to_thread(_glob_python, target, regex, hidden)
        # Names are screened newest first until a page is full: a glob lists names, not contents.
        paths = await asyncio.to_thread(_newest_first, [Path(f) for f in files])
        screened = await asyncio.to_thread(
            screen_paths,
            ctx,
            paths,
            "glob",
            ceiling=ceiling,
            walked_from=target,
            stop_after=MAX_GLOB_RESULTS + 1,
        )
        note = screened.note("listed", "listing")
        meta = {"count": len(paths) - screened.left_out, "left_out": screened.left_out}
        if not screened.allowed:
            out = "No files found" + (f"\n{note}" if note else "")
            return ToolResult(output=out, title=args.pattern, metadata={**meta, "count": 0})
        out = "\n".join(ctx.display(p) for p in screened.allowed[:MAX_GLOB_RESULTS])
        truncated = len(screened.allowed) > MAX_GLOB_RESULTS
        if truncated:
            total = len(paths) - screened.left_out
            out += (
                f"\n(Showing the {MAX_GLOB_RESULTS} newest of {total}{'+' if more else ''} files."
                " Use a more specific pattern or path.)"
            )
        if note:
            out += "\n" + note
        return ToolResult(output=out, title=args.pattern, metadata={**meta, "truncated": truncated})


def _glob_base(ctx: ToolContext, pattern: str, path: str | None) -> tuple[Path, str]:
    """The folder to search and the pattern relative to it (an absolute pattern brings its own folder)."""
    expanded = os.path.expanduser(pattern)
    if os.path.isabs(expanded):
        prefix, rest = _literal_prefix(expanded)
        return Path(os.path.normpath("/" + prefix)), rest
    return (ctx.resolve(path) if path else ctx.root), pattern.removeprefix("./")


def _join(folder: Path, rel: str) -> str:
    return os.path.normpath(folder / rel)


def _newest_first(paths: list[Path]) -> list[Path]:
    return sorted(paths, key=_mtime, reverse=True)


def _walk_list(folder: Path, hidden: bool, limit: int) -> tuple[list[Path], bool]:
    files: list[Path] = []
    for path in walk_files(folder, hidden=hidden):
        if len(files) >= limit:
            return files, True
        files.append(path)
    return files, False


def _glob_python(target: Path, regex: re.Pattern[str], hidden: bool) -> tuple[list[str], bool]:
    files: list[str] = []
    for path in walk_files(target, hidden=hidden):
        if regex.match(path.relative_to(target).as_posix()):
            if len(files) >= MAX_SCAN_FILES:
                return files, True
            files.append(str(path))
    return files, False
