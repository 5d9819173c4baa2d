"""notebook_run in a real kernel while the ``%%agent`` cell runs: a kernel interrupt, the Stop button
(clicked over a kernel subshell, as JupyterLab sends it) and the timeout stop a cell that hangs.

No front-end answers here, so the saved source of the cells runs (the code path that runs them is the
same as with a front-end; ``test_live_notebook.py`` covers the outputs going into the cells).
"""

from __future__ import annotations

import time
from pathlib import Path

import nbformat

from nbagent.providers.scripted import ListScript, Reply, ToolCallSpec
from nbagent.providers.scripted.script import OnToolResults
from tests.conftest import Serve
from tests.jupyter.conftest import StartKernel
from tests.jupyter.harness import Kernel, Message, text_of

HANG = "import time\nfor _ in range(600):\n    time.sleep(0.1)"


def notebook(tmp_path: Path) -> Path:
    nb = nbformat.v4.new_notebook()
    for cid, source in [("ask", "%%agent\nrun it"), ("slow", HANG)]:
        cell = nbformat.v4.new_code_cell(source)
        cell["id"] = cid
        nb.cells.append(cell)
    path = tmp_path / "nb.ipynb"
    nbformat.write(nb, str(path))
    return path


def run_slow(timeout: float | None = None) -> ToolCallSpec:
    args: dict[str, object] = {"notebook_path": "nb.ipynb", "cell_ids": ["slow"]}
    if timeout is not None:
        args["timeout"] = timeout
    return ToolCallSpec("notebook_run", args)


def running(k: Kernel) -> bool:
    return any(
        "◐" in str(st.get("value", "")) and "notebook_run" in str(st.get("value", ""))
        for st in k.widgets.values()
    )


def test_a_kernel_interrupt_stops_the_running_cell(
    tmp_path: Path, serve: Serve, start_kernel: StartKernel
) -> None:
    server = serve(ListScript([Reply(tool_calls=[run_slow()])]))
    kernel = start_kernel(server, NBAGENT_HEADLESS="allow", NBAGENT_NOTEBOOK=str(notebook(tmp_path)))
    state = {"sent": False}

    def on(k: Kernel, _m: Message) -> None:
        if not state["sent"] and running(k):
            state["sent"] = True
            time.sleep(0.5)  # inside the cell's loop by now
            k.interrupt()

    t0 = time.time()
    ex = kernel.run("%%agent\nrun it", on_message=on, timeout=60, cell_id="ask")
    assert state["sent"] and time.time() - t0 < 20
    assert ex.status == "error" and ex.reply["content"]["ename"] == "TurnInterrupted"  # type: ignore[index]
    assert kernel.run("print('alive')").stdout.strip() == "alive"


def test_stop_over_a_subshell_stops_the_running_cell(
    tmp_path: Path, serve: Serve, start_kernel: StartKernel
) -> None:
    server = serve(ListScript([Reply(tool_calls=[run_slow()])]))
    kernel = start_kernel(server, NBAGENT_HEADLESS="allow", NBAGENT_NOTEBOOK=str(notebook(tmp_path)))
    subshell = kernel.create_subshell()
    state = {"clicked": False}

    def on(k: Kernel, _m: Message) -> None:
        if not state["clicked"] and running(k):
            state["clicked"] = True
            time.sleep(0.5)
            k.click(next(k.find_widgets("ButtonModel", description="Stop")), subshell=subshell)

    t0 = time.time()
    ex = kernel.run("%%agent\nrun it", on_message=on, timeout=60, cell_id="ask")
    assert state["clicked"] and time.time() - t0 < 20, "Stop did not reach the cell's code"
    assert "KeyboardInterrupt" in text_of(ex) or "nterrupted" in text_of(ex)
    assert kernel.run("print('alive')").stdout.strip() == "alive"


def test_a_cell_past_its_timeout_is_stopped_and_the_turn_goes_on(
    tmp_path: Path, serve: Serve, start_kernel: StartKernel
) -> None:
    seen: dict[str, str] = {}

    def after(results: list[str]) -> Reply:
        seen["run"] = results[-1]
        return Reply(text="It hangs; I stopped it.")

    server = serve(ListScript([Reply(tool_calls=[run_slow(timeout=1)]), OnToolResults(after)]))
    kernel = start_kernel(server, NBAGENT_HEADLESS="allow", NBAGENT_NOTEBOOK=str(notebook(tmp_path)))
    t0 = time.time()
    ex = kernel.run("%%agent\nrun it", timeout=60, cell_id="ask")
    assert ex.status == "ok" and time.time() - t0 < 15
    assert 'status="timeout"' in seen["run"] and "did not finish within 1 s" in seen["run"]
    assert "It hangs; I stopped it." in text_of(ex)
    # the kernel's state is whole: the SIGALRM timer is off, SIGINT works as before
    assert kernel.run("import time; time.sleep(1.5); print('no alarm')").stdout.strip() == "no alarm"
