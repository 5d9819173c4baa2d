"""The agent works on its own notebook, headless: ``nbagent execute`` is the front-end.

A real kernel, a real nbclient client serving the live-document protocol, the scripted model over HTTP.
The agent reads the failing cell's error, fixes the cell in place, inserts a plotting cell, runs both;
the executed notebook holds the fixed cell with its new outputs, the figure, the provenance; the model
got the figure as an image. A replay of the saved notebook reports divergence per cell output.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import nbformat
import pytest

from nbagent.providers.scripted import ListScript, Reply, ToolCallSpec
from nbagent.providers.scripted.script import OnToolResults
from tests.conftest import Serve
from tests.jupyter.test_execute import model_env, run_execute

pytestmark = pytest.mark.timeout(300)

BROKEN = "total = values.sum() / count\nprint('mean', total)"
FIXED = "total = values.sum() / len(values)\nprint('mean', total)"
PLOT = "import matplotlib.pyplot as plt\nplt.plot(values)\nplt.title('values')"


def make_notebook(path: Path) -> None:
    nb = nbformat.v4.new_notebook()
    cells = [
        ("load", "%load_ext nbagent"),
        ("data", "import numpy as np\nvalues = np.arange(5)"),
        ("ask", "%%agent\nfix the failing cell and re-run the analysis"),
        ("bad", BROKEN),
    ]
    for cid, source in cells:
        cell = nbformat.v4.new_code_cell(source)
        cell["id"] = cid
        nb.cells.append(cell)
    # as saved after the user ran it: the error is in the cell's outputs
    nb.cells[3]["execution_count"] = 3
    nb.cells[3]["outputs"] = [
        nbformat.v4.new_output(
            "error", ename="NameError", evalue="name 'count' is not defined", traceback=["NameError: count"]
        )
    ]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, str(path))


def fix_script(seen: dict[str, Any], notebook: str = "nb.ipynb") -> ListScript:
    """The fix flow's model (also the browser tests'): read ``notebook``, replace the failing cell ``bad``,
    insert a plot after it, run both, answer; ``seen`` keeps the tools' results."""

    def after_read(results: list[str]) -> Reply:
        seen["read"] = results[-1]
        return Reply(
            text="The cell divides by an undefined name.",
            tool_calls=[
                ToolCallSpec(
                    "notebook_edit", {"notebook_path": notebook, "cell_id": "bad", "new_source": FIXED}
                ),
                ToolCallSpec(
                    "notebook_edit",
                    {
                        "notebook_path": notebook,
                        "cell_id": "bad",
                        "new_source": PLOT,
                        "cell_type": "code",
                        "edit_mode": "insert",
                    },
                ),
            ],
        )

    def after_edit(results: list[str]) -> Reply:
        seen["edits"] = results
        found = re.search(r"cell_id: (\S+)", results[-1])
        assert found, results
        seen["new_id"] = found.group(1)
        return Reply(
            text="Re-running.",
            tool_calls=[
                ToolCallSpec("notebook_run", {"notebook_path": notebook, "cell_ids": ["bad", found.group(1)]})
            ],
        )

    def after_run(results: list[str]) -> Reply:
        seen["run"] = results[-1]
        return Reply(text="Fixed: the mean is 2.0 and the plot is updated.")

    return ListScript(
        [
            Reply(text="Reading the notebook.", tool_calls=[ToolCallSpec("read", {"file_path": notebook})]),
            OnToolResults(after_read),
            OnToolResults(after_edit),
            OnToolResults(after_run),
        ]
    )


def _cells(path: Path) -> dict[str, Any]:
    nb = nbformat.read(str(path), as_version=4)
    nbformat.validate(nb)
    return {c["id"]: c for c in nb.cells}


def _image_parts(body: dict[str, Any]) -> int:
    count = 0
    for message in body.get("messages") or []:
        content = message.get("content")
        if isinstance(content, list):
            count += sum(1 for part in content if isinstance(part, dict) and part.get("type") == "image_url")
    return count


def test_fix_the_failing_cell_and_rerun_headless(tmp_path: Path, serve: Serve) -> None:
    nb_path = tmp_path / "nb.ipynb"
    make_notebook(nb_path)
    seen: dict[str, Any] = {}
    server = serve(fix_script(seen))
    done = run_execute(str(nb_path), "--yes", env=model_env(server))
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]

    # the model read the live document: the error and the status of each cell
    assert "live document open in nbclient" in seen["read"]
    assert "NameError" in seen["read"]
    assert 'id="bad"' in seen["read"] and "ran in an earlier kernel" in seen["read"]
    assert 'id="data" type="code" execution_count=2' in seen["read"]  # ran in this kernel, unchanged
    assert "status" not in seen["read"].split('id="data"')[1].split(">")[0]
    assert "cell_id: " in seen["edits"][1]

    cells = _cells(nb_path)
    new_id = seen["new_id"]
    order = list(cells)
    assert order.index("bad") + 1 == order.index(new_id)  # inserted after the fixed cell
    bad, plot = cells["bad"], cells[new_id]
    assert bad.source == FIXED and plot.source == PLOT
    # provenance of the agent's changes
    assert bad.metadata["nbagent"]["action"] == "replace" and plot.metadata["nbagent"]["action"] == "insert"
    assert bad.metadata["nbagent"]["turn"].startswith("turn")
    # the run's outputs landed in the cells (nbclient ran `bad` again after the agent's cell: same output)
    assert any(o.get("output_type") == "stream" and "mean 2.0" in o.get("text", "") for o in bad.outputs)
    assert isinstance(bad.execution_count, int)
    assert plot.execution_count is not None
    assert any("image/png" in (o.get("data") or {}) for o in plot.outputs), plot.outputs
    # the inserted cell was the agent's to run: the execution loop did not run it (nbclient records the
    # cells it runs in the cell's metadata.execution; the agent's runs do not)
    assert "execution" not in plot.metadata and "execution" in bad.metadata

    # the model got the run back: the outputs, and the figure as an image
    assert "mean 2.0" in seen["run"] and 'status="ok"' in seen["run"]
    assert "image/png output attached" in seen["run"]
    last = server.requests[-1].body
    assert _image_parts(last) >= 1

    # a replay of the saved notebook drives the same tools offline: the inserted cell is updated in
    # place (not inserted twice) and the run is compared cell by cell
    server.stop()
    replayed = run_execute(str(nb_path), "--replay", "--yes")
    assert replayed.returncode == 0, replayed.stderr[-3000:]
    again = _cells(nb_path)
    assert len(again) == len(cells)
    assert again[new_id].source == PLOT
    record = next(
        json.loads(json.dumps(o["data"]["application/vnd.nbagent.turn+json"]))
        for o in again["ask"].outputs
        if "application/vnd.nbagent.turn+json" in (o.get("data") or {})
    )
    replay = record.get("replay") or {}
    assert replay.get("compared", 0) >= 4
    # the read differs (the notebook was fixed since the recording); the run's cells match
    divergent = replay.get("divergent") or []
    assert all(d.get("tool") != "notebook_run" for d in divergent), divergent

    # the data changes: the replayed run's outputs differ in the fixed cell, and only there
    nb = nbformat.read(str(nb_path), as_version=4)
    next(c for c in nb.cells if c.id == "data").source = "import numpy as np\nvalues = np.arange(7)"
    nbformat.write(nb, str(nb_path))
    diverged = run_execute(str(nb_path), "--replay", "--yes")
    assert diverged.returncode == 0, diverged.stderr[-3000:]
    assert "notebook_run cell bad" in diverged.stdout and "mean 3.0" in diverged.stdout
    assert f"notebook_run cell {new_id}" not in diverged.stdout


def test_without_a_front_end_new_cells_go_through_set_next_input(tmp_path: Path, serve: Serve) -> None:
    """A front-end that does not answer (VS Code, no extension): an insert becomes IPython's
    set_next_input, a replace is refused with the reason and what to do, a run uses the saved source
    and says where its outputs went; the file under the editor is never written."""
    from tests.jupyter.harness import Kernel, python_env

    nb_path = tmp_path / "nb.ipynb"
    make_notebook(nb_path)
    before = nb_path.read_text()
    seen: dict[str, Any] = {}

    def after_edits(results: list[str]) -> Reply:
        seen["edits"] = results
        return Reply(
            text="Running.",
            tool_calls=[ToolCallSpec("notebook_run", {"notebook_path": "nb.ipynb", "cell_ids": ["data"]})],
        )

    def after_run(results: list[str]) -> Reply:
        seen["run"] = results[-1]
        return Reply(text="Done.")

    server = serve(
        ListScript(
            [
                Reply(
                    text="Editing.",
                    tool_calls=[
                        ToolCallSpec(
                            "notebook_edit",
                            {
                                "notebook_path": "nb.ipynb",
                                "new_source": "x = 1",
                                "cell_type": "code",
                                "edit_mode": "insert",
                            },
                        ),
                        ToolCallSpec(
                            "notebook_edit",
                            {"notebook_path": "nb.ipynb", "cell_id": "bad", "new_source": FIXED},
                        ),
                    ],
                ),
                OnToolResults(after_edits),
                OnToolResults(after_run),
            ]
        )
    )
    env = python_env() | model_env(server) | {"NBAGENT_NOTEBOOK": str(nb_path), "NBAGENT_HEADLESS": "allow"}
    kernel = Kernel(tmp_path, env)
    try:
        assert kernel.run("%load_ext nbagent").status == "ok"
        ex = kernel.run("%%agent\nadd a cell and fix one", timeout=120, cell_id="ask")
    finally:
        kernel.close()
    payloads = (ex.reply or {}).get("content", {}).get("payload") or []
    assert [p["text"] for p in payloads if p.get("source") == "set_next_input"] == ["x = 1"]
    assert "set_next_input" in seen["edits"][0] and "below the running cell" in seen["edits"][0]
    refused = seen["edits"][1]
    assert "no nbagent front-end answers" in refused and "nbagent extension" in refused
    assert "ran the saved source" in seen["run"] and "shown here only" in seen["run"]
    assert nb_path.read_text() == before
