"""Running ripgrep for ``glob`` and ``grep``: listing files, reading its output, always reaping it."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from nbagent.tools.base import ToolFailure

RG_TIMEOUT = 60.0


def rg_path() -> str | None:
    return shutil.which("rg")


def type_filter(glob: str) -> list[str]:
    """ripgrep arguments that pre-select files by a name-only glob.

    Not ``--glob``: ripgrep lets a matching ``--glob`` override .gitignore and hidden-file rules.
    File types do not. Globs with folders are left to the Python filter.
    """
    name_glob = glob.strip("/")
    if "/" in name_glob or ":" in name_glob or not name_glob:
        return []
    return ["--type-add", f"nbagentglob:{name_glob}", "--type", "nbagentglob"]


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


async def rg_lines(
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


async def rg_list(args: list[str], cwd: Path, limit: int) -> tuple[list[str], bool]:
    """ripgrep's ``--files`` listing under ``cwd`` (paths relative to it), up to ``limit``, and whether
    there were more. NUL-separated, so no file name can pass for two."""
    names: list[str] = []
    more = False
    try:
        async with asyncio.timeout(RG_TIMEOUT), _rg(["--files", "--null", *args, "."], cwd) as proc:
            assert proc.stdout is not None and proc.stderr is not None
            stderr_task = asyncio.ensure_future(proc.stderr.read(64_000))
            rest = b""
            try:
                while chunk := await proc.stdout.read(256 * 1024):
                    *done, rest = (rest + chunk).split(b"\0")
                    names += (os.fsdecode(d) for d in done)
                    if len(names) > limit:
                        more = True
                        names = names[:limit]
                        with contextlib.suppress(ProcessLookupError):
                            proc.kill()
                        break
            except BaseException:  # stopped early (timeout, cancel): the stderr reader ends with it
                stderr_task.cancel()
                await asyncio.gather(stderr_task, return_exceptions=True)
                raise
            stderr = (await stderr_task).decode("utf-8", errors="replace")
            code = await proc.wait()
    except TimeoutError:
        raise ToolFailure(
            f"Listing the files took longer than {RG_TIMEOUT:.0f} s and was stopped. Narrow it with path or glob."
        ) from None
    if code == 2 and not names:
        raise ToolFailure(f"ripgrep failed: {stderr.strip()[:1000]}")
    return names, more


def glob_escape(rel: str) -> str:
    """A path as a literal ripgrep glob."""
    return "".join("\\" + c if c in "\\*?[]{}" else c for c in rel)
