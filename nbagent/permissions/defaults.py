"""The rules a careful user would choose, and the paths that always ask.

Reading inside the project is allowed; edits, shell commands (except the built-in read-only set,
see ``programs.py``), web fetches and kernel code ask; paths outside the project ask
(``external_directory``). Protected paths ask even when a broader rule allows them; only a rule that
names the protected location itself (``"read": {".env": "allow"}``) or an explicit deny decides them.
"""

from __future__ import annotations

import os
import re
from functools import lru_cache
from pathlib import Path

from nbagent.permissions.patterns import PathPattern

DEFAULT_PERMISSION: dict[str, str] = {
    "*": "ask",
    "read": "allow",
    "glob": "allow",
    "grep": "allow",
    "list": "allow",
    "inspect": "allow",
    "todowrite": "allow",
    "todoread": "allow",
    "task": "allow",
    "skill": "allow",
    "edit": "ask",
    "bash": "ask",
    "webfetch": "ask",
    "websearch": "ask",
    "python": "ask",
    "external_directory": "ask",
    "doom_loop": "ask",
}

# Rule keys that are other names for "edit": the tools that change files.
KEY_ALIASES = {
    "write": "edit",
    "apply_patch": "edit",
    "notebook_edit": "edit",
    "multiedit": "edit",
    "patch": "edit",
}

# Keys whose patterns are paths.
PATH_KEYS = frozenset({"read", "edit", "glob", "grep", "list", "external_directory"})

# Secrets: reading or writing them asks.
ENV_EXAMPLES = frozenset({".env.example", ".env.sample", ".env.template"})
SECRET_NAMES = (
    ".env",
    ".env.*",
    "*.env",
    "id_rsa*",
    "id_dsa*",
    "id_ecdsa*",
    "id_ed25519*",
    "*.pem",
    "*.key",
    "*.p12",
    "*.pfx",
    "credentials",
    "credentials.json",
    ".netrc",
    ".pgpass",
    ".git-credentials",
    ".npmrc",
    ".pypirc",
)
SECRET_HOME = (
    ".ssh",
    ".aws",
    ".gnupg",
    ".azure",
    ".kube",
    ".docker/config.json",
    ".config/gcloud",
    ".config/gh/hosts.yml",
    ".netrc",
    ".git-credentials",
)
# Configuration that changes what runs or what is allowed: writing it asks (reading is fine).
CONFIG_IN_PROJECT = (
    "nbagent.json",
    ".nbagent",
    ".claude",
    ".opencode",
    "opencode.json",
    ".mcp.json",
    ".envrc",
    ".vscode/tasks.json",
    ".vscode/settings.json",
)
CONFIG_HOME = (
    ".config/nbagent",
    ".claude/settings.json",
    ".bashrc",
    ".bash_profile",
    ".profile",
    ".zshrc",
    ".zprofile",
    ".gitconfig",
)

_SECRET_NAME_RE = re.compile("|".join("(?:" + re.escape(n).replace(r"\*", ".*") + ")" for n in SECRET_NAMES))


def _home() -> str:
    return os.environ.get("HOME") or os.path.expanduser("~")


@lru_cache(maxsize=64)
def _config_patterns(root: str) -> tuple[PathPattern, ...]:
    return tuple(PathPattern(p, Path(root)) for p in CONFIG_IN_PROJECT)


def _under(path: str, base: str) -> bool:
    return path == base or path.startswith(base.rstrip("/") + "/")


def secret_kind(absolute: str) -> str | None:
    """Why ``absolute`` (normalised) holds secrets, or None."""
    name = absolute.rsplit("/", 1)[-1]
    if name not in ENV_EXAMPLES and _SECRET_NAME_RE.fullmatch(name):
        return f"{name} may hold secrets"
    home = _home()
    for sub in SECRET_HOME:
        if _under(absolute, f"{home}/{sub}"):
            return f"~/{sub} holds secrets"
    # .git/config and credentials inside any repository's .git
    if "/.git/" in absolute and name in ("credentials", ".git-credentials"):
        return f"{name} holds secrets"
    return None


def config_kind(absolute: str, rel: str | None, root: str) -> str | None:
    """Why writing ``absolute`` would change what runs or what is allowed, or None."""
    home = _home()
    for sub in CONFIG_HOME:
        if _under(absolute, f"{home}/{sub}"):
            return f"~/{sub} is configuration"
    if "/.git/" in absolute + "/":
        return "git's own files (.git/config, hooks, a .git file's gitdir) decide which programs git runs"
    if rel is not None:
        for pat in _config_patterns(root):
            if pat.match(rel, absolute):
                return f"{rel} is nbagent or agent configuration"
    return None
