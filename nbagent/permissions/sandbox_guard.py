"""Protected project paths that did not exist when a sandboxed command started.

bubblewrap cannot bind over a path that does not exist without leaving a mount point in the user's
project (see ``nbagent.permissions.sandbox``), so what a sandboxed command creates among them is
undone once it ends: ``ProtectedGuard.begin`` notes which exist before the first of the running
sandboxed commands starts, ``end`` (after each one ends) moves the new ones to a private quarantine
folder and returns one note per path for the model and the user.

Guarded: ``nbagent.json``, ``.claude``, ``.nbagent``, the ``.env`` family in the project root, and a
new ``.git``: a ``.git`` file (a pointer to another git folder) is moved; a ``.git`` folder (``git
init``) stays, but its hooks (other than ``*.sample``) are moved, and so is its config when it has
keys outside ``SAFE_GIT_KEYS`` (``git init`` run again writes a fresh one).
"""

from __future__ import annotations

import fnmatch
import os
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from nbagent.permissions.sandbox import is_env_name

GUARDED_NAMES = ("nbagent.json", ".claude", ".nbagent")
SAFE_GIT_KEYS = (
    "core.repositoryformatversion", "core.filemode", "core.bare", "core.logallrefupdates", "core.ignorecase",
    "core.precomposeunicode", "core.symlinks", "init.defaultbranch", "extensions.objectformat", "user.name",
    "user.email", "remote.*.url", "remote.*.pushurl", "remote.*.fetch", "branch.*.remote", "branch.*.merge",
)  # fmt: skip
STATE_KEY = "sandbox_guard"


def _git_config_is_safe(path: Path) -> bool:
    env = {**os.environ, "GIT_CONFIG_NOSYSTEM": "1"}
    try:
        proc = subprocess.run(
            ["git", "config", "--file", str(path), "--no-includes", "--null", "--list"],
            capture_output=True, timeout=10, check=False, env=env, stdin=subprocess.DEVNULL,
        )  # fmt: skip
    except (OSError, subprocess.TimeoutExpired):
        return False
    if proc.returncode != 0:
        return False
    for item in proc.stdout.split(b"\0"):
        key = os.fsdecode(item).partition("\n")[0].lower()
        if key and not any(fnmatch.fnmatchcase(key, pattern) for pattern in SAFE_GIT_KEYS):
            return False
    return True


class ProtectedGuard:
    """Undoes the creation of protected project paths by sandboxed commands (see the module docstring)."""

    def __init__(self, root: Path, quarantine: Callable[[], Path]) -> None:
        self.root = root
        self.quarantine = quarantine
        self.running = 0
        self.baseline: frozenset[str] = frozenset()

    def snapshot(self) -> frozenset[str]:
        """The guarded paths that exist now, relative to the root."""
        found: set[str] = set()
        try:
            names = os.listdir(self.root)
        except OSError:
            return frozenset()
        for name in names:
            if name in GUARDED_NAMES or is_env_name(name):
                found.add(name)
        git = self.root / ".git"
        if os.path.lexists(git):
            found.add(".git")
            if os.path.lexists(git / "config"):
                found.add(".git/config")
            if git.is_dir() and (git / "hooks").is_dir():
                found.update(f".git/hooks/{n}" for n in os.listdir(git / "hooks"))
        return frozenset(found)

    def begin(self) -> None:
        """A sandboxed command is about to start."""
        if self.running == 0:
            self.baseline = self.snapshot()
        self.running += 1

    def end(self) -> list[str]:
        """A sandboxed command ended: quarantine what it created; one note per path moved."""
        if self.running == 0:
            return []
        self.running -= 1
        new = sorted(self.snapshot() - self.baseline)
        git_dir = (self.root / ".git").is_dir() and not (self.root / ".git").is_symlink()
        notes: list[str] = []
        stamp = time.strftime("%Y%m%d-%H%M%S")
        for rel in new:
            if rel.startswith(".git/") and not git_dir:
                continue  # moved with .git itself
            if rel == ".git" and git_dir:
                continue  # git init: checked entry by entry
            if rel == ".git/config" and _git_config_is_safe(self.root / rel):
                continue
            if rel.startswith(".git/hooks/") and rel.endswith(".sample"):
                continue
            notes.append(self._move(rel, stamp))
        return notes

    def _move(self, rel: str, stamp: str) -> str:
        dest = self.quarantine() / stamp / rel
        try:
            dest.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            shutil.move(str(self.root / rel), str(dest))
        except OSError as exc:
            return (
                f"Sandbox: the command created {rel}, which sandboxed commands may not create, and it could not"
                f" be moved away ({exc.strerror or exc}). Remove it before running anything that reads it."
            )
        return (
            f"Sandbox: the command created {rel}, which sandboxed commands may not create (it can change what"
            f" nbagent, git or other tools run or allow); it was moved to {dest}. If the user wants it, they"
            " can move it back themselves."
        )


def guard_of(state: dict[str, Any], root: Path, quarantine: Callable[[], Path]) -> ProtectedGuard:
    """The session's guard, kept in its tool state."""
    guard = state.get(STATE_KEY)
    if not isinstance(guard, ProtectedGuard):
        guard = state[STATE_KEY] = ProtectedGuard(root, quarantine)
    return guard
