"""git as nbagent itself runs it: never a program that the repository controls.

A repository is data the model can write (a sandboxed command may create a whole ``.git``), so every
git call nbagent makes for itself (snapshots, undo, "is this a git repo?") goes through ``run_git``:

- ``core.fsmonitor``, ``core.hooksPath``, ``core.pager``, ``diff.external`` and the untracked cache are
  overridden with ``-c`` (command-line config beats every file), the pager is ``cat``, no prompt, no
  optional locks, no system config, and ``--no-ext-diff --no-textconv`` where the subcommand takes them;
- ``.gitattributes`` can route files through ``filter.<driver>.clean|smudge|process`` or
  ``diff.<driver>.textconv|command`` defined in the repository's own config: those keys are read first
  with ``git config --local --null --list`` (which reads files and runs nothing) and each driver is
  neutralised with ``-c`` (empty command, ``required=false``). Drivers of the user's global config stay
  (the user installed them, e.g. git-lfs);
- a repository config that pulls in other files (``include.path``, ``includeIf.*``) could change between
  that read and git's own, so nbagent does not run git there at all: ``run_git`` returns None, as it does
  when git is missing or times out, and callers degrade (no work-tree baseline) as outside a repo.
"""

from __future__ import annotations

import logging
import os
import re
import subprocess
from pathlib import Path

log = logging.getLogger(__name__)

TIMEOUT = 30.0
SAFE_CONFIG = (
    "core.fsmonitor=false",
    "core.hooksPath=/dev/null",
    "core.pager=cat",
    "diff.external=",
    "core.untrackedCache=false",
    "submodule.recurse=false",
)
SAFE_ENV = {
    "GIT_PAGER": "cat",
    "PAGER": "cat",
    "GIT_TERMINAL_PROMPT": "0",
    "GIT_OPTIONAL_LOCKS": "0",
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_ASKPASS": "",
    "SSH_ASKPASS": "",
    "GIT_EXTERNAL_DIFF": "",
}
# Subcommands that take --no-ext-diff / --no-textconv.
DIFF_LIKE = {"diff", "log", "show", "diff-files", "diff-index", "diff-tree", "format-patch", "whatchanged"}
# Config keys that name a program git may run for a path (``.gitattributes`` picks the driver).
_DRIVER = re.compile(r"^(filter|diff|merge)\.(.+)\.(clean|smudge|process|textconv|command|driver)$", re.I)
_INCLUDE = re.compile(r"^include(if\..*)?\.path$", re.I)


class UnsafeRepo(Exception):
    """The repository's config includes other files: nbagent does not run git there."""


def _env() -> dict[str, str]:
    env = dict(os.environ)
    for name in ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_CONFIG", "GIT_EXEC_PATH"):
        env.pop(name, None)
    env.update(SAFE_ENV)
    return env


def _base(root: Path) -> list[str]:
    out = ["git", "--no-pager", "-C", str(root)]
    for item in SAFE_CONFIG:
        out += ["-c", item]
    return out


def local_config(root: Path) -> list[tuple[str, str]] | None:
    """The (key, value) pairs of the repository's own config (local and worktree scopes), read without
    following includes; None when ``root`` is in no repository or git is unavailable."""
    try:
        proc = subprocess.run(
            [*_base(root), "config", "--no-includes", "--null", "--list", "--show-scope"],
            capture_output=True,
            timeout=TIMEOUT,
            check=False,
            env=_env(),
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if proc.returncode != 0:
        return None
    pairs: list[tuple[str, str]] = []
    fields = proc.stdout.split(b"\0")
    for i in range(0, len(fields) - 1, 2):
        scope = os.fsdecode(fields[i])
        key, _, value = os.fsdecode(fields[i + 1]).partition("\n")
        if scope in ("local", "worktree"):
            pairs.append((key, value))
    return pairs


def neutralising_config(pairs: list[tuple[str, str]]) -> list[str]:
    """``-c`` items that switch off every program the given config names; raises ``UnsafeRepo`` when
    the config includes other files."""
    out: list[str] = []
    seen: set[tuple[str, str]] = set()
    for key, _value in pairs:
        if _INCLUDE.match(key):
            raise UnsafeRepo(f"the repository config has {key}")
        m = _DRIVER.match(key)
        if m is None:
            continue
        section, name = m.group(1).lower(), m.group(2)
        if (section, name) in seen:
            continue
        seen.add((section, name))
        if section == "filter":
            out += [f"filter.{name}.clean=", f"filter.{name}.smudge=", f"filter.{name}.process="]
            out.append(f"filter.{name}.required=false")
        elif section == "diff":
            out += [f"diff.{name}.textconv=", f"diff.{name}.command="]
        else:
            out.append(f"merge.{name}.driver=")
    return out


def safe_git_argv(root: Path, *args: str) -> list[str]:
    """The full argv of a git call that runs no program the repository controls; raises ``UnsafeRepo``."""
    argv = _base(root)
    pairs = local_config(root)
    for item in neutralising_config(pairs or []):
        argv += ["-c", item]
    if args and args[0] in DIFF_LIKE:
        return [*argv, args[0], "--no-ext-diff", "--no-textconv", *args[1:]]
    return [*argv, *args]


def run_git(root: Path, *args: str, timeout: float = TIMEOUT) -> subprocess.CompletedProcess[bytes] | None:
    """``git -C root args`` made safe (see the module docstring); None when git cannot run, times out,
    or the repository config includes other files."""
    try:
        argv = safe_git_argv(root, *args)
    except UnsafeRepo as exc:
        log.warning("not running git in %s: %s (nbagent runs git only where it can see the whole config)",
                    root, exc)  # fmt: skip
        return None
    try:
        return subprocess.run(
            argv, capture_output=True, timeout=timeout, check=False, env=_env(), stdin=subprocess.DEVNULL
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
