"""The sidebar in a real browser against a real ``jupyter lab``, kernel and scripted model.

Open a notebook, open the sidebar (it says nbagent is not loaded), run the notebook's first cell
``%load_ext nbagent`` (the sidebar connects), send a task: streamed text, tool cards, the todo list,
a permission prompt answered by clicking, the diff, the turn recorded in the notebook as a cell; then
a slow shell command stopped with the Stop button. Screenshots go to test-artifacts/e2e/.
"""

from __future__ import annotations

import json
import re
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from nbagent.providers.scripted import FunctionScript, Reply, ScriptedModelServer, ToolCallSpec
from nbagent.store.notebook import TURN_MIME
from tests.e2e.conftest import notebook_json
from tests.e2e.notebook_page import load_nbagent, open_notebook

pytestmark = pytest.mark.timeout(240)
TIMEOUT_MS = 30_000


def _last_prompt(request: dict[str, Any]) -> tuple[str, int]:
    after = 0
    for message in reversed(request.get("messages") or []):
        if message.get("role") == "assistant":
            after += 1
        elif message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, list):
                content = " ".join(str(c.get("text", "")) for c in content if isinstance(c, dict))
            return str(content or ""), after
    return "", after


def script() -> FunctionScript:
    def answer(request: dict[str, Any], protocol: str) -> Reply:
        prompt, step = _last_prompt(request)
        if "greeting" in prompt:
            replies = [
                Reply(
                    text="I'll look at `greet.py` first, then change its **greeting**.",
                    delay=0.02,
                    tool_calls=[
                        ToolCallSpec(
                            "todowrite",
                            {
                                "todos": [
                                    {"content": "Read greet.py", "status": "completed", "priority": "high"},
                                    {"content": "Say hello", "status": "in_progress", "priority": "high"},
                                ]
                            },
                        ),
                        ToolCallSpec("read", {"file_path": "greet.py"}),
                    ],
                ),
                Reply(
                    text="Now the edit.",
                    tool_calls=[
                        ToolCallSpec(
                            "edit", {"file_path": "greet.py", "old_string": "hi", "new_string": "hello"}
                        )
                    ],
                ),
                Reply(text="Done: `greet.py` now says **hello**.", delay=0.02),
            ]
        elif "slow" in prompt:
            replies = [
                Reply(
                    text="Starting the slow job.", tool_calls=[ToolCallSpec("bash", {"command": "sleep 60"})]
                ),
                Reply(text="The slow job finished."),
            ]
        else:
            replies = [Reply(text="OK.")]
        return replies[min(step, len(replies) - 1)]

    return FunctionScript(answer)


def test_sidebar_end_to_end(browser: Any, lab_factory: Any, artifacts: Path) -> None:
    from playwright.sync_api import expect

    expect.set_options(timeout=TIMEOUT_MS)
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    server = ScriptedModelServer(script()).start()
    try:
        lab = lab_factory(
            {
                "demo.ipynb": notebook_json(["%load_ext nbagent"]),
                "greet.py": "print('hi')\n",
            },
            {"NBAGENT_MODEL": "openai/scripted", "NBAGENT_API_BASE": server.openai_base},
        )
        timings["lab_started"] = time.perf_counter() - t0
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.set_default_timeout(TIMEOUT_MS)
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(lab.page_url("demo.ipynb"))
        page.locator(".jp-NotebookPanel .jp-Cell").first.wait_for()
        expect(page.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']").first).to_be_attached()
        timings["notebook_open"] = time.perf_counter() - t0

        # the sidebar, before %load_ext: it says what to do
        page.locator(".jp-SideBar.jp-mod-right li[data-id='nbagent-sidebar']").click()
        panel = page.locator("#nbagent-sidebar")
        expect(panel).to_be_visible()
        expect(panel).to_have_attribute("data-link", "not-loaded")
        expect(panel.locator(".nba-setup")).to_contain_text("%load_ext nbagent")
        page.screenshot(path=str(artifacts / "01-not-loaded.png"))

        # run the first cell: the sidebar connects by itself
        page.locator(".jp-NotebookPanel .jp-Cell").first.click()
        page.keyboard.press("Control+Enter")
        expect(panel).to_have_attribute("data-link", "connected")
        expect(panel.locator(".nba-model")).to_have_value("openai/scripted")
        timings["connected"] = time.perf_counter() - t0

        # slash completion and an @file mention in the input box
        prompt = panel.locator(".nba-prompt")
        prompt.click()
        prompt.press_sequentially("/co")
        completions = panel.locator(".nba-completion-label")
        expect(completions).to_have_text(["/compact", "/context", "/cost"])
        prompt.fill("")
        prompt.press_sequentially("Change the greeting in @gre")
        expect(completions).to_have_text(["@greet.py"])
        page.screenshot(path=str(artifacts / "02-mention-completion.png"))
        prompt.press("Tab")
        expect(prompt).to_have_value("Change the greeting in @greet.py ")

        # send the task: streamed text, tool cards, the plan, then the permission prompt
        prompt.press("Enter")
        timings["sent"] = time.perf_counter() - t0
        expect(panel.locator(".nba-user").first).to_contain_text("Attached file `greet.py`")
        expect(panel.locator(".nba-text").first).to_contain_text("then change its greeting")
        expect(panel.locator(".nba-tool[data-tool='read'][data-status='completed']")).to_be_visible()
        expect(panel.locator(".nba-todo-completed")).to_contain_text("Read greet.py")
        ask = panel.locator(".nba-permission").first
        expect(ask.locator(".nba-allow-always")).to_contain_text("edit")
        expect(panel.locator(".nba-stop")).to_be_enabled()
        timings["permission_shown"] = time.perf_counter() - t0
        page.screenshot(path=str(artifacts / "03-permission.png"))
        ask.locator(".nba-allow-once").click()
        expect(ask.locator(".nba-permission-answer")).to_contain_text("allowed once")
        diff = panel.locator(".nba-tool[data-tool='edit'] .nba-diff")
        expect(diff.locator(".nba-diff-add")).to_contain_text("print('hello')")
        expect(diff.locator(".nba-diff-del")).to_contain_text("print('hi')")
        expect(panel.locator(".nba-text").last).to_contain_text("now says hello")
        expect(panel).to_have_attribute("data-busy", "false")
        expect(panel.locator(".nba-usage")).to_contain_text("openai/scripted")
        expect(panel.locator(".nba-usage")).to_contain_text("context")
        timings["turn_done"] = time.perf_counter() - t0
        assert (lab.root / "greet.py").read_text() == "print('hello')\n"
        page.screenshot(path=str(artifacts / "04-diff-done.png"))

        # the turn is in the notebook, as a %%agent cell with the transcript as its output
        cells = page.locator(".jp-NotebookPanel .jp-Cell")
        expect(cells).to_have_count(2)
        expect(cells.nth(1).locator(".jp-InputArea")).to_contain_text("%%agent")
        expect(cells.nth(1).locator(".jp-OutputArea")).to_contain_text("now says")

        # a slow shell command, stopped with the Stop button
        prompt.fill("run the slow job")
        prompt.press("Enter")
        expect(panel.locator(".nba-tool[data-tool='bash'][data-status='running']")).to_be_visible()
        page.screenshot(path=str(artifacts / "05-running.png"))
        stop_at = time.perf_counter()
        panel.locator(".nba-stop").click()
        expect(panel.locator(".nba-notice-warning").last).to_contain_text("interrupted")
        expect(panel.locator(".nba-tool[data-tool='bash']")).to_have_attribute("data-status", "error")
        expect(panel).to_have_attribute("data-busy", "false")
        timings["stop_latency"] = time.perf_counter() - stop_at
        expect(cells).to_have_count(3)
        page.screenshot(path=str(artifacts / "06-stopped.png"))

        # input history (Up), Shift+Enter for a new line (nothing sent)
        prompt.press("ArrowUp")
        expect(prompt).to_have_value("run the slow job")
        prompt.fill("first line")
        prompt.press("Shift+Enter")
        prompt.press_sequentially("second line")
        expect(prompt).to_have_value("first line\nsecond line")
        prompt.fill("")

        # saved, the notebook carries the session index (metadata.nbagent) and both turns' records
        page.keyboard.press("Control+s")
        deadline = time.time() + 20
        saved: dict[str, Any] = {}
        while time.time() < deadline:
            saved = json.loads((lab.root / "demo.ipynb").read_text())
            if saved["metadata"].get("nbagent", {}).get("sessions"):
                break
            time.sleep(0.2)
        (indexed,) = saved["metadata"]["nbagent"]["sessions"]
        assert indexed["turns"] == 2
        assert sum(TURN_MIME in json.dumps(c.get("outputs", [])) for c in saved["cells"]) == 2

        # the session list and a new session
        panel.locator(".nba-sessions-button").click()
        expect(panel.locator(".nba-session")).to_have_count(1)
        panel.locator(".nba-new").click()
        expect(panel.locator(".nba-block")).to_have_count(0)
        timings["total"] = time.perf_counter() - t0
        assert not errors, errors
        print("e2e timings (s):", {k: round(v, 2) for k, v in timings.items()})
    finally:
        server.stop()


def test_cell_turns_kernel_restart_and_notebook_switch(
    browser: Any, lab_factory: Any, artifacts: Path
) -> None:
    """The sidebar shows a `%%agent` cell's turn and answers its permission prompt; after a kernel
    restart it says nbagent is gone, loads it again on a click and shows the session resumed from the
    saved notebook; it follows the active notebook."""
    from playwright.sync_api import expect

    expect.set_options(timeout=TIMEOUT_MS)
    server = ScriptedModelServer(script()).start()
    try:
        lab = lab_factory(
            {
                "a.ipynb": notebook_json(["%load_ext nbagent", "%%agent\nChange the greeting"]),
                "b.ipynb": notebook_json(["1 + 1"]),
                "greet.py": "print('hi')\n",
            },
            {"NBAGENT_MODEL": "openai/scripted", "NBAGENT_API_BASE": server.openai_base},
        )
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.set_default_timeout(TIMEOUT_MS)
        page.goto(lab.page_url("a.ipynb"))
        page.locator(".jp-NotebookPanel .jp-Cell").first.wait_for()
        page.locator(".jp-SideBar.jp-mod-right li[data-id='nbagent-sidebar']").click()
        panel = page.locator("#nbagent-sidebar")
        expect(panel).to_have_attribute("data-link", "not-loaded")  # the kernel is up

        # run the cells: the %%agent cell's turn streams into the sidebar, which answers its prompt
        page.locator(".jp-NotebookPanel .jp-Cell").first.click()
        page.keyboard.press("Shift+Enter")
        expect(panel).to_have_attribute("data-link", "connected")
        page.keyboard.press("Shift+Enter")
        expect(panel.locator(".nba-user").first).to_contain_text("Change the greeting")
        cell = page.locator(".jp-NotebookPanel .jp-Cell").nth(1)
        expect(cell.locator(".jp-OutputArea button", has_text="Allow once")).to_be_visible()
        page.screenshot(path=str(artifacts / "07-cell-turn-in-sidebar.png"))
        panel.locator(".nba-permission .nba-allow-once").click()
        expect(cell.locator(".jp-OutputArea")).to_contain_text("now says", timeout=TIMEOUT_MS)
        expect(panel.locator(".nba-text").last).to_contain_text("now says hello")
        expect(cell.locator(".jp-OutputArea button", has_text="Allow once")).to_have_count(0)
        assert (lab.root / "greet.py").read_text() == "print('hello')\n"

        # save, restart the kernel: nbagent is gone until loaded again; the session comes back
        expect(cell.locator(".jp-InputArea-prompt")).to_have_text("[2]:")  # the cell is done
        page.keyboard.press("Control+s")
        deadline = time.time() + 20
        while "vnd.nbagent.turn" not in (lab.root / "a.ipynb").read_text() and time.time() < deadline:
            time.sleep(0.2)
        assert "vnd.nbagent.turn" in (lab.root / "a.ipynb").read_text()
        page.locator(".lm-MenuBar-itemLabel", has_text="Kernel").click()
        page.locator(".lm-Menu-itemLabel", has_text="Restart Kernel…").first.click()
        page.locator(".jp-Dialog-button.jp-mod-accept").click()
        expect(panel).to_have_attribute("data-link", "not-loaded")
        expect(panel.locator(".nba-block")).to_have_count(0)
        page.screenshot(path=str(artifacts / "08-after-restart.png"))
        panel.locator(".nba-load").click()
        expect(panel).to_have_attribute("data-link", "connected")
        expect(panel.locator(".nba-user").first).to_contain_text("Change the greeting")
        expect(panel.locator(".nba-tool[data-tool='edit'] .nba-diff-add")).to_contain_text("hello")
        page.screenshot(path=str(artifacts / "09-resumed.png"))

        # another notebook: the sidebar follows it, and comes back to the first one's session
        page.locator(".jp-DirListing-item", has_text="b.ipynb").dblclick()
        expect(panel.locator(".nba-notebook")).to_have_text("b.ipynb")
        expect(panel).to_have_attribute("data-link", "not-loaded")
        page.locator(".lm-TabBar-tab", has_text="a.ipynb").click()
        expect(panel.locator(".nba-notebook")).to_have_text("a.ipynb")
        expect(panel).to_have_attribute("data-link", "connected")
        expect(panel.locator(".nba-user").first).to_contain_text("Change the greeting")
    finally:
        server.stop()


def test_mcp_servers_in_the_sidebar(browser: Any, lab_factory: Any, artifacts: Path) -> None:
    """The project's MCP servers (a working stdio one, one whose program is missing; the folder is
    trusted for the run): listed, not started, as the sidebar connects; after the first turn started
    them, "1 of 2 ready" with the working one's tools and the broken one's error."""
    from playwright.sync_api import expect

    expect.set_options(timeout=TIMEOUT_MS)
    fixture = Path(__file__).parents[1] / "ext" / "mcp_fixture_server.py"
    servers = {
        "fx": {"type": "local", "command": [sys.executable, str(fixture), "stdio"]},
        "broken": {"type": "local", "command": ["no-such-mcp-program-xyz"]},
    }
    server = ScriptedModelServer(script()).start()
    try:
        lab = lab_factory(
            {"demo.ipynb": notebook_json(["%load_ext nbagent"]), "nbagent.json": {"mcp": servers}},
            {
                "NBAGENT_MODEL": "openai/scripted",
                "NBAGENT_API_BASE": server.openai_base,
                "NBAGENT_TRUST_PROJECT": "1",
            },
        )
        page, cells, errors = open_notebook(browser, lab, "demo.ipynb", expect)
        load_nbagent(page, cells, expect)
        page.locator(".jp-SideBar.jp-mod-right li[data-id='nbagent-sidebar']").click()
        panel = page.locator("#nbagent-sidebar")
        expect(panel).to_have_attribute("data-link", "connected")
        section = panel.locator(".nba-mcp")
        head = section.locator(".nba-mcp-head")
        expect(head).to_have_text("MCP · 0 of 2 ready · 2 not started")

        # the first turn starts the servers; the section opens by itself on the failure
        prompt = panel.locator(".nba-prompt")
        prompt.fill("hello")
        prompt.press("Enter")
        expect(panel.locator(".nba-text").last).to_contain_text("OK.")
        expect(head).to_have_text("MCP · 1 of 2 ready · 1 failed")
        expect(section).to_have_attribute("data-level", "error")
        fx = section.locator(".nba-mcp-server[data-server='fx']")
        broken = section.locator(".nba-mcp-server[data-server='broken']")
        expect(fx).to_have_attribute("data-state", "ready")
        expect(fx.locator(".nba-mcp-line")).to_contain_text("stdio · project")
        expect(fx.locator(".nba-mcp-tool-count")).to_have_text(re.compile(r"^\d+ tools$"))
        expect(broken.locator(".nba-mcp-state")).to_have_text("failed")
        error = broken.locator(".nba-mcp-error")
        expect(error).to_be_visible()
        expect(error).to_contain_text("no-such-mcp-program-xyz")
        expect(error).to_contain_text('install it or fix "command"')  # the whole text, with the fix
        fx.locator(".nba-mcp-tool-count").click()
        expect(fx.locator(".nba-mcp-tool-names")).to_contain_text("echo, add")
        count = int(fx.locator(".nba-mcp-tool-count").inner_text().split()[0])
        assert len(fx.locator(".nba-mcp-tool-names").inner_text().split(", ")) == count >= 8
        section.screenshot(path=str(artifacts / "10-mcp-servers.png"))

        # the header closes the list
        head.click()
        expect(error).to_be_hidden()
        assert not errors, errors
    finally:
        server.stop()
