"""One turn recorded for the notebook, the same way whether a ``%%agent`` cell, the sidebar or
``nbagent execute`` ran it.

:class:`TurnRecorder` puts a recording provider (or, for a replay, the recorded replies) in front of
the session's model for the turn, watches the turn's events, then builds the bounded, scrubbed
:class:`~nbagent.store.notebook.TurnRecord` and the cell's output bundle: HTML and text of the
transcript, and the record under ``TURN_MIME`` (what the session resumes and replays from, and what the
JupyterLab renderer draws). Nothing leaves it unscrubbed.
"""

from __future__ import annotations

import time
from typing import Any

from nbagent.core.events import (
    BudgetStatus,
    Compacted,
    ErrorEvent,
    Event,
    ModelSwitched,
    Notice,
    PermissionAsked,
    PermissionReplied,
    SubagentEvent,
    TurnFinished,
    TurnStarted,
    UsageUpdated,
)
from nbagent.core.messages import Usage
from nbagent.core.session import Session
from nbagent.jupyter.child_digest import ChildDigests
from nbagent.jupyter.render_html import transcript_html, transcript_text
from nbagent.jupyter.transcript import Transcript
from nbagent.providers.base import Provider
from nbagent.providers.replay import RecordingProvider, ReplayProvider
from nbagent.store.notebook import (
    TURN_MIME,
    ReplayInfo,
    TurnNote,
    TurnRecord,
    compare_results,
    make_record,
    record_json,
    recorded_replies,
)


class TurnRecorder:
    """Record one turn of ``session``: ``start()`` before it runs, ``observe()`` each event, ``stop()``
    when it ends (cancelled included), then ``record()`` and ``bundle()``."""

    def __init__(
        self,
        session: Session,
        prompt: str,
        *,
        cell_id: str | None = None,
        agent: str | None = None,
        replaying: TurnRecord | None = None,
        compaction: str | None = None,
    ) -> None:
        self.session = session
        self.prompt = prompt
        self.cell_id = cell_id
        self.agent = agent
        self.replaying = replaying
        self.compaction = compaction  # a /compact summary made before the turn, recorded with it
        self.finished: TurnFinished | None = None
        self.turn_id = ""
        self.mode = str(session.policy.mode)
        self._base: Provider | None = None
        self._recording: RecordingProvider | None = None
        self._replay: ReplayProvider | None = None
        self._start = len(session.messages)
        self._started = time.time()
        self._context = (0, 0)
        self._notes: list[TurnNote] = []
        self._asked: dict[str, TurnNote] = {}
        self._children = ChildDigests()  # a task call's child: its final text and a digest of its steps

    # -- the turn -------------------------------------------------------------------------------

    def start(self) -> None:
        """Put the recording (or the replay) in front of the model; note where the turn starts and the
        permission mode it really runs in (a cell's ``--mode`` applied)."""
        session = self.session
        self._base = session.provider
        if self.replaying is not None:
            self._replay = ReplayProvider(recorded_replies(self.replaying))
            session.provider = self._replay
        else:
            self._recording = RecordingProvider(self._base)
            session.provider = self._recording
        self._start = len(session.messages)
        self._started = time.time()
        self.mode = str(session.policy.mode)

    def stop(self) -> None:
        """Give the session its model back (idempotent)."""
        if self._base is not None:
            self.session.provider = self._base
            self._base = None

    def observe(self, event: Event) -> None:
        if isinstance(event, TurnStarted):
            self.turn_id = event.turn_id
        elif isinstance(event, UsageUpdated):
            self._context = (event.context_tokens, event.context_limit)
        elif isinstance(event, Compacted):
            self.compaction = event.summary
        elif isinstance(event, PermissionAsked):
            note = TurnNote(kind="permission", call_id=event.call_id, title=event.title)
            self._asked[event.request_id] = note
            self._notes.append(note)
        elif isinstance(event, PermissionReplied):
            asked = self._asked.get(event.request_id)
            if asked is not None:
                asked.reply, asked.feedback = event.reply, event.feedback
                asked.by = "" if event.by == "user" else event.by
        elif isinstance(event, Notice):
            self.note(event.message, event.level)
        elif isinstance(event, ModelSwitched):
            self.note(event.message, "warning" if event.reason == "failover" else "info")
        elif isinstance(event, BudgetStatus):
            self.note(event.message, "warning")
        elif isinstance(event, ErrorEvent):
            self.note(event.message + (f" ({event.hint})" if event.hint else ""), "error")
        elif isinstance(event, TurnFinished):
            self.finished = event
        elif isinstance(event, SubagentEvent):
            child = self._children.observe(event)
            if child is not None:
                self._notes.append(child)

    def note(self, message: str, level: str = "info") -> None:
        """A notice the record keeps (what the transcript says besides the messages)."""
        self._notes.append(TurnNote(kind="notice", level=level, message=message))

    # -- the record -------------------------------------------------------------------------------

    def reason(self, *, failed: bool = False) -> str:
        """How the turn ended: the finished event's reason, else "error" (it raised) or "cancelled"."""
        if self.finished is not None:
            return self.finished.reason
        return "error" if failed else "cancelled"

    def usage(self) -> Usage:
        """The turn's usage: the finished event's, else the sum of the steps it made."""
        if self.finished is not None:
            return self.finished.usage
        total = Usage()
        for message in self.session.messages[self._start :]:
            if message.usage is not None:
                total = total + message.usage
        return total

    def record(self, reason: str) -> TurnRecord:
        """The bounded, scrubbed record; for a replay, with how its tool results compare."""
        session = self.session
        if self._replay is not None and self.replaying is not None:
            replies = recorded_replies(self.replaying)[: self._replay.index]
        else:
            replies = self._recording.take() if self._recording is not None else []
        record = make_record(
            session_id=session.id,
            turn_id=self.turn_id or (self.finished.turn_id if self.finished else "turn_unknown"),
            prompt=self.prompt,
            model=session.model,
            messages=session.messages[self._start :],
            replies=replies,
            usage=self.usage(),
            reason=reason,
            started=self._started,
            root=session.root,
            cell_id=self.cell_id,
            agent=self.agent,
            mode=self.mode,
            context_tokens=self._context[0],
            context_limit=self._context[1],
            compaction=self.compaction,
            scrubber=session.scrubber,
            notes=self._notes,
        )
        if self.replaying is not None:
            record.replay = ReplayInfo(
                of_turn=self.replaying.turn_id,
                divergent=compare_results(self.replaying.results, record.results),
                compared=len(self.replaying.results),
            )
            outcome = replay_notice(record)
            if outcome is not None:
                record.notes.append(TurnNote(kind="notice", level=outcome[1], message=outcome[0]))
        return record

    def bundle(self, record: TurnRecord, transcript: Transcript) -> dict[str, Any]:
        """The cell's output: the transcript as HTML and text, and the record (all scrubbed)."""
        scrubber = self.session.scrubber
        return {
            "text/html": scrubber.text(transcript_html(transcript)),
            "text/plain": scrubber.text(transcript_text(transcript)),
            TURN_MIME: scrubber.json(record_json(record)),
        }


def replay_notice(record: TurnRecord) -> tuple[str, str, str] | None:
    """(message, level, detail) saying how a replay's tool results compare with the recording."""
    info = record.replay
    if info is None:
        return None
    if info.divergent:
        detail = "\n\n".join(
            f"{d.tool}{f' cell {d.cell_id}' if d.cell_id else ''} ({d.call_id})\n  recorded: {d.recorded}\n  now:      {d.replayed}"
            for d in info.divergent
        )
        return (
            f"Replay: {len(info.divergent)} of {info.compared} tool results differ from the recording.",
            "warning",
            detail,
        )
    return f"Replayed from the recording (no model call): {info.compared} tool results match.", "info", ""
