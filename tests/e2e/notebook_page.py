"""A notebook page in the browser, driven as a user does: open it, run a cell in place, load nbagent.

Shared by the live-notebook and subagent browser tests. JupyterLab sometimes asks which kernel to use
while the first one starts (a machine under load): the dialog is answered with the preferred kernel, as
a user would, before a cell is clicked.
"""

from __future__ import annotations

import re
from typing import Any

TIMEOUT_MS = 30_000
COUNT = re.compile(r"^\[\d+\]:$")
ACTIVE = re.compile(r"\bjp-mod-active\b")


def open_notebook(browser: Any, lab: Any, name: str, expect: Any) -> tuple[Any, Any, list[str]]:
    """The page of notebook ``name`` with its kernel idle; the page's JavaScript errors are collected."""
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.set_default_timeout(TIMEOUT_MS)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(f"{exc}\n{exc.stack}"))
    page.goto(lab.page_url(name))
    cells = page.locator(".jp-NotebookPanel .jp-Notebook .jp-Cell")
    cells.first.wait_for()
    expect(page.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']").first).to_be_attached(
        timeout=60_000
    )
    accept_kernel_dialog(page)
    return page, cells, errors


def accept_kernel_dialog(page: Any) -> None:
    """Answer JupyterLab's "Select Kernel" dialog (shown when the kernel was slow to start) if it is up."""
    dialog = page.locator(".jp-Dialog")
    if dialog.count() and "Kernel" in (dialog.first.inner_text() or ""):
        dialog.locator(".jp-Dialog-button.jp-mod-accept").first.click()
        dialog.first.wait_for(state="detached")


def prompt_of(cells: Any, index: int) -> Any:
    return cells.nth(index).locator(".jp-InputArea-prompt")


def run_cell(page: Any, cells: Any, index: int) -> None:
    """Run one cell in place, as a user does: select it (a click on its prompt), Ctrl+Enter."""
    from playwright.sync_api import expect

    accept_kernel_dialog(page)
    prompt_of(cells, index).click()
    expect(cells.nth(index)).to_have_class(ACTIVE)
    page.keyboard.press("Control+Enter")


def load_nbagent(page: Any, cells: Any, expect: Any) -> None:
    """Run the first cell (``%load_ext nbagent``), again if the keypress was lost to the page still
    settling (the shell takes the focus when it finishes restoring): loading twice is harmless."""
    for _ in range(3):
        run_cell(page, cells, 0)
        try:
            expect(prompt_of(cells, 0)).not_to_have_text("[ ]:", timeout=5_000)
            break
        except AssertionError:
            continue
    expect(prompt_of(cells, 0)).to_have_text(COUNT, timeout=60_000)
