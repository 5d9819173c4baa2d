"""The notebook's agent: one session per notebook, continued across ``%%agent`` cells.

A turn runs as an awaited coroutine on the kernel's loop: the cell stays busy until it ends while
widget clicks (permission answers, Stop) are still handled. A kernel interrupt cancels the turn
cleanly (dangling calls closed, a one-line notice). Each cell's output ends as a static bundle:
HTML and text of the transcript plus the turn record (``TURN_MIME``) the session resumes and
replays from.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shlex
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nbagent.core.commands import CommandOutput, run_command
from nbagent.core.config import Config, load_config
from nbagent.core.errors import NbagentError
from nbagent.core.events import Compacted, Event, TurnFinished, UsageUpdated
from nbagent.core.permission import HeadlessPolicy
from nbagent.core.session import Session
from nbagent.jupyter.render_html import Transcript, transcript_html, transcript_text
from nbagent.providers.base import Provider
from nbagent.providers.replay import RecordedStep, RecordingProvider, ReplayProvider
from nbagent.store.notebook import (
    TURN_MIME,
    CellTurn,
    ReplayInfo,
    TurnRecord,
    build_metadata,
    compare_results,
    find_turn,
    make_record,
    notebook_turns,
    read_notebook_json,
    record_json,
    recorded_replies,
    scrub,
    scrub_json,
    session_history,
    turns_before,
)
from nbagent.tools.base import Tool
from nbagent.tools.kernel import KERNEL_KEY
from nbagent.tools.notebook import OPEN_KEY

MODES = ("default", "acceptEdits", "plan", "bypass")
HELP = """\
**nbagent in the notebook**

`%%agent [--model M] [--agent NAME] [--session ID | --new] [--mode default|acceptEdits|plan|bypass] [--replay]`
then the prompt in the cell body. One session per notebook, continued across cells; after a kernel
restart it resumes from the turns recorded in the saved notebook.

`%agent /command` runs the commands below; in the notebook also `/attach PATH` (use PATH as this
kernel's notebook, to resume or replay from it); `/sessions` lists the sessions recorded in the notebook.
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


class TurnInterrupted(CellError):
    """The kernel was interrupted during a turn: the cell fails (Run All stops), with one line."""

    def _render_traceback_(self) -> list[str]:
        return [f"\x1b[33m⏹ {self}\x1b[0m"]


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
            f"%%agent: {message}", "Usage: %%agent [--model M] [--session ID|--new] [--mode MODE] [--replay]"
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

    async def run_cell(self, line: str, body: str, cell_id: str | None = None) -> None:
        opts, prompt, recorded = self._prepare(line, body, cell_id)
        if self.session is not None and self.session.busy:
            raise CellError(
                "A turn is already running in this notebook.", "Wait for it, or press its Stop button."
            )
        await self._turn(opts, prompt, recorded, cell_id, awaited=True)

    def run_cell_background(self, line: str, body: str, cell_id: str | None = None) -> None:
        opts, prompt, recorded = self._prepare(line, body, cell_id)
        if self.session is not None and self.session.busy:
            raise CellError(
                "A turn is already running in this notebook.", "Wait for it, or press its Stop button."
            )
        note = (
            "This kernel cannot keep the cell busy while the agent works (it needs ipykernel >= 7.4 with"
            " autoawait): the turn runs in the background, and Run All does not wait for it."
        )
        task = asyncio.ensure_future(self._turn(opts, prompt, recorded, cell_id, awaited=False, note=note))
        task.add_done_callback(_report_background)

    def _turn(
        self,
        opts: CellOptions,
        prompt: str,
        recorded: TurnRecord | None,
        cell_id: str | None,
        *,
        awaited: bool,
        note: str = "",
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

            view = TurnView(model=session.model, on_reply=on_reply, on_stop=on_stop, note=note)
            transcript = view.transcript
            handle = _display(view.widget, display_id=True)
        else:
            transcript = Transcript(model=session.model)
            text = f"nbagent: working ({session.model})…" + (f"\n{note}" if note else "")
            handle = _display({"text/plain": text}, raw=True, display_id=True)
        if resumed:
            if view is not None:
                view.add_notice(resumed)
            else:
                transcript.add_notice(resumed)

        async def drive() -> None:
            base_provider: Provider = session.provider
            replayer: ReplayProvider | None = None
            recorder: RecordingProvider | None = None
            if recorded is not None:
                replayer = ReplayProvider(recorded_replies(recorded))
                session.provider = replayer
            else:
                recorder = RecordingProvider(base_provider)
                session.provider = recorder
            start = len(session.messages)
            started = time.time()
            compaction: list[str] = []
            mode_before = session.policy.mode  # --mode applies to this cell's turn only
            if opts.mode:
                session.policy.mode = opts.mode  # type: ignore[assignment]

            async def consume() -> TurnFinished | None:
                finished = None
                async for event in session.run(prompt):
                    self._observe(event, compaction)
                    if view is not None:
                        view.apply(event)
                    else:
                        transcript.apply(event)
                    if isinstance(event, TurnFinished):
                        finished = event
                return finished

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
                session.provider = base_provider
                session.policy.mode = mode_before
                heartbeat.cancel()
            finished: TurnFinished | None = None
            failure: BaseException | None = None
            if consumer.done() and not consumer.cancelled():
                failure = consumer.exception()
                finished = None if failure is not None else consumer.result()

            replies: list[RecordedStep]
            if replayer is not None and recorded is not None:
                replies = recorded_replies(recorded)[: replayer.index]
            else:
                replies = recorder.take() if recorder is not None else []
            reason = finished.reason if finished is not None else ("cancelled" if interrupted else "error")
            usage = finished.usage if finished is not None else session.usage.model_copy()
            secrets = session.scrubber  # knows the session's api_key, the environment's and .env secrets
            record = make_record(
                session_id=session.id,
                turn_id=transcript.turn_id or (finished.turn_id if finished else "turn_unknown"),
                prompt=prompt,
                model=session.model,
                messages=session.messages[start:],
                replies=replies,
                usage=usage,
                reason=reason,
                started=started,
                root=session.root,
                cell_id=cell_id,
                agent=opts.agent,
                mode=session.config.mode,
                context_tokens=self.last_usage.context_tokens if self.last_usage else 0,
                context_limit=self.last_usage.context_limit if self.last_usage else 0,
                compaction=compaction[-1] if compaction else self._pending_compaction,
                scrubber=secrets,
            )
            if recorded is not None:
                divergent = compare_results(recorded.results, record.results)
                record.replay = ReplayInfo(
                    of_turn=recorded.turn_id, divergent=divergent, compared=len(recorded.results)
                )
                if divergent:
                    detail = "\n\n".join(
                        f"{d.tool} ({d.call_id})\n  recorded: {d.recorded}\n  now:      {d.replayed}"
                        for d in divergent
                    )
                    message = f"Replay: {len(divergent)} of {len(recorded.results)} tool results differ from the recording."
                    if view is not None:
                        view.add_notice(message, "warning", detail)
                    else:
                        transcript.add_notice(message, "warning", detail)
                else:
                    message = f"Replayed from the recording (no model call): {len(recorded.results)} tool results match."
                    if view is not None:
                        view.add_notice(message)
                    else:
                        transcript.add_notice(message)
            if failure is not None:
                transcript.add_notice(f"The turn failed: {type(failure).__name__}: {failure}", "error")
            if view is not None:
                view.flush()
                self.last_stats = view.stats.summary()
            bundle = {
                "text/html": scrub(transcript_html(transcript), secrets),
                "text/plain": scrub(transcript_text(transcript), secrets),
                TURN_MIME: scrub_json(record_json(record), secrets),
            }
            handle.update(bundle, raw=True)
            if view is not None:
                view.close()
            if failure is not None:
                raise CellError(f"The turn failed: {type(failure).__name__}: {failure}")
            if interrupted or (reason == "cancelled" and not stopped):
                raise TurnInterrupted("Turn interrupted; the session was saved.")
            if reason == "error" and finished is not None and awaited:
                raise CellError("The turn ended with an error (see above).")

        return drive()

    def _observe(self, event: Event, compaction: list[str]) -> None:
        if isinstance(event, UsageUpdated):
            self.last_usage = event
        elif isinstance(event, Compacted):
            compaction.append(event.summary)
        for listener in self.listeners:
            listener(event)

    # -- /commands ------------------------------------------------------------------------------

    def command(self, line: str) -> None:
        """``%agent /command`` inside a larger cell: runs as a background task (its output shows when done)."""
        handle = _display({"text/plain": f"nbagent: {line.strip()}…"}, raw=True, display_id=True)
        cell_id = None
        task = asyncio.ensure_future(self.run_command(line, cell_id=cell_id, handle=handle))
        task.add_done_callback(_report_background)

    async def run_command(self, line: str, cell_id: str | None = None, handle: Any = None) -> None:
        """``%agent /command``: notebook commands here, the rest through the core's slash commands."""
        from nbagent.core.commands import HELP as CORE_HELP
        from nbagent.core.commands import parse

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
        out = await run_command(session, line)
        for event in out.events:
            if isinstance(event, Compacted):
                self._pending_compaction = event.summary
        if out.action == "new_session":
            self.drop_session()
        return out

    def _sessions_text(self) -> str:
        path = self.notebook_path
        lines = []
        if self.session is not None:
            lines.append(
                f"- current: `{self.session.id}` ({self.session.model}, {len(self.session.messages)} messages)"
            )
        if path is not None:
            try:
                meta = build_metadata(read_notebook_json(path))
            except (OSError, ValueError) as exc:
                raise CellError(f"Cannot read {path}: {exc}") from exc
            for s in meta["sessions"]:
                lines.append(f"- `{s['id']}` in the notebook: {s['turns']} turns, model {s['model']}")
        else:
            lines.append("- (this kernel does not know its notebook file: `%agent /attach PATH`)")
        return "**Sessions**\n\n" + "\n".join(lines)


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


def _report_background(task: asyncio.Future[None]) -> None:
    if task.cancelled():
        return
    exc = task.exception()
    if exc is not None and not isinstance(exc, TurnInterrupted):
        print(f"nbagent: the background turn failed: {exc}")


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
