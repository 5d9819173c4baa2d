"""Blob storage for undo: file contents kept content-addressed in the session store.

A blob is a file's bytes, zlib-compressed, keyed by their sha256, stored once however many undo entries
or work-tree baselines refer to it; ``collect_garbage`` drops the ones nothing refers to any more. Also
the file side of it: reading what a path holds (missing, its bytes and mode, or a note why it was not
kept, e.g. over the size limit) and putting bytes back with an atomic replace that keeps the mode.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import stat
import tempfile
import zlib
from pathlib import Path

from pydantic import BaseModel

MAX_FILE_BYTES = 10 * 1024 * 1024


def content_sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def is_sha(value: str | None) -> bool:
    return value is not None and len(value) == 64 and all(c in "0123456789abcdef" for c in value)


def path_key(path: Path | str) -> str:
    """Absolute path with its directory resolved (the file itself may be a symlink)."""
    p = os.path.abspath(os.fspath(path))
    return os.path.join(os.path.realpath(os.path.dirname(p)), os.path.basename(p))


def put_blob(conn: sqlite3.Connection, data: bytes) -> str:
    sha = content_sha(data)
    conn.execute(
        "INSERT OR IGNORE INTO blobs (sha, size, data) VALUES (?, ?, ?)",
        (sha, len(data), zlib.compress(data, 6)),
    )
    return sha


def get_blob(conn: sqlite3.Connection, sha: str) -> bytes | None:
    row = conn.execute("SELECT data FROM blobs WHERE sha = ?", (sha,)).fetchone()
    return None if row is None else zlib.decompress(row[0])


def write_file(path: Path, data: bytes, mode: int | None) -> None:
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


class FileContent(BaseModel):
    """What a path held: missing, captured bytes, or a note why it was not captured."""

    existed: bool
    data: bytes | None = None
    mode: int | None = None
    note: str = ""


def read_content(path: Path, limit: int) -> FileContent:
    try:
        st = path.lstat()
    except FileNotFoundError:
        return FileContent(existed=False)
    if not stat.S_ISREG(st.st_mode):
        return FileContent(existed=True, note="not a regular file; not kept for undo")
    if st.st_size > limit:
        mb = st.st_size / 1e6
        return FileContent(
            existed=True, note=f"{mb:.1f} MB is over the {limit / 1e6:.0f} MB undo limit; not kept"
        )
    return FileContent(existed=True, data=path.read_bytes(), mode=stat.S_IMODE(st.st_mode))


def collect_garbage(conn: sqlite3.Connection) -> None:
    """Delete blobs no undo entry or worktree baseline refers to (any session)."""
    conn.execute(
        "DELETE FROM blobs WHERE sha NOT IN ("
        " SELECT before_sha FROM undo_entries WHERE before_sha IS NOT NULL"
        " UNION SELECT after_sha FROM undo_entries WHERE after_sha IS NOT NULL"
        " UNION SELECT sha FROM undo_refs)"
    )
