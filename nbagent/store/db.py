"""The durable session store: SQLite in WAL mode, one transaction per step.

    store = SessionStore()                      # <data dir>/nbagent.db
    store.create_session(SessionInfo(id=session.id, project=root, model=model))
    store.save_step(session.id, session.messages, usage=session.usage)   # after every step
    info, messages = store.load_session(session_id)                        # resume

Opening, recovery of a damaged file and transactions: ``connection``.

Several processes may share one file: writes take the lock up front (``BEGIN IMMEDIATE``) and wait
up to ``BUSY_TIMEOUT`` seconds for it instead of failing. A process killed mid-step loses at most
that step. One writer per session: the change cache assumes nobody else rewrites this session.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from nbagent.core.events import TodoItem
from nbagent.core.messages import Message, ToolCompleted, ToolPart, Usage, new_id
from nbagent.core.private import data_dir
from nbagent.store.connection import BUSY_TIMEOUT, DB_NAME, STORE_SIDE_FILES, StoreConnection
from nbagent.store.faults import StoreDamaged, StoreError

__all__ = [
    "BUSY_TIMEOUT",
    "DB_NAME",
    "STORE_SIDE_FILES",
    "SessionInfo",
    "SessionStore",
    "StoreDamaged",
    "StoreError",
    "SummaryRecord",
    "data_dir",
]


class SessionInfo(BaseModel):
    id: str = Field(default_factory=lambda: new_id("ses"))
    parent_id: str | None = None  # set for child (subagent) sessions
    project: Path | None = None
    title: str = ""
    model: str | None = None
    agent: str | None = None
    created: float = Field(default_factory=time.time)
    updated: float = Field(default_factory=time.time)
    usage: Usage = Field(default_factory=Usage)
    message_count: int = 0  # filled when read from the store


class SummaryRecord(BaseModel):
    session_id: str
    seq: int
    created: float
    summary: str
    covers_until_message_id: str | None = None
    tokens_before: int = 0
    tokens_after: int = 0


def _digest(data: str) -> str:
    return hashlib.blake2b(data.encode("utf-8"), digest_size=16).hexdigest()


def _norm_project(project: Path | None) -> str:
    return str(project.expanduser().resolve()) if project is not None else ""


_SESSION_COLUMNS = "id, parent_id, project, title, model, agent, created, updated, usage"


def _session_from_row(row: sqlite3.Row) -> SessionInfo:
    return SessionInfo(
        id=row["id"],
        parent_id=row["parent_id"],
        project=Path(row["project"]) if row["project"] else None,
        title=row["title"],
        model=row["model"],
        agent=row["agent"],
        created=row["created"],
        updated=row["updated"],
        usage=Usage.model_validate_json(row["usage"]),
        message_count=row["message_count"],
    )


class SessionStore(StoreConnection):
    """Sessions, their messages, tool outputs, todos and summaries."""

    # -- sessions ------------------------------------------------------------------------------

    def create_session(self, info: SessionInfo) -> SessionInfo:
        with self.transaction() as conn:
            if conn.execute("SELECT 1 FROM sessions WHERE id = ?", (info.id,)).fetchone():
                raise StoreError(f"Session {info.id} already exists in the store.")
            conn.execute(
                f"INSERT INTO sessions ({_SESSION_COLUMNS}, cost) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    info.id,
                    info.parent_id,
                    _norm_project(info.project),
                    info.title,
                    info.model,
                    info.agent,
                    info.created,
                    info.updated,
                    info.usage.model_dump_json(),
                    info.usage.cost,
                ),
            )
        self._hashes[info.id] = {}
        return self.get_session(info.id)

    def ensure_session(self, info: SessionInfo) -> SessionInfo:
        """The stored session with ``info.id``, created from ``info`` when it is not there yet."""
        with self.transaction() as conn:
            if not conn.execute("SELECT 1 FROM sessions WHERE id = ?", (info.id,)).fetchone():
                self.create_session(info)
        return self.get_session(info.id)

    def update_session(
        self,
        session_id: str,
        *,
        title: str | None = None,
        model: str | None = None,
        agent: str | None = None,
        usage: Usage | None = None,
    ) -> None:
        """Change the given fields (``usage`` is the session's running total, not an increment)."""
        with self.transaction() as conn:
            self.require_session(conn, session_id)
            self._touch(conn, session_id, title=title, model=model, agent=agent, usage=usage)

    def _touch(self, conn: sqlite3.Connection, session_id: str, **fields: Any) -> None:
        sets = ["updated = ?"]
        values: list[Any] = [time.time()]
        for name in ("title", "model", "agent"):
            if fields.get(name) is not None:
                sets.append(f"{name} = ?")
                values.append(fields[name])
        usage: Usage | None = fields.get("usage")
        if usage is not None:
            sets += ["usage = ?", "cost = ?"]
            values += [usage.model_dump_json(), usage.cost]
        conn.execute(f"UPDATE sessions SET {', '.join(sets)} WHERE id = ?", (*values, session_id))

    def require_session(self, conn: sqlite3.Connection, session_id: str) -> None:
        """Raise ``StoreError`` (with the fix) when the session is not stored."""
        if not conn.execute("SELECT 1 FROM sessions WHERE id = ?", (session_id,)).fetchone():
            raise StoreError(
                f"No session {session_id} in the store {self.path}.",
                "`nbagent sessions` lists the stored sessions.",
            )

    def _select_sessions(self, where: str, params: Sequence[Any], tail: str = "") -> list[SessionInfo]:
        sql = (
            f"SELECT {_SESSION_COLUMNS},"
            " (SELECT count(*) FROM messages m WHERE m.session_id = s.id) AS message_count"
            f" FROM sessions s WHERE {where} {tail}"
        )
        with self.reading() as conn:
            return [_session_from_row(row) for row in conn.execute(sql, params)]

    def get_session(self, session_id: str) -> SessionInfo:
        found = self._select_sessions("id = ?", (session_id,))
        if not found:
            raise StoreError(
                f"No session {session_id} in the store {self.path}.",
                "`nbagent sessions` lists the stored sessions.",
            )
        return found[0]

    def resolve_id(self, prefix: str) -> str:
        """The full id of the one session whose id starts with ``prefix``."""
        with self.reading() as conn:
            rows = conn.execute(
                "SELECT id FROM sessions WHERE substr(id, 1, ?) = ? LIMIT 2", (len(prefix), prefix)
            ).fetchall()
        if len(rows) == 1:
            return str(rows[0]["id"])
        if not rows:
            raise StoreError(f"No session id starts with {prefix!r}.", "`nbagent sessions` lists them.")
        raise StoreError(f"Several sessions start with {prefix!r}.", "Give more characters of the id.")

    def list_sessions(
        self, project: Path | None = None, limit: int = 50, *, include_children: bool = False
    ) -> list[SessionInfo]:
        """Most recently updated first; top-level sessions only unless ``include_children``."""
        where, params = ["1"], []
        if project is not None:
            where.append("project = ?")
            params.append(_norm_project(project))
        if not include_children:
            where.append("parent_id IS NULL")
        return self._select_sessions(
            " AND ".join(where), (*params, limit), "ORDER BY updated DESC, rowid DESC LIMIT ?"
        )

    def latest_session(self, project: Path | None) -> SessionInfo | None:
        found = self.list_sessions(project, limit=1)
        return found[0] if found else None

    def children(self, session_id: str) -> list[SessionInfo]:
        return self._select_sessions("parent_id = ?", (session_id,), "ORDER BY created, rowid")

    def delete_session(self, session_id: str) -> None:
        """Delete a session, its children and everything stored with them."""
        with self.transaction() as conn:
            for child in conn.execute(
                "SELECT id FROM sessions WHERE parent_id = ?", (session_id,)
            ).fetchall():
                self.delete_session(child["id"])
            conn.execute("DELETE FROM sessions WHERE id = ?", (session_id,))
        self._hashes.pop(session_id, None)

    # -- messages --------------------------------------------------------------------------------

    def _known_hashes(self, conn: sqlite3.Connection, session_id: str) -> dict[str, tuple[int, str]]:
        cached = self._hashes.get(session_id)
        if cached is not None:
            return cached
        rows = conn.execute("SELECT id, seq, hash FROM messages WHERE session_id = ?", (session_id,))
        return {row["id"]: (row["seq"], row["hash"]) for row in rows}

    def save_step(
        self,
        session_id: str,
        messages: Sequence[Message],
        *,
        usage: Usage | None = None,
        todos: Sequence[TodoItem] | None = None,
        title: str | None = None,
        settled: int = 0,
    ) -> None:
        """Make the stored history equal ``messages``, in one transaction.

        ``settled``: the caller guarantees ``messages[:settled]`` did not change since its last save,
        so they are not serialized again (a step then costs the same at step 200 as at step 2).

        Only messages whose content or position changed since the last save are written; stored
        messages that are no longer in the list (undo) are deleted. Completed tool outputs are
        kept in full in ``tool_outputs`` the first time they are seen, so pruning the live history
        later loses nothing. ``usage`` is the session's running total.
        """
        rows: list[tuple[int, Message, str, str]] = []
        cached = self._hashes.get(session_id, {})
        for seq, message in enumerate(messages):
            previous = cached.get(message.id)
            if seq < settled and previous is not None and previous[0] == seq:
                rows.append((seq, message, "", previous[1]))  # unchanged: nothing to serialize
                continue
            data = message.model_dump_json()
            rows.append((seq, message, data, _digest(data)))
        with self.transaction() as conn:
            self.require_session(conn, session_id)
            known = self._known_hashes(conn, session_id)
            now_known: dict[str, tuple[int, str]] = {}
            for seq, message, data, digest in rows:
                before = known.get(message.id)
                if not data and before != (seq, digest):  # the store moved under us: serialize after all
                    data = message.model_dump_json()
                    digest = _digest(data)
                now_known[message.id] = (seq, digest)
                if before == (seq, digest):
                    continue
                if before is not None and before[1] == digest:
                    conn.execute(
                        "UPDATE messages SET seq = ? WHERE session_id = ? AND id = ?",
                        (seq, session_id, message.id),
                    )
                    continue
                self._write_message(conn, session_id, seq, message, data, digest)
            for gone in known.keys() - now_known.keys():
                conn.execute("DELETE FROM messages WHERE session_id = ? AND id = ?", (session_id, gone))
                conn.execute(
                    "DELETE FROM tool_outputs WHERE session_id = ? AND message_id = ?", (session_id, gone)
                )
            if todos is not None:
                data = "[" + ",".join(t.model_dump_json() for t in todos) + "]"
                conn.execute(
                    "INSERT INTO todos (session_id, updated, data) VALUES (?, ?, ?)"
                    " ON CONFLICT(session_id) DO UPDATE SET updated = excluded.updated, data = excluded.data",
                    (session_id, time.time(), data),
                )
            self._touch(conn, session_id, title=title, usage=usage)
        self._hashes[session_id] = now_known

    def _write_message(
        self, conn: sqlite3.Connection, session_id: str, seq: int, message: Message, data: str, digest: str
    ) -> None:
        conn.execute(
            "INSERT INTO messages (session_id, id, seq, role, created, model, usage, hash, data)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(session_id, id) DO UPDATE SET"
            " seq = excluded.seq, role = excluded.role, created = excluded.created,"
            " model = excluded.model, usage = excluded.usage, hash = excluded.hash, data = excluded.data",
            (
                session_id,
                message.id,
                seq,
                message.role,
                message.created,
                message.model,
                message.usage.model_dump_json() if message.usage else None,
                digest,
                data,
            ),
        )
        for part in message.parts:
            if isinstance(part, ToolPart) and isinstance(part.state, ToolCompleted):
                # First completed output wins: a later pruned marker never replaces it.
                conn.execute(
                    "INSERT INTO tool_outputs (session_id, call_id, message_id, tool, created, output)"
                    " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(session_id, call_id) DO NOTHING",
                    (session_id, part.call_id, message.id, part.tool, part.state.ended, part.state.output),
                )

    def load_session(self, session_id: str) -> tuple[SessionInfo, list[Message]]:
        info = self.get_session(session_id)
        with self.reading() as conn:
            rows = conn.execute(
                "SELECT id, seq, hash, data FROM messages WHERE session_id = ? ORDER BY seq",
                (session_id,),
            ).fetchall()
        messages = [Message.model_validate_json(row["data"]) for row in rows]
        self._hashes[session_id] = {row["id"]: (row["seq"], row["hash"]) for row in rows}
        return info, messages

    def get_tool_output(self, call_id: str, session_id: str | None = None) -> str | None:
        """The full output of a completed tool call, even if the live history pruned it."""
        sql = "SELECT output FROM tool_outputs WHERE call_id = ?"
        params: tuple[str, ...] = (call_id,)
        if session_id is not None:
            sql += " AND session_id = ?"
            params = (call_id, session_id)
        with self.reading() as conn:
            row = conn.execute(sql + " ORDER BY created DESC LIMIT 1", params).fetchone()
        return None if row is None else str(row["output"])

    # -- todos and summaries -----------------------------------------------------------------------

    def load_todos(self, session_id: str) -> list[TodoItem]:
        with self.reading() as conn:
            row = conn.execute("SELECT data FROM todos WHERE session_id = ?", (session_id,)).fetchone()
        if row is None:
            return []
        return [TodoItem.model_validate(item) for item in _json_list(row["data"])]

    def add_summary(
        self,
        session_id: str,
        summary: str,
        *,
        covers_until: str | None = None,
        tokens_before: int = 0,
        tokens_after: int = 0,
    ) -> SummaryRecord:
        """Record a compaction summary; ``covers_until`` is the id of the last message it replaces."""
        with self.transaction() as conn:
            self.require_session(conn, session_id)
            row = conn.execute(
                "SELECT coalesce(max(seq), 0) + 1 FROM summaries WHERE session_id = ?", (session_id,)
            ).fetchone()
            record = SummaryRecord(
                session_id=session_id,
                seq=int(row[0]),
                created=time.time(),
                summary=summary,
                covers_until_message_id=covers_until,
                tokens_before=tokens_before,
                tokens_after=tokens_after,
            )
            conn.execute(
                "INSERT INTO summaries (session_id, seq, created, summary, covers_until_message_id,"
                " tokens_before, tokens_after) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    session_id,
                    record.seq,
                    record.created,
                    summary,
                    covers_until,
                    tokens_before,
                    tokens_after,
                ),
            )
            self._touch(conn, session_id)
        return record

    def summaries(self, session_id: str) -> list[SummaryRecord]:
        with self.reading() as conn:
            rows = conn.execute(
                "SELECT * FROM summaries WHERE session_id = ? ORDER BY seq", (session_id,)
            ).fetchall()
        return [SummaryRecord.model_validate(dict(row)) for row in rows]


def _json_list(data: str) -> list[Any]:
    value = json.loads(data)
    return value if isinstance(value, list) else []
