"""The shipped notebooks show what a reader would see: no builder's temp paths or loopback ports, no
headless-policy answers; and scripts/build-notebooks rebuilds them byte for byte."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(400)
REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))
LEFTOVERS = ("/tmp/", "/var/folders/", "127.0.0.1", "localhost:", "headless policy", str(REPO))


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.name)
def test_shipped_notebook_shows_nothing_of_its_build(notebook: Path) -> None:
    text = notebook.read_text(encoding="utf-8")
    left = [s for s in LEFTOVERS if s in text]
    assert not left, f"{notebook.name} shows {left}: rebuild it with scripts/build-notebooks"
    assert "nbagent-demo" in text  # it was executed: the demo model's turns are in it


def test_permission_prompts_in_shipped_notebooks_say_who_answered() -> None:
    text = (REPO / "notebooks" / "quickstart.ipynb").read_text(encoding="utf-8")
    assert "once (the demo's simulated user)" in text


def build(out: Path, notebook: Path) -> bytes:
    out.mkdir()
    done = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "build-notebooks"), "-o", str(out), str(notebook)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"},
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    return (out / notebook.name).read_bytes()


def test_rebuilding_a_notebook_gives_the_same_bytes(tmp_path: Path) -> None:
    notebook = REPO / "notebooks" / "quickstart.ipynb"
    first = build(tmp_path / "one", notebook)
    second = build(tmp_path / "two", notebook)
    assert first == second
    text = first.decode()
    assert not [s for s in LEFTOVERS if s in text]
    # the project shows as the sample project's own relative paths
    assert "wordcount/cli.py" in text
