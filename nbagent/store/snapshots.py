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
detected and, when the user asks, reverted (``revert_paths``).
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import stat
import subprocess
import tempfile
import time
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from nbagent.core.messages import Message
from nbagent.store.db import SessionStore
from nbagent.store.safe_git import run_git

MAX_FILE_BYTES = 10 * 1024 * 1024
MAX_BASELINE_BYTES = 64 * 1024 * 1024  # dirty-file content captured at one turn start
MAX_DIRTY_FILES = 5000
KEEP_TURNS = 20
OWN_FOLDER = ".nbagent"  # written by nbagent itself (saved approvals): never reported as shell changes
DELETED = "deleted"  # worktree state of a path that does not exist
GIT_TIMEOUT = 30


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _is_sha(value: str | None) -> bool:
    return value is not None and len(value) == 64 and all(c in "0123456789abcdef" for c in value)


def _key(path: Path | str) -> str:
    """Absolute path with its directory resolved (the file itself may be a symlink)."""
    p = os.path.abspath(os.fspath(path))
    return os.path.join(os.path.realpath(os.path.dirname(p)), os.path.basename(p))


def put_blob(conn: sqlite3.Connection, data: bytes) -> str:
    sha = _sha(data)
    conn.execute(
        "INSERT OR IGNORE INTO blobs (sha, size, data) VALUES (?, ?, ?)",
        (sha, len(data), zlib.compress(data, 6)),
    )
    return sha


def get_blob(conn: sqlite3.Connection, sha: str) -> bytes | None:
    row = conn.execute("SELECT data FROM blobs WHERE sha = ?", (sha,)).fetchone()
    return None if row is None else zlib.decompress(row[0])


def _write_file(path: Path, data: bytes, mode: int | None) -> None:
    """Atomic replace, keeping the given (or the current) permission bits."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if mode is None and path.exists():
        mode = stat.S_IMODE(path.stat().st_mode)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".nbagent-undo", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class _Content(BaseModel):
    """What a path held: missing, captured bytes, or a note why it was not captured."""

    existed: bool
    data: bytes | None = None
    mode: int | None = None
    note: str = ""


def _read(path: Path, limit: int) -> _Content:
    try:
        st = path.lstat()
    except FileNotFoundError:
        return _Content(existed=False)
    if not stat.S_ISREG(st.st_mode):
        return _Content(existed=True, note="not a regular file; not kept for undo")
    if st.st_size > limit:
        mb = st.st_size / 1e6
        return _Content(
            existed=True, note=f"{mb:.1f} MB is over the {limit / 1e6:.0f} MB undo limit; not kept"
        )
    return _Content(existed=True, data=path.read_bytes(), mode=stat.S_IMODE(st.st_mode))


# -- git working tree -------------------------------------------------------------------------------


def _git(root: Path, *args: str) -> subprocess.CompletedProcess[bytes] | None:
    # Never a program the repository controls (fsmonitor, hooks, filters, textconv): see safe_git.
    return run_git(root, *args, timeout=GIT_TIMEOUT)


def git_toplevel(root: Path) -> Path | None:
    out = _git(root, "rev-parse", "--show-toplevel")
    if out is None or out.returncode != 0 or not out.stdout.strip():
        return None
    return Path(os.path.realpath(os.fsdecode(out.stdout.strip())))


def _signature(path: Path, limit: int, keep: Callable[[str, bytes], None] | None) -> str:
    try:
        st = path.lstat()
    except FileNotFoundError:
        return DELETED
    if stat.S_ISLNK(st.st_mode):
        return "link:" + _sha(os.fsencode(os.readlink(path)))
    if not stat.S_ISREG(st.st_mode):
        return "other"
    if st.st_size > limit:
        return f"stat:{st.st_size}:{st.st_mtime_ns}"
    data = path.read_bytes()
    sha = _sha(data)
    if keep is not None:
        keep(sha, data)
    return sha


def _scan(
    root: Path, keep: Callable[[str, bytes], None] | None = None, limit: int = MAX_FILE_BYTES
) -> tuple[Path, dict[str, str]] | None:
    top = git_toplevel(root)
    if top is None:
        return None
    out = _git(
        top, "status", "--porcelain", "-z", "--untracked-files=all", "--no-renames", "--ignore-submodules=all"
    )
    if out is None or out.returncode != 0:
        return None
    state: dict[str, str] = {}
    for entry in out.stdout.split(b"\0"):
        if len(entry) < 4:
            continue
        path = top / os.fsdecode(entry[3:])
        state[str(path)] = _signature(path, limit, keep)
        if len(state) >= MAX_DIRTY_FILES:
            break
    return top, state


def worktree_state(root: Path) -> dict[str, str] | None:
    """Changed and untracked files of the git work tree holding ``root`` (absolute path -> content
    sha256, ``"deleted"``, or a size/mtime stamp for large files); None outside a git repo."""
    scanned = _scan(root)
    return None if scanned is None else scanned[1]


def diff_states(before: dict[str, str], after: dict[str, str]) -> list[str]:
    """Paths whose state differs: a path absent from a state is clean (as committed)."""
    return sorted(p for p in before.keys() | after.keys() if before.get(p) != after.get(p))


class WorktreeBaseline(BaseModel):
    toplevel: Path
    state: dict[str, str]
    captured: list[str] = Field(default_factory=list)  # blob shas kept for reverting
    notes: list[str] = Field(default_factory=list)
    shell_changed: list[str] = Field(default_factory=list)  # filled at end of turn


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
            _collect_garbage(conn)
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

        scanned = _scan(self.root, keep, self.max_file_bytes)
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
        key = _key(path)
        if key in self._recorded:
            return None
        content = _read(Path(key), self.max_file_bytes)
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
                now = _read(Path(entry.path), self.max_file_bytes)
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
        result.shell_changed = _shell_changed(row["worktree"])
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
            current = _read(path, self.max_file_bytes)
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
            if current.data is not None and _sha(current.data) == sha and mode in (None, current.mode):
                return  # already as wanted
            _write_file(path, data, mode)
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
            key = _key(raw)
            path = Path(key)
            state = base.state.get(key)
            try:
                if state is None:  # clean at turn start: as committed, or absent
                    committed = self._committed(base.toplevel, path)
                    if isinstance(committed, str):
                        result.skipped.append(f"{path}: {committed}")
                        continue
                    data, target = committed, committed is not None
                elif state == DELETED:
                    data, target = None, False
                elif _is_sha(state):
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
                _write_file(path, data, None)
                result.reverted.append(path)
            except OSError as exc:
                result.skipped.append(f"{path}: {exc.strerror or exc}")
        return result

    @staticmethod
    def _committed(top: Path, path: Path) -> bytes | str | None:
        """The file as committed at HEAD (worktree filters applied); None when it was not there;
        a string saying why when that cannot be known."""
        try:
            rel = path.relative_to(top).as_posix()
        except ValueError:
            return "outside the git work tree; its state at turn start is unknown"
        exists = _git(top, "cat-file", "-e", f"HEAD:{rel}")
        if exists is not None and exists.returncode == 0:
            out = _git(top, "cat-file", "--filters", f"HEAD:{rel}")
            if out is not None and out.returncode == 0:
                return out.stdout
            return "git could not read its committed content"
        ignored = _git(top, "check-ignore", "-q", "--", rel)
        if ignored is None or ignored.returncode != 1:
            return "ignored by git (or git failed); its state at turn start is unknown"
        return None


def _shell_changed(worktree: str | None) -> list[Path]:
    if not worktree:
        return []
    return [Path(p) for p in WorktreeBaseline.model_validate_json(worktree).shell_changed]


def _collect_garbage(conn: sqlite3.Connection) -> None:
    """Delete blobs no undo entry or worktree baseline refers to (any session)."""
    conn.execute(
        "DELETE FROM blobs WHERE sha NOT IN ("
        " SELECT before_sha FROM undo_entries WHERE before_sha IS NOT NULL"
        " UNION SELECT after_sha FROM undo_entries WHERE after_sha IS NOT NULL"
        " UNION SELECT sha FROM undo_refs)"
    )
