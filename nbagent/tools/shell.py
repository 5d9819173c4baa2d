"""Shell commands: ``bash`` (foreground or background), ``bash_output`` and ``kill_shell``.

Every command runs with ``bash -c`` in the project root, in a process group of its own, stdin
from /dev/null and stdout+stderr merged into one pipe (shell_process.py). Stopping a command
(timeout, cancel, ``kill_shell``) signals the whole group, SIGTERM then SIGKILL after a short grace,
and then every process that carries the command's marker: children that left the group (``setsid``,
``nohup``, daemons) go too. What a command leaves running on purpose (``cmd &``) is killed at
session end (shell_background.py); nbagent killed outright leaves nothing running (proc_track.py).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from nbagent.core.events import ToolCallOutput
from nbagent.tools.base import (
    MAX_OUTPUT_CHARS,
    MAX_OUTPUT_LINES,
    PermissionQuery,
    Tool,
    ToolContext,
    ToolFailure,
    ToolResult,
    bound_output,
)
from nbagent.tools.shell_background import STATE_KEY, BackgroundShell, ShellRegistry, close_shells, shells_of
from nbagent.tools.shell_process import (
    DRAIN_GRACE,
    KILL_GRACE,
    Running,
    after_command,
    exit_text,
    finish_pump,
    group_alive,
    pump_output,
    spawn,
    stop_command,
    stopper,
    terminate_group,
)
from nbagent.tools.spill import HEAD_CHARS, OutputLog

DEFAULT_TIMEOUT_MS = 120_000
MAX_TIMEOUT_MS = 600_000
EMIT_INTERVAL = 0.1  # live output: at most ~10 events a second
LIVE_CHUNK_CHARS = 50_000  # live output: at most this much per event

__all__ = [  # the background-shell registry and process handling live in their own modules
    "KILL_GRACE",
    "STATE_KEY",
    "BackgroundShell",
    "BashOutputTool",
    "BashTool",
    "KillShellTool",
    "Running",
    "ShellRegistry",
    "close_shells",
    "group_alive",
    "shells_of",
    "terminate_group",
]


# ---------------------------------------------------------------------------------------------
# Output capture


def _clip(head: str, tail: str, total_chars: int, total_lines: int, path: Path, label: str) -> str:
    """Head and tail of an output whose whole is already in ``path`` (same shape as ``bound_output``)."""
    half_lines = MAX_OUTPUT_LINES // 2
    head = "".join(head.splitlines(keepends=True)[:half_lines])[:HEAD_CHARS]
    tail = "".join(tail.splitlines(keepends=True)[-half_lines:])[-HEAD_CHARS:]
    omitted = max(0, total_chars - len(head) - len(tail))
    return (
        f"{head}\n... [{omitted} characters omitted; full {label} ({total_lines} lines) saved to {path};"
        f" read it with the read tool or grep] ...\n{tail}"
    )


def _fits(text: str) -> bool:
    return len(text) <= MAX_OUTPUT_CHARS and text.count("\n") < MAX_OUTPUT_LINES


def _bounded_log(log: OutputLog, ctx: ToolContext) -> str:
    """All of a finished command's output, bounded for the model."""
    if log.save_error is not None:
        text = log.text()
        if log.total > len(text):
            return f"{log.head}\n... [{log.total - len(log.head) - len(text)} characters lost] ...\n{text}"
        return text if _fits(text) else f"{text[:HEAD_CHARS]}\n... [output cut] ...\n{text[-HEAD_CHARS:]}"
    if log.path is None:
        return bound_output(log.text(), ctx, label="output")
    return _clip(log.head, log.text(), log.total, log.lines, log.path, "output")


class _Throttle:
    """Batches live output so the front-end sees at most one event per ``EMIT_INTERVAL``."""

    def __init__(self, send: Callable[[str], None]) -> None:
        self._send = send
        self._pending: list[str] = []
        self._size = 0
        self._last = 0.0
        self._handle: asyncio.TimerHandle | None = None
        self._loop = asyncio.get_running_loop()

    def add(self, text: str) -> None:
        self._pending.append(text)
        self._size += len(text)
        wait = self._last + EMIT_INTERVAL - self._loop.time()
        if wait <= 0:
            self.flush()
        elif self._handle is None:
            self._handle = self._loop.call_later(wait, self.flush)

    def flush(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        if not self._pending:
            return
        chunk = "".join(self._pending)
        if len(chunk) > LIVE_CHUNK_CHARS:
            chunk = (
                f"[... {len(chunk) - LIVE_CHUNK_CHARS} characters not shown live ...]\n"
                + chunk[-LIVE_CHUNK_CHARS:]
            )
        self._pending, self._size = [], 0
        self._last = self._loop.time()
        self._send(chunk)


# ---------------------------------------------------------------------------------------------
# bash


class BashParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    command: str = Field(description="The command to run.")
    timeout: int | None = Field(
        default=None, ge=1, le=MAX_TIMEOUT_MS, description="Milliseconds (default 120000, max 600000)."
    )
    description: str | None = Field(default=None, description="What it does, in 5-10 words.")
    run_in_background: bool = Field(
        default=False, description="Start and return at once; read with bash_output."
    )


class BashTool(Tool[BashParams]):
    name = "bash"
    params = BashParams
    read_only = False

    async def run(self, args: BashParams, ctx: ToolContext) -> ToolResult:
        if not args.command.strip():
            raise ToolFailure("Empty command.")
        await ctx.ask(
            PermissionQuery(
                permission="bash",
                patterns=[args.command],
                title=args.description or args.command,
                metadata={"cwd": str(ctx.root), "background": args.run_in_background},
            )
        )
        title = args.description or args.command
        if args.run_in_background:
            return await self._background(args, ctx, title)

        timeout = (args.timeout or DEFAULT_TIMEOUT_MS) / 1000
        running = await spawn(args.command, ctx.root, ctx)
        shells_of(ctx.state).commands.add(running.cmd_id)  # what it leaves running dies with the session
        stopping: set[asyncio.Task[None]] = set()
        log = OutputLog(
            ctx.output_dir,
            "bash",
            max_bytes=ctx.shell.max_output_bytes,
            on_limit=stopper(running.proc, stopping),
        )
        after = asyncio.create_task(after_command(running.proc, ctx))

        def send(chunk: str) -> None:
            ctx.emit(ToolCallOutput(session_id=ctx.session_id, call_id=ctx.call_id, chunk=chunk))

        throttle = _Throttle(send)
        pump = asyncio.create_task(pump_output(running.reader, log, throttle.add))
        timed_out = False
        try:
            try:
                await asyncio.wait_for(running.proc.wait(), timeout)
            except TimeoutError:
                timed_out = True
                await stop_command(running)
            drained = await finish_pump(pump, DRAIN_GRACE)
        except BaseException:
            # Cancelled (or failing): nothing of the command may outlive the call.
            try:
                await stop_command(running)
            finally:
                if not pump.done():
                    pump.cancel()
                running.transport.close()
                log.close()
                await asyncio.gather(after, *stopping, return_exceptions=True)
            raise
        finally:
            throttle.flush()
        running.transport.close()
        log.close()
        await asyncio.gather(*stopping, return_exceptions=True)
        notes = [log.notes(), *await after]

        code = running.proc.returncode
        body = _bounded_log(log, ctx) if log.total else "(no output)"
        if not body.endswith("\n"):
            body += "\n"
        if timed_out:
            status = (
                f"Timed out after {timeout:g} s: the command and all its child processes were killed."
                " Output so far is above. Raise timeout (max 600000 ms) or use run_in_background."
            )
        else:
            text = exit_text(code)
            status = text[0].upper() + text[1:] + "."
        if not drained:
            status += (
                "\nNote: processes the command started in the background still hold its output;"
                " later output is not shown. Use run_in_background for servers and watchers."
            )
        status = "\n".join([status, *(n for n in notes if n)])
        return ToolResult(
            output=f"{body}{status}",
            title=title,
            metadata={
                "exit_code": code,
                "timed_out": timed_out,
                "output_file": str(log.path) if log.path else None,
                "output_capped": log.limited,
            },
        )

    async def _background(self, args: BashParams, ctx: ToolContext, title: str) -> ToolResult:
        registry = shells_of(ctx.state)
        running = await spawn(args.command, ctx.root, ctx)
        registry.commands.add(running.cmd_id)
        shell_id = registry.next_id()
        stopping: set[asyncio.Task[None]] = set()
        log = OutputLog(
            ctx.output_dir,
            shell_id,
            max_bytes=ctx.shell.max_output_bytes,
            on_limit=stopper(running.proc, stopping),
        )
        pump = asyncio.create_task(pump_output(running.reader, log, None))
        after = asyncio.create_task(after_command(running.proc, ctx))
        shell = BackgroundShell(
            shell_id, args.command, args.description or "", running, log, pump, after, stopping=stopping
        )
        registry.shells[shell_id] = shell
        return ToolResult(
            output=(
                f"Started {shell_id} in the background (pid {shell.pid}). Read its output with"
                f' bash_output(shell_id="{shell_id}"); stop it with kill_shell.'
            ),
            title=title,
            metadata={"shell_id": shell_id, "pid": shell.pid, "background": True},
        )


# ---------------------------------------------------------------------------------------------
# bash_output / kill_shell


class BashOutputParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    shell_id: str = Field(description='Id from bash run_in_background, e.g. "bash_1".')
    filter: str | None = Field(default=None, description="Regex: only output lines matching it.")


class BashOutputTool(Tool[BashOutputParams]):
    name = "bash_output"
    params = BashOutputParams
    read_only = True

    async def run(self, args: BashOutputParams, ctx: ToolContext) -> ToolResult:
        shell = shells_of(ctx.state).get(args.shell_id)
        regex = None
        if args.filter:
            try:
                regex = re.compile(args.filter)
            except re.error as exc:
                raise ToolFailure(f"Invalid filter regex {args.filter!r}: {exc}.") from None
        await asyncio.sleep(0)  # let output already in the pipe arrive
        text, dropped = shell.log.since(shell.read_offset)
        shell.read_offset = shell.log.total
        if regex is not None:
            text = "".join(line for line in text.splitlines(keepends=True) if regex.search(line))
        parts = [f"{shell.id}: {shell.status}"]
        if dropped:
            parts.append(
                f"[{dropped} earlier characters are no longer in memory; the full log is {shell.log.path}]"
            )
        if not text:
            parts.append("(no new output)")
        elif _fits(text):
            parts.append(text.rstrip("\n"))
        elif shell.log.path is not None:
            parts.append(_clip(text, text, len(text), text.count("\n"), shell.log.path, "log").rstrip("\n"))
        else:
            parts.append(bound_output(text, ctx, label=shell.id))
        if shell.notes:
            parts.append(shell.notes)
        return ToolResult(
            output="\n".join(parts),
            title=f"{shell.id}: {shell.command}",
            metadata={
                "shell_id": shell.id,
                "exit_code": shell.run.proc.returncode,
                "running": shell.run.proc.returncode is None,
            },
        )


class KillShellParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    shell_id: str = Field(description="Id of the background shell to stop.")


class KillShellTool(Tool[KillShellParams]):
    name = "kill_shell"
    params = KillShellParams
    read_only = False

    async def run(self, args: KillShellParams, ctx: ToolContext) -> ToolResult:
        shell = shells_of(ctx.state).get(args.shell_id)
        was_running = shell.run.proc.returncode is None or group_alive(shell.pid)
        await shell.stop()
        if was_running:
            out = f"Killed {shell.id} and its child processes ($ {shell.command})."
        else:
            out = f"{shell.id} had already {shell.status}; cleaned up."
        unread = shell.log.total - shell.read_offset
        if unread:
            out += f" {unread} characters of output were never read; bash_output still shows them."
        if shell.notes:
            out += "\n" + shell.notes
        return ToolResult(output=out, title=f"kill {shell.id}", metadata={"shell_id": shell.id})
