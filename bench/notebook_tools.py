"""Overhead of the live-notebook tools per call, beyond the cell's own run time.

A 20-cell notebook runs headless (``nbagent execute``: the nbclient client is the front-end, over the
same comm protocol JupyterLab speaks). A cell of it calls the tools in the kernel, as the agent does:
``read`` (the summary form: the notebook is made big enough), ``notebook_edit`` (replace a cell) and
``notebook_run`` (that cell: ``x = 1``, whose own run time is measured apart and subtracted).

.venv/bin/python -m bench.notebook_tools
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import nbformat

ROUNDS = 30

PROBE = r"""
import statistics, time
from pathlib import Path
from nbagent.jupyter.document import DocumentLink
from nbagent.jupyter.kernel import IPythonNamespace
from nbagent.tools.base import ToolContext
from nbagent.tools.files import ReadParams, ReadTool
from nbagent.tools.kernel import KERNEL_KEY
from nbagent.tools.notebook import NotebookEditParams, NotebookEditTool
from nbagent.tools.notebook_live import FRONTEND_KEY
from nbagent.tools.notebook_run import NotebookRunParams, NotebookRunTool

ip = get_ipython()
nb = Path(NB)
namespace = IPythonNamespace(ip)
ctx = ToolContext(root=nb.parent, state={FRONTEND_KEY: DocumentLink(ip, lambda: nb), KERNEL_KEY: namespace})
read, edit, run = ReadTool(), NotebookEditTool(), NotebookRunTool()
times = {"read (summary)": [], "notebook_edit": [], "notebook_run": [], "cell code alone": []}
for i in range(ROUNDS):
    t = time.perf_counter()
    out = await read.run(ReadParams(file_path=nb.name), ctx)
    times["read (summary)"].append(time.perf_counter() - t)
    assert "summary" in out.output, out.output[:300]
    t = time.perf_counter()
    await edit.run(NotebookEditParams(notebook_path=nb.name, cell_id="c10", new_source=f"x = {i}"), ctx)
    times["notebook_edit"].append(time.perf_counter() - t)
    t = time.perf_counter()
    await run.run(NotebookRunParams(notebook_path=nb.name, cell_ids=["c10"]), ctx)
    times["notebook_run"].append(time.perf_counter() - t)
    t = time.perf_counter()
    await namespace.run_cell(f"x = {i}", "c10", lambda o: None, 60)
    times["cell code alone"].append(time.perf_counter() - t)
for name, values in times.items():
    print(f"{name}: median {1000 * statistics.median(values):.1f} ms, p90 {1000 * sorted(values)[int(0.9 * len(values))]:.1f} ms")
overhead = statistics.median(times["notebook_run"]) - statistics.median(times["cell code alone"])
print(f"notebook_run overhead beyond the cell's run: {1000 * overhead:.1f} ms")
"""


def make_notebook(path: Path) -> None:
    nb = nbformat.v4.new_notebook()
    cells = [nbformat.v4.new_code_cell("%load_ext nbagent")]
    for i in range(20):
        # outputs big enough that read shows the summary form
        cell = nbformat.v4.new_code_cell(f"# cell {i}\nx = {i}")
        cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=f"row {i}\n" * 400)]
        cell.execution_count = i + 1
        cells.append(cell)
    for i, cell in enumerate(cells):
        cell["id"] = f"c{i}"
    cells.append(nbformat.v4.new_code_cell(f"NB = {str(path)!r}\nROUNDS = {ROUNDS}\n" + PROBE))
    cells[-1]["id"] = "probe"
    nb.cells = cells
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, str(path))


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "twenty.ipynb"
        make_notebook(path)
        env = dict(os.environ, LITELLM_LOCAL_MODEL_COST_MAP="True", HF_HUB_OFFLINE="1")
        done = subprocess.run(
            [sys.executable, "-m", "nbagent", "execute", str(path)],
            capture_output=True,
            text=True,
            env=env,
            timeout=600,
            check=False,
        )
        if done.returncode != 0:
            print(done.stdout[-2000:], done.stderr[-4000:], file=sys.stderr)
            raise SystemExit(1)
        nb = nbformat.read(str(path), as_version=4)
        probe = next(c for c in nb.cells if c.get("id") == "probe")
        text = "".join(o.get("text", "") for o in probe.outputs if o.get("output_type") == "stream")
        print(f"20-cell notebook, {ROUNDS} rounds, headless front-end (nbclient):")
        print(text.rstrip())


if __name__ == "__main__":
    main()
