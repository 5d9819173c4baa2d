"""An OS-level sandbox for shell commands on Linux, with bubblewrap (``bwrap``).

Configured in ``nbagent.json``::

    "sandbox": {"enabled": true, "network": false, "on_failure": "fail",
                "writable": ["~/.cache/pip"], "hidden": ["~/.config/secret-tool"]}

What a sandboxed command gets (the guarantees):

- **No privileges.** ``--cap-drop ALL`` and, where the kernel allows it (probed once), a user namespace
  in which the command runs as an unprivileged uid (``nobody``/65534 when nbagent runs as root, the
  real uid otherwise). Mounts are locked: it cannot remount ``/`` read-write nor unmount a hidden
  folder. Without user namespaces it still has no capabilities (a debug log says which mode is used).
  bubblewrap also sets ``no_new_privs``: setuid programs give nothing back.
- **Its own session and life.** ``--new-session`` (no terminal injection), ``--die-with-parent``, own
  pid, ipc and uts namespaces: when the command ends or is killed, everything it started dies with it.
- **Files.** The whole system is read-only; the project and a per-session ``TMPDIR`` (private, 0700,
  under nbagent's cache folder) are writable, plus ``sandbox.writable``. ``/tmp`` and ``/run`` are
  fresh empty tmpfs (``/var/run`` is normally a link to ``/run``), so host Unix sockets there (X11,
  Docker, D-Bus, ssh-agent, systemd) are unreachable. Secrets of the home folder (``~/.ssh``,
  ``~/.aws``, ...), nbagent's data folder (every session's transcript), ``/etc/shadow`` and
  ``sandbox.hidden`` are hidden behind empty folders or ``/dev/null``.
- **The project's protected paths.** What decides what runs or what is allowed cannot be changed:
  ``.git/config``, ``.git/hooks``, a ``.git`` file (worktree pointer), ``.nbagent/``, ``nbagent.json``
  and ``.claude/`` are bound read-only; the ``.env`` family (``.env``, ``.env.local``, ``.envrc``, ...,
  but not ``.env.example``/``.sample``/``.template``) is hidden (``/dev/null`` over files, an empty
  read-only tmpfs over folders), in the project root and a bounded walk below it.
  A bind mount needs an existing mount point, and creating one would leave an empty file in the
  user's project (an empty ``nbagent.json`` is an invalid config), so paths that do not exist yet are
  handled in two ways: ``.nbagent/`` (nbagent's own) and ``.git/hooks`` (git's own, when ``.git`` is a
  folder) are created beforehand and then bound read-only; for the rest (``nbagent.json``,
  ``.claude/``, the ``.env`` family, a new ``.git``) ``sandbox_guard.ProtectedGuard`` compares them
  with their state before the command and, once the command has ended, moves what it created to a
  private quarantine folder and says so to the model and the user (a new ``.git`` from ``git init``
  stays, only its non-sample hooks and a config with keys outside a safe list are moved).
- **Environment.** The command's environment is the one the shell tool gives it, already without
  provider keys and secret-named variables (``nbagent.tools.shell_env``); ``TMPDIR`` is the session's.
- **Network.** Off (``--unshare-net``: no interfaces but loopback, no abstract Unix sockets of the
  host) unless ``"network": true``.

Limits (what it does not do):

- With ``"network": true`` the host's network namespace is shared: abstract Unix sockets (``@...``,
  e.g. some D-Bus and X11 setups) and every TCP/UDP service the host can reach stay reachable.
- Files the command can read: everything of the system not listed above, as the uid it runs as. When
  nbagent runs as root the sandboxed uid is still root on the host for file permissions (a user
  namespace maps it), so root-only readable files outside the hidden list are readable, and files of
  other users are not writable (no capabilities).
- A protected path the command creates exists until the command ends (then it is quarantined); a
  long background command's creation is caught when it ends or is killed.
- The ``.env`` walk stops after a few thousand folders and skips dependency/build folders.
- Processes outside the sandbox (nbagent itself, the user's editor, git run by the user) still read
  what the command wrote in the project; nbagent's own git calls run no repository program
  (``nbagent.store.safe_git``).
"""

from __future__ import annotations

import logging
import os
import platform
import shutil
import subprocess
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from nbagent.core.config import Config
from nbagent.core.errors import NbagentError
from nbagent.core.private import cache_dir, data_dir
from nbagent.permissions.config import model_check, validate_section

log = logging.getLogger(__name__)

# Hidden from sandboxed commands (relative to the home folder).
HIDDEN_HOME = (
    ".ssh", ".aws", ".gnupg", ".azure", ".kube", ".docker", ".config/gcloud", ".config/gh", ".config/nbagent",
    ".netrc", ".git-credentials", ".npmrc", ".pypirc", ".pgpass", ".local/share/nbagent",
)  # fmt: skip
HIDDEN_SYSTEM = ("/etc/shadow", "/etc/gshadow", "/etc/shadow-", "/etc/gshadow-")
# Read-only inside the project (when they exist): what decides what runs or what is allowed.
READONLY_IN_PROJECT = (".git/config", ".git/hooks", ".nbagent", "nbagent.json", ".claude")
# Created beforehand when missing (nbagent's own folder; git's own hooks folder) so they can be bound.
PRECREATE = (".nbagent",)
ENV_TEMPLATES = frozenset({".env.example", ".env.sample", ".env.template"})
ENV_WALK_DEPTH = 3
ENV_WALK_DIRS = 3000
SKIP_DIRS = frozenset(
    {".git", "node_modules", ".venv", "venv", "__pycache__", ".tox", ".nox", ".mypy_cache", ".ruff_cache",
     ".pytest_cache", "site-packages", "dist", "build", "target", ".nbagent"}
)  # fmt: skip
NOBODY = 65534


class SandboxConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(False, description="Run bash commands inside bubblewrap.")
    network: bool = Field(False, description="Allow network access inside the sandbox.")
    on_failure: Literal["fail", "warn"] = Field(
        "fail", description="When the sandbox cannot start: refuse to run (fail) or run unsandboxed (warn)."
    )
    writable: list[str] = Field(
        default_factory=list, description="Extra writable paths (absolute, ~ or relative)."
    )
    hidden: list[str] = Field(default_factory=list, description="Extra paths hidden from commands.")


class SandboxUnavailable(NbagentError):
    """The sandbox is enabled but cannot start here."""


def sandbox_config(root: Path, config: Config) -> SandboxConfig:
    return validate_section(root, config.sandbox, ("sandbox",), model_check(SandboxConfig, "sandbox"))


def _run_probe(argv: list[str]) -> str | None:
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=20, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"bubblewrap failed to start: {exc}"
    if proc.returncode != 0:
        detail = (proc.stderr or proc.stdout).strip().splitlines()
        return detail[-1] if detail else f"exit {proc.returncode}"
    return None


@lru_cache(maxsize=1)
def _probe() -> str | None:
    if platform.system() != "Linux":
        return f"bubblewrap sandboxing needs Linux (this is {platform.system()})"
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        return "bubblewrap (bwrap) is not installed; install it (e.g. apt-get install bubblewrap)"
    error = _run_probe(
        [bwrap, "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--unshare-net", "--unshare-pid",
         "--die-with-parent", "--cap-drop", "ALL", "--", "true"]
    )  # fmt: skip
    if error is not None:
        return (
            error if error.startswith("bubblewrap") else "bubblewrap cannot create a sandbox here: " + error
        )
    return None


def sandbox_available() -> str | None:
    """None when bubblewrap can sandbox commands here, else the reason it cannot."""
    return _probe()


def sandbox_ids() -> tuple[int, int]:
    """The uid and gid commands run as inside the user namespace."""
    if os.getuid() == 0:
        return NOBODY, NOBODY
    return os.getuid(), os.getgid()


@lru_cache(maxsize=1)
def userns_available() -> bool:
    """Can bubblewrap create a user namespace here (mapping to ``sandbox_ids``)?"""
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        return False
    uid, gid = sandbox_ids()
    error = _run_probe(
        [bwrap, "--unshare-user", "--uid", str(uid), "--gid", str(gid), "--disable-userns", "--ro-bind", "/", "/",
         "--cap-drop", "ALL", "--", "true"]
    )  # fmt: skip
    if error is None:
        log.debug("sandbox: user namespace, commands run as uid %d without capabilities", uid)
        return True
    log.debug("sandbox: no user namespace here (%s); commands keep their uid, without capabilities", error)
    return False


def _expand(path: str, root: Path) -> Path:
    p = Path(os.path.expanduser(path))
    return p if p.is_absolute() else root / p


def is_env_name(name: str) -> bool:
    """A name of the ``.env`` family (hidden), templates excepted."""
    return name.startswith(".env") and name not in ENV_TEMPLATES


def env_files(root: Path) -> list[Path]:
    """``.env``-family files and folders in the project: the root and a bounded walk below it."""
    found: list[Path] = []
    queue: list[tuple[Path, int]] = [(root, 0)]
    visited = 0
    while queue and visited < ENV_WALK_DIRS:
        folder, depth = queue.pop(0)
        visited += 1
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue
        for entry in entries:
            if is_env_name(entry.name):
                found.append(Path(entry.path))
            elif (
                depth < ENV_WALK_DEPTH and entry.name not in SKIP_DIRS and entry.is_dir(follow_symlinks=False)
            ):
                queue.append((Path(entry.path), depth + 1))
    return found


def prepare_project(root: Path) -> None:
    """Create the protected folders that nbagent (``.nbagent``) or git (``.git/hooks``) own, so they
    can be bound read-only before a command could create them."""
    targets = [root / name for name in PRECREATE]
    if (root / ".git").is_dir() and not (root / ".git").is_symlink():
        targets.append(root / ".git" / "hooks")
    for path in targets:
        if not os.path.lexists(path):
            try:
                path.mkdir()
            except OSError as exc:
                log.debug("sandbox: cannot create %s: %s", path, exc)


def _hide(path: Path) -> list[str]:
    if path.is_dir():
        return ["--tmpfs", str(path), "--remount-ro", str(path)]
    if path.exists():
        return ["--ro-bind", "/dev/null", str(path)]
    return []


def _system_args(cfg: SandboxConfig) -> list[str]:
    out = ["--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--perms", "1777", "--tmpfs", "/tmp"]
    for run in ("/run", "/var/run"):
        if os.path.isdir(run) and not os.path.islink(run):
            out += ["--tmpfs", run]
    if cfg.network:
        # /etc/resolv.conf is often a link into /run (systemd-resolved): keep name resolution working.
        resolv = os.path.realpath("/etc/resolv.conf")
        if resolv.startswith(("/run/", "/tmp/", "/var/run/")) and os.path.isfile(resolv):
            out += ["--ro-bind", resolv, resolv]
    return out


def sandbox_argv(argv: list[str], root: Path, cfg: SandboxConfig, tmpdir: Path) -> list[str]:
    """``argv`` wrapped in bubblewrap (see the module docstring). Creates ``.nbagent/`` (and
    ``.git/hooks`` in a git folder) in ``root`` when missing."""
    bwrap = shutil.which("bwrap") or "bwrap"
    root = Path(os.path.realpath(root))
    tmpdir = Path(os.path.realpath(tmpdir))
    prepare_project(root)
    out = [bwrap, "--die-with-parent", "--new-session", "--unshare-pid", "--unshare-ipc", "--unshare-uts",
           "--unshare-cgroup-try", "--cap-drop", "ALL"]  # fmt: skip
    if userns_available():
        uid, gid = sandbox_ids()
        out += ["--unshare-user", "--uid", str(uid), "--gid", str(gid), "--disable-userns"]
    if not cfg.network:
        out.append("--unshare-net")
    out += _system_args(cfg)
    # nbagent's cache holds every session's spilled (unscrubbed) outputs: hidden, and only this
    # session's TMPDIR inside it is bound back below
    cache = Path(os.path.realpath(cache_dir()))
    if cache.is_dir() and not (root == cache or cache in root.parents):
        out += ["--tmpfs", str(cache)]  # empty; writable only so that bwrap can make the mount point
    for path in [root, tmpdir, *(_expand(p, root) for p in cfg.writable)]:
        if path.exists():
            out += ["--bind", str(path), str(path)]
    for rel in READONLY_IN_PROJECT:
        path = root / rel
        if os.path.lexists(path):
            out += ["--ro-bind", str(path), str(path)]
    if (root / ".git").is_file():  # a worktree's pointer to its git folder
        out += ["--ro-bind", str(root / ".git"), str(root / ".git")]
    for path in env_files(root):
        out += _hide(path)
    home = Path(os.path.expanduser("~"))
    hidden = [home / h for h in HIDDEN_HOME] + [data_dir()] + [Path(p) for p in HIDDEN_SYSTEM]
    for path in hidden + [_expand(p, root) for p in cfg.hidden]:
        if path in (root, tmpdir):
            continue
        out += _hide(path)
    out += ["--setenv", "TMPDIR", str(tmpdir), "--chdir", str(root), "--", *argv]
    return out


def wrap_command(
    argv: list[str], root: Path, cfg: SandboxConfig, tmpdir: Path
) -> tuple[list[str], str | None]:
    """What to run and a warning for the user: raises ``SandboxUnavailable`` when it must not run."""
    if not cfg.enabled:
        return argv, None
    reason = sandbox_available()
    if reason is None:
        return sandbox_argv(argv, root, cfg, tmpdir), None
    if cfg.on_failure == "warn":
        return (
            argv,
            f"The sandbox could not start ({reason}); the command ran without it (sandbox.on_failure: warn).",
        )
    raise SandboxUnavailable(
        f"The sandbox could not start: {reason}.",
        'Fix it, or set "sandbox": {"on_failure": "warn"} (run unsandboxed) or {"enabled": false} in nbagent.json.',
    )
