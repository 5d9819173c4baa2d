"""Files only the user can read: nbagent's own folders 0700, its files 0600.

    folder = private_dir(data_dir())               # created 0700, or made 0700 (with a warning)
    write_private(folder / "trust.json", text)     # atomic, 0600 from the first byte
    with private_umask():                          # anything created inside is private too
        sqlite3.connect(path)

A folder or file that is already too open (readable or writable by the group or others) is fixed
and a warning logged: sessions can hold secrets a tool printed before they were known.
"""

from __future__ import annotations

import contextlib
import logging
import os
import stat
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

DIR_MODE = 0o700
FILE_MODE = 0o600
_UMASK = 0o077
_umask_lock = threading.RLock()
log = logging.getLogger(__name__)


def data_dir() -> Path:
    """nbagent's data folder (the session store): ``$NBAGENT_DATA_DIR``, else the platform's."""
    import platformdirs

    base = os.environ.get("NBAGENT_DATA_DIR")
    return Path(base) if base else Path(platformdirs.user_data_dir("nbagent"))


def cache_dir() -> Path:
    """nbagent's cache folder (spilled outputs, sandbox TMPDIRs): ``$NBAGENT_CACHE_DIR``, else the
    platform's. Not created here."""
    import platformdirs

    base = os.environ.get("NBAGENT_CACHE_DIR")
    return Path(base) if base else Path(platformdirs.user_cache_dir("nbagent"))


@contextlib.contextmanager
def private_umask() -> Iterator[None]:
    """While inside, files and folders this process creates are private (umask 077).

    The umask is process-wide: threads creating files meanwhile get private ones too, which errs
    on the safe side."""
    with _umask_lock:
        previous = os.umask(_UMASK)
        try:
            yield
        finally:
            os.umask(previous)


def _too_open(mode: int) -> bool:
    return bool(stat.S_IMODE(mode) & 0o077)


def _never_touch(path: Path) -> bool:
    """The home folder and filesystem roots are not ours to chmod, whatever a setting says."""
    resolved = path.resolve()
    return resolved == Path.home().resolve() or resolved.parent == resolved


def fix_mode(path: Path, mode: int) -> bool:
    """Make an existing ``path`` exactly ``mode`` when it lets the group or others in; True when it
    was changed (a warning is logged). A missing path is left alone."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return False
    if not _too_open(st.st_mode) or _never_touch(path):
        return False
    try:
        os.chmod(path, mode)
    except OSError as exc:
        log.warning(
            "%s is readable by other users (mode %o) and could not be fixed: %s", path, st.st_mode, exc
        )
        return False
    log.warning(
        "%s was readable by other users (mode %o); it is now %o.", path, stat.S_IMODE(st.st_mode), mode
    )
    return True


def private_dir(path: Path) -> Path:
    """``path`` as a folder only the user can enter: created 0700 (missing parents too), or fixed to
    0700 when it exists and is open to others. Returns ``path``."""
    with private_umask():
        path.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    fix_mode(path, DIR_MODE)
    return path


def private_file(path: Path) -> Path:
    """Create ``path`` empty with mode 0600 if it does not exist; fix it to 0600 if it is too open."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    except FileExistsError:
        fix_mode(path, FILE_MODE)
    else:
        os.close(fd)
    return path


def write_private(path: Path, text: str) -> None:
    """Replace ``path`` by ``text`` atomically; the file is 0600 from its first byte. A missing folder
    is created private; an existing one is left as it is (call :func:`private_dir` for nbagent's own)."""
    if not path.parent.exists():
        private_dir(path.parent)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)  # always 0600
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, FILE_MODE)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
