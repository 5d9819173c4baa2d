"""Faults meet a clear message and lose nothing: a damaged store is moved aside (kept, never deleted) and a
new one started, with a notice; a full disk fails a save cleanly and the next save writes everything."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from nbagent.core.messages import Message, TextPart, user_message
from nbagent.store import SessionInfo, SessionStore, StoreError
from nbagent.store.db import StoreDamaged
from tests.conftest import small_tmpfs


def stored_store(path: Path) -> bytes:
    with SessionStore(path) as store:
        store.create_session(SessionInfo(id="ses_old", title="old work"))
        store.save_step("ses_old", [user_message("an old prompt")])
    return path.read_bytes()


def bad_pages(path: Path) -> None:
    data = bytearray(stored_store(path))
    data[0:4096] = os.urandom(4096)  # the header and the schema page
    path.write_bytes(bytes(data))
    for side in ("-wal", "-shm"):
        Path(f"{path}{side}").unlink(missing_ok=True)


def a_folder(path: Path) -> None:
    path.mkdir()
    (path / "something.txt").write_text("kept")


def empty_file(path: Path) -> None:
    """An empty file left by a write that was cut off (an hour old: not a store being created now)."""
    path.write_bytes(b"")
    old = time.time() - 3600
    os.utime(path, (old, old))


def test_a_fresh_empty_file_is_a_store_being_created_not_damage(tmp_path: Path) -> None:
    """Another process creating the store leaves a 0-byte file for a moment: it is never moved away."""
    path = tmp_path / "nbagent.db"
    path.write_bytes(b"")
    store = SessionStore(path)
    try:
        assert not store.notices and not list(tmp_path.glob("nbagent.db.corrupt-*"))
    finally:
        store.close()


@pytest.mark.parametrize("damage", [bad_pages, a_folder, empty_file])
def test_a_damaged_store_is_moved_aside_and_a_new_one_started(tmp_path: Path, damage: object) -> None:
    path = tmp_path / "nbagent.db"
    damage(path)  # type: ignore[operator]
    before = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(StoreDamaged):
        SessionStore(path, recover=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # refusing touches nothing

    store = SessionStore(path)
    [notice] = store.notices
    asides = [p for p in tmp_path.iterdir() if p.name.startswith("nbagent.db.corrupt-")]
    assert len(asides) == 1
    assert f"It was moved to {asides[0]}" in notice and "new, empty store" in notice
    if damage is a_folder:
        assert (asides[0] / "something.txt").read_text() == "kept"
    # the new store works
    store.create_session(SessionInfo(id="ses_new"))
    store.save_step("ses_new", [user_message("hello")])
    assert store.load_session("ses_new")[1][0].text == "hello"
    assert store.integrity_check() == "ok"
    store.close()
    assert SessionStore(path).notices == []  # said once: the new store is sound


def test_damaged_pages_keep_their_bytes_in_the_aside_file(tmp_path: Path) -> None:
    path = tmp_path / "nbagent.db"
    bad_pages(path)
    damaged = path.read_bytes()
    SessionStore(path).close()
    [aside] = [p for p in tmp_path.glob("nbagent.db.corrupt-*") if not p.name.endswith(("-wal", "-shm"))]
    assert aside.read_bytes() == damaged  # nothing lost: what could be rescued is still there


def test_an_unwritable_store_folder_is_a_clear_error_not_a_move(tmp_path: Path) -> None:
    if os.getuid() != 0:
        folder = tmp_path / "ro"
        folder.mkdir()
        folder.chmod(0o500)
        try:
            with pytest.raises(StoreError) as err:
                SessionStore(folder / "nbagent.db")
            assert err.value.hint
        finally:
            folder.chmod(0o700)
        return
    # root writes anywhere: the same check as an unprivileged user, in a folder that user cannot write
    import sys
    import tempfile

    setpriv = shutil.which("setpriv")
    assert setpriv, "setpriv (util-linux) is needed to run this check as an unprivileged user"
    folder = Path(tempfile.mkdtemp(dir="/var/tmp"))
    try:
        folder.chmod(0o555)
        code = (
            "import sys; from pathlib import Path; from nbagent.store.db import SessionStore, StoreError\n"
            "try:\n    SessionStore(Path(sys.argv[1]) / 'nbagent.db')\nexcept StoreError as e:\n"
            "    print('HINT:', e.hint); sys.exit(0 if e.hint else 3)\nsys.exit(2)"
        )
        proc = subprocess.run(
            [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable, "-c", code, str(folder)],
            capture_output=True, text=True, timeout=60, cwd="/", env={**os.environ, "HOME": str(folder)},
        )  # fmt: skip
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert not list(folder.iterdir())  # nothing created, nothing moved
    finally:
        shutil.rmtree(folder, ignore_errors=True)


# -- a full disk ---------------------------------------------------------------------------------


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 2 MB tmpfs (root only; the tests run as root on CI)."""
    with small_tmpfs(tmp_path / "disk", "2m") as mnt:
        yield mnt


def fill(folder: Path) -> Path:
    filler = folder / "filler"
    with filler.open("wb") as fh:
        try:
            while True:
                fh.write(b"\0" * 65536)
                fh.flush()
        except OSError:
            pass
    return filler


def test_a_full_disk_fails_the_save_clearly_and_loses_nothing(small_disk: Path) -> None:
    store = SessionStore(small_disk / "nbagent.db")
    store.create_session(SessionInfo(id="ses_1"))
    history = [user_message("first prompt"), Message(role="assistant", parts=[TextPart(text="first answer")])]
    store.save_step("ses_1", history)
    filler = fill(small_disk)
    big = Message(role="assistant", parts=[TextPart(text=os.urandom(400_000).hex())])
    with pytest.raises(StoreError) as err:
        store.save_step("ses_1", [*history, user_message("second"), big])
    assert "full" in str(err.value) and "Free disk space" in err.value.hint
    # The stored history is the last good one, the file sound, for this and any other reader.
    assert [m.text for m in store.load_session("ses_1")[1]] == ["first prompt", "first answer"]
    other = sqlite3.connect(small_disk / "nbagent.db")
    assert other.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    other.close()
    filler.unlink()
    store.save_step("ses_1", [*history, user_message("second"), big])  # space again: all of it is written
    assert len(store.load_session("ses_1")[1]) == 4
    store.close()
