"""Permissions: rules as data (last match wins), shell command analysis, modes, saved approvals,
the bubblewrap sandbox and ``nbagent permission check``.

Names load on first use, so ``from nbagent.permissions.check import add_cli`` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "Analysis": "bash",
    "FoundCommand": "bash",
    "Redirect": "bash",
    "analyze": "bash",
    "RulePolicy": "policy",
    "add_cli": "check",
    "permission_check": "check",
    "SandboxConfig": "sandbox",
    "SandboxUnavailable": "sandbox",
    "sandbox_argv": "sandbox",
    "sandbox_available": "sandbox",
    "sandbox_config": "sandbox",
    "wrap_command": "sandbox",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'nbagent.permissions' has no attribute {name!r}")
    return getattr(importlib.import_module(f"nbagent.permissions.{module}"), name)
