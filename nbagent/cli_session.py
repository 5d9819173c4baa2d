"""The terminal side of a session: open it from the command line's options, drive a turn, answer prompts.

Shared by ``nbagent run``, the interactive chat (:mod:`nbagent.cli_chat`) and ``nbagent demo``; it
imports neither the CLI module nor the demo. Rich and the session modules load only when needed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from nbagent.cli_render import Renderer
    from nbagent.core.events import ErrorEvent, PermissionAsked, TurnFinished
    from nbagent.core.permission import ReplyKind
    from nbagent.core.session import Session

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_STEP_LIMIT, EXIT_CANCELLED = 0, 1, 2, 3, 130
EXIT_CODES = {
    "stop": EXIT_OK,
    "error": EXIT_ERROR,
    "step_limit": EXIT_STEP_LIMIT,
    "cancelled": EXIT_CANCELLED,
}
INTERRUPTED = (
    "nbagent: interrupted; running tools were stopped and the session was saved"
    " (resume with `nbagent run --continue`)."
)


def add_session_options(p: argparse.ArgumentParser) -> None:
    """The options of a command that opens a session (``run``, ``chat``)."""
    p.add_argument("--model", "-m", help="litellm model string, e.g. anthropic/claude-sonnet-4-5")
    p.add_argument("--api-base", help="base URL of an OpenAI-compatible or Anthropic endpoint")
    p.add_argument("--api-key", help="API key (default: the provider's environment variable); never stored")
    p.add_argument(
        "--trust-project",
        action="store_true",
        help="run the project's own hooks for this run without asking (not saved; --yes does not do this)",
    )
    p.add_argument("--max-steps", type=int, default=None, help="model steps before the turn stops")
    p.add_argument(
        "--mode",
        choices=["default", "acceptEdits", "plan", "bypass"],
        default=None,
        help="permission mode: default, acceptEdits (edits in the project allowed), plan (read-only), bypass (no prompts)",
    )
    p.add_argument("--cwd", type=Path, default=None, help="project directory (default: the current one)")
    p.add_argument("--agent", default=None, help="the primary agent to run as (build, plan, or a custom one)")
    resume = p.add_mutually_exclusive_group()
    resume.add_argument(
        "--continue", "-c", dest="continue_", action="store_true", help="continue the last session here"
    )
    resume.add_argument("--session", "-s", help="continue the session with this id (or id prefix)")


def _preload_litellm() -> None:
    """Import litellm in the background while we set up, to take it off the critical path."""

    def load() -> None:
        from nbagent.providers.litellm_provider import litellm_module

        litellm_module()

    threading.Thread(target=load, name="nbagent-preload", daemon=True).start()


def open_session(args: argparse.Namespace, *, headless: Any) -> Session:
    """The session the options ask for: a new one, the last one here (``--continue``) or ``--session``."""
    from nbagent.core.config import load_config
    from nbagent.core.errors import NbagentError
    from nbagent.core.session import Session, uses_native
    from nbagent.store import SessionStore

    root = (args.cwd or Path.cwd()).resolve()
    overrides: dict[str, Any] = {
        "model": args.model,
        "api_base": args.api_base,
        "max_steps": args.max_steps,
        "mode": args.mode,
    }
    config = load_config(root, overrides)
    if not uses_native(config):
        _preload_litellm()
    store = SessionStore(Path(config.store).expanduser() if config.store else None)
    resume_id = args.session
    if args.continue_:
        latest = store.latest_session(root)
        if latest is None:
            raise NbagentError(f"No session to continue in {root}.", "Start one with `nbagent run PROMPT`.")
        resume_id = latest.id
    options: dict[str, Any] = {
        "api_key": args.api_key,
        "headless": headless,
        "trust_project": args.trust_project,
        "agent": getattr(args, "agent", None),  # the primary agent: its prompt, tools, model and rules
    }
    if resume_id:
        return Session.resume(root, config, store, resume_id, **options)
    return Session(root, config, store=store, **options)


# -- reading a line without blocking the event loop ---------------------------------------------------


async def read_line(fd: int = 0) -> str | None:
    """The next line typed on ``fd`` (a terminal in cooked mode), read from the event loop, so Ctrl-C
    can stop the turn while a prompt waits; None at end of input (Ctrl-D)."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[bytes] = loop.create_future()

    def readable() -> None:
        if not done.done():
            try:
                done.set_result(os.read(fd, 65536))
            except OSError as exc:
                done.set_exception(exc)

    loop.add_reader(fd, readable)
    try:
        data = await done
    finally:
        loop.remove_reader(fd)
    return data.decode("utf-8", "replace").rstrip("\r\n") if data else None


# -- one turn ---------------------------------------------------------------------------------------


@dataclass
class TurnOutcome:
    finished: TurnFinished | None = None
    errors: list[ErrorEvent] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        return EXIT_ERROR if self.finished is None else EXIT_CODES[self.finished.reason]


async def ask_in_terminal(renderer: Renderer, event: PermissionAsked) -> tuple[ReplyKind, str]:
    """The terminal's permission prompt: y (once), a (always), n (no), or feedback (no, with a reason)."""
    while True:
        renderer.show_permission_prompt(event)
        answer = await read_line()
        if answer is None:
            renderer.console.print()
            return "reject", ""
        reply = renderer.parse_permission_answer(answer)
        if reply is not None:
            return reply


def _child_question(event: Any) -> Any:
    """The ``PermissionAsked`` a (grand)child's ``SubagentEvent`` carries, labelled with the agent; or None."""
    from nbagent.core.events import PermissionAsked, SubagentEvent

    agents = []
    while isinstance(event, SubagentEvent):
        agents.append(event.agent)
        inner = event.event
        if inner.get("type") == "subagent":
            event = SubagentEvent.model_validate(inner)
        elif inner.get("type") == "permission_asked":
            asked = PermissionAsked.model_validate(inner)
            return asked.model_copy(update={"title": f"[{' > '.join(agents)}] {asked.title}"})
        else:
            return None
    return None


async def drive_turn(
    session: Session, prompt: str, output_format: str, renderer: Renderer | None, *, interactive: bool
) -> TurnOutcome:
    """Run one turn to its end, rendering its events. Ctrl-C stops the turn (tools are stopped, the
    session saved); its ``TurnFinished`` then says ``cancelled``."""
    from nbagent.core.events import ErrorEvent, PermissionAsked, SubagentEvent, TurnFinished

    outcome = TurnOutcome()
    loop = asyncio.get_running_loop()
    asking: list[asyncio.Task[tuple[ReplyKind, str]]] = []

    def on_interrupt() -> None:
        for task in asking:
            task.cancel()
        session.cancel()

    catch = threading.current_thread() is threading.main_thread()
    if catch:
        loop.add_signal_handler(signal.SIGINT, on_interrupt)
    try:
        async for event in session.run(prompt):
            if output_format == "stream-json":
                sys.stdout.write(event.model_dump_json() + "\n")
                sys.stdout.flush()
            elif renderer is not None:
                renderer.render(event)
            if isinstance(event, ErrorEvent):
                outcome.errors.append(event)
            if isinstance(event, SubagentEvent) and interactive:  # a child's question, answered here
                event = _child_question(event) or event
            if isinstance(event, PermissionAsked) and interactive and renderer is not None:
                task = asyncio.ensure_future(ask_in_terminal(renderer, event))
                asking.append(task)
                try:
                    kind, feedback = await task
                except asyncio.CancelledError:
                    continue  # Ctrl-C: the turn is being stopped
                finally:
                    asking.remove(task)
                with contextlib.suppress(KeyError):  # answered meanwhile (an "always" rule, a stop)
                    session.reply(event.request_id, kind, feedback)
            if isinstance(event, TurnFinished):
                outcome.finished = event
    finally:
        if catch:
            loop.remove_signal_handler(signal.SIGINT)
    return outcome


def json_result(session: Session, outcome: TurnOutcome) -> dict[str, Any]:
    """The ``--output-format json`` document: the answer, or the error with its hint."""
    finished = outcome.finished
    result: dict[str, Any] = {
        "session_id": session.id,
        "result": finished.text if finished else "",
        "reason": finished.reason if finished else "error",
        "steps": finished.steps if finished else 0,
        "usage": finished.usage.model_dump() if finished else None,
    }
    if outcome.errors:
        last = outcome.errors[-1]
        result["error"] = {"message": last.message, "hint": last.hint, "kind": last.kind}
    elif finished is None or finished.reason != "stop":
        reason = finished.reason if finished else "error"
        result["error"] = {
            "message": f"The turn ended without an answer ({reason}).",
            "hint": "",
            "kind": reason,
        }
    return result


def error_document(message: str, hint: str = "", kind: str = "") -> str:
    """The ``--output-format json`` document of a run that failed before its turn started."""
    return json.dumps(
        {"result": "", "reason": "error", "error": {"message": message, "hint": hint, "kind": kind}}
    )


def run_session(session: Session, prompt: str, output_format: str, *, interactive: bool = False) -> int:
    """Drive one turn to its end in a fresh event loop, then close the session; the process exit code."""
    return asyncio.run(_run_and_close(session, prompt, output_format, interactive))


async def _run_and_close(session: Session, prompt: str, output_format: str, interactive: bool) -> int:
    renderer = None
    if output_format == "text":
        from nbagent.cli_render import Renderer

        renderer = Renderer(session.model)
    try:
        outcome = await drive_turn(session, prompt, output_format, renderer, interactive=interactive)
    finally:
        await session.close()
    if output_format == "json":
        print(json.dumps(json_result(session, outcome)))
        for error in outcome.errors:
            print(f"nbagent: {error.message}", file=sys.stderr)
            if error.hint:
                print(f"  hint: {error.hint}", file=sys.stderr)
    if outcome.finished is not None and outcome.finished.reason == "cancelled":
        print(f"\n{INTERRUPTED}", file=sys.stderr)
    return outcome.exit_code
