"""What nbagent keeps is private: the store's folder 0700, its database files 0600, whatever the umask;
a store left open by an older version is fixed (with a warning)."""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from nbagent.core.messages import user_message
from nbagent.core.private import private_dir, write_private
from nbagent.store import SessionInfo, SessionStore, data_dir


def mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture
def open_umask() -> Iterator[None]:
    """The usual umask: without care, files come out 0644 and folders 0755."""
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def use_store(store: SessionStore) -> None:
    info = store.create_session(SessionInfo(project=Path("/tmp/p")))
    store.save_step(info.id, [user_message("hello")])


def test_a_new_store_is_private(open_umask: None) -> None:
    folder = data_dir()
    assert not folder.exists()
    with SessionStore() as store:
        use_store(store)
        files = {p.name: mode(p) for p in folder.iterdir()}
        assert mode(folder) == 0o700
        assert {"nbagent.db", "nbagent.db-wal", "nbagent.db-shm"} <= files.keys()
        assert set(files.values()) == {0o600}, files
    assert os.umask(0o022) == 0o022  # the process umask is back as it was


def test_an_open_store_is_fixed_with_a_warning(open_umask: None, caplog: pytest.LogCaptureFixture) -> None:
    folder = data_dir()
    with SessionStore() as store:
        use_store(store)
        files = [folder / "nbagent.db", folder / "nbagent.db-wal", folder / "nbagent.db-shm"]
    folder.chmod(0o755)
    for path in files:
        if path.exists():
            path.chmod(0o644)
    (folder / "nbagent.db-journal").write_text("")
    (folder / "nbagent.db-journal").chmod(0o666)
    with caplog.at_level(logging.WARNING), SessionStore() as store:
        assert len(store.list_sessions()) == 1
    assert mode(folder) == 0o700
    for path in [*files, folder / "nbagent.db-journal"]:
        if path.exists():
            assert mode(path) == 0o600, path
    assert "readable by other users" in caplog.text and "nbagent.db" in caplog.text


def test_a_configured_store_in_a_new_folder(tmp_path: Path, open_umask: None) -> None:
    db = tmp_path / "elsewhere" / "deep" / "sessions.db"
    with SessionStore(db) as store:
        use_store(store)
    assert mode(db.parent) == 0o700 and mode(db.parent.parent) == 0o700
    assert mode(db) == 0o600


def test_a_configured_store_in_the_users_own_folder(tmp_path: Path, open_umask: None) -> None:
    """Not nbagent's folder: its mode is the user's business; the files are still private."""
    shared = tmp_path / "mine"
    shared.mkdir(mode=0o755)
    shared.chmod(0o755)
    with SessionStore(shared / "s.db") as store:
        use_store(store)
    assert mode(shared) == 0o755
    assert all(mode(p) == 0o600 for p in shared.iterdir())


def test_private_helpers(tmp_path: Path, open_umask: None, caplog: pytest.LogCaptureFixture) -> None:
    folder = private_dir(tmp_path / "config" / "nbagent")
    assert mode(folder) == 0o700
    target = folder / "trust.json"
    write_private(target, '{"a": 1}')
    write_private(target, '{"a": 2}')
    assert target.read_text() == '{"a": 2}' and mode(target) == 0o600
    assert [p.name for p in folder.iterdir()] == ["trust.json"]  # no temporary file left behind
    folder.chmod(0o775)
    with caplog.at_level(logging.WARNING):
        private_dir(folder)
    assert mode(folder) == 0o700 and "readable by other users" in caplog.text
    fresh = tmp_path / "new" / "file.json"
    write_private(fresh, "x")
    assert mode(fresh.parent) == 0o700 and mode(fresh) == 0o600
