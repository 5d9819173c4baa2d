"""The background shells of a session (``bash`` with ``run_in_background``), and the session's record
of every command it ran, so that nothing they started outlives the session.

    registry = shells_of(ctx.state)       # one per session, in the tool state
    await close_shells(ctx.state)         # session end: shells stopped, leftovers of every command killed
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

from nbagent.tools.base import ToolFailure
from nbagent.tools.proc_track import kill_marked
from nbagent.tools.shell_process import DRAIN_GRACE, Running, exit_text, finish_pump, stop_command
from nbagent.tools.spill import OutputLog

STATE_KEY = "shells"


@dataclass
class BackgroundShell:
    id: str
    command: str
    description: str
    run: Running
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
        return f"exited, {exit_text(code)}"

    async def stop(self) -> None:
        """Kill the shell, or what it left running after it exited: its process group and every
        process carrying its marker (``setsid``, ``nohup``, daemons)."""
        if self.run.proc.returncode is None:
            self.killed = True
        await stop_command(self.run)
        # Leftover processes outside the group may still hold the pipe: stop reading after a moment.
        await finish_pump(self.pump, DRAIN_GRACE)
        await asyncio.gather(self.after, *self.stopping, return_exceptions=True)
        self.run.transport.close()
        self.log.close()


class ShellRegistry:
    """The background shells of one session, kept in ``ctx.state["shells"]``, and the ids of every
    command the session ran (foreground ones too): what they left running dies with the session."""

    def __init__(self) -> None:
        self.shells: dict[str, BackgroundShell] = {}
        self.commands: set[str] = set()
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
        """Stop every background shell, then every process any command of the session left."""
        results = await asyncio.gather(
            *(shell.stop() for shell in self.shells.values()), return_exceptions=True
        )
        await kill_marked(self.commands)
        for result in results:  # raised only after everything was stopped
            if isinstance(result, BaseException):
                raise result


def shells_of(state: dict[str, Any]) -> ShellRegistry:
    registry = state.get(STATE_KEY)
    if not isinstance(registry, ShellRegistry):
        registry = state[STATE_KEY] = ShellRegistry()
    return registry


async def close_shells(state: dict[str, Any]) -> None:
    """Kill every background shell of a session and every process its commands left running
    (wherever they went: other groups, sessions, daemons). Call at session end."""
    registry = state.get(STATE_KEY)
    if isinstance(registry, ShellRegistry):
        await registry.close()
