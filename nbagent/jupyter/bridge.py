"""The kernel side of the JupyterLab sidebar: a comm target (``nbagent``) over the notebook's agent.

The sidebar is a second front-end over the same :class:`NotebookAgent` session as the ``%%agent``
cells. It opens a comm with target ``nbagent``; messages are JSON objects with a ``type``:

frontend -> kernel
    ``hello`` {path?}            status and the session's history
    ``prompt`` {text}            run a turn (a task on the kernel's loop: a comm handler cannot await)
    ``command`` {line}           a slash command (``/help``, ``/model``, ``/new``, custom commands...)
    ``reply`` {request_id, reply: once|always|reject, feedback}
    ``cancel``                   stop the running turn (a sidebar or a cell turn)
    ``set_model`` {model}        ``new_session``  ``list_sessions``  ``switch_session`` {id}
    ``sync_metadata`` {cells}    the notebook's turn records -> ``metadata`` (the ``metadata.nbagent`` index)

kernel -> frontend
    ``status``, ``history`` {events}, ``event`` {event} (every core event, of sidebar and cell turns
    alike), ``record`` {source, bundle} (a finished sidebar turn, for the frontend to add to the
    notebook as a ``%%agent`` cell with the same output bundle a cell turn has), ``command_result``,
    ``sessions``, ``metadata``, ``error`` {message, hint}. A status follows each MCP server state change.

The target is registered by :func:`register` (idempotent). The frontend calls :func:`probe` as a
user expression, which registers it where ``%load_ext nbagent`` has run, so no cell has to. The
``status``, ``history`` and ``sessions`` messages are built in :mod:`nbagent.jupyter.bridge_views`.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import json
import logging
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from nbagent.jupyter.bridge_views import (
    COMMAND_NAMES,
    HISTORY_OUTPUT_CHARS,
    PROTOCOL,
    McpWatch,
    _diff_counts,
    history_events,
    history_message,
    sessions_message,
    status_message,
)
from nbagent.jupyter.bridge_views import version as _version

__all__ = [
    "COMMAND_NAMES",
    "HISTORY_OUTPUT_CHARS",
    "PROTOCOL",
    "TARGET",
    "WARM_MODULES",
    "Bridge",
    "ProbeResult",
    "_diff_counts",
    "_version",
    "bridge_for",
    "cell_source",
    "history_events",
    "probe",
    "register",
    "status_changed",
    "unregister",
    "warm_up",
]

TARGET = "nbagent"
# what the first ``hello`` (status, history) and the first turn import: about 0.5-1 s, done in a thread
# at ``%load_ext`` (or when a waiting sidebar probes) rather than while the sidebar waits for its status
WARM_MODULES = ("nbagent.jupyter.agent", "nbagent.core.commands", "nbagent.store.notebook")
_log = logging.getLogger(__name__)
_warming: threading.Thread | None = None


def _shell() -> Any:
    from IPython import get_ipython

    return get_ipython()


def register(shell: Any = None) -> bool:
    """Register the ``nbagent`` comm target on this kernel; False where there is no kernel (a terminal)."""
    shell = shell if shell is not None else _shell()
    kernel = getattr(shell, "kernel", None)
    manager = getattr(kernel, "comm_manager", None)
    if manager is None:
        return False
    bridge = bridge_for(shell)
    if manager.targets.get(TARGET) != bridge.open:
        manager.register_target(TARGET, bridge.open)
    return True


def warm_up() -> None:
    """Import what a sidebar's ``hello`` needs in a background thread (once per kernel), so that the
    sidebar is ready as soon as the kernel is. An import that fails here fails again, with its
    traceback, where the module is used."""
    global _warming
    if _warming is not None or all(name in sys.modules for name in WARM_MODULES):
        return

    def run() -> None:
        for name in WARM_MODULES:
            try:
                importlib.import_module(name)
            except Exception:
                _log.debug("warming up %s failed", name, exc_info=True)
                return

    _warming = threading.Thread(target=run, name="nbagent-warm-up", daemon=True)
    _warming.start()


def unregister(shell: Any = None) -> None:
    """Remove the comm target (``%unload_ext nbagent``); open sidebars say nbagent is not loaded."""
    shell = shell if shell is not None else _shell()
    manager = getattr(getattr(shell, "kernel", None), "comm_manager", None)
    bridge = _bridges.pop(id(shell), None)
    if manager is not None and bridge is not None and manager.targets.get(TARGET) == bridge.open:
        manager.unregister_target(TARGET, bridge.open)
    if bridge is not None:
        for comm in list(bridge.comms.values()):
            with contextlib.suppress(Exception):
                comm.close()


class ProbeResult(dict[str, Any]):
    """A dict shown as JSON (``application/json`` and a JSON ``text/plain``) in a user expression."""

    def _repr_json_(self) -> dict[str, Any]:
        return dict(self)

    def __repr__(self) -> str:
        return json.dumps(self)


def probe() -> ProbeResult:
    """What the sidebar evaluates (a user expression) to learn nbagent's state in this kernel; registers
    the comm target when ``%load_ext nbagent`` has run."""
    shell = _shell()
    loaded = shell is not None and "nbagent" in getattr(shell.extension_manager, "loaded", set())
    registered = register(shell) if loaded else False
    warm_up()  # a sidebar is here: have the agent's modules ready by the time it says hello
    return ProbeResult(version=_version(), loaded=loaded, registered=registered, protocol=PROTOCOL)


_bridges: dict[int, Bridge] = {}


def status_changed(shell: Any) -> None:
    """Something the status shows changed outside a turn (``/mcp-serve`` in a cell): tell the sidebars."""
    bridge = _bridges.get(id(shell))
    if bridge is not None:
        bridge.refresh_status()


def bridge_for(shell: Any) -> Bridge:
    bridge = _bridges.get(id(shell))
    if bridge is None:
        bridge = _bridges[id(shell)] = Bridge(shell)
    return bridge


class Bridge:
    """The comms of one kernel's sidebars, over its :class:`NotebookAgent`."""

    def __init__(self, shell: Any) -> None:
        self.shell = shell
        self.loop = _main_loop(shell)
        self.comms: dict[str, Any] = {}
        self.task: asyncio.Task[None] | None = None
        self.origin: str | None = None  # comm id of the sidebar that started the running turn
        self._watched: Any = None
        self.mcp_watch = McpWatch(lambda: self.loop or _running_loop(), self.refresh_status)

    # -- comms --------------------------------------------------------------------------------

    def open(self, comm: Any, msg: dict[str, Any]) -> None:
        self.comms[comm.comm_id] = comm
        comm.on_msg(lambda m: self._on_msg(comm, m))
        comm.on_close(lambda _m: self.comms.pop(comm.comm_id, None))
        data = (msg.get("content") or {}).get("data") or {}
        if isinstance(data, dict) and data.get("type") == "hello":
            # linked at once: the status and the history follow from the main loop (which may be busy
            # with a cell, or loading the agent)
            self.send(comm, {"type": "hello", "protocol": PROTOCOL, "version": _version()})
            self._dispatch(comm, data)

    def _dispatch(self, comm: Any, data: dict[str, Any]) -> None:
        """Handle a message on the kernel's main loop, where the turns run.

        JupyterLab (4.4+) sends comm messages over a kernel subshell by default: ipykernel then calls
        the handler in the subshell's thread, whose event loop is not the one the agent's futures
        belong to. Anything not on the main loop's thread is handed over to it.
        """
        if self.loop is None or _running_loop() is self.loop:
            self._handle(comm, data)
        else:
            self.loop.call_soon_threadsafe(self._handle, comm, data)

    def send(self, comm: Any, data: dict[str, Any]) -> None:
        with contextlib.suppress(Exception):  # a closed comm (a tab gone) must not break the turn
            comm.send(data)

    def broadcast(self, data: dict[str, Any]) -> None:
        for comm in list(self.comms.values()):
            self.send(comm, data)

    def _on_msg(self, comm: Any, msg: dict[str, Any]) -> None:
        data = (msg.get("content") or {}).get("data") or {}
        if isinstance(data, dict) and data.get("type") == "cancel":
            from nbagent.jupyter.kernel import stop_running_code

            stop_running_code()  # in a subshell's thread while a tool holds the main one with user code
        if isinstance(data, dict):
            self._dispatch(comm, data)

    def _handle(self, comm: Any, data: dict[str, Any]) -> None:
        kind = data.get("type")
        handler: Callable[[Any, dict[str, Any]], None] | None = getattr(self, f"_on_{kind}", None)
        if handler is None:
            self.send(comm, {"type": "error", "message": f"Unknown message type {kind!r}."})
            return
        try:
            handler(comm, data)
        except Exception as exc:
            self.send(comm, _error(exc))

    # -- the agent ----------------------------------------------------------------------------

    @property
    def agent(self) -> Any:
        from nbagent.jupyter.agent import current_agent

        agent = current_agent()
        self._watch(agent)
        self.mcp_watch.follow(agent.session)  # a session made by a cell too
        return agent

    def _watch(self, agent: Any) -> None:
        """Forward every event of the agent's turns (the cells' too) to the sidebars."""
        if self._watched is agent:
            return

        def forward(event: Any) -> None:
            self.mcp_watch.follow(agent.session)
            self.broadcast({"type": "event", "event": event.model_dump(mode="json")})

        agent.listeners.append(forward)
        self._watched = agent

    @property
    def busy(self) -> bool:
        if self.task is not None and not self.task.done():
            return True
        session = self.agent.session
        return bool(session is not None and session.busy)

    def status(self) -> dict[str, Any]:
        running = "sidebar" if self.task is not None and not self.task.done() else None
        return status_message(self.agent, busy=self.busy, running=running)

    def history(self) -> dict[str, Any]:
        return history_message(self.agent)

    def refresh_status(self) -> None:
        """A fresh status to the open sidebars (an MCP server's state, the kernel served or not)."""
        if self.comms:
            self.broadcast(self.status())

    # -- handlers -------------------------------------------------------------------------------

    def _on_hello(self, comm: Any, data: dict[str, Any]) -> None:
        agent = self.agent
        name = data.get("path")
        if agent.notebook_path is None and isinstance(name, str) and name.endswith(".ipynb"):
            for candidate in (Path.cwd() / name, Path.cwd() / Path(name).name):
                if candidate.is_file():
                    agent.attach(candidate)
                    break
        self.send(comm, self.status())
        self.send(comm, self.history())

    def _on_prompt(self, comm: Any, data: dict[str, Any]) -> None:
        text = str(data.get("text") or "").strip()
        if not text:
            self.send(comm, {"type": "error", "message": "The prompt is empty."})
            return
        self._start(comm, text)

    def _start(self, comm: Any, prompt: str) -> None:
        if self.busy:
            self.send(
                comm,
                {
                    "type": "error",
                    "message": "A turn is already running in this notebook.",
                    "hint": "Wait for it, or press Stop.",
                },
            )
            return
        session = self._session()  # errors (no model...) reach the sidebar before any task starts
        self.origin = comm.comm_id
        self.task = asyncio.ensure_future(self._turn(comm, session, prompt))
        self.task.add_done_callback(self._turn_done)
        self.broadcast(self.status())

    def _session(self) -> Any:
        from nbagent.jupyter.agent import CellOptions

        agent = self.agent
        had = agent.session
        session, note = agent.session_for(CellOptions(), None, None)
        if note:
            self.broadcast({"type": "notice", "message": note})
        if had is not session:
            self.broadcast(self.history())
        return session

    def _turn_done(self, task: asyncio.Task[None]) -> None:
        self.origin = None
        if not task.cancelled() and task.exception() is not None:
            self.broadcast(_error(task.exception()))  # type: ignore[arg-type]
        self.broadcast(self.status())

    async def _turn(self, comm: Any, session: Any, prompt: str) -> None:
        """One sidebar turn, recorded as a ``%%agent`` cell turn is (the same recorder, record and bundle)."""
        from nbagent.jupyter.recorder import TurnRecorder
        from nbagent.jupyter.transcript import Transcript

        agent = self.agent
        recorder = TurnRecorder(session, prompt, compaction=agent._pending_compaction)
        recorder.start()
        transcript = Transcript(model=session.model)
        failure: BaseException | None = None
        try:
            async for event in session.run(prompt):
                recorder.observe(event)
                agent._observe(event)  # also forwards it to the sidebars (see _watch)
                transcript.apply(event)
        except asyncio.CancelledError:
            session.cancel()
        except Exception as exc:
            failure = exc
        finally:
            recorder.stop()
        if failure is not None:
            message = f"The turn failed: {type(failure).__name__}: {failure}"
            recorder.note(message, "error")
            transcript.add_notice(message, "error")
        record = recorder.record(recorder.reason(failed=failure is not None))
        source = cell_source(prompt)
        agent.remember(record, None, source)
        self.send(comm, {"type": "record", "source": source, "bundle": recorder.bundle(record, transcript)})
        if failure is not None:
            raise failure

    def _on_command(self, comm: Any, data: dict[str, Any]) -> None:
        line = str(data.get("line") or "").strip()
        if not line.startswith("/"):
            line = "/" + line
        task = asyncio.ensure_future(self._command(comm, line))
        task.add_done_callback(
            lambda t: None if t.cancelled() or not t.exception() else self._failed(comm, t)
        )

    def _failed(self, comm: Any, task: asyncio.Task[None]) -> None:
        exc = task.exception()
        if exc is not None:
            self.send(comm, _error(exc))

    async def _command(self, comm: Any, line: str) -> None:
        from nbagent.core.commands import HELP, parse

        agent = self.agent
        name, arg = parse(line)

        def result(text: str) -> None:
            self.send(comm, {"type": "command_result", "line": line, "text": text})

        if name == "new":
            self._new_session()
            result("Started a new session.")
            return
        if name == "sessions":
            self.send(comm, self.sessions())
            result(agent._sessions_text())
            return
        if name == "attach":
            if not arg:
                result("`/attach PATH`: the path of the notebook.")
                return
            agent.attach(Path(arg))
            result(f"Attached to `{agent.notebook_path}`.")
            self.broadcast(self.status())
            return
        if name == "model" and arg:
            agent.model_override = arg
        if name in ("help", "?", "") and agent.session is None:
            result(HELP)
            return
        if self.busy:
            result("A turn is running: wait for it, or press Stop.")
            return
        session = self._session()
        out = await agent.apply_command(session, line)
        if out.action == "new_session":
            self.broadcast(self.status())
            self.broadcast({"type": "history", "session_id": None, "events": []})
        if out.text:
            result(out.text)
        self.broadcast(self.status())
        if out.prompt:
            self._start(comm, out.prompt)

    def _on_reply(self, comm: Any, data: dict[str, Any]) -> None:
        session = self.agent.session
        kind = data.get("reply")
        if session is None or kind not in ("once", "always", "reject"):
            self.send(comm, {"type": "error", "message": "No permission request to answer."})
            return
        with contextlib.suppress(KeyError):  # answered already (another front-end, a double click)
            session.reply(str(data.get("request_id")), kind, str(data.get("feedback") or ""))

    def _on_cancel(self, comm: Any, data: dict[str, Any]) -> None:
        session = self.agent.session
        if session is not None and session.busy:
            session.cancel()
        elif self.task is not None and not self.task.done():
            self.task.cancel()

    def _on_set_model(self, comm: Any, data: dict[str, Any]) -> None:
        model = str(data.get("model") or "").strip()
        if not model:
            self.send(comm, {"type": "error", "message": "No model given."})
            return
        agent = self.agent
        agent.model_override = model
        if agent.session is not None and not agent.session.busy:
            agent.session.set_model(model)
        self.broadcast(self.status())

    def _new_session(self) -> None:
        self.agent.drop_session()
        self.broadcast(self.status())
        self.broadcast({"type": "history", "session_id": None, "events": []})

    def _on_new_session(self, comm: Any, data: dict[str, Any]) -> None:
        if self.busy:
            self.send(comm, {"type": "error", "message": "A turn is running.", "hint": "Stop it first."})
            return
        self._new_session()

    def sessions(self) -> dict[str, Any]:
        return sessions_message(self.agent)

    def _on_list_sessions(self, comm: Any, data: dict[str, Any]) -> None:
        self.send(comm, self.sessions())

    def _on_switch_session(self, comm: Any, data: dict[str, Any]) -> None:
        from nbagent.jupyter.agent import CellOptions

        sid = str(data.get("id") or "")
        agent = self.agent
        if self.busy:
            self.send(comm, {"type": "error", "message": "A turn is running.", "hint": "Stop it first."})
            return
        if agent.session is None or agent.session.id != sid:
            agent.drop_session()
            agent.session_for(CellOptions(session=sid), None, None)
        self.broadcast(self.status())
        self.broadcast(self.history())

    def _on_sync_metadata(self, comm: Any, data: dict[str, Any]) -> None:
        from nbagent.store.notebook import build_metadata

        cells = data.get("cells")
        if not isinstance(cells, list):
            return
        self.send(comm, {"type": "metadata", "metadata": build_metadata({"cells": cells})})


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def _main_loop(shell: Any) -> asyncio.AbstractEventLoop | None:
    """The kernel's main event loop (where cells and the agent's turns run)."""
    io_loop = getattr(getattr(shell, "kernel", None), "io_loop", None)
    loop = getattr(io_loop, "asyncio_loop", None)
    if isinstance(loop, asyncio.AbstractEventLoop):
        return loop
    return _running_loop()


def cell_source(prompt: str) -> str:
    """The ``%%agent`` cell a sidebar turn is recorded as (replay finds it by this source)."""
    return f"%%agent\n{prompt.strip()}"


def _error(exc: BaseException) -> dict[str, Any]:
    return {"type": "error", "message": str(exc) or type(exc).__name__, "hint": getattr(exc, "hint", "")}
