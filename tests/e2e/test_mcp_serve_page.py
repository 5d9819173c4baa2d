"""``nbagent mcp serve --notebook NB`` with the notebook open in JupyterLab: the prompts are answered in
the page, for real.

Real parts: ``jupyter lab`` with the built extension, headless Chromium showing ``analysis.ipynb`` (its
kernel started by the page, the user's ``x = 21`` run there), the ``nbagent mcp serve`` command as a
process, and the SDK's MCP client as a third process.

- The command finds the notebook's session, starts the kernel's MCP server and says that the prompts
  appear in the notebook (the view's cell id), not that no page shows it.
- The page shows the view's cell at the end of the notebook (``%agent /mcp-serve stop``, the intro).
- The client calls ``python`` twice (no nbagent.json: python asks): the prompt with the code appears in
  that cell; "Allow once" clicked in the page runs the code in the user's kernel (``y is 42`` at the
  client, the call's card in the cell); "Deny" clicked on the second prompt gives the client an error.
- Ctrl+C in the terminal: the command exits 0 and the cell says the server stopped.
- A second ``nbagent mcp serve`` reuses the cell; running that cell in the page stops the server and the
  command ends by itself.
Screenshots go to test-artifacts/e2e/.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import Lab, notebook_json
from tests.e2e.notebook_page import COUNT, TIMEOUT_MS, open_notebook, prompt_of, run_cell
from tests.jupyter.test_mcp_serve import start_client
from tests.jupyter.test_mcp_serve_cli import read_banner

pytestmark = pytest.mark.timeout(300)
NB = "analysis.ipynb"
ALLOWED = "y = x * 2\nprint('y is', y)"
DENIED = "open('denied.txt', 'w').write('ran')"


def _serve(lab: Lab, runtime: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "JUPYTER_RUNTIME_DIR": str(runtime), "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "nbagent", "mcp", "serve", "--notebook", NB],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=lab.root,
    )


def _editor(cell: Any) -> Any:
    return cell.locator(".jp-InputArea-editor")


def _answer(view: Any, code: str, button: str, expect: Any) -> None:
    """A permission prompt showing ``code`` appears in the view's cell; click ``button`` there."""
    question = view.page.locator(".nbagent-permission", has_text=code.splitlines()[0])
    expect(view.locator(question)).to_be_visible(timeout=60_000)
    prompt = view.locator(".widget-vbox", has=question).last  # the prompt: question, buttons, feedback
    prompt.get_by_role("button", name=button, exact=True).click()


def _run(page: Any, cells: Any, index: int, expect: Any) -> None:
    """Run a cell in the page and wait for its count; again if the keypress was lost to the page still
    settling (the shell takes the focus when it finishes restoring)."""
    for _ in range(3):
        run_cell(page, cells, index)
        try:
            expect(prompt_of(cells, index)).not_to_have_text(re.compile(r"^\[ \]:$"), timeout=5_000)
            break
        except AssertionError:
            continue
    expect(prompt_of(cells, index)).to_have_text(COUNT, timeout=60_000)


def _stop(proc: subprocess.Popen[str], sig: int | None) -> tuple[str, str]:
    if sig is not None:
        proc.send_signal(sig)
    try:
        return proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate(timeout=10)
        raise AssertionError(f"nbagent mcp serve did not end:\n{out}\n{err}") from None


def test_prompts_of_served_calls_are_answered_in_the_notebook_page(
    browser: Any, lab_factory: Any, artifacts: Path, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    expect.set_options(timeout=TIMEOUT_MS)
    started = time.perf_counter()
    lab = lab_factory({NB: notebook_json(["x = 21"])}, {})
    runtime = tmp_path / "lab" / "runtime"
    page = None
    procs: list[subprocess.Popen[str]] = []
    timings: dict[str, float] = {}
    try:
        # 1. the notebook in the page; the user's state in its kernel
        page, cells, errors = open_notebook(browser, lab, NB, expect)
        _run(page, cells, 0, expect)
        timings["page ready"] = time.perf_counter() - started

        # 2. the command: prompts appear in the notebook
        t0 = time.perf_counter()
        proc = _serve(lab, runtime)
        procs.append(proc)
        url, token, text = read_banner(proc)
        timings["serve banner"] = time.perf_counter() - t0
        assert "Permission prompts appear in the notebook, in the cell" in text, text
        assert "no page shows this notebook" not in text.lower(), text
        assert "Warning:" not in text, text

        # 3. the view's cell at the end of the notebook
        expect(cells).to_have_count(2)
        view = cells.nth(1)
        expect(_editor(view)).to_contain_text("%agent /mcp-serve stop")
        expect(view.locator(".jp-OutputArea")).to_contain_text("nbagent serves this kernel over MCP")
        expect(view.locator(".jp-OutputArea")).to_contain_text(url)
        expect(view.locator(".jp-OutputArea")).not_to_contain_text(token)
        expect(view.locator(".jp-OutputArea .widget-vbox").first).to_be_attached()  # the widget renders
        page.screenshot(path=str(artifacts / "mcp-serve-page-view.png"))

        t0 = time.perf_counter()
        client = start_client(
            tmp_path, url, token, [("python", {"code": ALLOWED}), ("python", {"code": DENIED})]
        )
        procs.append(client)
        _answer(view, ALLOWED, "Allow once", expect)
        page.screenshot(path=str(artifacts / "mcp-serve-page-allowed.png"))
        _answer(view, DENIED, "Deny", expect)
        out, err = client.communicate(timeout=120)
        timings["two calls, two clicks"] = time.perf_counter() - t0
        assert client.returncode == 0, err
        lines = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
        assert lines[0]["tools"] == ["inspect", "notebook_edit", "notebook_run", "python", "read"]
        assert lines[1]["is_error"] is False and "y is 42" in lines[1]["text"], lines
        assert lines[2]["is_error"] is True, lines
        assert not (lab.root / "denied.txt").exists()  # the denied code did not run
        # the calls' cards in the cell: the allowed one with its output, the denied one an error
        cards = view.locator(".nbagent-tool")
        expect(cards).to_have_count(2)
        expect(view.locator(".nbagent-tool", has_text="y is 42")).to_have_count(1)
        expect(view.locator(".nbagent-tool", has_text="refused")).to_have_count(1)
        page.screenshot(path=str(artifacts / "mcp-serve-page-calls.png"))

        # 4. Ctrl+C in the terminal: the command ends, the cell says so
        out, err = _stop(proc, signal.SIGINT)
        assert proc.returncode == 0, err
        assert "The MCP server stopped." in out, out
        expect(view.locator(".jp-OutputArea")).to_contain_text("The MCP server stopped")
        expect(view.locator(".jp-OutputArea")).not_to_contain_text("nbagent serves this kernel")
        expect(view.locator(".nbagent-permission")).to_have_count(0)

        # 5. served again: the same cell; running it in the page stops the server, the command ends
        again = _serve(lab, runtime)
        procs.append(again)
        _url2, _token2, text = read_banner(again)
        assert "Permission prompts appear in the notebook, in the cell" in text, text
        expect(cells).to_have_count(2)
        expect(view.locator(".jp-OutputArea")).to_contain_text("nbagent serves this kernel over MCP")
        expect(view.locator(".jp-OutputArea .widget-vbox").first).to_be_attached()
        t0 = time.perf_counter()
        _run(page, cells, 1, expect)
        out, err = _stop(again, None)
        timings["stopped in the page"] = time.perf_counter() - t0
        assert again.returncode == 0, err
        assert "stopped (in the notebook" in out, out
        expect(view.locator(".jp-OutputArea")).to_contain_text("The MCP server stopped")
        # the MCP library's log lines (its root-logger setup) do not leak into the user's cells
        expect(view.locator(".jp-OutputArea")).not_to_contain_text("StreamableHTTP")
        page.screenshot(path=str(artifacts / "mcp-serve-page-stopped.png"))
        assert not errors, "\n".join(errors)
        timings["total"] = time.perf_counter() - started
        print("mcp serve page timings (s):", {k: round(v, 2) for k, v in timings.items()})
    except BaseException:
        if page is not None:
            page.screenshot(path=str(artifacts / "mcp-serve-page-failure.png"))
        raise
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.communicate(timeout=10)
