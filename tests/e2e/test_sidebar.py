"""The sidebar in a real browser against a real ``jupyter lab``, kernel and scripted model.

Open a notebook, open the sidebar (it says nbagent is not loaded), run the notebook's first cell
``%load_ext nbagent`` (the sidebar connects), send a task: streamed text, tool cards, the todo list,
a permission prompt answered by clicking, the diff, the turn recorded in the notebook as a cell; then
a slow shell command stopped with the Stop button. Screenshots go to test-artifacts/e2e/.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from nbagent.providers.scripted import FunctionScript, Reply, ScriptedModelServer, ToolCallSpec
from tests.e2e.conftest import notebook_json

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
                        ToolCallSpec("edit", {"file_path": "greet.py", "old_string": "hi", "new_string": "hello"})
                    ],
                ),
                Reply(text="Done: `greet.py` now says **hello**.", delay=0.02),
            ]
        elif "slow" in prompt:
            replies = [
                Reply(text="Starting the slow job.", tool_calls=[ToolCallSpec("bash", {"command": "sleep 60"})]),
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
        console: list[str] = []
        page.on("console", lambda m: console.append(m.text))
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
        try:
            expect(ask.locator(".nba-permission-answer")).to_contain_text("allowed once", timeout=8000)
        except AssertionError:
            print("PANEL:", panel.inner_text())
            print("CONSOLE:", "\n".join(console))
            raise
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
        expect(panel.locator(".nba-notice-warning").last).to_contain_text("Stopped")
        expect(panel.locator(".nba-tool[data-tool='bash']")).to_have_attribute("data-status", "error")
        expect(panel).to_have_attribute("data-busy", "false")
        timings["stop_latency"] = time.perf_counter() - stop_at
        expect(cells).to_have_count(3)
        page.screenshot(path=str(artifacts / "06-stopped.png"))

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
