"""Pruning: old tool outputs leave the context first, replaced by a marker; the raw output is kept.

The most recent outputs are protected, and a prune happens only when it frees a worthwhile amount.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from nbagent.core.messages import Message, ToolCompleted, ToolPart


def _candidates(messages: list[Message], protect_chars: int) -> list[ToolPart]:
    """Completed, unpruned tool outputs older than the protected recent ones, newest first.

    The newest step's outputs are never candidates: the model has not seen them yet.
    """
    seen_chars = 0
    found: list[ToolPart] = []
    newest = next((m for m in reversed(messages) if m.role == "assistant"), None)
    for message in reversed(messages):
        if message is newest:
            continue
        for part in reversed(message.tool_parts()):
            state = part.state
            if not isinstance(state, ToolCompleted) or state.pruned:
                continue
            seen_chars += len(state.output)
            if seen_chars > protect_chars:
                found.append(part)
    return found


def prune(
    messages: list[Message],
    *,
    protect_chars: int,
    minimum_chars: int,
    keep: Callable[[ToolPart], Path | None],
) -> int:
    """Prune old outputs if that frees at least ``minimum_chars``; returns the characters freed.

    ``keep(part)`` saves the raw output somewhere the model can read it back and returns that path.
    """
    candidates = _candidates(messages, protect_chars)
    freeable = sum(len(p.state.output) for p in candidates if isinstance(p.state, ToolCompleted))
    if freeable < minimum_chars:
        return 0
    freed = 0
    for part in candidates:
        state = part.state
        assert isinstance(state, ToolCompleted)
        path = keep(part)
        where = (
            f"saved at {path}; read it with the read tool if you need it again"
            if path
            else "kept in the session store"
        )
        state.pruned = (
            f"[Old {part.tool} output ({len(state.output)} chars) pruned from the context; {where}.]"
        )
        freed += len(state.output) - len(state.pruned)
    return freed
