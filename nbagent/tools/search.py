"""Finding files and text: ``glob`` and ``grep``.

Both use ripgrep when it is on PATH (fast, respects .gitignore) and fall back to pure Python
(which skips VCS/dependency folders, hidden folders and what simple .gitignore rules exclude).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from nbagent.tools.base import PermissionQuery, Tool, ToolContext, ToolFailure, ToolResult, bound_output

MAX_GLOB_RESULTS = 100
MAX_GREP_FILES = 100
MAX_GREP_LINES = 250
MAX_LINE_CHARS = 500
MAX_SCAN_FILES = 20_000  # files-with-matches: how many paths we collect before sorting by mtime
RG_TIMEOUT = 60.0
FALLBACK_MAX_FILE_BYTES = 10_000_000
SKIP_DIRS = frozenset({".git", ".hg", ".svn", "node_modules", ".venv", "venv", "__pycache__"})
GLOB_CHARS = frozenset("*?[{")


# ---------------------------------------------------------------------------------------------
# Shared helpers


def rg_path() -> str | None:
    return shutil.which("rg")


def _has_hidden_part(pattern: str | None) -> bool:
    """Does the pattern name a dot-folder or dot-file explicitly (``.github/**``)? Then search hidden paths."""
    if not pattern:
        return False
    return any(part.startswith(".") and part not in (".", "..") for part in re.split(r"[/\\]", pattern))


def _target(ctx: ToolContext, path: str | None, *, want_dir: bool) -> Path:
    target = ctx.resolve(path) if path else ctx.root
    if not target.exists():
        raise ToolFailure(f"Path not found: {target}. Give a directory inside the project, or omit path.")
    if want_dir and not target.is_dir():
        raise ToolFailure(f"{target} is a file, not a directory. Pass its folder as path, or use read.")
    return target


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


def _type_filter(glob: str) -> list[str]:
    """ripgrep arguments that pre-select files by a name-only glob.

    Not ``--glob``: ripgrep lets a matching ``--glob`` override .gitignore and hidden-file rules.
    File types do not. Globs with folders are left to the Python filter.
    """
    name_glob = glob.strip("/")
    if "/" in name_glob or ":" in name_glob or not name_glob:
        return []
    return ["--type-add", f"nbagentglob:{name_glob}", "--type", "nbagentglob"]


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
    """The simple part of .gitignore (no negation), for the pure-Python walker."""

    rules: list[tuple[Path, re.Pattern[str], bool]] = field(default_factory=list)  # (base, regex, dir_only)

    def extended(self, folder: Path) -> _IgnoreRules:
        gitignore = folder / ".gitignore"
        if not gitignore.is_file():
            return self
        new = list(self.rules)
        try:
            lines = gitignore.read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError:
            return self
        for raw in lines:
            line = raw.strip()
            if not line or line.startswith(("#", "!")):
                continue
            new.append((folder, glob_regex(line), line.endswith("/")))
        return _IgnoreRules(new)

    def ignored(self, path: Path, is_dir: bool) -> bool:
        for base, regex, dir_only in self.rules:
            if dir_only and not is_dir:
                continue
            try:
                rel = path.relative_to(base).as_posix()
            except ValueError:
                continue
            if regex.match(rel):
                return True
        return False


def walk_files(top: Path, *, hidden: bool = False) -> Iterator[Path]:
    """Files under ``top``, skipping VCS/dependency folders, hidden entries and .gitignored paths."""
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
                is_file = entry.is_file()
            except OSError:
                continue
            if is_dir:
                if entry.name in SKIP_DIRS or rules.ignored(path, True):
                    continue
                stack.append((path, rules.extended(path)))
            elif is_file and not rules.ignored(path, False):
                yield path


@contextlib.asynccontextmanager
async def _rg(args: list[str], cwd: Path) -> AsyncIterator[asyncio.subprocess.Process]:
    """Run ripgrep; always reaps it, killing it if the caller stops early or is cancelled."""
    exe = rg_path()
    assert exe is not None
    proc = await asyncio.create_subprocess_exec(
        exe,
        "--no-config",
        "--no-require-git",
        "--color",
        "never",
        *args,
        cwd=cwd,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        limit=4 * 1024 * 1024,
    )
    try:
        yield proc
    finally:
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
        await proc.wait()


async def _rg_lines(
    args: list[str], cwd: Path, limit: int, keep: Callable[[bytes], bool] | None = None
) -> tuple[list[bytes], bool, int, str]:
    """Up to ``limit`` output lines of ripgrep (those ``keep`` accepts), whether there were more,
    the exit code and stderr."""
    lines: list[bytes] = []
    more = False
    try:
        async with asyncio.timeout(RG_TIMEOUT), _rg(args, cwd) as proc:
            assert proc.stdout is not None and proc.stderr is not None
            stderr_task = asyncio.ensure_future(proc.stderr.read(64_000))
            eof = False
            try:
                while True:
                    line = await proc.stdout.readline()
                    if not line:
                        eof = True
                        break
                    line = line.rstrip(b"\n")
                    if keep is not None and not keep(line):
                        continue
                    if len(lines) >= limit:
                        more = True
                        break
                    lines.append(line)
            finally:
                if not eof and proc.returncode is None:
                    with contextlib.suppress(ProcessLookupError):
                        proc.kill()
                stderr = (await stderr_task).decode("utf-8", errors="replace")
                code = await proc.wait()
    except TimeoutError:
        raise ToolFailure(
            f"The search took longer than {RG_TIMEOUT:.0f} s and was stopped. Narrow it with path or glob."
        ) from None
    return lines, more, code, stderr


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def _rel_arg(ctx: ToolContext, target: Path) -> str:
    """How to name ``target`` on ripgrep's command line run from the project root."""
    if target == ctx.root:
        return "."
    try:
        return str(target.relative_to(ctx.root))
    except ValueError:
        return str(target)


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
        target, pattern = _glob_target(ctx, pattern, args.path)
        await ctx.ask(
            PermissionQuery(permission="glob", patterns=[args.pattern], title=f"glob {args.pattern}")
        )
        prefix, pattern = _literal_prefix(pattern)
        target = Path(_join(target, prefix))
        files: list[str] = []
        more = False
        if await asyncio.to_thread(target.is_dir):
            hidden = _has_hidden_part(pattern)
            regex = glob_regex(pattern)
            if rg_path():

                def keep(line: bytes) -> bool:
                    return bool(regex.match(os.fsdecode(line).removeprefix("./")))

                rg_args = ["--files", *_type_filter(pattern), *(["--hidden"] if hidden else []), "."]
                lines, more, code, stderr = await _rg_lines(rg_args, target, MAX_SCAN_FILES, keep)
                if code == 2 and not lines:
                    raise ToolFailure(f"glob failed: {stderr.strip()[:1000]}")
                files = [_join(target, os.fsdecode(line)) for line in lines]
            else:
                files, more = await asyncio.to_thread(_glob_python, target, regex, hidden)

        if not files:
            return ToolResult(output="No files found", title=args.pattern, metadata={"count": 0})
        paths = await asyncio.to_thread(_newest_first, [Path(f) for f in files])
        shown = [ctx.display(p) for p in paths[:MAX_GLOB_RESULTS]]
        out = "\n".join(shown)
        truncated = len(paths) > MAX_GLOB_RESULTS
        if truncated:
            out += (
                f"\n(Showing the {MAX_GLOB_RESULTS} newest of {len(paths)}{'+' if more else ''} files."
                " Use a more specific pattern or path.)"
            )
        return ToolResult(
            output=out, title=args.pattern, metadata={"count": len(paths), "truncated": truncated}
        )


def _glob_target(ctx: ToolContext, pattern: str, path: str | None) -> tuple[Path, str]:
    """The folder to search and the pattern relative to it (an absolute pattern brings its own folder)."""
    expanded = os.path.expanduser(pattern)
    if os.path.isabs(expanded):
        prefix, rest = _literal_prefix(expanded)
        return _target(ctx, "/" + prefix, want_dir=True), rest
    return _target(ctx, path, want_dir=True), pattern.removeprefix("./")


def _join(folder: Path, rel: str) -> str:
    return os.path.normpath(folder / rel)


def _newest_first(paths: list[Path]) -> list[Path]:
    return sorted(paths, key=_mtime, reverse=True)


def _glob_python(target: Path, regex: re.Pattern[str], hidden: bool) -> tuple[list[str], bool]:
    files: list[str] = []
    for path in walk_files(target, hidden=hidden):
        if regex.match(path.relative_to(target).as_posix()):
            if len(files) >= MAX_SCAN_FILES:
                return files, True
            files.append(str(path))
    return files, False


# ---------------------------------------------------------------------------------------------
# grep

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
        target = _target(ctx, args.path, want_dir=False)
        await ctx.ask(
            PermissionQuery(
                permission="grep",
                patterns=[args.pattern],
                title=f"grep {args.pattern}",
                metadata={"path": str(target)},
            )
        )
        default_limit = MAX_GREP_LINES if args.output_mode == "content" else MAX_GREP_FILES
        limit = args.head_limit or default_limit
        if rg_path():
            outcome = await self._ripgrep(args, ctx, target, limit)
        else:
            outcome = await asyncio.to_thread(self._python, args, ctx, target, limit)

        mode = args.output_mode
        if not outcome.entries:
            return ToolResult(output="No matches found", title=args.pattern, metadata={"matches": 0})
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
        return ToolResult(
            output=bound_output(out, ctx, label="grep"),
            title=args.pattern,
            metadata={"files": outcome.files, "truncated": outcome.more},
        )

    async def _ripgrep(self, args: GrepParams, ctx: ToolContext, target: Path, limit: int) -> _GrepOutcome:
        mode = args.output_mode
        base = ["--with-filename"]
        if mode != "files_with_matches":  # -l --null would end paths with NUL instead of newline
            base.append("--null")
        if args.case_insensitive:
            base.append("-i")
        if args.multiline:
            base += ["-U", "--multiline-dotall"]
        if args.glob:
            base += _type_filter(args.glob)
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

        keep = None
        if args.glob:
            wanted = _file_filter(args.glob, target)

            def keep(line: bytes) -> bool:
                if mode == "files_with_matches":
                    return wanted(ctx.resolve(os.fsdecode(line)))
                name, nul, _ = line.partition(b"\0")
                return not nul or wanted(ctx.resolve(os.fsdecode(name)))

        tail = ["-e", args.pattern, "--", _rel_arg(ctx, target)]
        lines, more, code, stderr = await _rg_lines([*base, *tail], ctx.root, scan, keep)
        if code == 2 and not lines:
            # Rust's regex has no look-around or backreferences: PCRE2 has.
            retry, more, code2, _ = await _rg_lines([*base, "--pcre2", *tail], ctx.root, scan, keep)
            if code2 == 2 and not retry:
                raise ToolFailure(
                    f"grep failed: {stderr.strip()[:1500]}\n"
                    "If this is a regex error, escape special characters (e.g. \\( \\[ \\.) for a literal match."
                )
            lines = retry

        def path_of(raw: bytes) -> str:
            return ctx.display(ctx.resolve(os.fsdecode(raw)))

        if mode == "files_with_matches":
            paths = await asyncio.to_thread(
                _newest_first, list({ctx.resolve(os.fsdecode(line)) for line in lines})
            )
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

    def _python(self, args: GrepParams, ctx: ToolContext, target: Path, limit: int) -> _GrepOutcome:
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
        file_filter = _file_filter(args.glob, target) if args.glob else None
        hidden = _has_hidden_part(args.glob) or _has_hidden_part(args.path)
        mode = args.output_mode
        ctx_lines = args.context or 0

        matched_files: list[Path] = []
        counts: list[tuple[str, int]] = []
        entries: list[str] = []
        more = False
        for path in walk_files(target, hidden=hidden):
            if file_filter is not None and not file_filter(path):
                continue
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
