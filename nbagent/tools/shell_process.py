"""A shell command's processes: spawned in a session of their own, read through one pipe, stopped whole.

    run = await spawn(command, cwd, ctx)       # bash -c, own process group, NBAGENT_CMD_ID marker
    await stop_command(run)                    # SIGTERM then SIGKILL: the group, then every marked process

Used by the ``bash`` tool (shell.py) and the background shells (shell_background.py).
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import os
import signal
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from nbagent.tools.base import ToolContext, ToolFailure
from nbagent.tools.proc_track import ensure_watchdog, kill_marked, marked_env, new_command_id
from nbagent.tools.shell_env import ShellOptions, scrubbed_env
from nbagent.tools.spill import OutputLog

KILL_GRACE = 2.0  # seconds between SIGTERM and SIGKILL
DRAIN_GRACE = 0.5  # after the shell exits, how long to wait for output its leftovers still hold open
READ_SIZE = 65_536


async def pump_output(
    reader: asyncio.StreamReader, log: OutputLog, on_text: Callable[[str], None] | None
) -> None:
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


@dataclass
class Running:
    proc: asyncio.subprocess.Process
    reader: asyncio.StreamReader
    transport: asyncio.ReadTransport
    cmd_id: str  # the marker every process of the command carries (proc_track)


def command_env(options: ShellOptions, cmd_id: str) -> dict[str, str]:
    """The command's environment: ours without secrets (``shell_env``), pagers off, and the marker
    that tracks its processes wherever they go (``proc_track``)."""
    env = scrubbed_env(os.environ, options)
    env.update({"PAGER": "cat", "GIT_PAGER": "cat", "GIT_TERMINAL_PROMPT": "0"})
    return marked_env(env, cmd_id)


async def spawn(command: str, cwd: Path, ctx: ToolContext) -> Running:
    """``bash -c command`` in a new session; stdout and stderr share one pipe we read ourselves
    (so the process's exit is seen at once even when its children keep the pipe open). Once the
    command is wrapped, ``ctx.shell.after_command`` runs exactly once after it ends (or fails to start)."""
    argv = ctx.wrap_argv(["bash", "-c", command])
    ensure_watchdog()
    cmd_id = new_command_id()
    read_fd, write_fd = os.pipe()
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            cwd=cwd,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=write_fd,
            stderr=write_fd,
            start_new_session=True,
            env=command_env(ctx.shell, cmd_id),
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
        signal_group(proc.pid, signal.SIGKILL)
        ctx.shell.after_command()
        raise
    return Running(proc, reader, transport, cmd_id)


async def after_command(proc: asyncio.subprocess.Process, ctx: ToolContext) -> list[str]:
    """Once the command has ended: the session's after-check (the sandbox guard), never raising."""
    await proc.wait()
    try:
        return ctx.shell.after_command()
    except Exception as exc:  # a failing check must not lose the command's result
        return [f"The check after the command failed: {exc}"]


def stopper(proc: asyncio.subprocess.Process, tasks: set[asyncio.Task[None]]) -> Callable[[], None]:
    """For ``OutputLog.on_limit``: stop the command's whole process group (from a sync callback)."""

    def stop() -> None:
        task = asyncio.get_running_loop().create_task(terminate_group(proc))
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    return stop


def signal_group(pgid: int, sig: int) -> None:
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
    signal_group(pgid, signal.SIGTERM)
    try:
        for _ in range(max(1, round(grace / 0.05))):
            if not group_alive(pgid):
                break
            await asyncio.sleep(0.05)
    finally:
        if group_alive(pgid):
            signal_group(pgid, signal.SIGKILL)
    await proc.wait()


async def stop_command(run: Running, grace: float = KILL_GRACE) -> None:
    """Stop the command and everything it started: its process group, then every process that
    carries its marker (other groups and sessions: ``setsid``, ``nohup``, daemons)."""
    try:
        await terminate_group(run.proc, grace)
    finally:
        await kill_marked([run.cmd_id], grace)


async def finish_pump(pump: asyncio.Task[None], grace: float) -> bool:
    """Wait up to ``grace`` seconds for the output to end; True if it did."""
    done, _ = await asyncio.wait({pump}, timeout=grace)
    if done:
        pump.result()
        return True
    pump.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await pump
    return False


def exit_text(code: int | None) -> str:
    if code is None:
        return "still running"
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = str(-code)
        return f"killed by {name}"
    return f"exit code {code}"
