"""Memory files: discovery from the git root down, CLAUDE.md fallback, nested files once, @imports."""

from __future__ import annotations

from pathlib import Path

import pytest

from nbagent.core.context.memory import NestedMemory, discover, render


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    (root / ".git").mkdir(parents=True)
    (root / "AGENTS.md").write_text("Root rule: use tabs.\n")
    (root / "CLAUDE.md").write_text("ignored, AGENTS.md wins\n")
    (root / "pkg").mkdir()
    (root / "pkg" / "CLAUDE.md").write_text("Pkg rule from CLAUDE.md.\n")
    (root / "pkg" / "sub").mkdir()
    (root / "pkg" / "sub" / "AGENTS.md").write_text("Sub rule.\n")
    (root / "pkg" / "sub" / "mod.py").write_text("x = 1\n")
    return root


def test_discovery_from_git_root_down_to_cwd(repo: Path) -> None:
    files = discover(repo / "pkg")
    assert [f.path for f in files] == [repo / "AGENTS.md", repo / "pkg" / "CLAUDE.md"]
    assert "ignored" not in render(files)
    assert "Root rule" in render(files) and "Pkg rule" in render(files)


def test_global_memory_file(repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "cfg"
    config.mkdir()
    (config / "AGENTS.md").write_text("Global: answer in English.\n")
    monkeypatch.setenv("NBAGENT_CONFIG_DIR", str(config))
    files = discover(repo)
    assert files[0].scope == "global" and "Global" in files[0].text


def test_nested_memory_loads_once_when_reading_under_it(repo: Path) -> None:
    nested = NestedMemory(repo)
    first = nested.on_read(repo / "pkg" / "sub" / "mod.py")
    assert [f.path.name for f in first] == ["CLAUDE.md", "AGENTS.md"]
    assert nested.on_read(repo / "pkg" / "sub" / "mod.py") == []
    assert nested.on_read(repo / "README.md") == []
    assert nested.on_read(Path("/etc/hostname")) == []


def test_imports_are_inlined_once_and_not_from_code_blocks(tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "style.md").write_text("Style: short functions. See @../AGENTS.md again.\n")
    (tmp_path / "AGENTS.md").write_text("Read @docs/style.md first.\n```\n@docs/secret.md\n```\n")
    (tmp_path / "docs" / "secret.md").write_text("SHOULD NOT APPEAR\n")
    (text,) = [f.text for f in discover(tmp_path)]
    assert "Style: short functions." in text
    assert text.count("Style: short functions.") == 1
    assert "SHOULD NOT APPEAR" not in text
