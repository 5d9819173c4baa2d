"""Undo and redo of the files a turn changed, kept in the session store.

    undo = UndoLog(store, session.id, root)
    undo.begin_turn(turn_id, message_count=len(session.messages))
    undo.record_before(path)          # a file-changing tool, before it writes or deletes
    changes = undo.end_turn()         # changes.shell_changed: files changed outside the tools
    result = undo.undo(session.messages)   # files reverted; truncate to result.message_count
    result = undo.redo()              # files re-applied; result.messages go back into the history

Old contents are content-addressed blobs (sha256, zlib) in the store, one per distinct content;
files over ``max_file_bytes`` are not kept (and the result says so). No copy of the repo is made:
in a git work tree only the files dirty at turn start are captured, so shell-made changes can be
detected and, when the user asks, reverted (``revert_paths``). The blob storage is
:mod:`nbagent.store.blobs`, the work-tree scan :mod:`nbagent.store.worktree`; their public names are
re-exported here.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from nbagent.core.messages import Message
from nbagent.store.blobs import (
    MAX_FILE_BYTES,
    collect_garbage,
    content_sha,
    get_blob,
    is_sha,
    path_key,
    put_blob,
    read_content,
    write_file,
)
from nbagent.store.db import SessionStore
from nbagent.store.worktree import (
    DELETED,
    GIT_TIMEOUT,
    MAX_DIRTY_FILES,
    WorktreeBaseline,
    committed_content,
    diff_states,
    git_toplevel,
    scan,
    shell_changed_paths,
    worktree_state,
)

__all__ = [
    "DELETED",
    "GIT_TIMEOUT",
    "KEEP_TURNS",
    "MAX_BASELINE_BYTES",
    "MAX_DIRTY_FILES",
    "MAX_FILE_BYTES",
    "OWN_FOLDER",
    "Reverted",
    "TurnChanges",
    "UndoLog",
    "UndoResult",
    "WorktreeBaseline",
    "diff_states",
    "get_blob",
    "git_toplevel",
    "put_blob",
    "worktree_state",
]

MAX_BASELINE_BYTES = 64 * 1024 * 1024  # dirty-file content captured at one turn start
KEEP_TURNS = 20
OWN_FOLDER = ".nbagent"  # written by nbagent itself (saved approvals): never reported as shell changes


# -- results --------------------------------------------------------------------------------------


class Reverted(BaseModel):
    reverted: list[Path] = Field(default_factory=list)
    skipped: list[str] = Field(default_factory=list)  # "path: why"


class UndoResult(Reverted):
    action: Literal["undo", "redo"]
    turn_id: str
    message_count: int  # undo: keep this many messages; redo: the history length before re-appending
    messages: list[Message] = Field(default_factory=list)  # redo: the messages the undo removed
    shell_changed: list[Path] = Field(default_factory=list)  # changed outside the tools; not touched


class TurnChanges(BaseModel):
    turn_id: str
    tool_changed: list[Path] = Field(default_factory=list)
    shell_changed: list[Path] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)


class _Entry(BaseModel):
    path: str
    existed: bool
    before_sha: str | None
    before_mode: int | None
    after_existed: bool | None
    after_sha: str | None
    after_mode: int | None
    note: str


# -- the log ---------------------------------------------------------------------------------------


class UndoLog:
    def __init__(
        self,
        store: SessionStore,
        session_id: str,
        root: Path | None = None,
        *,
        max_file_bytes: int = MAX_FILE_BYTES,
        keep_turns: int = KEEP_TURNS,
        track_worktree: bool = True,
    ) -> None:
        self.store = store
        self.session_id = session_id
        self.root = root
        self.max_file_bytes = max_file_bytes
        self.keep_turns = keep_turns
        self.track_worktree = track_worktree and root is not None
        self._turn: str | None = None
        self._recorded: set[str] = set()
        self._notes: list[str] = []
        self._baseline: WorktreeBaseline | None = None

    @property
    def turn_id(self) -> str | None:
        return self._turn

    # -- recording --------------------------------------------------------------------------------

    def begin_turn(self, turn_id: str, message_count: int) -> None:
        """Start recording; ``message_count`` is the history length before the turn's prompt."""
        if self._turn is not None:
            self.end_turn()
        blobs: dict[str, bytes] = {}
        baseline = self._capture_baseline(blobs) if self.track_worktree else None
        with self.store.transaction() as conn:
            self.store.require_session(conn, self.session_id)
            # A new turn discards what could have been redone.
            conn.execute(
                "DELETE FROM undo_turns WHERE session_id = ? AND status = 'undone'", (self.session_id,)
            )
            seq = conn.execute(
                "SELECT coalesce(max(seq), 0) + 1 FROM undo_turns WHERE session_id = ?", (self.session_id,)
            ).fetchone()[0]
            conn.execute(
                "INSERT INTO undo_turns (session_id, turn_id, seq, status, message_count, created, worktree)"
                " VALUES (?, ?, ?, 'open', ?, ?, ?)",
                (
                    self.session_id,
                    turn_id,
                    seq,
                    message_count,
                    time.time(),
                    baseline.model_dump_json() if baseline else None,
                ),
            )
            for sha, data in blobs.items():
                put_blob(conn, data)
                conn.execute(
                    "INSERT INTO undo_refs (session_id, turn_id, sha) VALUES (?, ?, ?)",
                    (self.session_id, turn_id, sha),
                )
            conn.execute(
                "DELETE FROM undo_turns WHERE session_id = ? AND seq <= ?",
                (self.session_id, seq - self.keep_turns),
            )
            collect_garbage(conn)
        self._turn = turn_id
        self._recorded = set()
        self._notes = list(baseline.notes) if baseline else []
        self._baseline = baseline

    def _capture_baseline(self, blobs: dict[str, bytes]) -> WorktreeBaseline | None:
        assert self.root is not None
        notes: list[str] = []
        budget = [MAX_BASELINE_BYTES]

        def keep(sha: str, data: bytes) -> None:
            if len(data) <= budget[0]:
                budget[0] -= len(data)
                blobs[sha] = data
            elif not notes:
                notes.append(
                    "some files dirty at turn start were not captured (size budget); shell changes to them cannot be reverted"
                )

        scanned = scan(self.root, keep, self.max_file_bytes)
        if scanned is None:
            return None
        top, state = scanned
        if len(state) >= MAX_DIRTY_FILES:
            notes.append(
                f"over {MAX_DIRTY_FILES} changed files in the work tree; shell-change detection is partial"
            )
        return WorktreeBaseline(toplevel=top, state=state, captured=sorted(blobs), notes=notes)

    def record_before(self, path: Path) -> str | None:
        """Keep ``path``'s content (or its absence) before a tool changes it, once per turn.

        Returns a note when the content could not be kept (too large, not a regular file).
        Outside a turn nothing is recorded.
        """
        if self._turn is None:
            return None
        key = path_key(path)
        if key in self._recorded:
            return None
        content = read_content(Path(key), self.max_file_bytes)
        with self.store.transaction() as conn:
            sha = put_blob(conn, content.data) if content.data is not None else None
            conn.execute(
                "INSERT OR IGNORE INTO undo_entries (session_id, turn_id, ord, path, existed, before_sha,"
                " before_mode, note) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    self.session_id,
                    self._turn,
                    len(self._recorded),
                    key,
                    int(content.existed),
                    sha,
                    content.mode,
                    content.note,
                ),
            )
        self._recorded.add(key)
        if content.note:
            note = f"{key}: {content.note}"
            self._notes.append(note)
            return note
        return None

    def shell_changes(self) -> list[Path]:
        """Files changed in the work tree since the turn began, other than through the tools."""
        if self._baseline is None or self.root is None:
            return []
        now = worktree_state(self.root) or {}
        own = f"{self.root / OWN_FOLDER}{os.sep}"  # nbagent's own files (saved approvals), not the shell's
        changed = diff_states(self._baseline.state, now)
        return [Path(p) for p in changed if p not in self._recorded and not p.startswith(own)]

    def end_turn(self) -> TurnChanges | None:
        if self._turn is None:
            return None
        turn_id = self._turn
        shell = self.shell_changes()
        baseline = self._baseline
        with self.store.transaction() as conn:
            if baseline is not None:
                baseline = baseline.model_copy(update={"shell_changed": [str(p) for p in shell]})
                conn.execute(
                    "UPDATE undo_turns SET worktree = ? WHERE session_id = ? AND turn_id = ?",
                    (baseline.model_dump_json(), self.session_id, turn_id),
                )
            conn.execute(
                "UPDATE undo_turns SET status = 'done' WHERE session_id = ? AND turn_id = ? AND status = 'open'",
                (self.session_id, turn_id),
            )
        changes = TurnChanges(
            turn_id=turn_id,
            tool_changed=[Path(p) for p in sorted(self._recorded)],
            shell_changed=shell,
            notes=self._notes,
        )
        self._turn = None
        self._recorded = set()
        self._notes = []
        return changes

    # -- undo / redo ----------------------------------------------------------------------------

    @property
    def can_undo(self) -> bool:
        return self._find("status IN ('open', 'done')", "DESC") is not None

    @property
    def can_redo(self) -> bool:
        return self._find("status = 'undone'", "ASC") is not None

    def _find(self, where: str, order: str) -> sqlite3.Row | None:
        with self.store.reading() as conn:
            row: sqlite3.Row | None = conn.execute(
                f"SELECT * FROM undo_turns WHERE session_id = ? AND {where} ORDER BY seq {order} LIMIT 1",
                (self.session_id,),
            ).fetchone()
        return row

    def _entries(self, conn: sqlite3.Connection, turn_id: str) -> list[_Entry]:
        rows = conn.execute(
            "SELECT * FROM undo_entries WHERE session_id = ? AND turn_id = ? ORDER BY ord",
            (self.session_id, turn_id),
        )
        return [
            _Entry(
                path=r["path"],
                existed=bool(r["existed"]),
                before_sha=r["before_sha"],
                before_mode=r["before_mode"],
                after_existed=None if r["after_existed"] is None else bool(r["after_existed"]),
                after_sha=r["after_sha"],
                after_mode=r["after_mode"],
                note=r["note"],
            )
            for r in rows
        ]

    def undo(self, messages: Sequence[Message] | None = None) -> UndoResult | None:
        """Revert the files of the last turn (not yet undone); None when there is nothing to undo.

        Pass the current history to have the turn's messages kept for ``redo``.
        """
        if self._turn is not None:
            self.end_turn()
        with self.store.transaction() as conn:
            row = conn.execute(
                "SELECT * FROM undo_turns WHERE session_id = ? AND status IN ('open', 'done')"
                " ORDER BY seq DESC LIMIT 1",
                (self.session_id,),
            ).fetchone()
            if row is None:
                return None
            turn_id, count = str(row["turn_id"]), int(row["message_count"])
            entries = self._entries(conn, turn_id)
            for entry in entries:  # the after-state, so redo can put it back
                now = read_content(Path(entry.path), self.max_file_bytes)
                entry.after_existed = now.existed
                entry.after_sha = put_blob(conn, now.data) if now.data is not None else None
                conn.execute(
                    "UPDATE undo_entries SET after_existed = ?, after_sha = ?, after_mode = ?"
                    " WHERE session_id = ? AND turn_id = ? AND path = ?",
                    (int(now.existed), entry.after_sha, now.mode, self.session_id, turn_id, entry.path),
                )
            stash = None
            if messages is not None:
                stash = "[" + ",".join(m.model_dump_json() for m in messages[count:]) + "]"
            conn.execute(
                "UPDATE undo_turns SET status = 'undone', stash = ? WHERE session_id = ? AND turn_id = ?",
                (stash, self.session_id, turn_id),
            )
            blobs = {e.before_sha: get_blob(conn, e.before_sha) for e in entries if e.before_sha}
        result = UndoResult(action="undo", turn_id=turn_id, message_count=count)
        for entry in reversed(entries):
            why = entry.note or "content was not kept"
            self._apply(entry, entry.existed, entry.before_sha, entry.before_mode, blobs, result, why)
        result.shell_changed = shell_changed_paths(row["worktree"])
        return result

    def redo(self) -> UndoResult | None:
        """Re-apply the most recently undone turn; None when there is nothing to redo."""
        if self._turn is not None:
            self.end_turn()
        with self.store.transaction() as conn:
            row = conn.execute(
                "SELECT * FROM undo_turns WHERE session_id = ? AND status = 'undone' ORDER BY seq LIMIT 1",
                (self.session_id,),
            ).fetchone()
            if row is None:
                return None
            turn_id = str(row["turn_id"])
            entries = self._entries(conn, turn_id)
            conn.execute(
                "UPDATE undo_turns SET status = 'done', stash = NULL WHERE session_id = ? AND turn_id = ?",
                (self.session_id, turn_id),
            )
            blobs = {e.after_sha: get_blob(conn, e.after_sha) for e in entries if e.after_sha}
        messages = []
        if row["stash"]:
            messages = [Message.model_validate(m) for m in json.loads(row["stash"])]
        result = UndoResult(
            action="redo", turn_id=turn_id, message_count=int(row["message_count"]), messages=messages
        )
        for entry in entries:
            why = "its content at undo time was not kept (too large or not a regular file)"
            self._apply(
                entry, bool(entry.after_existed), entry.after_sha, entry.after_mode, blobs, result, why
            )
        return result

    def _apply(
        self,
        entry: _Entry,
        existed: bool,
        sha: str | None,
        mode: int | None,
        blobs: dict[str, bytes | None],
        result: Reverted,
        why: str,
    ) -> None:
        path = Path(entry.path)
        try:
            current = read_content(path, self.max_file_bytes)
            if not existed:
                if current.existed:
                    if path.is_dir() and not path.is_symlink():
                        result.skipped.append(f"{path}: is now a directory; left in place")
                        return
                    path.unlink()
                    result.reverted.append(path)
                return
            data = blobs.get(sha) if sha else None
            if data is None:
                result.skipped.append(f"{path}: {why}")
                return
            if current.data is not None and content_sha(current.data) == sha and mode in (None, current.mode):
                return  # already as wanted
            write_file(path, data, mode)
            result.reverted.append(path)
        except OSError as exc:
            result.skipped.append(f"{path}: {exc.strerror or exc}")

    # -- shell-made changes ------------------------------------------------------------------------

    def baseline(self) -> WorktreeBaseline | None:
        """The work tree state captured at the start of the current (or last) turn."""
        if self._baseline is not None:
            return self._baseline
        row = self._find("worktree IS NOT NULL", "DESC")
        return None if row is None else WorktreeBaseline.model_validate_json(row["worktree"])

    def revert_paths(self, paths: Sequence[Path | str], baseline: WorktreeBaseline | None = None) -> Reverted:
        """Put ``paths`` back as they were at turn start (the user asked; never done silently).

        A path dirty at turn start gets its captured content; a clean one its committed content;
        one that did not exist is deleted. Inside a turn the revert itself is recorded for undo.
        """
        base = baseline or self.baseline()
        result = Reverted()
        if base is None:
            result.skipped += [f"{p}: no work-tree baseline (not a git repository?)" for p in paths]
            return result
        for raw in paths:
            key = path_key(raw)
            path = Path(key)
            state = base.state.get(key)
            try:
                if state is None:  # clean at turn start: as committed, or absent
                    committed = committed_content(base.toplevel, path)
                    if isinstance(committed, str):
                        result.skipped.append(f"{path}: {committed}")
                        continue
                    data, target = committed, committed is not None
                elif state == DELETED:
                    data, target = None, False
                elif is_sha(state):
                    with self.store.reading() as conn:
                        data = get_blob(conn, state)
                    if data is None:
                        result.skipped.append(f"{path}: its content at turn start was not kept")
                        continue
                    target = True
                else:
                    result.skipped.append(f"{path}: too large or not a regular file at turn start; not kept")
                    continue
                self.record_before(path)
                if not target:
                    if path.is_file() or path.is_symlink():
                        path.unlink()
                        result.reverted.append(path)
                    continue
                assert data is not None
                write_file(path, data, None)
                result.reverted.append(path)
            except OSError as exc:
                result.skipped.append(f"{path}: {exc.strerror or exc}")
        return result
