"""Durable sessions: the SQLite store, markdown export, and undo of file changes."""

from nbagent.store.db import SessionInfo, SessionStore, StoreError, SummaryRecord, data_dir
from nbagent.store.export import export_markdown
from nbagent.store.snapshots import (
    Reverted,
    TurnChanges,
    UndoLog,
    UndoResult,
    WorktreeBaseline,
    diff_states,
    worktree_state,
)

__all__ = [
    "Reverted",
    "SessionInfo",
    "SessionStore",
    "StoreError",
    "SummaryRecord",
    "TurnChanges",
    "UndoLog",
    "UndoResult",
    "WorktreeBaseline",
    "data_dir",
    "diff_states",
    "export_markdown",
    "worktree_state",
]
