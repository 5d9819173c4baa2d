"""What a user sees of a turn, in a real browser: recorded turns in a notebook just opened (untrusted)
and trusted, and the sidebar's layout at its default width.

- The shipped notebooks' turns are drawn by the extension's MIME renderer (``nba-turn``): diffs in a
  monospace box with their counts, whether the notebook is trusted or not.
- The sidebar at its default width: the model and the placeholder are not cut, no diff scrolls
  sideways, the permission prompt's feedback field stays inside the prompt, a tool header says its
  path once, an apply_patch card is titled with its files and counts its lines (live, and in the
  history shown after a reload).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from nbagent.providers.scripted import ListScript, Reply, ScriptedModelServer, ToolCallSpec
from nbagent.store.notebook import TURN_MIME
from tests.e2e.conftest import REPO, notebook_json

pytestmark = pytest.mark.timeout(240)
TIMEOUT_MS = 30_000
SHIPPED = ("quickstart.ipynb", "context.ipynb")

BOX = """el => { const s = getComputedStyle(el);
  return { font: s.fontFamily, border: s.borderTopStyle, width: parseFloat(s.borderTopWidth),
           scroll: el.scrollWidth - el.clientWidth }; }"""


CURRENT = ".jp-NotebookPanel:not(.lm-mod-hidden)"


def _diff_look(page: Any) -> list[dict[str, Any]]:
    boxes = page.locator(f"{CURRENT} .jp-OutputArea .nba-turn .nba-diff-body")
    return [boxes.nth(i).evaluate(BOX) for i in range(boxes.count())]


def _recorded(path: Path) -> int:
    cells = json.loads(path.read_text())["cells"]
    return sum(TURN_MIME in json.dumps(c.get("outputs", [])) for c in cells)


def _check_turns(page: Any, expect: Any, recorded: int) -> None:
    turns = page.locator(f"{CURRENT} .jp-OutputArea .nba-turn")
    expect(turns.first).to_be_attached()
    # every recorded turn is drawn by the renderer (not the sanitized HTML fallback)
    expect(turns).to_have_count(recorded)
    looks = _diff_look(page)
    assert looks, "the shipped notebooks show diffs"
    for look in looks:
        assert "mono" in look["font"].lower(), look
        assert look["border"] == "solid" and look["width"] > 0, look
    patch = page.locator(f"{CURRENT} .jp-OutputArea .nba-tool[data-tool='apply_patch']")
    if patch.count():
        head = patch.first.locator(".nba-tool-head").inner_text()
        assert "Begin Patch" not in head and "{" not in head, head
        counts = patch.first.locator(".nba-diff-head").inner_text()
        assert "+0 -0" not in counts, counts


def _trust(page: Any) -> None:
    page.locator(".lm-MenuBar-itemLabel", has_text="View").click()
    page.locator(".lm-Menu-itemLabel", has_text="Command Palette").first.click()
    page.locator(".lm-CommandPalette-input").fill("Trust Notebook")
    page.locator(".lm-CommandPalette-item", has_text="Trust Notebook").first.click()
    page.locator(".jp-Dialog-button.jp-mod-accept").click()


def test_shipped_notebooks_render_with_the_extension_trusted_or_not(
    browser: Any, lab_factory: Any, artifacts: Path
) -> None:
    from playwright.sync_api import expect

    expect.set_options(timeout=TIMEOUT_MS)
    lab = lab_factory({}, {})
    for name in SHIPPED:
        shutil.copy(REPO / "notebooks" / name, lab.root / name)
    errors: list[str] = []
    for name in SHIPPED:
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.set_default_timeout(TIMEOUT_MS)
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(lab.page_url(name) + "&reset")
        page.locator(f"{CURRENT} .jp-Cell").first.wait_for()
        recorded = _recorded(lab.root / name)
        _check_turns(page, expect, recorded)  # just opened: untrusted
        stem = name.removesuffix(".ipynb")
        page.locator(f"{CURRENT} .jp-OutputArea .nba-diff").first.scroll_into_view_if_needed()
        page.screenshot(path=str(artifacts / f"10-{stem}-untrusted.png"))
        _trust(page)
        page.wait_for_timeout(500)
        _check_turns(page, expect, recorded)
        page.screenshot(path=str(artifacts / f"11-{stem}-trusted.png"))
        page.close()
    assert not errors, errors


PATCH = """*** Begin Patch
*** Update File: wordcount/cli.py
@@
 def main():
-    print(count(read_input()))
+    text = read_input()
+    words = count(text)
+    if words == 0:
+        print("no words in the input; pass a file or pipe some text into this command, for example: cat notes.txt | wordcount")
+        return
+    print(words)
*** End Patch"""


def test_sidebar_layout_at_default_width(browser: Any, lab_factory: Any, artifacts: Path) -> None:
    from playwright.sync_api import expect

    expect.set_options(timeout=TIMEOUT_MS)
    replies = [
        Reply(
            text="Reading the CLI first.",
            tool_calls=[ToolCallSpec("read", {"file_path": "wordcount/cli.py"})],
        ),
        Reply(text="Now the patch.", tool_calls=[ToolCallSpec("apply_patch", {"patch": PATCH})]),
        Reply(text="Done."),
    ]
    with ScriptedModelServer(ListScript(replies)) as server:
        lab = lab_factory(
            {"demo.ipynb": notebook_json(["%load_ext nbagent"])},
            {
                "NBAGENT_MODEL": "openai/gpt-4.1-mini-2025-04-14",
                "NBAGENT_API_BASE": server.openai_base,
            },
        )
        (lab.root / "wordcount").mkdir()
        (lab.root / "wordcount" / "cli.py").write_text("def main():\n    print(count(read_input()))\n")
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.set_default_timeout(TIMEOUT_MS)
        page.goto(lab.page_url("demo.ipynb"))
        page.locator(".jp-NotebookPanel .jp-Cell").first.wait_for()
        page.locator(".jp-SideBar.jp-mod-right li[data-id='nbagent-sidebar']").click()
        panel = page.locator("#nbagent-sidebar")
        expect(panel).to_have_attribute("data-link", "not-loaded")
        page.locator(".jp-NotebookPanel .jp-Cell").first.click()
        page.keyboard.press("Control+Enter")
        expect(panel).to_have_attribute("data-ready", "true")
        model = panel.locator(".nba-model")
        expect(model).to_have_value("openai/gpt-4.1-mini-2025-04-14")
        width = panel.bounding_box()["width"]
        print(f"sidebar width at its default: {width:.0f} px")

        # the model's name and the prompt's placeholder are shown in full
        fits = "el => el.scrollWidth <= el.clientWidth + 1"
        assert model.evaluate(fits), "the model field cuts the model's name"
        prompt = panel.locator(".nba-prompt")
        assert prompt.evaluate(
            """el => { const probe = document.createElement('div'); const s = getComputedStyle(el);
              probe.style.cssText = `position:absolute;visibility:hidden;white-space:pre-wrap;
                width:${el.clientWidth - parseFloat(s.paddingLeft) - parseFloat(s.paddingRight)}px;
                font:${s.font};line-height:${s.lineHeight}`;
              probe.textContent = el.placeholder; document.body.append(probe);
              const fits = probe.offsetHeight <= el.clientHeight; probe.remove(); return fits; }"""
        ), "the placeholder does not fit the prompt box"

        prompt.fill("Make the CLI say when the input has no words")
        prompt.press("Enter")
        ask = panel.locator(".nba-permission").first
        expect(ask.locator(".nba-feedback")).to_be_visible()
        page.screenshot(path=str(artifacts / "12-layout-permission.png"))
        inner = ask.evaluate("el => el.getBoundingClientRect().right")
        for sel in (".nba-feedback", ".nba-permission-buttons", ".nba-diff"):
            right = ask.locator(sel).evaluate("el => el.getBoundingClientRect().right")
            assert right <= inner + 0.5, f"{sel} overflows the prompt to the right ({right} > {inner})"
        assert ask.locator(".nba-diff-body").evaluate(fits), "the proposed diff scrolls sideways"

        # the read card says its path once
        read = panel.locator(".nba-tool[data-tool='read']")
        expect(read).to_have_attribute("data-status", "completed")
        assert read.locator(".nba-tool-head").inner_text().count("wordcount/cli.py") == 1

        ask.locator(".nba-allow-once").click()
        card = panel.locator(".nba-tool[data-tool='apply_patch']")
        expect(card).to_have_attribute("data-status", "completed")
        expect(panel).to_have_attribute("data-busy", "false")

        def check_patch_card() -> None:
            head = card.locator(".nba-tool-head")
            expect(head).to_contain_text("wordcount/cli.py")
            assert "Begin Patch" not in head.inner_text() and "{" not in head.inner_text()
            expect(card.locator(".nba-diff-head")).to_contain_text("+6 -1")
            assert card.locator(".nba-diff-body").evaluate(fits), "the diff scrolls sideways"
            assert panel.evaluate("el => el.scrollWidth <= el.clientWidth + 1"), (
                "the sidebar scrolls sideways"
            )

        check_patch_card()
        page.screenshot(path=str(artifacts / "13-layout-diff.png"))
        # reloaded, the sidebar shows the session's history: the same card
        page.reload()
        page.locator(".jp-NotebookPanel .jp-Cell").first.wait_for()
        panel = page.locator("#nbagent-sidebar")
        if not panel.is_visible():
            page.locator(".jp-SideBar.jp-mod-right li[data-id='nbagent-sidebar']").click()
        expect(panel).to_have_attribute("data-ready", "true")
        card = panel.locator(".nba-tool[data-tool='apply_patch']")
        check_patch_card()
        page.screenshot(path=str(artifacts / "14-layout-history.png"))
