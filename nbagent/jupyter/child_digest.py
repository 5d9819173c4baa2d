"""What the notebook record keeps of a ``task`` call's child agent: its name, session, final text and
a bounded digest of its steps (a :class:`TurnNote` of kind ``subagent``), never its whole history (the
session store has that; ``nbagent sessions`` lists the child under its parent)."""

from __future__ import annotations

from pydantic import ValidationError

from nbagent.core.events import (
    EVENT_ADAPTER,
    ErrorEvent,
    Event,
    PermissionAsked,
    PermissionReplied,
    SubagentEvent,
    TextDelta,
    ToolCallCompleted,
    ToolCallError,
    ToolCallRunning,
    TurnFinished,
)
from nbagent.core.text import call_summary
from nbagent.store.turn_record import TurnNote

DIGEST_STEPS = 40  # lines of a child's digest kept (the first ones, then a count of the rest)
DIGEST_LINE_CHARS = 160
FINAL_TEXT_CHARS = 4_000  # of the child's final message


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


class ChildDigests:
    """Fold the ``SubagentEvent``s of a turn into one ``subagent`` note per ``task`` call."""

    def __init__(self) -> None:
        self.notes: dict[str, TurnNote] = {}
        self._omitted: dict[str, int] = {}
        self._last: dict[str, tuple[str, str]] = {}  # call id -> the child's last message (id, text)

    def observe(self, wrapped: SubagentEvent) -> TurnNote | None:
        """Fold one child event in; returns the note when it is new (the caller lists it)."""
        note = self.notes.get(wrapped.call_id)
        created = note is None
        if note is None:
            note = TurnNote(kind="subagent", call_id=wrapped.call_id, agent=wrapped.agent)
            self.notes[wrapped.call_id] = note
        note.session = note.session or wrapped.child_session_id
        event, depth = _inner(wrapped)
        if event is not None:
            self._fold(note, event, depth)
        return note if created else None

    def _fold(self, note: TurnNote, event: Event, depth: int) -> None:
        pad = "  " * depth
        key = note.call_id or ""
        if isinstance(event, TextDelta) and not depth:
            message_id, text = self._last.get(key, ("", ""))
            self._last[key] = (
                event.message_id,
                (text if message_id == event.message_id else "") + event.text,
            )
        elif isinstance(event, ToolCallRunning):
            self._line(note, f"{pad}● {event.tool} {call_summary(event.tool, event.input)}".rstrip())
        elif isinstance(event, ToolCallError):
            self._line(note, f"{pad}  ✗ {(event.error.strip().splitlines() or ['error'])[0]}")
        elif isinstance(event, ToolCallCompleted) and depth:
            self._line(note, f"{pad}  ✓ {event.title or event.tool}")
        elif isinstance(event, PermissionAsked):
            self._line(note, f"{pad}? permission: {event.title}")
        elif isinstance(event, PermissionReplied):
            self._line(note, f"{pad}  → {event.reply}{f': {event.feedback}' if event.feedback else ''}")
        elif isinstance(event, ErrorEvent):
            self._line(note, f"{pad}Error: {event.message}")
        elif isinstance(event, TurnFinished) and not depth:
            final = event.text or self._last.get(key, ("", ""))[1]
            note.message = _clip(final.strip(), FINAL_TEXT_CHARS)
            note.level = event.reason  # how the child's turn ended
            note.title = f"{event.steps} step{'s' if event.steps != 1 else ''}"

    def _line(self, note: TurnNote, line: str) -> None:
        key = note.call_id or ""
        if len(note.steps) < DIGEST_STEPS:
            note.steps.append(_clip(line, DIGEST_LINE_CHARS))
            return
        self._omitted[key] = self._omitted.get(key, 0) + 1
        more = f"… {self._omitted[key]} more steps (the child session has them all)"
        if self._omitted[key] == 1:
            note.steps.append(more)
        else:
            note.steps[-1] = more


def _inner(wrapped: SubagentEvent) -> tuple[Event | None, int]:
    """The child's event and how deep below the child it happened (0: the child's own)."""
    depth = 0
    try:
        event: Event = EVENT_ADAPTER.validate_python(wrapped.event)
        while isinstance(event, SubagentEvent):
            depth += 1
            event = EVENT_ADAPTER.validate_python(event.event)
    except ValidationError:
        return None, depth
    return event, depth
