"""What the sidebar is told about the notebook's agent: its status, a session's history, the sessions.

These build the ``status``, ``history`` and ``sessions`` messages of the sidebar protocol (see
:mod:`nbagent.jupyter.bridge`, which owns the comm and the handlers) from a
:class:`~nbagent.jupyter.agent.NotebookAgent`. A stored session's messages become the events a live
turn would have produced (:func:`history_events`), with long tool results shortened, so the sidebar
renders a resumed session with the same code as a running one. The status carries the MCP servers'
state (:func:`mcp_status`); :class:`McpWatch` sends a fresh status when a server's state changes.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

__all__ = [
    "COMMAND_NAMES",
    "HISTORY_OUTPUT_CHARS",
    "MCP_SETTLE",
    "PROTOCOL",
    "McpWatch",
    "history_events",
    "history_message",
    "mcp_status",
    "sessions_message",
    "status_message",
    "version",
]

PROTOCOL = 1
HISTORY_OUTPUT_CHARS = 4_000  # a tool result in the history sent to the sidebar
COMMAND_NAMES = (
    ("help", "the commands"),
    ("model", "show or switch the model"),
    ("context", "what the next request is made of"),
    ("compact", "summarise the older history now"),
    ("cost", "tokens and cost of this session"),
    ("sessions", "the sessions of this notebook"),
    ("new", "start a new session"),
    ("undo", "revert the last turn's file changes"),
    ("redo", "put them back"),
    ("permissions", "show the permission mode and rules, or switch mode"),
    ("init", "write a starter AGENTS.md"),
    ("memory", "the memory files loaded; /memory add TEXT adds a note"),
    ("agents", "the primary agents and subagents"),
    ("tasks", "the subagents started in this session"),
    ("mcp", "MCP servers: state, tools, prompts, errors"),
)
MCP_SETTLE = 0.1  # seconds: MCP state changes within this are sent as one status


def version() -> str:
    from nbagent import __version__

    return __version__


def status_message(agent: Any, *, busy: bool, running: str | None) -> dict[str, Any]:
    """The ``status`` message: model (or why there is none), session, mode, notebook, commands."""
    from nbagent.core.commands import custom_commands

    session = agent.session
    model, problem = "", ""
    if session is not None:
        model = session.model
    else:
        try:
            from nbagent.jupyter.agent import CellOptions

            model = agent._config(CellOptions()).model or ""
        except Exception as exc:
            problem = str(exc)
            hint = getattr(exc, "hint", "")
            if hint:
                problem += f" {hint}"
    try:
        custom = custom_commands(agent.root)
    except OSError:
        custom = {}
    notebook = agent.notebook_path
    return {
        "type": "status",
        "protocol": PROTOCOL,
        "version": version(),
        "model": model,
        "problem": problem,
        "session_id": session.id if session is not None else None,
        "mode": session.policy.mode if session is not None else None,
        "busy": busy,
        "running": running,
        "notebook": str(notebook) if notebook is not None else None,
        "root": str(agent.root),
        "commands": [{"name": n, "description": d} for n, d in COMMAND_NAMES]
        + [{"name": "attach", "description": "use PATH as this kernel's notebook"}]
        + [{"name": c.name, "description": c.description, "custom": True} for c in custom.values()],
        "mcp": mcp_status(agent),
    }


def mcp_status(agent: Any) -> dict[str, Any]:
    """The ``status`` message's ``mcp``: the session's servers (before a session: the configured ones,
    not started), config errors, the deferred tool count, and ``serving``: the URL this kernel is served
    at over MCP, or None. Nothing starts here."""
    from nbagent.core.mcp_session import McpSession
    from nbagent.ext.mcp_config import McpConfig, load_mcp_config

    mcp = getattr(agent.session, "mcp", None)
    if not isinstance(mcp, McpSession):
        try:
            mcp = McpSession(load_mcp_config(agent.root))
        except Exception as exc:
            mcp = McpSession(McpConfig(errors=[f"MCP servers are not available: {exc}"]))
    serve = sys.modules.get("nbagent.jupyter.mcp_serve")  # not imported: nothing is served
    serving = serve.serving(agent) if serve is not None else None
    return {**mcp.snapshot().model_dump(mode="json"), "serving": serving}


class McpWatch:
    """Follows the current session's MCP servers and calls ``refresh`` (on ``loop``, once per burst of
    changes) when their state changes; a change may happen in any thread."""

    def __init__(
        self, loop: Callable[[], asyncio.AbstractEventLoop | None], refresh: Callable[[], None]
    ) -> None:
        self._loop = loop
        self._refresh = refresh
        self._mcp: Any = None
        self._pending = False
        self._lock = threading.Lock()

    def follow(self, session: Any) -> None:
        """Listen to ``session``'s MCP servers (and no longer to a previous session's)."""
        mcp = getattr(session, "mcp", None)
        if mcp is self._mcp:
            return
        if self._mcp is not None:
            with contextlib.suppress(ValueError):
                self._mcp.listeners.remove(self.changed)
        self._mcp = mcp
        if mcp is not None:
            mcp.listeners.append(self.changed)

    def changed(self) -> None:
        loop = self._loop()
        if loop is None or loop.is_closed():
            return
        with self._lock:
            if self._pending:
                return
            self._pending = True
        loop.call_soon_threadsafe(loop.call_later, MCP_SETTLE, self._flush)

    def _flush(self) -> None:
        with self._lock:
            self._pending = False
        self._refresh()


def history_message(agent: Any) -> dict[str, Any]:
    """The ``history`` message: the current session's events, else those of the notebook's last session."""
    from nbagent.store.notebook import session_history

    session = agent.session
    if session is not None:
        sid, messages, model = session.id, session.messages, session.model
    else:
        turns = agent.recorded_turns()
        if not turns:
            return {"type": "history", "session_id": None, "events": []}
        sid, messages, model = session_history(turns)
    return {"type": "history", "session_id": sid, "events": history_events(messages, model, sid)}


def sessions_message(agent: Any) -> dict[str, Any]:
    """The ``sessions`` message: the notebook's sessions (saved or recorded since) and the current one."""
    from nbagent.store.notebook import sessions_index

    current = agent.session
    rows: list[dict[str, Any]] = []
    path = agent.notebook_path
    if path is not None or agent.produced:
        with contextlib.suppress(OSError, ValueError):  # the notebook's records, saved or not yet
            for s in sessions_index(agent.notebook_records())["sessions"]:
                rows.append(
                    {
                        "id": s["id"],
                        "model": s["model"],
                        "turns": s["turns"],
                        "updated": s["updated"],
                        "cost": s["cost"],
                    }
                )
    if current is not None and all(r["id"] != current.id for r in rows):
        turns = sum(1 for m in current.messages if m.role == "user" and not m.synthetic)
        rows.append({"id": current.id, "model": current.model, "turns": turns, "updated": time.time()})
    return {
        "type": "sessions",
        "current": current.id if current is not None else None,
        "sessions": rows,
        "notebook": str(path) if path is not None else None,
    }


def _diff_counts(metadata: dict[str, Any], diff: str) -> tuple[int, int]:
    """Lines added and removed: a result's own counts (``apply_patch`` keeps them per file), else
    counted from the diff."""
    additions, deletions = int(metadata.get("additions") or 0), int(metadata.get("deletions") or 0)
    files = [f for f in metadata.get("files") or [] if isinstance(f, dict)]
    if not additions and not deletions and files:
        additions = sum(int(f.get("additions") or 0) for f in files)
        deletions = sum(int(f.get("deletions") or 0) for f in files)
    if not additions and not deletions:
        lines = diff.splitlines()
        additions = sum(1 for ln in lines if ln.startswith("+") and not ln.startswith("+++"))
        deletions = sum(1 for ln in lines if ln.startswith("-") and not ln.startswith("---"))
    return additions, deletions


def history_events(messages: list[Any], model: str = "", session_id: str = "") -> list[dict[str, Any]]:
    """A session's messages as the events a live turn would have produced (for the sidebar to render)."""
    from nbagent.core.events import (
        DiffProduced,
        Event,
        ReasoningDelta,
        TextDelta,
        ToolCallCompleted,
        ToolCallError,
        TurnFinished,
        TurnStarted,
    )
    from nbagent.core.messages import ReasoningPart, TextPart, ToolCompleted, ToolError, ToolPart, Usage

    events: list[Event] = []
    turn: TurnStarted | None = None
    steps = 0

    def close() -> None:
        nonlocal turn
        if turn is not None:
            events.append(TurnFinished(turn_id=turn.turn_id, reason="stop", steps=steps, usage=Usage()))
            turn = None

    for message in messages:
        if message.role == "user":
            if message.synthetic and turn is not None:
                continue
            close()
            steps = 0
            text = message.text
            if message.synthetic:
                text = text.split("\n", 1)[0][:200]
            turn = TurnStarted(turn_id=message.id, prompt=text, model=message.model or model)
            events.append(turn)
            continue
        steps += 1
        for part in message.parts:
            if isinstance(part, TextPart) and part.text:
                events.append(TextDelta(message_id=message.id, text=part.text))
            elif isinstance(part, ReasoningPart) and part.text:
                events.append(ReasoningDelta(message_id=message.id, text=part.text))
            elif isinstance(part, ToolPart):
                state = part.state
                if isinstance(state, ToolCompleted):
                    output = state.output
                    if len(output) > HISTORY_OUTPUT_CHARS:
                        half = HISTORY_OUTPUT_CHARS // 2
                        output = f"{output[:half]}\n… [{len(output) - 2 * half:,} characters omitted] …\n{output[-half:]}"
                    events.append(
                        ToolCallCompleted(
                            call_id=part.call_id,
                            tool=part.tool,
                            input=state.input,
                            output=output,
                            title=state.title,
                        )
                    )
                    diff = state.metadata.get("diff") if isinstance(state.metadata, dict) else None
                    if isinstance(diff, str) and diff:
                        path = state.input.get("file_path") or state.input.get("notebook_path") or state.title
                        additions, deletions = _diff_counts(state.metadata, diff)
                        events.append(
                            DiffProduced(
                                call_id=part.call_id,
                                path=str(path),
                                diff=diff,
                                additions=additions,
                                deletions=deletions,
                            )
                        )
                elif isinstance(state, ToolError):
                    events.append(
                        ToolCallError(
                            call_id=part.call_id, tool=part.tool, input=state.input, error=state.error
                        )
                    )
    close()
    return [{**e.model_dump(mode="json"), "session_id": session_id} for e in events]
