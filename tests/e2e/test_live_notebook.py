"""The agent works on the notebook open in the browser (the live-document protocol), for real: JupyterLab 4
and Notebook 7, a real kernel, the scripted model over HTTP.

- JupyterLab: the user runs the cells (the last one fails), types an unsaved line into another cell, then
  runs the ``%%agent`` cell. The model reads the notebook (and sees the unsaved line: the live document),
  replaces the failing cell, inserts a plotting cell after it, runs both. The page shows the new source in
  the editor, the outputs, the figure, the provenance marker; the user's line is still there, the file on
  disk was not written; the model got the figure as an image. Ctrl+Z in the fixed cell's editor brings
  the old source back.
- Stop: a cell the agent runs (a long loop) is stopped by the ``%%agent`` cell's Stop button within
  seconds (KeyboardInterrupt in the cell's output, the ``%%agent`` cell finishes); then the same with
  JupyterLab's own kernel interrupt button.
- Notebook 7: the same fix flow, through the extension's document plugin there.
- The JupyterLab sidebar: the same fix asked in the sidebar's chat (no ``%%agent`` cell); the user allows
  each edit and the run in the sidebar's permission prompts; the same tools act on the live document with
  the same results, the sidebar shows the tool cards and the answer, and the turn is recorded into the
  notebook as a ``%%agent`` cell.
Screenshots go to test-artifacts/e2e/.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import pytest

from nbagent.providers.scripted import FunctionScript, Reply, ScriptedModelServer, ToolCallSpec
from tests.e2e.conftest import notebook_json
from tests.e2e.notebook_page import (
    COUNT,
    TIMEOUT_MS,
    load_nbagent,
    open_notebook,
    prompt_of,
    run_cell,
)
from tests.jupyter.test_live_notebook import BROKEN, fix_script

pytestmark = pytest.mark.timeout(180)
NB = "demo.ipynb"
NOTE = "# checked by me"
SLOW = "import time\nfor i in range(600):\n    time.sleep(0.1)"
AGENT_CELL = re.compile(r"\bnbagent-agent-cell\b")


def named_notebook(cells: dict[str, str]) -> dict[str, Any]:
    nb = notebook_json(list(cells.values()))
    for cell, cell_id in zip(nb["cells"], cells, strict=True):
        cell["id"] = cell_id
    return nb


def fix_notebook() -> dict[str, Any]:
    return named_notebook(
        {
            "load": "%load_ext nbagent",
            "data": "import numpy as np\nvalues = np.arange(5)",
            "ask": "%%agent --mode bypass\nfix the failing cell and re-run",
            "bad": BROKEN,
        }
    )


def _image_parts(body: dict[str, Any]) -> int:
    count = 0
    for message in body.get("messages") or []:
        content = message.get("content")
        if isinstance(content, list):
            count += sum(1 for part in content if isinstance(part, dict) and part.get("type") == "image_url")
    return count


def _editor(cells: Any, index: int) -> Any:
    return cells.nth(index).locator(".jp-InputArea .cm-content")


def _type_into(page: Any, cells: Any, index: int, expect: Any, text: str) -> None:
    """Type a new last line into a cell's editor (an edit the user does not run or save)."""
    _editor(cells, index).click()
    expect(_editor(cells, index)).to_be_focused()
    page.keyboard.press("Control+End")
    page.keyboard.press("Enter")
    page.keyboard.type(text)
    page.keyboard.press("Escape")


def _fix_flow(
    page: Any, cells: Any, lab: Any, server: Any, seen: dict[str, Any], expect: Any, shot: Any
) -> None:
    """The user runs the cells, leaves an unsaved edit, runs the %%agent cell; the agent fixes the failing
    cell, adds a plot and runs both; the page shows it all."""
    expect(cells).to_have_count(4)
    load_nbagent(page, cells, expect)
    run_cell(page, cells, 1)
    expect(prompt_of(cells, 1)).to_have_text(COUNT)
    run_cell(page, cells, 3)
    expect(cells.nth(3).locator(".jp-OutputArea")).to_contain_text("NameError")

    # an unsaved edit in another cell: typed, not run, not saved
    _type_into(page, cells, 1, expect, NOTE)
    expect(_editor(cells, 1)).to_contain_text(NOTE)
    assert NOTE not in (lab.root / NB).read_text()

    started = time.perf_counter()
    run_cell(page, cells, 2)
    expect(cells.nth(2).locator(".jp-OutputArea")).to_contain_text("the plot is updated", timeout=60_000)
    expect(prompt_of(cells, 2)).to_have_text(COUNT)
    seen["turn_seconds"] = time.perf_counter() - started
    shot("fixed")

    # the model read the live document, the unsaved line included
    assert "live document open in" in seen["read"], seen["read"]
    assert NOTE in seen["read"], seen["read"]
    _expect_tool_results(seen, server)

    # the page: the fixed cell (new source, its output), the inserted cell after it with the figure
    expect(cells).to_have_count(5)
    _expect_fixed_cells(cells, 3, expect, untouched=(0, 1, 2))
    # the user's unsaved line is still in the editor; the file behind the editor was not written
    expect(_editor(cells, 1)).to_contain_text(NOTE)
    on_disk = json.loads((lab.root / NB).read_text())
    assert [c["source"] for c in on_disk["cells"]][3] == BROKEN
    assert NOTE not in json.dumps(on_disk)


def _expect_tool_results(seen: dict[str, Any], server: ScriptedModelServer) -> None:
    """What the fix flow's tools answered the model: the failing cell read, the inserted cell's id, the
    run's output with the figure, which reached the model as an image with notebook_run's result."""
    assert "NameError" in seen["read"], seen["read"]
    assert "cell_id: " in seen["edits"][1], seen["edits"]
    assert "mean 2.0" in seen["run"] and "image/png output attached" in seen["run"], seen["run"]
    after_run = [r.body for r in server.requests if "image/png output attached" in json.dumps(r.body)]
    assert after_run and _image_parts(after_run[0]) >= 1, [_image_parts(b) for b in after_run]


def _expect_fixed_cells(cells: Any, at: int, expect: Any, untouched: tuple[int, ...]) -> None:
    """The page after the fix flow: the replaced cell at ``at`` (new source, its output), the inserted plot
    cell after it with the figure, both run; the provenance marker on those two, not on ``untouched``."""
    fixed, plot = cells.nth(at), cells.nth(at + 1)
    expect(_editor(cells, at)).to_contain_text("values.sum() / len(values)")
    expect(_editor(cells, at)).not_to_contain_text("/ count")
    expect(fixed.locator(".jp-OutputArea")).to_contain_text("mean 2.0")
    expect(fixed.locator(".jp-OutputArea")).not_to_contain_text("NameError")
    expect(prompt_of(cells, at)).to_have_text(COUNT)
    expect(_editor(cells, at + 1)).to_contain_text("plt.plot(values)")
    expect(plot.locator(".jp-OutputArea img")).to_be_visible()
    expect(prompt_of(cells, at + 1)).to_have_text(COUNT)
    expect(fixed).to_have_class(AGENT_CELL)
    expect(plot).to_have_class(AGENT_CELL)
    expect(fixed).to_have_attribute("data-nbagent-action", "replace")
    expect(plot).to_have_attribute("data-nbagent-action", "insert")
    for other in untouched:
        expect(cells.nth(other)).not_to_have_class(AGENT_CELL)


def _undo_in_editor(page: Any, cells: Any, expect: Any) -> None:
    """Ctrl+Z in the replaced cell's editor brings back the source it had before the agent's edit."""
    _editor(cells, 3).click()
    expect(_editor(cells, 3)).to_be_focused()
    for _ in range(6):
        page.keyboard.press("Control+z")
        if "/ count" in _editor(cells, 3).inner_text():
            break
    expect(_editor(cells, 3)).to_contain_text("values.sum() / count")
    expect(_editor(cells, 3)).not_to_contain_text("len(values)")
    expect(cells.nth(3)).not_to_have_class(AGENT_CELL)  # the agent's provenance went with its edit
    # (only that cell changed back: the inserted cell and the user's line stay)
    expect(_editor(cells, 4)).to_contain_text("plt.plot(values)")
    expect(_editor(cells, 1)).to_contain_text(NOTE)


def _shooter(page: Any, artifacts: Path, prefix: str) -> Any:
    def shot(name: str) -> None:
        page.screenshot(path=str(artifacts / f"{prefix}-{name}.png"))

    return shot


def test_agent_fixes_the_open_notebook_in_jupyterlab(browser: Any, lab_factory: Any, artifacts: Path) -> None:
    from playwright.sync_api import expect

    expect.set_options(timeout=TIMEOUT_MS)
    seen: dict[str, Any] = {}
    server = ScriptedModelServer(fix_script(seen, NB)).start()
    page = None
    try:
        lab = lab_factory(
            {NB: fix_notebook()}, {"NBAGENT_MODEL": "openai/scripted", "NBAGENT_API_BASE": server.openai_base}
        )
        page, cells, errors = open_notebook(browser, lab, NB, expect)
        shot = _shooter(page, artifacts, "live-lab")
        _fix_flow(page, cells, lab, server, seen, expect, shot)
        assert "live document open in jupyterlab" in seen["read"], seen["read"]
        _undo_in_editor(page, cells, expect)
        shot("undone")
        assert not errors, "\n".join(errors)
        print("live notebook (lab): agent turn", round(seen["turn_seconds"], 2), "s")
    except BaseException:
        if page is not None:
            page.screenshot(path=str(artifacts / "live-lab-failure.png"))
        raise
    finally:
        server.stop()


def stop_script() -> FunctionScript:
    """Each prompt: run the slow cell; after the run (stopped), a closing line."""

    def answer(request: dict[str, Any], protocol: str) -> Reply:
        messages = request.get("messages") or []
        if messages and messages[-1].get("role") == "user":
            return Reply(
                text="Running the slow cell.",
                tool_calls=[ToolCallSpec("notebook_run", {"notebook_path": NB, "cell_ids": ["slow"]})],
            )
        return Reply(text="The slow cell was stopped.")

    return FunctionScript(answer)


def _stop_and_check(page: Any, cells: Any, expect: Any, stop: Any) -> float:
    """Start the %%agent cell, wait for the slow cell to run, stop it with ``stop()``; the seconds it took."""
    agent, slow = cells.nth(1), cells.nth(2)
    run_cell(page, cells, 1)
    expect(prompt_of(cells, 2)).to_have_text("[*]:")
    expect(agent.locator(".jp-OutputArea button", has_text="Stop")).to_be_visible()
    time.sleep(1.0)  # the loop is really running (not a stop before it started)
    stopped_at = time.perf_counter()
    stop()
    expect(slow.locator(".jp-OutputArea")).to_contain_text("KeyboardInterrupt", timeout=15_000)
    expect(prompt_of(cells, 2)).to_have_text(COUNT, timeout=15_000)
    expect(prompt_of(cells, 1)).to_have_text(COUNT, timeout=15_000)  # the %%agent cell finished
    latency = time.perf_counter() - stopped_at
    expect(agent.locator(".jp-OutputArea")).to_contain_text("interrupted")
    assert latency < 15, latency
    return latency


def test_stop_interrupts_a_cell_the_agent_runs(browser: Any, lab_factory: Any, artifacts: Path) -> None:
    from playwright.sync_api import expect

    expect.set_options(timeout=TIMEOUT_MS)
    server = ScriptedModelServer(stop_script()).start()
    page = None
    try:
        lab = lab_factory(
            {
                NB: named_notebook(
                    {
                        "load": "%load_ext nbagent",
                        "ask": "%%agent --mode bypass\nrun the slow cell",
                        "slow": SLOW,
                    }
                )
            },
            {"NBAGENT_MODEL": "openai/scripted", "NBAGENT_API_BASE": server.openai_base},
        )
        page, cells, errors = open_notebook(browser, lab, NB, expect)
        load_nbagent(page, cells, expect)
        agent = cells.nth(1)

        # the %%agent cell's Stop button
        latency = _stop_and_check(
            page, cells, expect, lambda: agent.locator(".jp-OutputArea button", has_text="Stop").click()
        )
        page.screenshot(path=str(artifacts / "live-stop-button.png"))

        # JupyterLab's kernel interrupt (the toolbar's stop button), on a new run of the %%agent cell
        interrupt = page.locator(".jp-NotebookPanel-toolbar [data-command='notebook:interrupt-kernel']")
        latency2 = _stop_and_check(page, cells, expect, lambda: interrupt.click())
        page.screenshot(path=str(artifacts / "live-stop-interrupt.png"))
        # the kernel is usable after both stops
        expect(page.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']").first).to_be_attached()
        assert not errors, "\n".join(errors)
        print("live notebook stop latency (s): button", round(latency, 2), "interrupt", round(latency2, 2))
    except BaseException:
        if page is not None:
            page.screenshot(path=str(artifacts / "live-stop-failure.png"))
        raise
    finally:
        server.stop()


def test_agent_fixes_the_open_notebook_in_notebook7(browser: Any, lab_factory: Any, artifacts: Path) -> None:
    from playwright.sync_api import expect

    expect.set_options(timeout=TIMEOUT_MS)
    seen: dict[str, Any] = {}
    server = ScriptedModelServer(fix_script(seen, NB)).start()
    page = None
    try:
        lab = lab_factory(
            {NB: fix_notebook()},
            {"NBAGENT_MODEL": "openai/scripted", "NBAGENT_API_BASE": server.openai_base},
            app="notebook",
        )
        page, cells, errors = open_notebook(browser, lab, NB, expect)
        shot = _shooter(page, artifacts, "live-nb7")
        _fix_flow(page, cells, lab, server, seen, expect, shot)
        assert "live document open in notebook7" in seen["read"], seen["read"]
        _undo_in_editor(page, cells, expect)
        shot("undone")
        # Notebook 7's own settings loader throws this on every page load, with or without nbagent
        errors = [
            e for e in errors if not ("reading 'schema'" in e and "/static/notebook/notebook_core" in e)
        ]
        assert not errors, "\n".join(errors)
        print("live notebook (notebook 7): agent turn", round(seen["turn_seconds"], 2), "s")
    except BaseException:
        if page is not None:
            page.screenshot(path=str(artifacts / "live-nb7-failure.png"))
        raise
    finally:
        server.stop()


SIDEBAR_TASK = "fix the failing cell and re-run the analysis"


def test_sidebar_turn_uses_the_same_tools(browser: Any, lab_factory: Any, artifacts: Path) -> None:
    """A sidebar turn uses the same tools, with the same results: the user runs the cells (the last one
    fails), asks the sidebar to fix it and allows each step there; the agent reads the live document,
    replaces the failing cell, inserts a plot after it and runs both."""
    from playwright.sync_api import expect

    expect.set_options(timeout=TIMEOUT_MS)
    seen: dict[str, Any] = {}
    server = ScriptedModelServer(fix_script(seen, NB)).start()
    page = None
    try:
        lab = lab_factory(
            {
                NB: named_notebook(
                    {
                        "load": "%load_ext nbagent",
                        "data": "import numpy as np\nvalues = np.arange(5)",
                        "bad": BROKEN,
                    }
                )
            },
            {"NBAGENT_MODEL": "openai/scripted", "NBAGENT_API_BASE": server.openai_base},
        )
        page, cells, errors = open_notebook(browser, lab, NB, expect)
        shot = _shooter(page, artifacts, "live-sidebar")
        page.locator(".jp-SideBar.jp-mod-right li[data-id='nbagent-sidebar']").click()
        panel = page.locator("#nbagent-sidebar")
        expect(panel).to_be_visible()

        # the user runs the cells in the browser: the last one fails; the sidebar connects
        expect(cells).to_have_count(3)
        load_nbagent(page, cells, expect)
        expect(panel).to_have_attribute("data-link", "connected")
        run_cell(page, cells, 1)
        expect(prompt_of(cells, 1)).to_have_text(COUNT)
        run_cell(page, cells, 2)
        expect(cells.nth(2).locator(".jp-OutputArea")).to_contain_text("NameError")

        # the task, typed into the sidebar; each edit and the run are allowed in its permission prompts
        started = time.perf_counter()
        prompt = panel.locator(".nba-prompt")
        prompt.click()
        prompt.fill(SIDEBAR_TASK)
        prompt.press("Enter")
        expect(panel.locator(".nba-user").first).to_contain_text(SIDEBAR_TASK)
        for index, title in enumerate(("Replace", "Insert", "Run 2 cells")):
            ask = panel.locator(".nba-permission").nth(index)
            expect(ask.locator(".nba-permission-title")).to_contain_text(title)
            if index == 0:
                shot("permission")
            ask.locator(".nba-allow-once").click()
            expect(ask.locator(".nba-permission-answer")).to_contain_text("allowed once")
        expect(panel.locator(".nba-text").last).to_contain_text("the plot is updated", timeout=60_000)
        expect(panel).to_have_attribute("data-busy", "false")
        turn_seconds = time.perf_counter() - started
        shot("fixed")

        # the tools' results, as in a %%agent cell's turn: the live document, the run's output and figure
        assert "live document open in jupyterlab" in seen["read"], seen["read"]
        _expect_tool_results(seen, server)

        # the sidebar's transcript: the tool cards, done, and the final answer
        tool = ".nba-tool[data-tool='{}'][data-status='completed']"
        expect(panel.locator(tool.format("read"))).to_have_count(1)
        expect(panel.locator(tool.format("notebook_edit"))).to_have_count(2)
        expect(panel.locator(tool.format("notebook_run"))).to_have_count(1)
        expect(panel.locator(".nba-tool[data-status='error']")).to_have_count(0)
        expect(panel.locator(".nba-text").last).to_contain_text("Fixed: the mean is 2.0")

        # the page: the fixed cell and its output, the inserted cell with the figure, the markers
        expect(cells).to_have_count(5)
        _expect_fixed_cells(cells, 2, expect, untouched=(0, 1, 4))
        record = cells.nth(4)

        # the turn, recorded into the notebook as a %%agent cell (after the agent's cells), its transcript
        # as the output
        expect(record.locator(".jp-InputArea")).to_contain_text("%%agent")
        expect(record.locator(".jp-InputArea")).to_contain_text(SIDEBAR_TASK)
        expect(record.locator(".jp-OutputArea")).to_contain_text("the plot is updated")
        shot("recorded")
        assert not errors, "\n".join(errors)
        print("live notebook (sidebar): agent turn", round(turn_seconds, 2), "s")
    except BaseException:
        if page is not None:
            page.screenshot(path=str(artifacts / "live-sidebar-failure.png"))
        raise
    finally:
        server.stop()
