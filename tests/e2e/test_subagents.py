"""A parent agent delegating to a child (the ``task`` tool, built-in agent ``general``) in a real browser
against a real ``jupyter lab``, kernel and scripted model.

- The ``%%agent`` cell: while the child runs, its transcript is a nested block after the ``task`` card in
  the cell's output, titled with the agent's name and open; the child's permission prompt (writing a file)
  is there with its buttons; Allow once lets the child write; the child finishes, the parent answers, and
  the cell's final output shows the nested block folded inside the task card.
- The sidebar: the same delegation asked in its chat; the nested block inside the sidebar's task card,
  the child's prompt answered there, then folded.
Screenshots go to test-artifacts/e2e/.
"""

from __future__ import annotations

import re
import threading
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

pytestmark = pytest.mark.timeout(120)
TASK = "write a note through a subagent"
NOTE = "hi from the child\n"
ANSWER = "The subagent wrote note.txt."
OPEN = re.compile(r"\bjupyter-widget-Collapse-open\b")
WAITING = re.compile(r"↳ agent general · write the note · .*waiting for your answer")
DONE = re.compile(r"↳ agent general · write the note · .*done")


def script(seen: dict[str, int], release: threading.Event) -> FunctionScript:
    """The parent delegates to ``general``; the child writes note.txt (which asks), then reports; the
    parent answers once ``release`` is set (the test looks at the finished child in the running turn
    meanwhile). The child is told apart by its agent's system prompt."""

    def answer(body: dict[str, Any], protocol: str) -> Reply:
        messages = body.get("messages") or []
        system = "".join(str(m.get("content")) for m in messages if m.get("role") == "system")
        results = [m for m in messages if m.get("role") == "tool"]
        if "You are general" in system:
            seen["child"] = seen.get("child", 0) + 1
            if not results:
                return Reply(
                    text="Writing the note.",
                    tool_calls=[ToolCallSpec("write", {"file_path": "note.txt", "content": NOTE})],
                )
            return Reply(text="wrote note.txt")
        seen["parent"] = seen.get("parent", 0) + 1
        if not results:
            task = {"description": "write the note", "prompt": "write note.txt", "subagent_type": "general"}
            return Reply(text="Delegating.", tool_calls=[ToolCallSpec("task", task)])
        release.wait(timeout=TIMEOUT_MS / 1000)
        return Reply(text=ANSWER)

    return FunctionScript(answer)


def _env(server: ScriptedModelServer) -> dict[str, str]:
    return {"NBAGENT_MODEL": "openai/scripted", "NBAGENT_API_BASE": server.openai_base}


def test_cell_nests_the_subagent_in_the_task_card(browser: Any, lab_factory: Any, artifacts: Path) -> None:
    from playwright.sync_api import expect

    expect.set_options(timeout=TIMEOUT_MS)
    seen: dict[str, int] = {}
    release = threading.Event()
    server = ScriptedModelServer(script(seen, release)).start()
    page = None
    try:
        t0 = time.perf_counter()
        lab = lab_factory(
            {"demo.ipynb": notebook_json(["%load_ext nbagent", f"%%agent\n{TASK}"])}, _env(server)
        )
        page, cells, errors = open_notebook(browser, lab, "demo.ipynb", expect)
        load_nbagent(page, cells, expect)
        started = time.perf_counter()
        run_cell(page, cells, 1)
        out = cells.nth(1).locator(".jp-OutputArea")

        # live: the child's block follows the task card, titled with its agent, open, asking
        nested = out.locator(".nbagent-subagent")
        expect(nested).to_have_count(1)
        header = nested.locator(".jupyter-widget-Collapse-header")
        expect(header).to_contain_text(WAITING)
        expect(nested.locator(".jupyter-widget-Collapse")).to_have_class(OPEN)
        card = nested.locator("xpath=preceding-sibling::*[1]")
        expect(card.locator(".nbagent-tool")).to_contain_text("task")
        expect(nested).to_contain_text("↳ agent general asks:")
        once = nested.locator("button", has_text="Allow once")
        expect(once).to_be_visible()
        expect(prompt_of(cells, 1)).to_have_text("[*]:")  # the cell is still running
        assert not (lab.root / "note.txt").exists()
        page.screenshot(path=str(artifacts / "subagent-cell-asking.png"))
        once.click()

        # the child finished (the parent's answer is held back): its block folds in the running turn
        expect(header).to_contain_text(DONE)
        expect(nested.locator(".jupyter-widget-Collapse")).not_to_have_class(OPEN)
        expect(nested.locator(".jupyter-widget-Collapse-contents")).to_be_hidden()
        expect(prompt_of(cells, 1)).to_have_text("[*]:")
        assert (lab.root / "note.txt").read_text() == NOTE
        page.screenshot(path=str(artifacts / "subagent-cell-folded.png"))
        release.set()

        # the parent answered; the cell's final output keeps the block folded in the task card
        expect(out).to_contain_text(ANSWER)
        expect(prompt_of(cells, 1)).to_have_text(COUNT)
        turn_seconds = time.perf_counter() - started
        assert (lab.root / "note.txt").read_text() == NOTE
        task_card = out.locator(".nba-tool[data-tool='task']")
        expect(task_card).to_have_attribute("data-status", "completed")
        folded = task_card.locator("details.nba-subagent[data-agent='general']")
        expect(folded).to_have_count(1)
        expect(folded.locator(".nba-subagent-title")).to_contain_text(DONE)
        expect(folded).to_have_js_property("open", False)
        # (the record keeps a digest of the child's steps and its final message)
        expect(folded.locator(".nba-subagent-body")).to_contain_text("● write")
        expect(folded.locator(".nba-text").last).to_contain_text("wrote note.txt")
        expect(out.locator("button", has_text="Allow once")).to_have_count(0)
        assert seen.get("child") == 2 and seen.get("parent") == 2, seen
        page.screenshot(path=str(artifacts / "subagent-cell-done.png"))
        assert not errors, "\n".join(errors)
        print(
            "subagent cell: turn",
            round(turn_seconds, 2),
            "s, total",
            round(time.perf_counter() - t0, 2),
            "s",
        )
    except BaseException:
        if page is not None:
            page.screenshot(path=str(artifacts / "subagent-cell-failure.png"))
        raise
    finally:
        release.set()
        server.stop()


def test_sidebar_nests_the_subagent_in_the_task_card(browser: Any, lab_factory: Any, artifacts: Path) -> None:
    from playwright.sync_api import expect

    expect.set_options(timeout=TIMEOUT_MS)
    seen: dict[str, int] = {}
    release = threading.Event()
    server = ScriptedModelServer(script(seen, release)).start()
    page = None
    try:
        t0 = time.perf_counter()
        lab = lab_factory({"demo.ipynb": notebook_json(["%load_ext nbagent"])}, _env(server))
        page, cells, errors = open_notebook(browser, lab, "demo.ipynb", expect)
        page.locator(".jp-SideBar.jp-mod-right li[data-id='nbagent-sidebar']").click()
        panel = page.locator("#nbagent-sidebar")
        expect(panel).to_be_visible()
        load_nbagent(page, cells, expect)
        expect(panel).to_have_attribute("data-link", "connected")

        started = time.perf_counter()
        prompt = panel.locator(".nba-prompt")
        prompt.click()
        prompt.fill(TASK)
        prompt.press("Enter")
        expect(panel.locator(".nba-user").first).to_contain_text(TASK)

        # live: the child's block inside the task card, titled with its agent, open, its prompt there
        task_card = panel.locator(".nba-tool[data-tool='task']")
        expect(task_card).to_have_attribute("data-status", "running")
        nested = task_card.locator("details.nba-subagent[data-agent='general']")
        expect(nested).to_have_count(1)
        expect(nested.locator(".nba-subagent-title")).to_contain_text(WAITING)
        expect(nested).to_have_js_property("open", True)
        ask = nested.locator(".nba-permission")
        expect(ask.locator(".nba-subagent-asks")).to_contain_text("↳ agent general asks:")
        expect(ask.locator(".nba-allow-always")).to_contain_text("note.txt")
        expect(panel).to_have_attribute("data-busy", "true")
        assert not (lab.root / "note.txt").exists()
        page.screenshot(path=str(artifacts / "subagent-sidebar-asking.png"))
        ask.locator(".nba-allow-once").click()

        # the child finished (the parent's answer is held back): its block folds in the running turn
        expect(nested.locator(".nba-subagent-title")).to_contain_text(DONE)
        expect(nested).to_have_js_property("open", False)
        expect(nested.locator(".nba-subagent-body")).to_be_hidden()
        expect(panel).to_have_attribute("data-busy", "true")
        assert (lab.root / "note.txt").read_text() == NOTE
        release.set()

        # the parent answered; the block stays folded
        expect(panel.locator(".nba-text").last).to_contain_text(ANSWER)
        expect(panel).to_have_attribute("data-busy", "false")
        turn_seconds = time.perf_counter() - started
        assert (lab.root / "note.txt").read_text() == NOTE
        expect(task_card).to_have_attribute("data-status", "completed")
        expect(nested.locator(".nba-subagent-title")).to_contain_text(DONE)
        expect(nested).to_have_js_property("open", False)
        expect(ask.locator(".nba-permission-answer")).to_contain_text("allowed once")
        expect(nested.locator(".nba-tool[data-tool='write']")).to_have_attribute("data-status", "completed")
        assert seen.get("child") == 2 and seen.get("parent") == 2, seen

        # unfolded by a click, it shows the child's transcript
        nested.locator(".nba-subagent-title").click()
        expect(nested).to_have_js_property("open", True)
        expect(nested.locator(".nba-text").last).to_contain_text("wrote note.txt")
        page.screenshot(path=str(artifacts / "subagent-sidebar-done.png"))
        assert not errors, "\n".join(errors)
        print(
            "subagent sidebar: turn",
            round(turn_seconds, 2),
            "s, total",
            round(time.perf_counter() - t0, 2),
            "s",
        )
    except BaseException:
        if page is not None:
            page.screenshot(path=str(artifacts / "subagent-sidebar-failure.png"))
        raise
    finally:
        release.set()
        server.stop()
