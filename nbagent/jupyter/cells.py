"""What a ``%%agent`` cell says and how it fails: its options, and errors shown as one or two lines."""

from __future__ import annotations

import argparse
import shlex
from dataclasses import dataclass
from typing import Any

from nbagent.jupyter.magic import CellStopped

MODES = ("default", "acceptEdits", "plan", "bypass")
HELP = """\
**nbagent in the notebook**

`%%agent [--model M] [--agent NAME] [--session ID | --new] [--mode default|acceptEdits|plan|bypass] [--replay]`
then the prompt in the cell body. One session per notebook, continued across cells; after a kernel
restart it resumes from the turns recorded in the saved notebook.

`%agent /command` runs the commands below; in the notebook also `/attach PATH` (use PATH as this
kernel's notebook, to resume or replay from it); `/sessions` lists the sessions recorded in the notebook.
`/mcp-serve` serves this live kernel to other agents (Claude Code, OpenCode) over MCP; `/mcp-serve stop`.
Environment: `NBAGENT_MODEL`, `NBAGENT_API_BASE`, `NBAGENT_REPLAY=1` (replay every cell),
`NBAGENT_HEADLESS=allow|deny` (answer permission prompts without asking), `NBAGENT_TRUST_PROJECT=1`
(run the project's own hooks without asking; otherwise the first one asks you to trust the folder).
"""


class CellError(Exception):
    """An error shown as one or two lines, without a traceback."""

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.hint = hint

    def _render_traceback_(self) -> list[str]:
        lines = [f"\x1b[31mnbagent: {self}\x1b[0m"]
        if self.hint:
            lines.append(f"  hint: {self.hint}")
        return lines


class TurnInterrupted(CellError, CellStopped):
    """The kernel was interrupted during a turn: the cell fails (Run All stops) without an error
    output, the transcript's notice says it once (see :class:`~nbagent.jupyter.magic.CellStopped`)."""

    def _render_traceback_(self) -> list[str]:
        return [f"⏹ {self}"]


@dataclass
class CellOptions:
    model: str | None = None
    agent: str | None = None
    session: str | None = None
    new: bool = False
    mode: str | None = None
    replay: bool = False


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:
        raise CellError(
            f"%%agent: {message}",
            "Usage: %%agent [--model M] [--agent NAME] [--session ID|--new] [--mode MODE] [--replay]",
        )


def parse_options(line: str) -> CellOptions:
    parser = _Parser(prog="%%agent", add_help=False)
    parser.add_argument("--model", "-m")
    parser.add_argument("--agent")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--session")
    group.add_argument("--new", action="store_true")
    parser.add_argument("--mode", choices=MODES)
    parser.add_argument("--replay", action="store_true")
    try:
        words = shlex.split(line)
    except ValueError as exc:
        raise CellError(f"%%agent: cannot parse the options ({exc}).") from exc
    ns = parser.parse_args(words)
    return CellOptions(ns.model, ns.agent, ns.session, ns.new, ns.mode, ns.replay)
