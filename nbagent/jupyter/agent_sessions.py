"""Where a notebook's agent works and which session a cell continues: the base of ``NotebookAgent``.

:class:`NotebookSessions` finds the notebook (``NBAGENT_NOTEBOOK``, VS Code's and JupyterLab's
variables, ``/attach``) and the project root, reads the turn records its cells hold (merged with those
this kernel recorded since the last save), and opens sessions: the configuration (model from the cell,
``/model``, ``NBAGENT_MODEL`` or nbagent.json), the SQLite store (the full raw history, where it opens),
the notebook's tools with the kernel's namespace, and resuming the session the earlier cells recorded.
:class:`nbagent.jupyter.agent.NotebookAgent` builds the turns and the ``/commands`` on it.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

from nbagent.core.config import Config, load_config
from nbagent.core.errors import NbagentError
from nbagent.core.permission import HeadlessPolicy
from nbagent.core.session import Session
from nbagent.jupyter.cells import CellError, CellOptions
from nbagent.store.notebook import (
    CellTurn,
    TurnRecord,
    merge_turns,
    notebook_turns,
    read_notebook_json,
    session_history,
    turns_before,
)
from nbagent.tools.base import Tool
from nbagent.tools.kernel import KERNEL_KEY
from nbagent.tools.notebook_live import FRONTEND_KEY, OPEN_KEY

__all__ = ["NotebookSessions", "notebook_tools"]


def notebook_tools() -> list[Tool[Any]]:
    from nbagent.tools import default_tools
    from nbagent.tools.kernel import InspectTool, PythonTool
    from nbagent.tools.notebook import NotebookEditTool
    from nbagent.tools.notebook_run import NotebookRunTool

    tools: list[Tool[Any]] = list(default_tools())
    names = {t.name for t in tools}
    for extra in (NotebookEditTool(), NotebookRunTool(), PythonTool(), InspectTool()):
        if extra.name not in names:
            tools.append(extra)
    return tools


class NotebookSessions:
    """The notebook, its records and the session of one kernel's agent."""

    def __init__(self, shell: Any) -> None:
        self.shell = shell
        self.session: Session | None = None
        self.model_override: str | None = None
        self._notebook: Path | None = None
        self._replayed: set[str] = set()
        self._pending_compaction: str | None = None
        # The turns this kernel recorded (the saved file may not have them yet): /sessions and /cost
        # count the notebook's records, the saved ones merged with these.
        self.produced: list[CellTurn] = []
        self.store_problem = ""  # why the session store could not be opened (shown at the next turn)
        self._document: Any = None

    @property
    def document(self) -> Any:
        """The link to the front-end showing this kernel's notebook (one per kernel, for every session)."""
        if self._document is None:
            from nbagent.jupyter.document import DocumentLink

            self._document = DocumentLink(self.shell, lambda: self.notebook_path, self.attach)
        return self._document

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
        self,
        config: Config,
        *,
        session_id: str | None = None,
        messages: list[Any] | None = None,
        agent: str | None = None,
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
                agent=agent,
            )
        except NbagentError as exc:
            raise CellError(str(exc), exc.hint) from exc
        if store is None and self.store_problem:
            session.add_notice(self.store_problem + " This session is kept in the notebook only.")
            self.store_problem = ""
        from nbagent.jupyter.kernel import IPythonNamespace

        session.tool_state[KERNEL_KEY] = IPythonNamespace(self.shell)
        session.tool_state[FRONTEND_KEY] = self.document
        if self.notebook_path is not None:
            session.tool_state[OPEN_KEY] = {self.notebook_path}
        return session

    def _store(self, config: Config) -> Any:
        """The SQLite session store (the full raw history); None where it cannot be opened."""
        if os.environ.get("NBAGENT_NO_STORE") == "1":
            return None
        from nbagent.store import SessionStore

        try:
            store_path = getattr(config, "store", None)
            return SessionStore(Path(store_path).expanduser() if store_path else None)
        except (NbagentError, OSError) as exc:
            # the turn goes on, kept in the notebook only; the user is told why and how to fix it
            hint = getattr(exc, "hint", "")
            self.store_problem = f"The session store could not be opened: {exc}" + (
                f" {hint}" if hint else ""
            )
            return None

    def _apply_options(self, session: Session, opts: CellOptions) -> None:
        model = opts.model or self.model_override
        if model and model != session.chain.primary:  # not while a fallback stands in for it
            session.set_model(model)

    def tools_session(self, placeholder_model: str) -> Session:
        """A session of this notebook (its tools, rules and kernel) for running tools only, for when no
        model is configured: ``placeholder_model`` stands in and is never called."""
        return self._new_session(self._config(CellOptions(), fallback_model=placeholder_model))

    def session_for(
        self, opts: CellOptions, cell_id: str | None, replaying: TurnRecord | None
    ) -> tuple[Session, str]:
        """The session this cell continues (or starts), and a note saying which when it is not obvious."""
        if opts.new:
            self.drop_session()
        current = self.session
        if current is not None and opts.agent and opts.agent != _agent_name(current):
            self.drop_session()  # the agent is fixed per session: the history goes on under the new one
            current = None
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
            session = self._new_session(config, session_id=sid, messages=messages, agent=opts.agent)
            count = sum(1 for t in candidates if t.record.session_id == sid)
            note = (
                f"Resumed session {sid} from the notebook ({count} earlier turn{'s' if count != 1 else ''})."
            )
        else:
            fallback = replaying.model if replaying is not None else None
            config = self._config(opts, fallback_model=fallback)
            sid_new = replaying.session_id if replaying is not None else None
            session = self._new_session(config, session_id=sid_new, agent=opts.agent)
            note = ""
        self.session = session
        return session, note

    def drop_session(self) -> None:
        old, self.session = self.session, None
        if old is not None and not old.busy:
            task = asyncio.ensure_future(old.close()) if _loop_running() else None
            del task


def _agent_name(session: Session) -> str:
    agent = session.setup.agent
    return agent.name if agent is not None else "build"


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
