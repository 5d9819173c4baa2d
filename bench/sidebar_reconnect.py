"""Sidebar reconnect after a kernel restart, in a real ``jupyter lab`` and Debian's Chromium.

Two ways a user meets it:

- autoload: nbagent is loaded at kernel start (``c.InteractiveShellApp.extensions``); the time from
  the click on "Restart" to the sidebar linked again;
- rerun: after the restart the user runs the notebook's ``%load_ext nbagent`` cell; the time from the
  end of that cell (the kernel idle again) to the sidebar linked again.

The times are taken in the page (``performance.now()``, a MutationObserver on the sidebar's
``data-link``), so the harness's polling does not count.

.venv/bin/python -m bench.sidebar_reconnect
"""

from __future__ import annotations

import json
import statistics
import tempfile
from pathlib import Path
from typing import Any

from tests.e2e.conftest import CHROMIUM, CHROMIUM_ARGS, notebook_json, start_lab, stop_lab

RUNS = 3
TIMEOUT_MS = 60_000
WATCH = """() => {
  window.__links = [];
  const panel = document.querySelector('#nbagent-sidebar');
  new MutationObserver(() => window.__links.push([performance.now(),
      panel.dataset.ready === 'true' ? 'ready' : panel.dataset.link]))
    .observe(panel, { attributes: true, attributeFilter: ['data-link', 'data-ready'] });
}"""

# when the first cell's prompt goes from "[*]:" back to a number: the cell has run
RAN = """() => {
  window.__ran = null;
  const prompt = document.querySelector('.jp-NotebookPanel .jp-Cell .jp-InputArea-prompt');
  let busy = false;
  const seen = new MutationObserver(() => {
    const text = prompt.textContent;
    if (text.includes('*')) { busy = true; }
    else if (busy && /\\d/.test(text)) { window.__ran = performance.now(); seen.disconnect(); }
  });
  seen.observe(prompt, { childList: true, characterData: true, subtree: true });
}"""


def _connected_after(page: Any, start: float) -> tuple[float, float]:
    """ms from ``start`` (page time) to the sidebar linked, and to its status shown (ready)."""
    page.wait_for_function(
        "s => window.__links.some(([t, v]) => t > s && v === 'ready')", arg=start, timeout=TIMEOUT_MS
    )
    links = page.evaluate("window.__links")
    linked = min(t for t, v in links if t > start and v in ("connected", "ready"))
    ready = min(t for t, v in links if t > start and v == "ready")
    return float(linked - start), float(ready - start)


def _restart(page: Any, item: str = "Restart Kernel…") -> float:
    page.locator(".lm-MenuBar-itemLabel", has_text="Kernel").click()
    page.locator(".lm-Menu-itemLabel", has_text=item).first.click()
    button = page.locator(".jp-Dialog-button.jp-mod-accept")
    button.wait_for()
    start = float(page.evaluate("performance.now()"))
    button.click()
    return start


SCENARIOS = {
    "autoload": "nbagent loaded at kernel start: restart click -> linked",
    "rerun": "restart, then run the %load_ext cell: cell done -> linked",
    "run-all": "Restart Kernel and Run All Cells: %load_ext cell done -> linked",
}


def measure(browser: Any, base: Path, mode: str) -> list[tuple[float, float]]:
    root = base / "work"
    root.mkdir(parents=True)
    (root / "demo.ipynb").write_text(json.dumps(notebook_json(["%load_ext nbagent", "x = 1"]), indent=1))
    env = {"NBAGENT_MODEL": "openai/scripted", "NBAGENT_API_BASE": "http://127.0.0.1:9/v1"}
    if mode == "autoload":
        profile = base / "ipython" / "profile_default"
        profile.mkdir(parents=True)
        (profile / "ipython_config.py").write_text("c.InteractiveShellApp.extensions = ['nbagent']\n")
        env["IPYTHONDIR"] = str(base / "ipython")
    lab = start_lab(base / "lab", root, env)
    times: list[tuple[float, float]] = []
    try:
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.set_default_timeout(TIMEOUT_MS)
        page.goto(lab.page_url("demo.ipynb"))
        page.locator(".jp-NotebookPanel .jp-Cell").first.wait_for()
        page.locator(".jp-SideBar.jp-mod-right li[data-id='nbagent-sidebar']").click()
        page.locator("#nbagent-sidebar").wait_for()
        page.evaluate(WATCH)
        if mode != "autoload":
            page.wait_for_function(
                "document.querySelector('#nbagent-sidebar').dataset.link === 'not-loaded'", timeout=TIMEOUT_MS
            )
            page.locator(".jp-NotebookPanel .jp-Cell").first.click()
            page.keyboard.press("Control+Enter")
        page.wait_for_function(
            "document.querySelector('#nbagent-sidebar').dataset.ready === 'true'", timeout=TIMEOUT_MS
        )
        for _ in range(RUNS):
            if mode == "autoload":
                times.append(_connected_after(page, _restart(page)))
                continue
            if mode == "run-all":
                page.evaluate(RAN)
                _restart(page, "Restart Kernel and Run All Cells…")
            else:
                start = _restart(page)
                page.wait_for_function(
                    "s => window.__links.some(([t, v]) => t > s && v === 'not-loaded')",
                    arg=start,
                    timeout=TIMEOUT_MS,
                )
                page.evaluate(RAN)
                page.locator(".jp-NotebookPanel .jp-Cell").first.click()
                page.keyboard.press("Control+Enter")
            page.wait_for_function("window.__ran !== null", timeout=TIMEOUT_MS)
            times.append(_connected_after(page, float(page.evaluate("window.__ran"))))
        page.close()
    finally:
        stop_lab(lab)
    return times


def main() -> None:
    import sys

    from playwright.sync_api import sync_playwright

    modes = sys.argv[1:] or list(SCENARIOS)
    with sync_playwright() as p, tempfile.TemporaryDirectory() as tmp:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            for mode in modes:
                times = measure(browser, Path(tmp) / mode, mode)
                linked = statistics.median(t for t, _ in times) / 1000
                ready = statistics.median(r for _, r in times) / 1000
                shown = ", ".join(f"{t / 1000:.2f}/{r / 1000:.2f}" for t, r in times)
                print(f"{SCENARIOS[mode]}: linked {linked:.2f} s, ready {ready:.2f} s (median; runs {shown})")
        finally:
            browser.close()


if __name__ == "__main__":
    main()
