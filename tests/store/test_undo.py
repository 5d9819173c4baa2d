"""Undo/redo of a turn's file changes, kept in the store; shell-made changes in a git work tree."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest

from nbagent.core.messages import Message, user_message
from nbagent.store import SessionInfo, SessionStore, StoreError, UndoLog, diff_states, worktree_state


@pytest.fixture
def store(tmp_path: Path) -> SessionStore:
    s = SessionStore(tmp_path / "store.db")
    s.create_session(SessionInfo(id="ses_1", project=tmp_path))
    return s


def snapshot(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and ".git" not in p.parts
    }


def tool_turn(undo: UndoLog, work: Path, history: list[Message]) -> None:
    """One turn as the file tools would run it: record, then write/edit/delete/create."""
    undo.begin_turn("turn_1", message_count=len(history))
    history += [user_message("change things"), Message(role="assistant")]
    for name in ("a.txt", "b.txt", "run.sh", "new/c.txt"):
        undo.record_before(work / name)
    (work / "a.txt").write_text("A edited\n")  # edit
    (work / "a.txt").write_text("A edited twice\n")  # a second edit keeps the first before-state
    undo.record_before(work / "a.txt")
    (work / "b.txt").unlink()  # delete
    (work / "run.sh").write_text("echo new\n")  # write over an executable
    (work / "run.sh").chmod(0o644)
    (work / "new").mkdir()
    (work / "new" / "c.txt").write_text("created\n")  # create
    changes = undo.end_turn()
    assert changes is not None and len(changes.tool_changed) == 4


def make_work(tmp_path: Path) -> Path:
    work = tmp_path / "work"
    work.mkdir()
    (work / "a.txt").write_text("A\n")
    (work / "b.txt").write_text("B\n")
    (work / "run.sh").write_text("echo old\n")
    (work / "run.sh").chmod(0o755)
    (work / "untouched.txt").write_text("same\n")
    return work


def test_undo_and_redo_a_turn_of_write_edit_delete_create(tmp_path: Path, store: SessionStore) -> None:
    work = make_work(tmp_path)
    before = snapshot(work)
    history = [user_message("hello"), Message(role="assistant")]
    undo = UndoLog(store, "ses_1", work)
    assert not undo.can_undo and undo.undo() is None
    tool_turn(undo, work, history)
    after = snapshot(work)

    result = undo.undo(history)
    assert result is not None and result.action == "undo"
    assert snapshot(work) == before
    assert stat.S_IMODE((work / "run.sh").stat().st_mode) == 0o755
    assert result.message_count == 2  # truncate the conversation to before the turn
    assert {p.name for p in result.reverted} == {"a.txt", "b.txt", "run.sh", "c.txt"}
    assert result.skipped == []
    del history[result.message_count :]
    assert not undo.can_undo and undo.can_redo

    redone = undo.redo()
    assert redone is not None and redone.action == "redo"
    assert snapshot(work) == after
    assert stat.S_IMODE((work / "run.sh").stat().st_mode) == 0o644
    assert redone.message_count == 2 and [m.role for m in redone.messages] == ["user", "assistant"]
    assert redone.messages[0].text == "change things"
    assert undo.redo() is None


def test_several_turns_undo_in_reverse_and_a_new_turn_drops_redo(tmp_path: Path, store: SessionStore) -> None:
    work = tmp_path / "w"
    work.mkdir()
    f = work / "f.txt"
    undo = UndoLog(store, "ses_1", work)
    for n in range(1, 4):
        undo.begin_turn(f"t{n}", message_count=2 * n)
        undo.record_before(f)
        f.write_text(f"v{n}\n")
        undo.end_turn()
    assert [undo.undo().message_count for _ in range(2)] == [6, 4]  # type: ignore[union-attr]
    assert f.read_text() == "v1\n"
    redone = undo.redo()
    assert redone is not None and redone.turn_id == "t2" and f.read_text() == "v2\n"
    undo.begin_turn("t4", message_count=4)  # new work: t3 can no longer be redone
    undo.end_turn()
    assert undo.redo() is None
    assert undo.undo().turn_id == "t4"  # type: ignore[union-attr]
    assert undo.undo().turn_id == "t2"  # type: ignore[union-attr]
    assert f.read_text() == "v1\n"


def test_undo_log_survives_reopening_the_store(tmp_path: Path, store: SessionStore) -> None:
    work = make_work(tmp_path)
    before = snapshot(work)
    history = [user_message("hello")]
    tool_turn(UndoLog(store, "ses_1", work), work, history)
    after = snapshot(work)
    store.close()

    reopened = SessionStore(store.path)
    result = UndoLog(reopened, "ses_1", work).undo(history)
    assert result is not None and result.message_count == 1
    assert snapshot(work) == before
    reopened.close()

    again = SessionStore(store.path)
    redone = UndoLog(again, "ses_1", work).redo()
    assert redone is not None and len(redone.messages) == 2
    assert snapshot(work) == after
    again.close()


def test_large_files_are_not_kept_and_undo_says_so(tmp_path: Path, store: SessionStore) -> None:
    big = tmp_path / "big.bin"
    big.write_bytes(b"x" * 5000)
    undo = UndoLog(store, "ses_1", tmp_path, max_file_bytes=1000)
    undo.begin_turn("t1", 0)
    note = undo.record_before(big)
    assert note is not None and "undo limit" in note
    big.write_bytes(b"y" * 10)
    result = undo.undo()
    assert result is not None and result.reverted == []
    assert len(result.skipped) == 1 and "big.bin" in result.skipped[0] and "not kept" in result.skipped[0]
    assert big.read_bytes() == b"y" * 10


def test_recording_outside_a_turn_is_a_no_op(tmp_path: Path, store: SessionStore) -> None:
    undo = UndoLog(store, "ses_1", tmp_path)
    assert undo.record_before(tmp_path / "x") is None
    assert undo.end_turn() is None and not undo.can_undo


def test_old_turns_and_their_blobs_are_dropped(tmp_path: Path, store: SessionStore) -> None:
    undo = UndoLog(store, "ses_1", tmp_path, keep_turns=2)
    f = tmp_path / "f.txt"
    for n in range(6):
        f.write_text(f"content {n}\n" * 100)
        undo.begin_turn(f"t{n}", n)
        undo.record_before(f)
        f.write_text("changed\n")
        undo.end_turn()
    with store.reading() as conn:
        assert conn.execute("SELECT count(*) FROM undo_turns").fetchone()[0] == 2
        assert conn.execute("SELECT count(*) FROM blobs").fetchone()[0] == 2
    assert undo.undo().turn_id == "t5"  # type: ignore[union-attr]
    assert undo.undo().turn_id == "t4"  # type: ignore[union-attr]
    assert undo.undo() is None
    assert f.read_text() == "content 4\n" * 100


# -- git work tree ----------------------------------------------------------------------------------


def git(repo: Path, *args: str) -> str:
    env = {**os.environ, "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"}
    cmd = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", "-C", str(repo), *args]
    return subprocess.run(cmd, check=True, capture_output=True, text=True, env=env).stdout


def make_repo(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q")
    (repo / "clean.py").write_text("committed\n")
    (repo / "doomed.py").write_text("will be deleted\n")
    (repo / "dirty.py").write_text("committed dirty\n")
    (repo / "tool.py").write_text("tool target\n")
    (repo / ".gitignore").write_text("*.log\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "init")
    (repo / "dirty.py").write_text("uncommitted work\n")  # dirty before the turn
    (repo / "notes.txt").write_text("untracked before\n")
    return repo


def test_worktree_state_and_diff(tmp_path: Path) -> None:
    assert worktree_state(tmp_path) is None  # not a git repo
    repo = make_repo(tmp_path)
    state = worktree_state(repo / ".")
    assert state is not None
    assert set(state) == {str(repo.resolve() / "dirty.py"), str(repo.resolve() / "notes.txt")}
    (repo / "clean.py").write_text("changed\n")
    (repo / "x.log").write_text("ignored\n")
    after = worktree_state(repo)
    assert after is not None
    assert diff_states(state, after) == [str(repo.resolve() / "clean.py")]
    (repo / "dirty.py").write_text("committed dirty\n")  # back to committed: clean again
    assert str(repo.resolve() / "dirty.py") in diff_states(state, worktree_state(repo) or {})


def test_shell_changes_are_detected_reported_and_revertible_on_request(
    tmp_path: Path, store: SessionStore
) -> None:
    repo = make_repo(tmp_path)
    before = snapshot(repo)
    undo = UndoLog(store, "ses_1", repo)
    undo.begin_turn("t1", message_count=0)
    undo.record_before(repo / "tool.py")
    (repo / "tool.py").write_text("changed by the edit tool\n")
    script = (
        "echo shell >> clean.py; echo more >> dirty.py; rm doomed.py; echo new > made.py;"
        " mkdir -p pkg && echo x > pkg/mod.py; echo log > build.log"
    )
    subprocess.run(["sh", "-c", script], cwd=repo, check=True)
    live = undo.shell_changes()  # what the session reports after a shell command
    changes = undo.end_turn()
    assert changes is not None
    top = repo.resolve()
    expected = sorted(top / p for p in ("clean.py", "dirty.py", "doomed.py", "made.py", "pkg/mod.py"))
    assert sorted(changes.shell_changed) == expected == sorted(live)
    assert changes.tool_changed == [top / "tool.py"]

    # Undo reverts only what the tools changed and names the shell-made changes it left alone.
    result = undo.undo()
    assert result is not None
    assert result.reverted == [top / "tool.py"] and sorted(result.shell_changed) == expected
    assert (repo / "clean.py").read_text() == "committed\nshell\n"

    # Reverting them is a separate, explicit call.
    reverted = undo.revert_paths(result.shell_changed)
    assert sorted(reverted.reverted) == expected and reverted.skipped == []
    assert snapshot(repo) == {**before, "build.log": b"log\n"}  # ignored files are not tracked
    assert (repo / "dirty.py").read_text() == "uncommitted work\n"  # dirty content from turn start

    # An ignored path's state at turn start is unknown: it is left alone.
    refused = undo.revert_paths([repo / "build.log"])
    assert refused.reverted == [] and "ignored" in refused.skipped[0]
    assert (repo / "build.log").exists()


def test_revert_outside_git_is_refused_not_guessed(tmp_path: Path, store: SessionStore) -> None:
    (tmp_path / "f.txt").write_text("keep me\n")
    undo = UndoLog(store, "ses_1", tmp_path)
    undo.begin_turn("t1", 0)
    undo.end_turn()
    result = undo.revert_paths([tmp_path / "f.txt"])
    assert result.reverted == [] and "not a git repository" in result.skipped[0]
    assert (tmp_path / "f.txt").read_text() == "keep me\n"


def test_a_turn_for_an_unknown_session_is_a_clear_error(tmp_path: Path, store: SessionStore) -> None:
    with pytest.raises(StoreError, match="No session ses_nope"):
        UndoLog(store, "ses_nope", tmp_path).begin_turn("t1", 0)
