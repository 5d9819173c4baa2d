"""Shell commands: ``bash`` (foreground or background), ``bash_output`` and ``kill_shell``.

Every command runs with ``bash -c`` in the project root, in a process group of its own, stdin
from /dev/null and stdout+stderr merged into one pipe. Stopping a command (timeout, cancel,
``kill_shell``, session end) signals the whole group: SIGTERM, then SIGKILL after a short grace.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import os
import re
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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
from nbagent.tools.shell_env import ShellOptions, scrubbed_env
from nbagent.tools.spill import HEAD_CHARS, OutputLog

DEFAULT_TIMEOUT_MS = 120_000
MAX_TIMEOUT_MS = 600_000
KILL_GRACE = 2.0  # seconds between SIGTERM and SIGKILL
DRAIN_GRACE = 0.5  # after the shell exits, how long to wait for output its leftovers still hold open
EMIT_INTERVAL = 0.1  # live output: at most ~10 events a second
LIVE_CHUNK_CHARS = 50_000  # live output: at most this much per event
READ_SIZE = 65_536
STATE_KEY = "shells"


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


async def _pump(reader: asyncio.StreamReader, log: OutputLog, on_text: Callable[[str], None] | None) -> None:
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    while True:
        data = await reader.read(READ_SIZE)
        text = decoder.decode(data, final=not data)
        if text:
            log.write(text)
            if on_text is not None:
                on_text(text)
        if not data:
            return


# ---------------------------------------------------------------------------------------------
# Processes


@dataclass
class _Running:
    proc: asyncio.subprocess.Process
    reader: asyncio.StreamReader
    transport: asyncio.ReadTransport


def _env(options: ShellOptions) -> dict[str, str]:
    """The command's environment: ours without secrets (``shell_env``), pagers off."""
    env = scrubbed_env(os.environ, options)
    env.update({"PAGER": "cat", "GIT_PAGER": "cat", "GIT_TERMINAL_PROMPT": "0"})
    return env


async def _spawn(command: str, cwd: Path, ctx: ToolContext) -> _Running:
    """``bash -c command`` in a new session; stdout and stderr share one pipe we read ourselves
    (so the process's exit is seen at once even when its children keep the pipe open). Once the
    command is wrapped, ``ctx.shell.after_command`` runs exactly once after it ends (or fails to start)."""
    argv = ctx.wrap_argv(["bash", "-c", command])
    read_fd, write_fd = os.pipe()
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            cwd=cwd,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=write_fd,
            stderr=write_fd,
            start_new_session=True,
            env=_env(ctx.shell),
        )
    except OSError as exc:
        os.close(read_fd)
        ctx.shell.after_command()
        raise ToolFailure(f"Could not start bash in {cwd}: {exc}") from None
    except BaseException:
        os.close(read_fd)
        ctx.shell.after_command()
        raise
    finally:
        os.close(write_fd)
    reader = asyncio.StreamReader(limit=READ_SIZE * 4)
    loop = asyncio.get_running_loop()
    pipe = os.fdopen(read_fd, "rb", buffering=0)
    try:
        transport, _ = await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), pipe)
    except BaseException:
        pipe.close()
        _signal_group(proc.pid, signal.SIGKILL)
        ctx.shell.after_command()
        raise
    return _Running(proc, reader, transport)


async def _after(proc: asyncio.subprocess.Process, ctx: ToolContext) -> list[str]:
    """Once the command has ended: the session's after-check (the sandbox guard), never raising."""
    await proc.wait()
    try:
        return ctx.shell.after_command()
    except Exception as exc:  # a failing check must not lose the command's result
        return [f"The check after the command failed: {exc}"]


def _stopper(proc: asyncio.subprocess.Process, tasks: set[asyncio.Task[None]]) -> Callable[[], None]:
    """For ``OutputLog.on_limit``: stop the command's whole process group (from a sync callback)."""

    def stop() -> None:
        task = asyncio.get_running_loop().create_task(terminate_group(proc))
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    return stop


def _signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def group_alive(pgid: int) -> bool:
    """Is any process of the group still alive? Zombies (exited, not yet reaped) do not count."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    if not os.path.isdir("/proc"):
        return True
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", encoding="utf-8", errors="replace") as fh:
                stat = fh.read()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()
        if len(fields) > 2 and fields[2] == str(pgid) and fields[0] != "Z":
            return True
    return False


async def terminate_group(proc: asyncio.subprocess.Process, grace: float = KILL_GRACE) -> None:
    """SIGTERM the process group, SIGKILL what is left after ``grace`` seconds, reap the leader."""
    pgid = proc.pid
    _signal_group(pgid, signal.SIGTERM)
    try:
        for _ in range(max(1, round(grace / 0.05))):
            if not group_alive(pgid):
                break
            await asyncio.sleep(0.05)
    finally:
        if group_alive(pgid):
            _signal_group(pgid, signal.SIGKILL)
    await proc.wait()


async def _finish_pump(pump: asyncio.Task[None], grace: float) -> bool:
    """Wait up to ``grace`` seconds for the output to end; True if it did."""
    done, _ = await asyncio.wait({pump}, timeout=grace)
    if done:
        pump.result()
        return True
    pump.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await pump
    return False


def _exit_text(code: int | None) -> str:
    if code is None:
        return "still running"
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = str(-code)
        return f"killed by {name}"
    return f"exit code {code}"


# ---------------------------------------------------------------------------------------------
# Background shells


@dataclass
class BackgroundShell:
    id: str
    command: str
    description: str
    run: _Running
    log: OutputLog
    pump: asyncio.Task[None]
    after: asyncio.Task[list[str]]
    started: float = field(default_factory=time.monotonic)
    read_offset: int = 0
    killed: bool = False
    stopping: set[asyncio.Task[None]] = field(default_factory=set)

    @property
    def notes(self) -> str:
        """What the model must know beyond the output (output cap, sandbox guard)."""
        parts = [self.log.notes()]
        if self.after.done() and not self.after.cancelled():
            parts += self.after.result()
        return "\n".join(p for p in parts if p)

    @property
    def pid(self) -> int:
        return self.run.proc.pid

    @property
    def status(self) -> str:
        code = self.run.proc.returncode
        if code is None:
            return f"running for {time.monotonic() - self.started:.0f} s"
        if self.killed:
            return "killed"
        return f"exited, {_exit_text(code)}"

    async def stop(self) -> None:
        """Kill the process group: the shell, or what it left running after it exited."""
        if self.run.proc.returncode is None:
            self.killed = True
        if self.killed or group_alive(self.pid):
            await terminate_group(self.run.proc)
        # Leftover processes outside the group may still hold the pipe: stop reading after a moment.
        await _finish_pump(self.pump, DRAIN_GRACE)
        await asyncio.gather(self.after, *self.stopping, return_exceptions=True)
        self.run.transport.close()
        self.log.close()


class ShellRegistry:
    """The background shells of one session, kept in ``ctx.state["shells"]``."""

    def __init__(self) -> None:
        self.shells: dict[str, BackgroundShell] = {}
        self._count = 0

    def next_id(self) -> str:
        self._count += 1
        return f"bash_{self._count}"

    def get(self, shell_id: str) -> BackgroundShell:
        shell = self.shells.get(shell_id)
        if shell is None:
            known = ", ".join(self.shells) or "none"
            raise ToolFailure(f"No background shell {shell_id!r}. Known shells: {known}.")
        return shell

    async def close(self) -> None:
        await asyncio.gather(*(shell.stop() for shell in self.shells.values()), return_exceptions=True)


def shells_of(state: dict[str, Any]) -> ShellRegistry:
    registry = state.get(STATE_KEY)
    if not isinstance(registry, ShellRegistry):
        registry = state[STATE_KEY] = ShellRegistry()
    return registry


async def close_shells(state: dict[str, Any]) -> None:
    """Kill every background shell of a session (its whole process group). Call at session end."""
    registry = state.get(STATE_KEY)
    if isinstance(registry, ShellRegistry):
        await registry.close()


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
        running = await _spawn(args.command, ctx.root, ctx)
        stopping: set[asyncio.Task[None]] = set()
        log = OutputLog(
            ctx.output_dir,
            "bash",
            max_bytes=ctx.shell.max_output_bytes,
            on_limit=_stopper(running.proc, stopping),
        )
        after = asyncio.create_task(_after(running.proc, ctx))

        def send(chunk: str) -> None:
            ctx.emit(ToolCallOutput(session_id=ctx.session_id, call_id=ctx.call_id, chunk=chunk))

        throttle = _Throttle(send)
        pump = asyncio.create_task(_pump(running.reader, log, throttle.add))
        timed_out = False
        try:
            try:
                await asyncio.wait_for(running.proc.wait(), timeout)
            except TimeoutError:
                timed_out = True
                await terminate_group(running.proc)
            drained = await _finish_pump(pump, DRAIN_GRACE)
        except BaseException:
            # Cancelled (or failing): nothing of the command may outlive the call.
            try:
                await terminate_group(running.proc)
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
            text = _exit_text(code)
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
        running = await _spawn(args.command, ctx.root, ctx)
        shell_id = registry.next_id()
        stopping: set[asyncio.Task[None]] = set()
        log = OutputLog(
            ctx.output_dir,
            shell_id,
            max_bytes=ctx.shell.max_output_bytes,
            on_limit=_stopper(running.proc, stopping),
        )
        pump = asyncio.create_task(_pump(running.reader, log, None))
        after = asyncio.create_task(_after(running.proc, ctx))
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
