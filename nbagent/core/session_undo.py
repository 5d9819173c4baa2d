"""The undo half of a session: each turn's file changes recorded (``UndoLog``), ``/undo`` and ``/redo`` of
the files and the conversation together. A mixin of ``Session``."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nbagent.tools.notebook_live import TURN_KEY

if TYPE_CHECKING:
    from nbagent.core.messages import Message
    from nbagent.store import TurnChanges, UndoLog, UndoResult


class SessionUndo:
    """What the undo methods use of the session (set in ``Session.__init__``)."""

    undo_log: UndoLog | None
    messages: list[Message]
    compacted_until: int
    tool_state: dict[str, Any]

    @property
    def busy(self) -> bool:
        raise NotImplementedError

    def save(self) -> None:
        raise NotImplementedError

    def invalidate_history(self) -> None:
        raise NotImplementedError

    def begin_turn(self, turn_id: str) -> None:
        if self.undo_log is not None:
            self.undo_log.begin_turn(turn_id, len(self.messages))

    def end_turn(self) -> TurnChanges | None:
        return self.undo_log.end_turn() if self.undo_log is not None else None

    async def start_turn(self, turn_id: str) -> None:
        """``begin_turn`` in a worker thread: the git status and hashing scan of the work tree (about a
        second in a repo with thousands of untracked files) does not block the event loop."""
        self.tool_state[TURN_KEY] = turn_id  # provenance of the notebook cells the turn changes
        if self.undo_log is not None:
            await asyncio.to_thread(self.begin_turn, turn_id)

    async def finish_turn(self) -> TurnChanges | None:
        return await asyncio.to_thread(self.end_turn) if self.undo_log is not None else None

    def _record_before(self, path: Path) -> None:
        if self.undo_log is not None:
            self.undo_log.record_before(path)

    def undo(self) -> UndoResult | None:
        """Revert the files the last turn changed and the conversation to before it."""
        if self.undo_log is None or self.busy:
            return None
        result = self.undo_log.undo(self.messages)
        if result is not None:
            del self.messages[result.message_count :]
            self.compacted_until = min(self.compacted_until, len(self.messages))
            self.invalidate_history()
            self.save()
        return result

    def revert_shell_changes(self, paths: list[Path]) -> list[Path]:
        """Revert files that shell commands changed during the last turn (only when asked)."""
        if self.undo_log is None:
            return []
        return self.undo_log.revert_paths(paths).reverted

    def redo(self) -> UndoResult | None:
        if self.undo_log is None or self.busy:
            return None
        result = self.undo_log.redo()
        if result is not None:
            self.messages[result.message_count :] = result.messages
            self.invalidate_history()
            self.save()
        return result
