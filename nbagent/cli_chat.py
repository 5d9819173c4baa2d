"""``nbagent`` (or ``nbagent chat``) in a terminal: a prompt loop over one session.

Each line is a turn, or a slash command (the core's, shared with the notebook: ``/help``, ``/cost``,
``/undo``...; ``/exit`` here too). Lines are edited with readline and kept in a private history file
in nbagent's data folder. Ctrl-C stops the running turn and brings the prompt back; Ctrl-C twice at
the prompt, or Ctrl-D, ends the chat.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nbagent.cli_session import EXIT_OK, drive_turn, open_session

if TYPE_CHECKING:
    from nbagent.cli_render import Renderer
    from nbagent.core.session import Session

PROMPT = "> "
HISTORY_NAME = "chat_history"
HISTORY_LINES = 2000
EXIT_COMMANDS = ("exit", "quit")
WELCOME = (
    "nbagent chat · {model} · {root}\n"
    "Type a task, or /help for the commands. Ctrl-C stops a turn; Ctrl-D (or Ctrl-C twice) exits."
)


def history_path() -> Path:
    """The chat's line history: in nbagent's data folder, readable by the user only."""
    from nbagent.core.private import data_dir, private_dir, private_file

    return private_file(private_dir(data_dir()) / HISTORY_NAME)


class History:
    """Readline editing and a history file, appended line by line (a killed chat keeps its lines)."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._readline: Any = None
        try:
            import readline
        except ImportError:  # a Python without readline: plain input(), no history
            return
        self._readline = readline
        readline.set_history_length(HISTORY_LINES)
        if path is not None:
            with contextlib.suppress(OSError):
                readline.read_history_file(str(path))

    def add(self, line: str) -> None:
        if self._readline is None or self.path is None:
            return
        with contextlib.suppress(OSError):
            self._readline.append_history_file(1, str(self.path))
            self._readline.set_history_length(HISTORY_LINES)


def run_chat(args: argparse.Namespace) -> int:
    """The chat loop; the exit code is 0 when the user leaves."""
    from nbagent.cli_render import Renderer

    session = open_session(args, headless=None)
    renderer = Renderer(session.model)
    try:
        path: Path | None = history_path()
    except OSError as exc:
        renderer.console.print(f"[yellow]No chat history: {exc}[/]", markup=True)
        path = None
    history = History(path)
    renderer.console.print(WELCOME.format(model=session.model, root=session.root), markup=False)
    with asyncio.Runner() as runner:
        holder = [session]
        try:
            _loop(runner, holder, renderer, history, args)
        except KeyboardInterrupt:  # a Ctrl-C between two prompts: leave, as a second one would
            renderer.console.print()
        finally:
            runner.run(holder[0].close())
    return EXIT_OK


def _loop(
    runner: asyncio.Runner,
    holder: list[Session],
    renderer: Renderer,
    history: History,
    args: argparse.Namespace,
) -> None:
    """Read and run lines until the user leaves; ``holder`` keeps the session in use (``/new`` swaps it)."""
    console = renderer.console
    interrupted = False
    while True:
        try:
            line = input(PROMPT)
        except EOFError:
            console.print()
            return
        except KeyboardInterrupt:
            if interrupted:
                console.print()
                return
            interrupted = True
            console.print("\n(Ctrl-C again, or Ctrl-D, to exit)", markup=False)
            continue
        interrupted = False
        line = line.strip()
        if not line:
            continue
        history.add(line)
        prompt: str | None = line
        if line.startswith("/"):
            name = line[1:].split(maxsplit=1)[0].lower() if line[1:].strip() else ""
            if name in EXIT_COMMANDS:
                return
            prompt, holder[0] = _command(runner, holder[0], renderer, line, args)
        if prompt:
            _turn(runner, holder[0], renderer, prompt)


def _turn(runner: asyncio.Runner, session: Session, renderer: Renderer, prompt: str) -> None:
    from nbagent.core.errors import NbagentError

    try:
        runner.run(drive_turn(session, prompt, "text", renderer, interactive=True))
    except NbagentError as exc:
        _error(renderer, str(exc), exc.hint)
    except KeyboardInterrupt:
        renderer.console.print("\n(stopped)", markup=False)


def _command(
    runner: asyncio.Runner, session: Session, renderer: Renderer, line: str, args: argparse.Namespace
) -> tuple[str | None, Session]:
    """Run a slash command: show its text; returns the prompt it expands to (if any) and the session
    to go on with (``/new`` starts another)."""
    from rich.markdown import Markdown

    from nbagent.core.commands import run_command
    from nbagent.core.errors import NbagentError

    try:
        out = runner.run(run_command(session, line))
    except NbagentError as exc:
        _error(renderer, str(exc), exc.hint)
        return None, session
    except KeyboardInterrupt:
        renderer.console.print("\n(stopped)", markup=False)
        return None, session
    if out.action == "new_session":
        runner.run(session.close())
        fresh = argparse.Namespace(**{**vars(args), "continue_": False, "session": None})
        session = open_session(fresh, headless=None)
        renderer.model = session.model
    if out.text:
        renderer.console.print(Markdown(out.text))
    renderer.model = session.model  # /model may have switched it
    return out.prompt, session


def _error(renderer: Renderer, message: str, hint: str) -> None:
    from rich.text import Text

    renderer.console.print(Text(f"Error: {message}", style="bold red"))
    if hint:
        renderer.console.print(Text(f"  hint: {hint}", style="yellow"))
