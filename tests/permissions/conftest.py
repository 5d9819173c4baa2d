from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from nbagent.core.config import Config, Mode
from nbagent.core.permission import Decision
from nbagent.permissions.policy import RulePolicy
from nbagent.tools.base import PermissionQuery


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fake home folder with the secrets a real one has."""
    h = tmp_path / "home"
    (h / ".ssh").mkdir(parents=True)
    (h / ".ssh" / "id_rsa").write_text("PRIVATE KEY\n")
    (h / ".aws").mkdir()
    (h / ".aws" / "credentials").write_text("[default]\n")
    (h / "notes.txt").write_text("notes\n")
    monkeypatch.setenv("HOME", str(h))
    return h


@pytest.fixture
def project(tmp_path: Path, home: Path) -> Path:
    root = tmp_path / "proj"
    (root / "src" / "pkg").mkdir(parents=True)
    (root / "src" / "pkg" / "a.py").write_text("print('a')\n")
    (root / "README.md").write_text("# demo\n")
    (root / ".env").write_text("TOKEN=secret\n")
    (root / ".env.example").write_text("TOKEN=\n")
    (root / ".git" / "hooks").mkdir(parents=True)
    (root / ".git" / "config").write_text("[core]\n")
    return root


Check = Callable[..., Decision]


@pytest.fixture
def decide(project: Path) -> Callable[..., Check]:
    """``decide(permission={...})(key, input)`` -> Decision, with a fresh policy for that config."""

    def make(permission: dict[str, Any] | None = None, *, mode: Mode = "default", agent: str | None = None,
             agents: dict[str, Any] | None = None) -> Check:  # fmt: skip
        config = Config.model_validate({"permission": permission or {}, "agent": agents or {}})
        policy = RulePolicy(project, config, agent=agent, mode=mode)

        def check(key: str, *inputs: str) -> Decision:
            return policy.evaluate(PermissionQuery(permission=key, patterns=list(inputs)))

        check.policy = policy  # type: ignore[attr-defined]
        return check

    return make
