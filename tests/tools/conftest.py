"""Fixtures shared by the tool tests."""

from __future__ import annotations

import shutil

import pytest

from nbagent.tools.search import rg_path
from tests.conftest import require


@pytest.fixture(params=["rg", "python"])
def engine(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> str:
    """Run each test once with ripgrep and once with the fallback (PATH without rg)."""
    if request.param == "rg":
        require(shutil.which("rg") is not None, "ripgrep")
    else:
        monkeypatch.setenv("PATH", str(tmp_path_factory.mktemp("empty-path")))
        assert rg_path() is None
    return str(request.param)
