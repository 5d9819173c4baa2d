"""SessionStore: schema, round trips, incremental saves, tool outputs kept in full, listings."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from nbagent.core.events import TodoItem
from nbagent.core.messages import (
    Attachment,
    Message,
    ReasoningPart,
    TextPart,
    ToolCompleted,
    ToolError,
    ToolPart,
    ToolPending,
    ToolRunning,
    Usage,
    user_message,
)
from nbagent.store import SessionInfo, SessionStore, StoreError, data_dir
from nbagent.store.migrations import MIGRATIONS, SCHEMA_VERSION, statements


def rich_history() -> list[Message]:
    return [
        user_message("fix the test"),
        Message(
            role="assistant",
            model="openai/x",
            usage=Usage(input_tokens=10, output_tokens=5, cache_read_tokens=3, cost=0.01),
            finish_reason="tool_calls",
            parts=[
                ReasoningPart(text="look first"),
                TextPart(text="Reading."),
                ToolPart(
                    call_id="call_1",
                    tool="read",
                    state=ToolCompleted(
                        input={"file_path": "a.py"},
                        output="1\tprint()\n" * 50,
                        title="a.py",
                        metadata={"lines": 50},
                        attachments=[Attachment(media_type="image/png", data="aGk=", name="x.png")],
                    ),
                ),
                ToolPart(
                    call_id="call_2", tool="bash", state=ToolError(input={"command": "x"}, error="boom")
                ),
                ToolPart(call_id="call_3", tool="bash", state=ToolRunning(input={"command": "sleep 1"})),
                ToolPart(call_id="call_4", tool="edit", state=ToolPending(raw_input='{"file_')),
            ],
        ),
        user_message("continue", synthetic=True),
    ]


def message_writes(store: SessionStore) -> list[str]:
    """Statements that write message rows, as SQLite runs them on the store's connection."""
    seen: list[str] = []
    with store.reading() as conn:
        conn.set_trace_callback(seen.append)
    return seen


def test_default_path_pragmas_and_schema_version(tmp_path: Path) -> None:
    with SessionStore() as store:
        assert store.path == data_dir() / "nbagent.db"
        assert store.path.exists()
    raw = sqlite3.connect(store.path)
    assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert raw.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == len(MIGRATIONS)
    tables = {r[0] for r in raw.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"sessions", "messages", "tool_outputs", "todos", "summaries", "undo_entries", "blobs"} <= tables
    raw.close()
    with SessionStore(store.path) as again:  # reopening does not re-run migrations
        assert again.list_sessions() == []


def test_newer_schema_is_refused_with_a_hint(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    SessionStore(db).close()
    raw = sqlite3.connect(db)
    raw.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    raw.close()
    with pytest.raises(StoreError, match="newer") as err:
        SessionStore(db)
    assert "NBAGENT_DATA_DIR" in err.value.hint


def test_not_a_database_is_a_clear_error(tmp_path: Path) -> None:
    db = tmp_path / "junk.db"
    db.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError, match="Cannot open the session store"):
        SessionStore(db, recover=False)
    assert db.read_bytes() == b"this is not sqlite" * 100  # refused, never touched


def test_statement_splitting_keeps_semicolons_in_strings() -> None:
    script = "CREATE TABLE t (a TEXT DEFAULT ';');\nINSERT INTO t VALUES ('x;y');\n"
    assert list(statements(script)) == [
        "CREATE TABLE t (a TEXT DEFAULT ';');",
        "INSERT INTO t VALUES ('x;y');",
    ]
    with pytest.raises(ValueError, match="incomplete"):
        list(statements("CREATE TABLE t (a TEXT"))


def test_round_trip_of_every_part_kind(tmp_path: Path) -> None:
    history = rich_history()
    with SessionStore(tmp_path / "s.db") as store:
        store.create_session(SessionInfo(id="ses_1", project=tmp_path, model="openai/x", agent="build"))
        todos = [TodoItem(content="write test", status="in_progress", id="1")]
        store.save_step("ses_1", history, usage=Usage(input_tokens=10, cost=0.01), todos=todos, title="Fix")
    with SessionStore(tmp_path / "s.db") as store:
        info, loaded = store.load_session("ses_1")
        assert loaded == history
        assert [m.model_dump() for m in loaded] == [m.model_dump() for m in history]
        assert (info.title, info.model, info.agent, info.project) == (
            "Fix",
            "openai/x",
            "build",
            tmp_path.resolve(),
        )
        assert info.usage == Usage(input_tokens=10, cost=0.01)
        assert info.message_count == 3
        assert store.load_todos("ses_1") == todos
        assert store.get_tool_output("call_1") == "1\tprint()\n" * 50
        assert store.get_tool_output("call_2") is None  # errors are in the message itself
        with pytest.raises(StoreError, match="No session ses_zz") as err:
            store.load_session("ses_zz")
        assert "nbagent sessions" in err.value.hint


def test_save_step_writes_only_what_changed(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    store = SessionStore(db)
    store.create_session(SessionInfo(id="ses_1"))
    history = [user_message(f"prompt {i}") for i in range(200)]
    writes = message_writes(store)
    store.save_step("ses_1", history)
    assert sum("INSERT INTO messages" in s for s in writes) == 200

    writes.clear()
    history.append(user_message("one more"))
    history[3].parts.append(TextPart(text="edited"))
    store.save_step("ses_1", history)
    assert sum("INSERT INTO messages" in s for s in writes) == 2

    writes.clear()
    store.save_step("ses_1", history)
    assert not any("messages" in s for s in writes)
    store.close()

    # A new store object (a resumed process) learns what is stored instead of rewriting it all.
    store = SessionStore(db)
    writes = message_writes(store)
    store.save_step("ses_1", history)
    assert not any("INSERT INTO messages" in s for s in writes)
    _, loaded = store.load_session("ses_1")
    assert loaded == history
    store.close()


def test_deleted_and_reordered_messages_follow_the_history(tmp_path: Path) -> None:
    with SessionStore(tmp_path / "s.db") as store:
        store.create_session(SessionInfo(id="ses_1"))
        history = [*rich_history(), user_message("later")]
        store.save_step("ses_1", history)
        # Undo: the conversation goes back to its first message; the call outputs go with it.
        store.save_step("ses_1", history[:1])
        assert store.load_session("ses_1")[1] == history[:1]
        assert store.get_tool_output("call_1") is None
        # Reorder: positions are stored, not insertion order.
        swapped = [history[3], history[0]]
        store.save_step("ses_1", swapped)
        assert store.load_session("ses_1")[1] == swapped


def test_pruned_tool_output_stays_readable_in_full(tmp_path: Path) -> None:
    with SessionStore(tmp_path / "s.db") as store:
        store.create_session(SessionInfo(id="ses_1"))
        history = rich_history()
        store.save_step("ses_1", history)
        part = history[1].tool_parts()[0]
        assert isinstance(part.state, ToolCompleted)
        full = part.state.output
        part.state.output = "[pruned: read it back from the store]"
        store.save_step("ses_1", history)
        _, loaded = store.load_session("ses_1")
        state = loaded[1].tool_parts()[0].state
        assert isinstance(state, ToolCompleted) and state.output.startswith("[pruned")
        assert store.get_tool_output("call_1", "ses_1") == full


def test_a_failed_save_leaves_store_and_cache_consistent(tmp_path: Path) -> None:
    with SessionStore(tmp_path / "s.db") as store:
        with pytest.raises(StoreError):
            store.save_step("ses_missing", [user_message("x")])
        store.create_session(SessionInfo(id="ses_1"))
        history = [user_message("a")]
        store.save_step("ses_1", history)
        history.append(user_message("b"))

        class Boom(Exception):
            pass

        with pytest.raises(Boom), store.transaction():
            store.save_step("ses_1", history)  # joins the outer transaction, which rolls back
            raise Boom
        assert len(store.load_session("ses_1")[1]) == 1
        store.save_step("ses_1", history)  # the cache did not believe the rolled-back write
        assert store.load_session("ses_1")[1] == history


def test_listing_latest_children_and_ids(tmp_path: Path) -> None:
    other = tmp_path / "other"
    other.mkdir()
    with SessionStore(tmp_path / "s.db") as store:
        store.create_session(SessionInfo(id="ses_a1", project=tmp_path, created=1, updated=1))
        store.create_session(SessionInfo(id="ses_b2", project=tmp_path, created=2, updated=2))
        store.create_session(SessionInfo(id="ses_c3", project=other, created=3, updated=3))
        store.create_session(SessionInfo(id="ses_k1", parent_id="ses_a1", project=tmp_path, title="sub"))
        with pytest.raises(StoreError, match="already exists"):
            store.create_session(SessionInfo(id="ses_a1"))

        assert [s.id for s in store.list_sessions(tmp_path)] == ["ses_b2", "ses_a1"]
        assert [s.id for s in store.list_sessions()] == ["ses_c3", "ses_b2", "ses_a1"]
        assert len(store.list_sessions(include_children=True)) == 4
        assert [s.id for s in store.list_sessions(limit=1)] == ["ses_c3"]
        store.save_step("ses_a1", [user_message("resume me")])  # touching makes it the latest
        latest = store.latest_session(tmp_path)
        assert latest is not None and latest.id == "ses_a1" and latest.message_count == 1
        assert store.latest_session(tmp_path / "nowhere") is None
        assert [c.id for c in store.children("ses_a1")] == ["ses_k1"]

        assert store.resolve_id("ses_b") == "ses_b2"
        with pytest.raises(StoreError, match="Several"):
            store.resolve_id("ses_")
        with pytest.raises(StoreError, match="No session id"):
            store.resolve_id("nope")

        store.update_session("ses_b2", title="Renamed", usage=Usage(output_tokens=7, cost=0.5))
        info = store.get_session("ses_b2")
        assert (info.title, info.usage.output_tokens, info.usage.cost) == ("Renamed", 7, 0.5)

        store.delete_session("ses_a1")
        assert {s.id for s in store.list_sessions(include_children=True)} == {"ses_b2", "ses_c3"}
        with store.reading() as conn:
            assert conn.execute("SELECT count(*) FROM messages").fetchone()[0] == 0


def test_summaries_in_order(tmp_path: Path) -> None:
    with SessionStore(tmp_path / "s.db") as store:
        store.create_session(SessionInfo(id="ses_1"))
        first = store.add_summary(
            "ses_1", "goal: X", covers_until="msg_9", tokens_before=9000, tokens_after=900
        )
        store.add_summary("ses_1", "goal: X, more", covers_until="msg_20")
        got = store.summaries("ses_1")
        assert [s.seq for s in got] == [1, 2]
        assert got[0] == first
        assert (got[0].covers_until_message_id, got[0].tokens_before, got[0].tokens_after) == (
            "msg_9",
            9000,
            900,
        )
        assert store.summaries("ses_other") == []


def test_ensure_session_creates_once_and_keeps_what_is_stored(tmp_path: Path) -> None:
    with SessionStore(tmp_path / "s.db") as store:
        made = store.ensure_session(SessionInfo(id="ses_1", title="first", project=tmp_path))
        store.save_step("ses_1", [user_message("hi")])
        again = store.ensure_session(SessionInfo(id="ses_1", title="ignored"))
        assert made.title == again.title == "first" and again.message_count == 1
