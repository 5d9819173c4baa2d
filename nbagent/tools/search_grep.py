"""The ``grep`` tool: search file contents for a regular expression.

It uses ripgrep when it is on PATH and falls back to a pure-Python search otherwise (which skips
VCS/dependency folders, hidden folders and what simple .gitignore rules exclude); it follows no
symbolic links. The file or folder searched is asked for with its real location, and every file a
recursive search would read is screened first (``read``): a protected file (``.env``, keys), a file
outside the project or one a rule denies is not opened, and the result says which were left out so
the model can read them with the read tool, which asks. Output modes: file names (newest first),
matching lines with context, or counts per file.
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from nbagent.tools.base import PermissionQuery, Tool, ToolContext, ToolFailure, ToolResult, bound_output
from nbagent.tools.ripgrep import glob_escape, rg_lines, rg_list, rg_path, type_filter
from nbagent.tools.screening import Screened, path_patterns, screen_paths
from nbagent.tools.search_glob import (
    MAX_SCAN_FILES,
    _has_hidden_part,
    _join,
    _must_exist,
    _newest_first,
    _walk_list,
)
from nbagent.tools.walk import glob_regex

__all__ = [
    "FALLBACK_MAX_FILE_BYTES",
    "MAX_EXCLUDES",
    "MAX_GREP_CANDIDATES",
    "MAX_GREP_FILES",
    "MAX_GREP_LINES",
    "MAX_LINE_CHARS",
    "GrepParams",
    "GrepTool",
    "OutputMode",
]

MAX_GREP_FILES = 100
MAX_GREP_LINES = 250
MAX_LINE_CHARS = 500
FALLBACK_MAX_FILE_BYTES = 10_000_000
MAX_GREP_CANDIDATES = 200_000  # files a recursive grep screens before searching
MAX_EXCLUDES = 1_000  # left-out files passed to ripgrep as --glob !path (the rest: output filtered)

OutputMode = Literal["files_with_matches", "content", "count"]


class GrepParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    pattern: str = Field(description="Regular expression (ripgrep syntax).")
    path: str | None = Field(default=None, description="File or folder to search (default: project root).")
    glob: str | None = Field(default=None, description='Only files matching this glob, e.g. "*.py".')
    output_mode: OutputMode = Field(
        default="files_with_matches",
        description="What to return.",
    )
    case_insensitive: bool = Field(default=False, description="Ignore case.")
    context: int | None = Field(default=None, ge=0, le=50, description="Lines of context (content mode).")
    head_limit: int | None = Field(default=None, ge=1, description="Show only the first N entries.")
    multiline: bool = Field(default=False, description="Let . and patterns span lines.")


def _cut(text: str) -> str:
    if len(text) <= MAX_LINE_CHARS:
        return text
    return text[:MAX_LINE_CHARS] + f" ... [line cut, {len(text)} chars]"


@dataclass
class _GrepOutcome:
    entries: list[str]  # formatted output lines
    more: bool  # entries were left out
    files: int = 0
    total: int = 0  # count mode: matching lines


class GrepTool(Tool[GrepParams]):
    name = "grep"
    params = GrepParams
    read_only = True

    async def run(self, args: GrepParams, ctx: ToolContext) -> ToolResult:
        if not args.pattern:
            raise ToolFailure("Empty pattern. Give a regular expression.")
        target = ctx.resolve(args.path) if args.path else ctx.root
        where = f" in {ctx.display(target)}" if args.path else ""
        await ctx.ask(
            PermissionQuery(
                permission="grep",
                patterns=path_patterns(ctx, target),
                title=f"grep {args.pattern}{where}",
                metadata={"path": str(target), "regex": args.pattern},
            )
        )
        _must_exist(target, want_dir=False)
        default_limit = MAX_GREP_LINES if args.output_mode == "content" else MAX_GREP_FILES
        limit = args.head_limit or default_limit
        use_rg = rg_path() is not None
        if await asyncio.to_thread(target.is_dir):
            candidates = await self._candidates(args, target, use_rg)
            screened = await asyncio.to_thread(screen_paths, ctx, candidates, "read", walked_from=target)
        elif args.glob and not _file_filter(args.glob, target)(target):
            screened = Screened()
        else:
            screened = Screened(allowed=[target])  # the file itself was asked for
        if not screened.allowed:
            outcome = _GrepOutcome([], False)
        elif use_rg:
            outcome = await self._ripgrep(args, ctx, target, limit, screened)
        else:
            outcome = await asyncio.to_thread(self._python, args, ctx, screened.allowed, limit)

        mode = args.output_mode
        note = screened.note("searched", "reading")
        meta = {"files": outcome.files, "truncated": outcome.more, "left_out": screened.left_out}
        if not outcome.entries:
            out = "No matches found" + (f"\n{note}" if note else "")
            return ToolResult(output=out, title=args.pattern, metadata={**meta, "matches": 0})
        if mode == "files_with_matches":
            header = f"Found {outcome.files} file{'s' if outcome.files != 1 else ''}"
        elif mode == "count":
            header = f"{outcome.total} matching lines in {outcome.files} files"
        else:
            header = ""
        body = "\n".join(outcome.entries)
        if outcome.more:
            unit = "lines" if mode == "content" else "files"
            body += f"\n(Showing the first {limit} {unit}; there are more. Narrow pattern, path or glob.)"
        out = f"{header}\n{body}" if header else body
        out = bound_output(out, ctx, label="grep")
        return ToolResult(output=out + (f"\n{note}" if note else ""), title=args.pattern, metadata=meta)

    async def _candidates(self, args: GrepParams, folder: Path, use_rg: bool) -> list[Path]:
        """The files a search of ``folder`` would read (gitignore, hidden files and glob applied)."""
        hidden = _has_hidden_part(args.glob) or _has_hidden_part(args.path)
        if use_rg:
            select = [*(type_filter(args.glob) if args.glob else []), *(["--hidden"] if hidden else [])]
            names, more = await rg_list(select, folder, MAX_GREP_CANDIDATES)
            files = [Path(_join(folder, name)) for name in names]
        else:
            files, more = await asyncio.to_thread(_walk_list, folder, hidden, MAX_GREP_CANDIDATES)
        if more:
            raise ToolFailure(
                f"The search would read more than {MAX_GREP_CANDIDATES:,} files under {folder}."
                " Narrow it with path or glob."
            )
        if args.glob:
            wanted = _file_filter(args.glob, folder)
            files = [f for f in files if wanted(f)]
        return files

    async def _ripgrep(
        self, args: GrepParams, ctx: ToolContext, target: Path, limit: int, screened: Screened
    ) -> _GrepOutcome:
        """Search with ripgrep; only the screened files' lines come back (left-out files are excluded by
        name, and any line of a file not screened in is dropped)."""
        mode = args.output_mode
        base = ["--with-filename"]
        if mode != "files_with_matches":  # -l --null would end paths with NUL instead of newline
            base.append("--null")
        if args.case_insensitive:
            base.append("-i")
        if args.multiline:
            base += ["-U", "--multiline-dotall"]
        if args.glob:
            base += type_filter(args.glob)
        if _has_hidden_part(args.glob) or _has_hidden_part(args.path):
            base.append("--hidden")
        if mode == "files_with_matches":
            base.append("--files-with-matches")
            scan = MAX_SCAN_FILES
        elif mode == "count":
            base.append("--count")
            scan = MAX_SCAN_FILES
        else:
            base += [
                "--line-number",
                "--no-heading",
                "--max-columns",
                str(MAX_LINE_CHARS),
                "--max-columns-preview",
            ]
            if args.context:
                base += ["--context", str(args.context)]
            scan = limit

        is_dir = await asyncio.to_thread(target.is_dir)
        cwd = target if is_dir else target.parent
        allowed = set(screened.allowed)

        def path_of_name(raw: bytes) -> Path:
            return Path(os.path.normpath(cwd / os.fsdecode(raw)))

        def keep(line: bytes) -> bool:
            if mode == "files_with_matches":
                return path_of_name(line) in allowed
            name, nul, _ = line.partition(b"\0")
            return not nul or path_of_name(name) in allowed  # no NUL: a context separator

        # ripgrep never opens a left-out file: each is excluded by a --glob, which beats .gitignore
        # negations; past MAX_EXCLUDES the keep filter above still drops their lines.
        excludes: list[str] = []
        for path in screened.left_out_paths[:MAX_EXCLUDES]:
            excludes += ["--glob", "!/" + glob_escape(path.relative_to(cwd).as_posix())]
        tail = [*excludes, "-e", args.pattern, "--", "." if is_dir else "./" + target.name]
        lines, more, code, stderr = await rg_lines([*base, *tail], cwd, scan, keep)
        if code == 2 and not lines:
            # Rust's regex has no look-around or backreferences: PCRE2 has.
            retry, more, code2, _ = await rg_lines([*base, "--pcre2", *tail], cwd, scan, keep)
            if code2 == 2 and not retry:
                raise ToolFailure(
                    f"grep failed: {stderr.strip()[:1500]}\n"
                    "If this is a regex error, escape special characters (e.g. \\( \\[ \\.) for a literal match."
                )
            lines = retry

        def path_of(raw: bytes) -> str:
            return ctx.display(path_of_name(raw))

        if mode == "files_with_matches":
            paths = await asyncio.to_thread(_newest_first, list({path_of_name(line) for line in lines}))
            shown = [ctx.display(p) for p in paths[:limit]]
            return _GrepOutcome(shown, more or len(paths) > limit, files=len(paths))
        if mode == "count":
            counts: list[tuple[str, int]] = []
            for line in lines:
                name, _, num = line.partition(b"\0")
                counts.append((path_of(name), int(num or b"0")))
            counts.sort()
            total = sum(c for _, c in counts)
            shown = [f"{p}:{c}" for p, c in counts[:limit]]
            return _GrepOutcome(shown, more or len(counts) > limit, files=len(counts), total=total)
        entries: list[str] = []
        files: set[str] = set()
        for line in lines:
            if b"\0" not in line:  # context group separator "--"
                if entries and entries[-1] != "--":
                    entries.append("--")
                continue
            name, _, rest = line.partition(b"\0")
            shown_path = path_of(name)
            files.add(shown_path)
            text = rest.decode("utf-8", errors="replace")
            m = re.match(r"\d+([:-])", text)
            sep = m.group(1) if m else ":"  # ':' for matching lines, '-' for context lines, as rg does
            entries.append(f"{shown_path}{sep}{_cut(text)}")
        while entries and entries[-1] == "--":
            entries.pop()
        return _GrepOutcome(entries, more, files=len(files))

    def _python(self, args: GrepParams, ctx: ToolContext, files: list[Path], limit: int) -> _GrepOutcome:
        """Search ``files`` (screened already) in Python."""
        flags = re.IGNORECASE if args.case_insensitive else 0
        if args.multiline:
            flags |= re.MULTILINE | re.DOTALL
        try:
            regex = re.compile(args.pattern, flags)
        except re.error as exc:
            raise ToolFailure(
                f"Invalid regex {args.pattern!r}: {exc}. Escape special characters (e.g. \\( \\[ \\.)"
                " for a literal match."
            ) from None
        mode = args.output_mode
        ctx_lines = args.context or 0

        matched_files: list[Path] = []
        counts: list[tuple[str, int]] = []
        entries: list[str] = []
        more = False
        for path in files:
            text = _read_text(path)
            if text is None:
                continue
            lines = text.splitlines()
            if args.multiline:
                hit_lines: set[int] = set()
                for m in regex.finditer(text):
                    first = text.count("\n", 0, m.start())
                    last = text.count("\n", 0, max(m.start(), m.end() - 1))
                    hit_lines.update(range(first, last + 1))
                hits = sorted(hit_lines)
            else:
                hits = [i for i, line in enumerate(lines) if regex.search(line)]
            if not hits:
                continue
            matched_files.append(path)
            if len(matched_files) >= MAX_SCAN_FILES:
                more = True
                break
            shown_path = ctx.display(path)
            if mode == "count":
                counts.append((shown_path, len(hits)))
                continue
            if mode != "content":
                continue
            if len(entries) >= limit:
                more = True
                break
            wanted: list[int] = sorted(
                {j for i in hits for j in range(max(0, i - ctx_lines), min(len(lines), i + ctx_lines + 1))}
            )
            hit_set = set(hits)
            previous = None
            if entries and ctx_lines:
                entries.append("--")
            for j in wanted:
                if previous is not None and j != previous + 1:
                    entries.append("--")
                sep = ":" if j in hit_set else "-"
                entries.append(f"{shown_path}{sep}{j + 1}{sep}{_cut(lines[j])}")
                previous = j
        if mode == "files_with_matches":
            paths = _newest_first(matched_files)
            return _GrepOutcome(
                [ctx.display(p) for p in paths[:limit]], more or len(paths) > limit, len(paths)
            )
        if mode == "count":
            counts.sort()
            total = sum(c for _, c in counts)
            shown = [f"{p}:{c}" for p, c in counts[:limit]]
            return _GrepOutcome(shown, more or len(counts) > limit, files=len(counts), total=total)
        if len(entries) > limit:
            entries, more = entries[:limit], True
        return _GrepOutcome(entries, more, files=len(matched_files))


def _file_filter(glob: str, target: Path) -> Callable[[Path], bool]:
    """Does a file (absolute path) match ``glob``, taken relative to the searched folder?"""
    regex = glob_regex(glob)

    def wanted(path: Path) -> bool:
        try:
            rel = path.relative_to(target).as_posix()
        except ValueError:
            rel = path.name
        return bool(regex.match(rel if rel != "." else path.name))

    return wanted


def _read_text(path: Path) -> str | None:
    """A file's text, or None for binary, unreadable or huge files."""
    try:
        if path.stat().st_size > FALLBACK_MAX_FILE_BYTES:
            return None
        data = path.read_bytes()
    except OSError:
        return None
    if b"\0" in data[:8192]:
        return None
    return data.decode("utf-8", errors="replace")
