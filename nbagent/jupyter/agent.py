"""The notebook's agent: one session per notebook, continued across ``%%agent`` cells.

A turn runs as an awaited coroutine on the kernel's loop: the cell stays busy until it ends while
widget clicks (permission answers, Stop) are still handled. A kernel interrupt cancels the turn
cleanly (dangling calls closed, a one-line notice). Each cell's output ends as a static bundle:
HTML and text of the transcript plus the turn record (``TURN_MIME``) the session resumes and
replays from.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from nbagent.core.commands import CommandOutput, parse, run_command
from nbagent.core.config import Config, load_config
from nbagent.core.errors import NbagentError
from nbagent.core.events import Compacted, Event, UsageUpdated
from nbagent.core.permission import HeadlessPolicy
from nbagent.core.session import Session
from nbagent.jupyter.cells import HELP, CellError, CellOptions, TurnInterrupted, parse_options
from nbagent.jupyter.counters import notebook_cost_text, sessions_text
from nbagent.jupyter.magic import clear_first_output
from nbagent.jupyter.recorder import TurnRecorder, replay_notice
from nbagent.jupyter.transcript import Transcript
from nbagent.store.notebook import (
    CellTurn,
    TurnRecord,
    find_turn,
    merge_turns,
    notebook_turns,
    read_notebook_json,
    session_history,
    turns_before,
)
from nbagent.tools.base import Tool
from nbagent.tools.kernel import KERNEL_KEY
from nbagent.tools.notebook import OPEN_KEY

__all__ = [
    "HELP",
    "CellError",
    "CellOptions",
    "NotebookAgent",
    "TurnInterrupted",
    "current_agent",
    "notebook_tools",
    "parse_options",
]


def notebook_tools() -> list[Tool[Any]]:
    from nbagent.tools import default_tools
    from nbagent.tools.kernel import InspectTool, PythonTool
    from nbagent.tools.notebook import NotebookEditTool

    tools: list[Tool[Any]] = list(default_tools())
    names = {t.name for t in tools}
    for extra in (NotebookEditTool(), PythonTool(), InspectTool()):
        if extra.name not in names:
            tools.append(extra)
    return tools


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


class NotebookAgent:
    """The agent of one kernel (one notebook)."""

    def __init__(self, shell: Any) -> None:
        self.shell = shell
        self.session: Session | None = None
        self.model_override: str | None = None
        self._notebook: Path | None = None
        self._replayed: set[str] = set()
        self.last_usage: UsageUpdated | None = None
        self.last_stats: dict[str, Any] = {}
        self._pending_compaction: str | None = None
        # The turns this kernel recorded (the saved file may not have them yet): /sessions and /cost
        # count the notebook's records, the saved ones merged with these.
        self.produced: list[CellTurn] = []
        # Called with every event of every turn (cell or sidebar): the sidebar bridge listens here.
        self.listeners: list[Callable[[Event], None]] = []

    @property
    def root(self) -> Path:
        """The project the agent works in: ``NBAGENT_ROOT``, else the kernel's working directory."""
        return Path(os.environ.get("NBAGENT_ROOT") or os.getcwd()).resolve()

    # -- where we are -------------------------------------------------------------------------

    @property
    def notebook_path(self) -> Path | None:
        if self._notebook is not None:
            return self._notebook
        ns = getattr(self.shell, "user_ns", {}) or {}
        candidates = [
            os.environ.get("NBAGENT_NOTEBOOK"),
            ns.get("__vsc_ipynb_file__"),
            ns.get("__session__"),
            os.environ.get("JPY_SESSION_NAME"),
        ]
        for raw in candidates:
            if not isinstance(raw, str) or not raw.endswith(".ipynb"):
                continue
            path = Path(raw).expanduser()
            options = [path] if path.is_absolute() else [Path.cwd() / path, Path.cwd() / path.name]
            for option in options:
                if option.is_file():
                    self._notebook = option.resolve()
                    return self._notebook
        return None

    def attach(self, path: Path) -> None:
        path = path.expanduser().resolve()
        if not path.is_file():
            raise CellError(f"No notebook at {path}.")
        self._notebook = path
        if self.session is not None:
            self.session.tool_state[OPEN_KEY] = {path}

    def recorded_turns(self) -> list[CellTurn]:
        path = self.notebook_path
        if path is None:
            return []
        try:
            return notebook_turns(read_notebook_json(path))
        except (OSError, ValueError):
            return []

    def notebook_records(self) -> list[CellTurn]:
        """The notebook's turns as its cells hold them now: the saved ones, with those this kernel
        recorded since in their place (before a save, after a restart)."""
        return merge_turns(self.recorded_turns(), self.produced)

    def remember(self, record: TurnRecord, cell_id: str | None, source: str) -> None:
        self.produced.append(CellTurn(-1, cell_id, source, record))
        if record.compaction == self._pending_compaction:
            self._pending_compaction = None  # recorded once: the history restarts there on resume

    # -- sessions -----------------------------------------------------------------------------

    def _config(self, opts: CellOptions, fallback_model: str | None = None) -> Config:
        model = opts.model or self.model_override or os.environ.get("NBAGENT_MODEL") or None
        overrides: dict[str, Any] = {"model": model, "api_base": os.environ.get("NBAGENT_API_BASE") or None}
        try:
            config = load_config(self.root, overrides)
        except NbagentError as exc:
            raise CellError(str(exc), exc.hint) from exc
        if not config.model and fallback_model:
            config = config.model_copy(update={"model": fallback_model})
        if not config.model:
            raise CellError(
                "No model configured.",
                "Use %%agent --model provider/name (or %agent /model ...), set NBAGENT_MODEL, or put"
                ' "model" in nbagent.json.',
            )
        return config

    def _new_session(
        self, config: Config, *, session_id: str | None = None, messages: list[Any] | None = None
    ) -> Session:
        headless_env = os.environ.get("NBAGENT_HEADLESS")
        headless: HeadlessPolicy | None = headless_env if headless_env in ("allow", "deny") else None  # type: ignore[assignment]
        try:
            store = self._store(config)
            if store is not None and session_id and messages:
                messages = _fuller(store, session_id, messages)
            session = Session(
                self.root,
                config,
                tools=notebook_tools(),
                headless=headless,
                session_id=session_id,
                messages=messages,
                store=store,
            )
        except NbagentError as exc:
            raise CellError(str(exc), exc.hint) from exc
        from nbagent.jupyter.kernel import IPythonNamespace

        session.tool_state[KERNEL_KEY] = IPythonNamespace(self.shell)
        if self.notebook_path is not None:
            session.tool_state[OPEN_KEY] = {self.notebook_path}
        return session

    def _store(self, config: Config) -> Any:
        """The SQLite session store (the full raw history); None where it cannot be opened."""
        if os.environ.get("NBAGENT_NO_STORE") == "1":
            return None
        try:
            from nbagent.store import SessionStore

            store_path = getattr(config, "store", None)
            return SessionStore(Path(store_path).expanduser() if store_path else None)
        except Exception:
            return None

    def _apply_options(self, session: Session, opts: CellOptions) -> None:
        model = opts.model or self.model_override
        if model and model != session.model:
            session.set_model(model)

    def session_for(
        self, opts: CellOptions, cell_id: str | None, replaying: TurnRecord | None
    ) -> tuple[Session, str]:
        """The session this cell continues (or starts), and a note saying which when it is not obvious."""
        if opts.new:
            self.drop_session()
        current = self.session
        if current is not None and (opts.session is None or opts.session == current.id):
            self._apply_options(current, opts)
            return current, ""
        turns = self.recorded_turns()
        if opts.session:
            candidates = [t for t in turns if t.record.session_id == opts.session]
            if not candidates:
                raise CellError(
                    f"No session {opts.session} in this notebook.", "%agent /sessions lists them."
                )
        elif opts.new:
            candidates = []
        else:
            candidates = turns_before(turns, cell_id)
        if candidates:
            sid, messages, model = session_history(candidates, opts.session)
            config = self._config(opts, fallback_model=model)
            session = self._new_session(config, session_id=sid, messages=messages)
            count = sum(1 for t in candidates if t.record.session_id == sid)
            note = (
                f"Resumed session {sid} from the notebook ({count} earlier turn{'s' if count != 1 else ''})."
            )
        else:
            fallback = replaying.model if replaying is not None else None
            config = self._config(opts, fallback_model=fallback)
            sid_new = replaying.session_id if replaying is not None else None
            session = self._new_session(config, session_id=sid_new)
            note = ""
        self.session = session
        return session, note

    def drop_session(self) -> None:
        old, self.session = self.session, None
        if old is not None and not old.busy:
            task = asyncio.ensure_future(old.close()) if _loop_running() else None
            del task

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
        await turn

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

        def reply(request_id: str, kind: str, feedback: str) -> None:
            with contextlib.suppress(KeyError):  # answered already (a covered request, a double click)
                session.reply(request_id, kind, feedback)  # type: ignore[arg-type]

        def on_reply(request_id: str, kind: str, feedback: str) -> None:
            loop.call_soon_threadsafe(reply, request_id, kind, feedback)

        def on_stop() -> None:
            nonlocal stopped
            stopped = True
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
            show(HELP + "\n" + CORE_HELP)
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


def _fuller(store: Any, session_id: str, messages: list[Any]) -> list[Any]:
    """The notebook's (bounded) messages, replaced by the store's full ones where it has them."""
    try:
        _info, stored = store.load_session(session_id)
    except Exception:
        return messages
    full = {m.id: m for m in stored}
    return [full.get(m.id, m) for m in messages]


def _loop_running() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


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
