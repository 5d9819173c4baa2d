"""Shell-change detection: the state of the git work tree around a turn.

Tools record what they change (see :mod:`nbagent.store.snapshots`); a shell command can change files
too. At turn start the changed and untracked files of the git work tree are noted (content sha256,
``"deleted"``, or a size/mtime stamp for large files) and the dirty ones captured as blobs, so at turn
end the files changed outside the tools can be listed and, when the user asks, put back: a file dirty
at turn start from its captured content, a clean one from its committed content. git runs through
:mod:`nbagent.store.safe_git`, never a program the repository controls.
"""

from __future__ import annotations

import os
import stat
import subprocess
from collections.abc import Callable
from pathlib import Path

from pydantic import BaseModel, Field

from nbagent.store.blobs import MAX_FILE_BYTES, content_sha
from nbagent.store.safe_git import run_git

MAX_DIRTY_FILES = 5000
DELETED = "deleted"  # worktree state of a path that does not exist
GIT_TIMEOUT = 30


def git(root: Path, *args: str) -> subprocess.CompletedProcess[bytes] | None:
    # Never a program the repository controls (fsmonitor, hooks, filters, textconv): see safe_git.
    return run_git(root, *args, timeout=GIT_TIMEOUT)


def git_toplevel(root: Path) -> Path | None:
    out = git(root, "rev-parse", "--show-toplevel")
    if out is None or out.returncode != 0 or not out.stdout.strip():
        return None
    return Path(os.path.realpath(os.fsdecode(out.stdout.strip())))


def signature(path: Path, limit: int, keep: Callable[[str, bytes], None] | None) -> str:
    try:
        st = path.lstat()
    except FileNotFoundError:
        return DELETED
    if stat.S_ISLNK(st.st_mode):
        return "link:" + content_sha(os.fsencode(os.readlink(path)))
    if not stat.S_ISREG(st.st_mode):
        return "other"
    if st.st_size > limit:
        return f"stat:{st.st_size}:{st.st_mtime_ns}"
    data = path.read_bytes()
    sha = content_sha(data)
    if keep is not None:
        keep(sha, data)
    return sha


def scan(
    root: Path, keep: Callable[[str, bytes], None] | None = None, limit: int = MAX_FILE_BYTES
) -> tuple[Path, dict[str, str]] | None:
    top = git_toplevel(root)
    if top is None:
        return None
    out = git(
        top, "status", "--porcelain", "-z", "--untracked-files=all", "--no-renames", "--ignore-submodules=all"
    )
    if out is None or out.returncode != 0:
        return None
    state: dict[str, str] = {}
    for entry in out.stdout.split(b"\0"):
        if len(entry) < 4:
            continue
        path = top / os.fsdecode(entry[3:])
        state[str(path)] = signature(path, limit, keep)
        if len(state) >= MAX_DIRTY_FILES:
            break
    return top, state


def worktree_state(root: Path) -> dict[str, str] | None:
    """Changed and untracked files of the git work tree holding ``root`` (absolute path -> content
    sha256, ``"deleted"``, or a size/mtime stamp for large files); None outside a git repo."""
    scanned = scan(root)
    return None if scanned is None else scanned[1]


def diff_states(before: dict[str, str], after: dict[str, str]) -> list[str]:
    """Paths whose state differs: a path absent from a state is clean (as committed)."""
    return sorted(p for p in before.keys() | after.keys() if before.get(p) != after.get(p))


class WorktreeBaseline(BaseModel):
    toplevel: Path
    state: dict[str, str]
    captured: list[str] = Field(default_factory=list)  # blob shas kept for reverting
    notes: list[str] = Field(default_factory=list)
    shell_changed: list[str] = Field(default_factory=list)  # filled at end of turn


def shell_changed_paths(worktree: str | None) -> list[Path]:
    if not worktree:
        return []
    return [Path(p) for p in WorktreeBaseline.model_validate_json(worktree).shell_changed]


def committed_content(top: Path, path: Path) -> bytes | str | None:
    """The file as committed at HEAD (worktree filters applied); None when it was not there;
    a string saying why when that cannot be known."""
    try:
        rel = path.relative_to(top).as_posix()
    except ValueError:
        return "outside the git work tree; its state at turn start is unknown"
    exists = git(top, "cat-file", "-e", f"HEAD:{rel}")
    if exists is not None and exists.returncode == 0:
        out = git(top, "cat-file", "--filters", f"HEAD:{rel}")
        if out is not None and out.returncode == 0:
            return out.stdout
        return "git could not read its committed content"
    ignored = git(top, "check-ignore", "-q", "--", rel)
    if ignored is None or ignored.returncode != 1:
        return "ignored by git (or git failed); its state at turn start is unknown"
    return None
