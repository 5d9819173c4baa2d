"""When the session store cannot be used: clear errors that say the fix, and damaged files moved aside.

    problem = damage_at(path)            # before opening: a folder or an empty file where the store goes
    aside = move_aside(path)             # <name>.corrupt-<timestamp>, its -wal and -journal with it
    raise translate(exc, path, "save")   # an sqlite3 error as a StoreError a person can act on

Nothing is deleted: a damaged store is renamed next to where it was, so the history it still holds
can be recovered by hand (``sqlite3 <file> .recover``).
"""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path

from nbagent.core.errors import NbagentError

SIDE_FILES = ("-wal", "-shm", "-journal")  # files SQLite keeps next to the database


class StoreError(NbagentError):
    """The session store cannot do what was asked (unknown session, newer schema, full disk, ...)."""


class StoreDamaged(StoreError):
    """The store file is not a readable SQLite database (bad pages, not a database at all)."""


def error_code(exc: sqlite3.Error) -> int:
    return int(getattr(exc, "sqlite_errorcode", 0)) & 0xFF


def is_damage(exc: sqlite3.Error) -> bool:
    """A damaged file, as opposed to a busy, read-only or full one."""
    if error_code(exc) in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB):
        return True
    return isinstance(exc, sqlite3.DatabaseError) and "malformed" in str(exc)


def damage_at(path: Path) -> str | None:
    """Why ``path`` cannot be the store before SQLite even opens it (None when it may be)."""
    if path.is_symlink() and not path.exists():
        return None  # a dangling link: SQLite reports it
    if path.is_dir():
        return "it is a folder, not a file"
    try:
        size = path.stat().st_size
    except OSError:
        return None
    if size == 0 and not _has_wal(path) and time.time() - _mtime(path) > FRESH_SECONDS:
        # SQLite would open it as a new empty store; an old empty file means a write was cut off. A
        # fresh one is another process creating the store right now: it must not be moved away.
        return "it is empty (0 bytes): whatever wrote it last was cut off"
    return None


FRESH_SECONDS = 30.0


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return time.time()


def _has_wal(path: Path) -> bool:
    wal = path.with_name(path.name + "-wal")
    try:
        return wal.stat().st_size > 0
    except OSError:
        return False


def move_aside(path: Path) -> Path:
    """Rename ``path`` (file or folder) and its side files to ``<name>.corrupt-<timestamp>``."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    aside = path.with_name(f"{path.name}.corrupt-{stamp}")
    n = 1
    while aside.exists() or aside.is_symlink():
        n += 1
        aside = path.with_name(f"{path.name}.corrupt-{stamp}-{n}")
    os.rename(path, aside)
    for suffix in SIDE_FILES:
        side = path.with_name(path.name + suffix)
        if side.exists():
            os.rename(side, aside.with_name(aside.name + suffix))
    return aside


def translate(exc: sqlite3.Error, path: Path, doing: str) -> StoreError:
    """``exc`` (raised while ``doing`` something with the store at ``path``) as an error with its fix."""
    code = error_code(exc)
    if code == sqlite3.SQLITE_FULL or (code == sqlite3.SQLITE_IOERR and _disk_full(path)):
        return StoreError(
            f"Could not {doing}: the disk holding the session store {path} is full ({exc}).",
            "Free disk space; nothing stored was lost, and the next save writes what is missing.",
        )
    if code == sqlite3.SQLITE_IOERR:
        return StoreError(
            f"Could not {doing}: writing the session store {path} failed ({exc}).",
            "Check the disk (space, file size limits, errors); nothing stored was lost,"
            " and the next save writes what is missing.",
        )
    if code in (sqlite3.SQLITE_READONLY, sqlite3.SQLITE_PERM, sqlite3.SQLITE_CANTOPEN):
        return StoreError(
            f"Could not {doing}: the session store {path} cannot be written ({exc}).",
            "Make the file and its folder writable, or set NBAGENT_DATA_DIR to use another store.",
        )
    if is_damage(exc):
        return StoreDamaged(
            f"Could not {doing}: the session store {path} is damaged ({exc}).",
            f"Quit nbagent and move the file aside (mv {path} {path}.corrupt); the next start creates a"
            " new store. `sqlite3 <file> .recover` can rescue what it still holds.",
        )
    return StoreError(
        f"Could not {doing} in the session store {path}: {exc}",
        "Set NBAGENT_DATA_DIR to use another store if this persists.",
    )


def _disk_full(path: Path) -> bool:
    try:
        st = os.statvfs(path.parent)
    except OSError:
        return False
    return st.f_bavail * st.f_frsize < 1 << 20
