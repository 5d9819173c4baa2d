"""An OS-level sandbox for shell commands on Linux, with bubblewrap.

Inside: the project and a temporary folder are writable, everything else is read-only, secrets
(``~/.ssh``, ``~/.aws``, ...) are hidden behind empty folders, nbagent's own configuration inside the
project is read-only, and the network is off unless the config allows it. Configured in
``nbagent.json``::

    "sandbox": {"enabled": true, "network": false, "on_failure": "fail",
                "writable": ["~/.cache/pip"], "hidden": ["~/.config/secret-tool"]}
"""

from __future__ import annotations

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
from nbagent.permissions.config import model_check, validate_section

# Hidden from sandboxed commands (relative to the home folder).
HIDDEN_HOME = (
    ".ssh", ".aws", ".gnupg", ".azure", ".kube", ".docker", ".config/gcloud", ".config/gh", ".config/nbagent",
    ".netrc", ".git-credentials", ".npmrc", ".pypirc", ".pgpass",
)  # fmt: skip
# Read-only even inside the project: what decides what runs or what is allowed.
READONLY_IN_PROJECT = (
    ".git/hooks",
    "nbagent.json",
    ".nbagent",
    ".claude/settings.json",
    ".claude/settings.local.json",
)


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


@lru_cache(maxsize=1)
def _probe() -> str | None:
    if platform.system() != "Linux":
        return f"bubblewrap sandboxing needs Linux (this is {platform.system()})"
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        return "bubblewrap (bwrap) is not installed; install it (e.g. apt-get install bubblewrap)"
    try:
        probe = [bwrap, "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--unshare-net", "--unshare-pid",
                 "--die-with-parent", "--", "true"]  # fmt: skip
        proc = subprocess.run(
            probe,
            capture_output=True,
            text=True,
            timeout=20,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"bubblewrap failed to start: {exc}"
    if proc.returncode != 0:
        detail = (proc.stderr or proc.stdout).strip().splitlines()
        return "bubblewrap cannot create a sandbox here: " + (
            detail[-1] if detail else f"exit {proc.returncode}"
        )
    return None


def sandbox_available() -> str | None:
    """None when bubblewrap can sandbox commands here, else the reason it cannot."""
    return _probe()


def _expand(path: str, root: Path) -> Path:
    p = Path(os.path.expanduser(path))
    return p if p.is_absolute() else root / p


def sandbox_argv(argv: list[str], root: Path, cfg: SandboxConfig, tmpdir: Path) -> list[str]:
    """``argv`` wrapped in bubblewrap: root and ``tmpdir`` writable, the rest read-only, secrets hidden."""
    bwrap = shutil.which("bwrap") or "bwrap"
    root = Path(os.path.realpath(root))
    tmpdir = Path(os.path.realpath(tmpdir))
    out = [bwrap, "--die-with-parent", "--new-session", "--unshare-pid", "--unshare-ipc", "--unshare-uts"]
    if not cfg.network:
        out.append("--unshare-net")
    out += ["--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc"]
    writable = [root, tmpdir, *(_expand(p, root) for p in cfg.writable)]
    for path in writable:
        if path.exists():
            out += ["--bind", str(path), str(path)]
    for rel in READONLY_IN_PROJECT:
        path = root / rel
        if path.exists():
            out += ["--ro-bind", str(path), str(path)]
    home = Path(os.path.expanduser("~"))
    hidden = [home / h for h in HIDDEN_HOME] + [_expand(p, root) for p in cfg.hidden]
    for path in hidden:
        if path.is_dir():
            out += ["--tmpfs", str(path)]
        elif path.exists():
            out += ["--ro-bind", "/dev/null", str(path)]
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
