"""The notebook's agent: one session per notebook, continued across ``%%agent`` cells.

A turn runs as an awaited coroutine on the kernel's loop: the cell stays busy until it ends while
widget clicks (permission answers, Stop) are still handled. A kernel interrupt cancels the turn
cleanly (dangling calls closed, a one-line notice). Each cell's output ends as a static bundle:
HTML and text of the transcript plus the turn record (``TURN_MIME``) the session resumes and
replays from. Finding the notebook and opening or resuming its session is the job of the base class,
:class:`nbagent.jupyter.agent_sessions.NotebookSessions`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from nbagent.core.commands import CommandOutput, parse, run_command
from nbagent.core.events import Compacted, Event, UsageUpdated
from nbagent.core.session import Session
from nbagent.jupyter.agent_sessions import NotebookSessions, _fuller, _loop_running, notebook_tools
from nbagent.jupyter.cells import HELP, CellError, CellOptions, TurnInterrupted, parse_options
from nbagent.jupyter.counters import notebook_cost_text, sessions_text
from nbagent.jupyter.magic import clear_first_output
from nbagent.jupyter.recorder import TurnRecorder, replay_notice
from nbagent.jupyter.transcript import Transcript
from nbagent.store.notebook import TurnRecord, find_turn

__all__ = [
    "HELP",
    "CellError",
    "CellOptions",
    "NotebookAgent",
    "NotebookSessions",
    "TurnInterrupted",
    "_fuller",
    "_loop_running",
    "current_agent",
    "notebook_tools",
    "parse_options",
]


def _display(obj: Any, **kwargs: Any) -> Any:
    from IPython import display as ipython_display

    show: Any = ipython_display.display
    return show(obj, **kwargs)


def _markdown(text: str) -> None:
    _display({"text/markdown": text, "text/plain": text}, raw=True)


def _widgets_enabled() -> bool:
    if os.environ.get("NBAGENT_NO_WIDGETS") == "1":
        return False
    try:
        import ipywidgets  # noqa: F401
    except ImportError:
        return False
    return True


class NotebookAgent(NotebookSessions):
    """The agent of one kernel (one notebook)."""

    def __init__(self, shell: Any) -> None:
        super().__init__(shell)
        self.last_usage: UsageUpdated | None = None
        self.last_stats: dict[str, Any] = {}
        # Called with every event of every turn (cell or sidebar): the sidebar bridge listens here.
        self.listeners: list[Callable[[Event], None]] = []

    # -- turns --------------------------------------------------------------------------------

    def _prepare(
        self, line: str, body: str, cell_id: str | None
    ) -> tuple[CellOptions, str, TurnRecord | None]:
        opts = parse_options(line)
        prompt = body.strip()
        if not prompt:
            raise CellError("The cell has no prompt.", "Write the task below the %%agent line.")
        replay = opts.replay or os.environ.get("NBAGENT_REPLAY") == "1"
        recorded: TurnRecord | None = None
        if replay:
            source = f"%%agent {line}".strip() + "\n" + body
            found = find_turn(self.recorded_turns(), cell_id, source, self._replayed)
            if found is None:
                where = self.notebook_path or "(unknown notebook: use %agent /attach PATH)"
                raise CellError(
                    f"No recorded turn for this cell in {where}.",
                    "Run the cell once without --replay (and save the notebook) to record it.",
                )
            recorded = found.record
            self._replayed.add(recorded.turn_id)
        return opts, prompt, recorded

    async def run_cell(self, line: str, body: str, cell_id: str | None = None, handle: Any = None) -> None:
        """Run a ``%%agent`` cell; ``handle``: the display already shown in the cell, to update."""
        try:  # a cell that cannot start shows its error alone, without the first line
            opts, prompt, recorded = self._prepare(line, body, cell_id)
            self._check_idle()
            source = f"%%agent {line}".strip() + "\n" + body
            turn = self._turn(opts, prompt, recorded, cell_id, awaited=True, handle=handle, source=source)
        except BaseException:
            clear_first_output(handle)
            raise
        try:
            await turn
        finally:
            self.document.cell_finished()

    def _check_idle(self) -> None:
        if self.session is not None and self.session.busy:
            raise CellError(
                "A turn is already running in this notebook.", "Wait for it, or press its Stop button."
            )

    def run_cell_background(
        self, line: str, body: str, cell_id: str | None = None, handle: Any = None
    ) -> None:
        note = (
            "This kernel cannot keep the cell busy while the agent works (it needs ipykernel >= 7.4 with"
            " autoawait): the turn runs in the background, and Run All does not wait for it."
        )
        try:
            opts, prompt, recorded = self._prepare(line, body, cell_id)
            self._check_idle()
            source = f"%%agent {line}".strip() + "\n" + body
            turn = self._turn(
                opts, prompt, recorded, cell_id, awaited=False, note=note, handle=handle, source=source
            )
        except BaseException:
            clear_first_output(handle)
            raise
        _keep(asyncio.ensure_future(turn))

    def _turn(
        self,
        opts: CellOptions,
        prompt: str,
        recorded: TurnRecord | None,
        cell_id: str | None,
        *,
        awaited: bool,
        note: str = "",
        handle: Any = None,
        source: str = "",
    ) -> Coroutine[Any, Any, None]:
        """Set the turn up now (session, view shown in this cell); returns the coroutine that runs it."""
        session, resumed = self.session_for(opts, cell_id, recorded)
        stopped = False
        # Widget clicks may arrive on another thread (JupyterLab's kernel subshells): hand them to the
        # kernel's event loop, where the session lives.
        loop = asyncio.get_event_loop()
        from nbagent.jupyter.kernel import stop_running_code

        def reply(request_id: str, kind: str, feedback: str) -> None:
            with contextlib.suppress(KeyError):  # answered already (a covered request, a double click)
                session.reply(request_id, kind, feedback)  # type: ignore[arg-type]

        def on_reply(request_id: str, kind: str, feedback: str) -> None:
            loop.call_soon_threadsafe(reply, request_id, kind, feedback)

        def on_stop() -> None:
            nonlocal stopped
            stopped = True
            stop_running_code()  # a tool holding the main thread with the user's code (notebook_run, python)
            loop.call_soon_threadsafe(session.cancel)

        view = None
        transcript: Transcript
        if _widgets_enabled():
            from nbagent.jupyter.widgets import TurnView

            view = TurnView(
                model=session.model, on_reply=on_reply, on_stop=on_stop, note=note, acknowledge=awaited
            )
            transcript = view.transcript
            handle = _show(view.widget, handle)
        else:
            transcript = Transcript(model=session.model)
            text = f"nbagent: working ({session.model})…" + (f"\n{note}" if note else "")
            handle = _show({"text/plain": text}, handle, raw=True)

        def notice(message: str, level: str = "info", detail: str = "") -> None:
            if view is not None:
                view.add_notice(message, level, detail)
            else:
                transcript.add_notice(message, level, detail)

        if resumed:
            notice(resumed)

        async def drive() -> None:
            mode_before = session.policy.mode  # --mode applies to this cell's turn only
            if opts.mode:
                session.policy.mode = opts.mode  # type: ignore[assignment]
            recorder = TurnRecorder(
                session,
                prompt,
                cell_id=cell_id,
                agent=opts.agent,
                replaying=recorded,
                compaction=self._pending_compaction,
            )
            recorder.start()

            async def consume() -> None:
                async for event in session.run(prompt):
                    recorder.observe(event)
                    self._observe(event)
                    if view is not None:
                        view.apply(event)
                    else:
                        transcript.apply(event)

            consumer = asyncio.ensure_future(consume())
            heartbeat = asyncio.ensure_future(_heartbeat())
            interrupted = False
            try:
                await asyncio.wait({consumer})
            except asyncio.CancelledError:  # kernel interrupt: stop the turn, let it close cleanly
                interrupted = True
                session.cancel()
                try:
                    await asyncio.wait({consumer}, timeout=15)
                except asyncio.CancelledError:
                    consumer.cancel()
            finally:
                recorder.stop()
                session.policy.mode = mode_before
                heartbeat.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await heartbeat
            failure: BaseException | None = None
            if consumer.done() and not consumer.cancelled():
                failure = consumer.exception()
            if failure is not None:
                message = f"The turn failed: {type(failure).__name__}: {failure}"
                recorder.note(message, "error")
                notice(message, "error")
            record = recorder.record(recorder.reason(failed=failure is not None))
            outcome = replay_notice(record)
            if outcome is not None:
                notice(*outcome)
            if view is not None:
                view.flush()
                self.last_stats = view.stats.summary()
            handle.update(recorder.bundle(record, transcript), raw=True)
            self.remember(record, cell_id, source or f"%%agent\n{prompt}")
            if view is not None:
                view.close()
            if failure is not None:
                raise CellError(f"The turn failed: {type(failure).__name__}: {failure}")
            if interrupted or (record.reason == "cancelled" and not stopped):
                raise TurnInterrupted("Turn interrupted; the session was saved.")
            if record.reason == "error" and recorder.finished is not None and awaited:
                raise CellError("The turn ended with an error (see above).")

        return drive()

    def _observe(self, event: Event, compaction: list[str] | None = None) -> None:
        if isinstance(event, UsageUpdated):
            self.last_usage = event
        elif isinstance(event, Compacted) and compaction is not None:
            compaction.append(event.summary)
        for listener in self.listeners:
            listener(event)

    # -- /commands ------------------------------------------------------------------------------

    def command(self, line: str) -> None:
        """``%agent /command`` inside a larger cell: runs as a background task (its output shows when done)."""
        handle = _display({"text/plain": f"nbagent: {line.strip()}…"}, raw=True, display_id=True)
        _keep(asyncio.ensure_future(self.run_command(line, cell_id=None, handle=handle)))

    async def run_command(self, line: str, cell_id: str | None = None, handle: Any = None) -> None:
        """``%agent /command``: notebook commands here, the rest through the core's slash commands."""
        from nbagent.core.commands import HELP as CORE_HELP

        def show(text: str) -> None:
            bundle = {"text/markdown": text, "text/plain": text}
            if handle is not None:
                handle.update(bundle, raw=True)
            else:
                _display(bundle, raw=True)

        line = line.strip() or "/help"
        if not line.startswith("/"):
            raise CellError(
                "%agent runs /commands; write prompts in a %%agent cell.", "%agent /help lists them."
            )
        name, arg = parse(line)
        if name in ("help", "?", ""):
            from nbagent.core.commands import custom_commands

            extra = "".join(
                f"| `/{c.name}` | {c.description} |\n" for c in custom_commands(self.root).values()
            )
            show(HELP + "\n" + CORE_HELP + extra)
            return
        if name == "new":
            self.drop_session()
            show("The next `%%agent` cell starts a new session.")
            return
        if name == "attach":
            if not arg:
                raise CellError("/attach needs the path of the notebook.")
            self.attach(Path(arg))
            show(f"Attached to `{self._notebook}`.")
            return
        if name == "sessions":
            show(self._sessions_text())
            return
        if name == "mcp-serve":  # the live kernel served to other agents (jupyter/mcp_serve.py)
            from nbagent.jupyter.mcp_serve import mcp_serve_command

            mcp_serve_command(self, arg, show)
            return
        if name == "model" and arg:
            self.model_override = arg
        if self.session is None:
            self.session_for(CellOptions(), cell_id, None)
        session = self.session
        assert session is not None
        if session.busy:
            raise CellError("A turn is running.", "Wait for it, or press its Stop button.")
        out = await self.apply_command(session, line)
        if out.text:
            show(out.text)
        if out.prompt:
            await self._turn(CellOptions(), out.prompt, None, cell_id, awaited=True)

    async def apply_command(self, session: Session, line: str) -> CommandOutput:
        """Run a shared slash command and apply what concerns the notebook (a summary to record in
        its metadata, a new session); the caller shows the text and runs any prompt."""
        name, _arg = parse(line)
        if name == "cost":
            return CommandOutput(text=self._cost_text(session))
        out = await run_command(session, line)
        for event in out.events:
            if isinstance(event, Compacted):
                self._pending_compaction = event.summary
        if out.action == "new_session":
            self.drop_session()
        return out

    def _cost_text(self, session: Session) -> str:
        return notebook_cost_text(self.notebook_records(), session)

    def _sessions_text(self) -> str:
        try:
            records = self.notebook_records()
        except (OSError, ValueError) as exc:
            raise CellError(f"Cannot read {self.notebook_path}: {exc}") from exc
        return sessions_text(
            records, self.session, known=self.notebook_path is not None or bool(self.produced)
        )


async def _heartbeat(period: float = 0.1) -> None:
    """Wake the event loop regularly during a turn. Python runs a signal handler (ipykernel's, which
    turns a kernel interrupt into a cancellation) only when the main thread runs bytecode: a loop
    asleep in select() waiting for a quiet subprocess would otherwise see the interrupt late."""
    while True:  # noqa: ASYNC110 (a timer on purpose: nothing to wait for)
        await asyncio.sleep(period)


_tasks: set[asyncio.Future[None]] = set()


def _keep(task: asyncio.Future[None]) -> None:
    """Reference a background task until it ends, then report how it failed (if it did)."""
    _tasks.add(task)
    task.add_done_callback(_tasks.discard)
    task.add_done_callback(_report_background)


def _report_background(task: asyncio.Future[None]) -> None:
    if task.cancelled():
        return
    exc = task.exception()
    if exc is not None and not isinstance(exc, TurnInterrupted):
        print(f"nbagent: the background turn failed: {exc}")


def _show(obj: Any, handle: Any, **kwargs: Any) -> Any:
    """Show ``obj`` in the cell: in place of the display already there (``handle``), else as a new one."""
    if handle is None:
        return _display(obj, display_id=True, **kwargs)
    handle.update(obj, **kwargs)
    return handle


_agents: dict[int, NotebookAgent] = {}


def current_agent() -> NotebookAgent:
    from IPython import get_ipython

    shell = get_ipython()
    if shell is None:
        raise CellError("nbagent's magics need IPython.")
    agent = _agents.get(id(shell))
    if agent is None:
        agent = _agents[id(shell)] = NotebookAgent(shell)
    return agent
