"""Fixtures shared by the extension tests (agents, skills)."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A home folder whose ``.config/nbagent`` is the user's nbagent configuration."""
    h = tmp_path / "home"
    h.mkdir()
    monkeypatch.setenv("NBAGENT_CONFIG_DIR", str(h / ".config" / "nbagent"))
    return h
