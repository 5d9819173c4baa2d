"""Schema versions: an append-only list of SQL scripts. Never edit one that has shipped; add a new one.

The version lives in ``PRAGMA user_version``; ``migrate`` applies the missing scripts in one
transaction at open, so concurrent openers of a fresh file cannot both apply them.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator

MIGRATIONS: list[str] = [
    # 1: sessions, messages, tool outputs, todos, summaries, undo log and its blobs.
    # undo_refs: blobs a turn's worktree baseline keeps alive (dirty files at turn start).
    """
    CREATE TABLE sessions (
        id TEXT PRIMARY KEY,
        parent_id TEXT,
        project TEXT NOT NULL DEFAULT '',
        title TEXT NOT NULL DEFAULT '',
        model TEXT,
        agent TEXT,
        created REAL NOT NULL,
        updated REAL NOT NULL,
        usage TEXT NOT NULL DEFAULT '{}',
        cost REAL
    );
    CREATE INDEX sessions_project_updated ON sessions(project, updated);
    CREATE INDEX sessions_parent ON sessions(parent_id);

    CREATE TABLE messages (
        session_id TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
        id TEXT NOT NULL,
        seq INTEGER NOT NULL,
        role TEXT NOT NULL,
        created REAL NOT NULL,
        model TEXT,
        usage TEXT,
        hash TEXT NOT NULL,
        data TEXT NOT NULL,
        PRIMARY KEY (session_id, id)
    );
    CREATE INDEX messages_session_seq ON messages(session_id, seq);

    CREATE TABLE tool_outputs (
        session_id TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
        call_id TEXT NOT NULL,
        message_id TEXT NOT NULL,
        tool TEXT NOT NULL,
        created REAL NOT NULL,
        output TEXT NOT NULL,
        PRIMARY KEY (session_id, call_id)
    );
    CREATE INDEX tool_outputs_call ON tool_outputs(call_id);

    CREATE TABLE todos (
        session_id TEXT PRIMARY KEY REFERENCES sessions(id) ON DELETE CASCADE,
        updated REAL NOT NULL,
        data TEXT NOT NULL
    );

    CREATE TABLE summaries (
        session_id TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
        seq INTEGER NOT NULL,
        created REAL NOT NULL,
        summary TEXT NOT NULL,
        covers_until_message_id TEXT,
        tokens_before INTEGER NOT NULL DEFAULT 0,
        tokens_after INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (session_id, seq)
    );

    CREATE TABLE blobs (
        sha TEXT PRIMARY KEY,
        size INTEGER NOT NULL,
        data BLOB NOT NULL
    );

    CREATE TABLE undo_turns (
        session_id TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
        turn_id TEXT NOT NULL,
        seq INTEGER NOT NULL,
        status TEXT NOT NULL,
        message_count INTEGER NOT NULL,
        created REAL NOT NULL,
        worktree TEXT,
        stash TEXT,
        PRIMARY KEY (session_id, turn_id)
    );
    CREATE INDEX undo_turns_seq ON undo_turns(session_id, seq);

    CREATE TABLE undo_entries (
        session_id TEXT NOT NULL,
        turn_id TEXT NOT NULL,
        ord INTEGER NOT NULL,
        path TEXT NOT NULL,
        existed INTEGER NOT NULL,
        before_sha TEXT,
        before_mode INTEGER,
        after_existed INTEGER,
        after_sha TEXT,
        after_mode INTEGER,
        note TEXT NOT NULL DEFAULT '',
        PRIMARY KEY (session_id, turn_id, path),
        FOREIGN KEY (session_id, turn_id) REFERENCES undo_turns(session_id, turn_id) ON DELETE CASCADE
    );

    CREATE TABLE undo_refs (
        session_id TEXT NOT NULL,
        turn_id TEXT NOT NULL,
        sha TEXT NOT NULL,
        FOREIGN KEY (session_id, turn_id) REFERENCES undo_turns(session_id, turn_id) ON DELETE CASCADE
    );
    CREATE INDEX undo_refs_turn ON undo_refs(session_id, turn_id);
    CREATE INDEX undo_entries_before ON undo_entries(before_sha);
    CREATE INDEX undo_entries_after ON undo_entries(after_sha);
    CREATE INDEX undo_refs_sha ON undo_refs(sha);
    """,
    # 2: the daily spending ledger (budgets): tokens and known cost per local date and session, added to
    # by every process that shares the store. No foreign key: the spend stays when a session is deleted.
    """
    CREATE TABLE spend_days (
        day TEXT NOT NULL,
        session_id TEXT NOT NULL,
        tokens INTEGER NOT NULL DEFAULT 0,
        cost REAL NOT NULL DEFAULT 0,
        updated REAL NOT NULL,
        PRIMARY KEY (day, session_id)
    );
    """,
]

SCHEMA_VERSION = len(MIGRATIONS)


def statements(script: str) -> Iterator[str]:
    """Split a script into complete statements (``executescript`` would commit our transaction)."""
    pending = ""
    *chunks, rest = script.split(";")
    for chunk in chunks:
        pending += chunk + ";"
        if sqlite3.complete_statement(pending):
            if pending.strip(" \t\r\n;"):
                yield pending.strip()
            pending = ""
    pending += rest
    if pending.strip(" \t\r\n;"):
        raise ValueError(f"incomplete SQL statement in migration: {pending.strip()[:80]!r}")


def user_version(conn: sqlite3.Connection) -> int:
    row = conn.execute("PRAGMA user_version").fetchone()
    return int(row[0])


def migrate(conn: sqlite3.Connection) -> int:
    """Apply missing migrations inside the caller's write transaction; returns the new version.

    A store written by a newer nbagent (higher version than we know) is refused rather than
    misread.
    """
    current = user_version(conn)
    if current > SCHEMA_VERSION:
        raise RuntimeError(
            f"the session store has schema version {current}, newer than this nbagent knows"
            f" ({SCHEMA_VERSION}); upgrade nbagent or point NBAGENT_DATA_DIR at another directory"
        )
    for version in range(current + 1, SCHEMA_VERSION + 1):
        for statement in statements(MIGRATIONS[version - 1]):
            conn.execute(statement)
        conn.execute(f"PRAGMA user_version = {version}")
    return SCHEMA_VERSION
