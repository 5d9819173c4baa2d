"""The connection under the session store: opening (and recovering) the SQLite file, transactions.

    class SessionStore(StoreConnection): ...
    with store.transaction() as conn: ...     # BEGIN IMMEDIATE; nested calls join; failures translated
    with store.reading() as conn: ...         # a consistent snapshot

A damaged store (bad pages, a folder or an empty file where the database should be) is moved aside to
``<name>.corrupt-<timestamp>`` and a new one started; ``notices`` says so (the session shows it). A
write that fails (disk full) raises ``StoreError`` with the fix, its transaction rolled back.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Self, TypeVar

from nbagent.core.private import FILE_MODE, data_dir, fix_mode, private_dir, private_file, private_umask
from nbagent.store.faults import (
    SIDE_FILES,
    StoreDamaged,
    StoreError,
    damage_at,
    is_damage,
    move_aside,
    translate,
)
from nbagent.store.migrations import SCHEMA_VERSION, migrate, user_version

DB_NAME = "nbagent.db"
STORE_SIDE_FILES = SIDE_FILES  # files SQLite keeps next to the database
BUSY_TIMEOUT = 10.0  # seconds a writer waits for another process's transaction
_T = TypeVar("_T")
log = logging.getLogger(__name__)


def _busy(exc: sqlite3.OperationalError) -> bool:
    code = getattr(exc, "sqlite_errorcode", 0) & 0xFF
    return code in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)


def _retry_busy(action: Callable[[], _T], timeout: float = BUSY_TIMEOUT) -> _T:
    """For the few statements SQLite runs without its busy handler (journal mode switch)."""
    deadline = time.monotonic() + timeout
    delay = 0.005
    while True:
        try:
            return action()
        except sqlite3.OperationalError as exc:
            if not _busy(exc) or time.monotonic() > deadline:
                raise
        time.sleep(delay)
        delay = min(delay * 2, 0.1)


def _make_private(path: Path) -> None:
    """The store is the user's alone: its folder 0700 when nbagent owns it (the data dir, or a folder
    created here), the database and its -wal/-shm/-journal files 0600; too open ones are fixed."""
    folder = path.parent
    if not folder.exists() or folder.resolve() == data_dir().resolve():
        private_dir(folder)
    private_file(path)
    for suffix in STORE_SIDE_FILES:
        fix_mode(path.with_name(path.name + suffix), FILE_MODE)


class StoreConnection:
    def __init__(self, path: Path | None = None, *, recover: bool = True) -> None:
        """Open (or create) the store; ``recover``: move a damaged one aside and start anew (said in
        ``notices``), else raise ``StoreDamaged``."""
        self.path = path if path is not None else data_dir() / DB_NAME
        self.notices: list[str] = []  # what the user must be told (a damaged store moved aside)
        self._lock = threading.RLock()
        self._depth = 0
        # session id -> {message id: (seq, content hash)} as last committed by this object
        self._hashes: dict[str, dict[str, tuple[int, str]]] = {}
        self._conn = self._open_or_recover(recover)

    # -- connection and transactions ----------------------------------------------------------

    def _open_or_recover(self, recover: bool) -> sqlite3.Connection:
        why = damage_at(self.path)
        if why is None:
            try:
                return self._connect()
            except StoreDamaged as exc:
                if not recover:
                    raise
                why = str(exc.__cause__ or exc)
        elif not recover:
            raise StoreDamaged(
                f"The session store {self.path} cannot be used: {why}.",
                "Move it aside; the next start creates a new store.",
            )
        try:
            aside = move_aside(self.path)
        except OSError as exc:
            raise StoreDamaged(
                f"The session store {self.path} cannot be used ({why}) and could not be moved aside:"
                f" {exc.strerror or exc}.",
                "Move it away by hand, or set NBAGENT_DATA_DIR to use another store.",
            ) from None
        notice = (
            f"The session store {self.path} could not be read ({why}). It was moved to {aside} and a new,"
            " empty store was started: earlier sessions are not listed. `sqlite3 <file> .recover` can"
            " rescue what the old file still holds."
        )
        log.warning("%s", notice)
        self.notices.append(notice)
        return self._connect()

    def _connect(self) -> sqlite3.Connection:
        try:
            _make_private(self.path)
        except OSError as exc:
            raise StoreError(
                f"The session store {self.path} cannot be created or opened: {exc.strerror or exc}.",
                "Make the file and its folder writable, or set NBAGENT_DATA_DIR to use another store.",
            ) from None
        with private_umask():  # SQLite creates the -wal and -shm files now
            conn = self._open()
        for suffix in STORE_SIDE_FILES:
            fix_mode(self.path.with_name(self.path.name + suffix), FILE_MODE)
        return conn

    def _open(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            str(self.path), timeout=BUSY_TIMEOUT, isolation_level=None, check_same_thread=False
        )
        try:
            conn.row_factory = sqlite3.Row
            conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT * 1000)}")
            conn.execute("PRAGMA foreign_keys = ON")
            mode = _retry_busy(lambda: conn.execute("PRAGMA journal_mode").fetchone()[0])
            if str(mode).lower() != "wal":
                _retry_busy(lambda: conn.execute("PRAGMA journal_mode = WAL").fetchone())
            conn.execute("PRAGMA synchronous = NORMAL")
            if user_version(conn) != SCHEMA_VERSION:
                _retry_busy(lambda: conn.execute("BEGIN IMMEDIATE"))
                try:
                    version = user_version(conn)
                    if version > SCHEMA_VERSION:
                        raise StoreError(
                            f"The session store {self.path} has schema version {version}, newer than"
                            f" this nbagent knows ({SCHEMA_VERSION}).",
                            "Upgrade nbagent, or set NBAGENT_DATA_DIR to use another store.",
                        )
                    migrate(conn)
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
                conn.execute("COMMIT")
            # Touch the root page of every table: a file with damaged pages fails here, not mid-turn.
            for (table,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall():
                conn.execute(f'SELECT 1 FROM "{table}" LIMIT 1').fetchall()
        except sqlite3.DatabaseError as exc:
            conn.close()
            if is_damage(exc):
                raise StoreDamaged(f"Cannot open the session store {self.path}: {exc}") from exc
            raise StoreError(
                f"Cannot open the session store {self.path}: {exc}",
                "Check the file is an nbagent store and the directory is writable,"
                " or set NBAGENT_DATA_DIR to use another one.",
            ) from exc
        except BaseException:
            conn.close()
            raise
        return conn

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction (nested calls join the outer one). Waits for other writers."""
        with self._lock:
            if self._depth:
                self._depth += 1
                try:
                    yield self._conn
                finally:
                    self._depth -= 1
                return
            try:
                self._conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise translate(exc, self.path, "save") from exc
            self._depth = 1
            try:
                yield self._conn
            except BaseException as exc:
                self._depth = 0
                self._rollback()
                if isinstance(exc, sqlite3.Error):
                    raise translate(exc, self.path, "save") from exc
                raise
            self._depth = 0
            try:
                self._conn.execute("COMMIT")
            except sqlite3.Error as exc:
                self._rollback()
                raise translate(exc, self.path, "save") from exc
            except BaseException:
                self._rollback()
                raise

    def _rollback(self) -> None:
        """Undo the open transaction (SQLite may have rolled it back itself, e.g. on a full disk)."""
        if self._conn.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                self._conn.execute("ROLLBACK")

    @contextmanager
    def reading(self) -> Iterator[sqlite3.Connection]:
        """A consistent read snapshot (or the current write transaction)."""
        with self._lock:
            if self._depth:
                yield self._conn
                return
            try:
                self._conn.execute("BEGIN")
            except sqlite3.Error as exc:
                raise translate(exc, self.path, "read") from exc
            try:
                yield self._conn
            except sqlite3.Error as exc:
                raise translate(exc, self.path, "read") from exc
            finally:
                if self._conn.in_transaction:
                    with contextlib.suppress(sqlite3.Error):
                        self._conn.execute("COMMIT")

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def integrity_check(self) -> str:
        """``"ok"`` when SQLite finds the file sound."""
        with self._lock:
            return str(self._conn.execute("PRAGMA integrity_check").fetchone()[0])
