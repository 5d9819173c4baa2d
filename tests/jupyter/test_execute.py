"""`nbagent execute`: headless execution with nbclient, metadata, replay offline, secrets, nbconvert, quickstart."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from nbagent.providers.scripted import ListScript, Reply, ScriptedModelServer, ToolCallSpec
from nbagent.store.notebook import TURN_MIME
from tests.conftest import Serve

pytestmark = pytest.mark.timeout(300)
REPO = Path(__file__).resolve().parents[2]
SECRET = "sk-test-SECRETSECRETSECRET1234"


def run_execute(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full = dict(os.environ)
    full["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{full.get('PATH', '')}"
    full.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "nbagent", "execute", *args],
        capture_output=True,
        text=True,
        env=full,
        timeout=240,
        check=False,
    )


def make_notebook(path: Path) -> None:
    nb = nbformat.v4.new_notebook()
    sources = [
        ("load", "%load_ext nbagent"),
        ("ask1", "%%agent\nWhat is in data.txt?"),
        ("ask2", "%%agent\nAnd the environment?"),
    ]
    for cid, src in sources:
        cell = nbformat.v4.new_code_cell(src)
        cell["id"] = cid
        nb.cells.append(cell)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, str(path))


def script() -> ListScript:
    return ListScript(
        [
            Reply(text="Reading.", tool_calls=[ToolCallSpec("bash", {"command": "cat data.txt"})]),
            Reply(text="It says alpha."),
            Reply(
                text="Looking.",
                tool_calls=[ToolCallSpec("bash", {"command": "env | grep -E '^(MY_DB|OPENAI)' | sort"})],
            ),
            Reply(text="That is the environment."),
        ]
    )


def model_env(server: ScriptedModelServer) -> dict[str, str]:
    return {
        "NBAGENT_MODEL": "openai/scripted",
        "NBAGENT_API_BASE": server.openai_base,
        "OPENAI_API_KEY": SECRET,
        "MY_DB_PASSWORD": "hunter2-hunter2",
    }


def test_execute_then_replay_offline(tmp_path: Path, serve: Serve) -> None:
    (tmp_path / "data.txt").write_text("alpha\n")
    nb_path = tmp_path / "nb.ipynb"
    make_notebook(nb_path)
    server = serve(script())
    done = run_execute(str(nb_path), "--yes", env=model_env(server))
    assert done.returncode == 0, done.stderr[-3000:]
    assert "executed nb.ipynb: 2 agent turns in 1 session(s)" in done.stdout

    text = nb_path.read_text()
    nb = nbformat.read(str(nb_path), as_version=4)
    nbformat.validate(nb)
    meta = nb.metadata["nbagent"]
    assert meta["schema_version"] == 1 and meta["sessions"][0]["turns"] == 2
    assert meta["sessions"][0]["cells"] == ["ask1", "ask2"]
    outputs = nb.cells[1].outputs
    assert len(outputs) == 1 and set(outputs[0].data) == {"text/html", "text/plain", TURN_MIME}
    assert "It says alpha." in outputs[0].data["text/plain"]
    # secrets: neither the key litellm sent nor secret-looking variables dumped by `env`
    for secret in (SECRET, "hunter2-hunter2"):
        assert secret not in text
    # the command's environment never had them: secret-named variables and provider keys are removed
    assert "MY_DB_PASSWORD=" not in text and "OPENAI_API_KEY=" not in text

    server.stop()  # offline from here on: replay calls no model
    requests = len(server.requests)
    replayed = run_execute(str(nb_path), "--replay", "--yes", "--strict", env=model_env(server))
    assert replayed.returncode == 0, replayed.stdout + replayed.stderr[-3000:]
    assert "2 agent turns in 1 session(s), 0 divergent tool results" in replayed.stdout
    assert len(server.requests) == requests

    (tmp_path / "data.txt").write_text("beta\n")
    diverged = run_execute(str(nb_path), "--replay", "--yes", "--strict", env=model_env(server))
    assert diverged.returncode == 4, diverged.stdout + diverged.stderr[-2000:]
    assert "recorded: completed: alpha" in diverged.stdout and "now:      completed: beta" in diverged.stdout
    nb2 = nbformat.read(str(nb_path), as_version=4)
    assert nb2.metadata["nbagent"]["sessions"][0]["divergent_results"] >= 1


def test_nbconvert_html_shows_the_transcript(tmp_path: Path, serve: Serve) -> None:
    nbconvert = pytest.importorskip("nbconvert")
    (tmp_path / "data.txt").write_text("alpha\n")
    nb_path = tmp_path / "nb.ipynb"
    make_notebook(nb_path)
    server = serve(script())
    assert run_execute(str(nb_path), "--yes", env=model_env(server)).returncode == 0
    body, _ = nbconvert.HTMLExporter().from_filename(str(nb_path))
    assert "It says alpha." in body and "cat data.txt" in body
    assert SECRET not in body


def test_headless_denies_prompts_without_yes(tmp_path: Path, serve: Serve) -> None:
    nb_path = tmp_path / "nb.ipynb"
    make_notebook(nb_path)
    server = serve(
        ListScript(
            [
                Reply(tool_calls=[ToolCallSpec("bash", {"command": "touch made.txt"})]),
                Reply(text="Could not."),
                Reply(text="The second cell needs no tool."),  # the notebook's second %%agent cell
            ]
        )
    )
    done = run_execute(str(nb_path), env=model_env(server))
    assert done.returncode == 0
    plain = nbformat.read(str(nb_path), as_version=4).cells[1].outputs[0].data["text/plain"]
    assert "→ reject (headless policy: deny)" in plain
    assert not (tmp_path / "made.txt").exists()


def test_quickstart_executes_and_replays(tmp_path: Path) -> None:
    nb_path = tmp_path / "quickstart.ipynb"
    shutil.copy(REPO / "notebooks" / "quickstart.ipynb", nb_path)
    done = run_execute(str(nb_path), "--yes")
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    nb = nbformat.read(str(nb_path), as_version=4)
    nbformat.validate(nb)
    cells = {c.id: c for c in nb.cells}
    data_turn = cells["agent-data"].outputs[0].data
    assert "inspect sales" in data_turn["text/plain"] and "pandas.Series" in data_turn["text/plain"]
    code_turn = json.dumps(cells["agent-code"].outputs[0].data[TURN_MIME])
    assert "passed" in code_turn or "OK" in code_turn  # the sample repo's tests ran and passed
    replayed = run_execute(str(nb_path), "--replay", "--yes", "--strict")
    assert replayed.returncode == 0, replayed.stdout + replayed.stderr[-3000:]
    assert "0 divergent tool results" in replayed.stdout


@pytest.mark.parametrize("notebook", sorted((REPO / "notebooks").glob("*.ipynb")), ids=lambda p: p.name)
def test_every_shipped_notebook_executes_headless_and_replays(tmp_path: Path, notebook: Path) -> None:
    nb_path = tmp_path / notebook.name
    shutil.copy(notebook, nb_path)
    done = run_execute(str(nb_path), "--yes")
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    nbformat.validate(nbformat.read(str(nb_path), as_version=4))
    replayed = run_execute(str(nb_path), "--replay", "--yes", "--strict")
    assert replayed.returncode == 0, replayed.stdout + replayed.stderr[-3000:]
