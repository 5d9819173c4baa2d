"""``nbagent mcp serve --notebook NB``: the kernel of a notebook open in a running Jupyter server, served
to an MCP client process, started and stopped from a terminal.

Real parts: a ``jupyter lab`` server process with the notebook's session (its kernel started by the
server), the ``nbagent`` command as a process, and the SDK's MCP client as a third process. No page is
open here (the browser test in ``tests/e2e/test_mcp_serve_page.py`` answers a prompt in the notebook),
so the calls the rules leave open are refused with the way to allow them.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from jupyter_client.blocking.client import BlockingKernelClient

from tests.e2e.conftest import Lab, start_lab, stop_lab
from tests.jupyter.test_mcp_serve import CLIENT

pytestmark = pytest.mark.timeout(240)

NOTEBOOK = {
    "cells": [
        {
            "cell_type": "code",
            "id": "c1",
            "metadata": {},
            "source": "x = 21",
            "outputs": [],
            "execution_count": None,
        }
    ],
    "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
    "nbformat": 4,
    "nbformat_minor": 5,
}


class Served:
    def __init__(self, lab: Lab, runtime: Path) -> None:
        self.lab = lab
        self.runtime = runtime

    def env(self) -> dict[str, str]:
        # a proxy in the environment must not see the Jupyter token (nor answer for a server that is gone)
        proxy = {"HTTP_PROXY": "http://127.0.0.1:9", "http_proxy": "http://127.0.0.1:9", "NO_PROXY": ""}
        return {**os.environ, **proxy, "JUPYTER_RUNTIME_DIR": str(self.runtime), "PYTHONUNBUFFERED": "1"}

    def open_session(self, path: str) -> str:
        """Open the notebook's session on the server (as the page does); the kernel's id."""
        reply = httpx.post(
            f"{self.lab.url}/api/sessions",
            headers={"Authorization": f"token {self.lab.token}"},
            json={"path": path, "name": path, "type": "notebook", "kernel": {"name": "python3"}},
            timeout=60,
        )
        reply.raise_for_status()
        return str(reply.json()["kernel"]["id"])

    def kernel(self, kernel_id: str) -> BlockingKernelClient:
        client = BlockingKernelClient(connection_file=str(self.runtime / f"kernel-{kernel_id}.json"))
        client.load_connection_file()
        client.start_channels()
        client.wait_for_ready(timeout=60)
        return client

    def serve(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, "-m", "nbagent", "mcp", "serve", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=self.env(),
            cwd=self.lab.root,
        )


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    root = tmp_path / "work"
    root.mkdir()
    (root / "analysis.ipynb").write_text(json.dumps(NOTEBOOK))
    (root / "other.ipynb").write_text(json.dumps(NOTEBOOK))
    (root / "nbagent.json").write_text(json.dumps({"permission": {"python": "allow"}}))
    lab = start_lab(tmp_path / "lab", root, {})
    try:
        yield Served(lab, tmp_path / "lab" / "runtime")
    finally:
        stop_lab(lab)


def run_code(client: BlockingKernelClient, code: str) -> str:
    """Run code in the kernel (as the user's cell would); its stdout."""
    out: list[str] = []
    client.execute_interactive(
        code,
        timeout=60,
        output_hook=lambda m: out.append(m["content"].get("text", "")) if m["msg_type"] == "stream" else None,
    )
    return "".join(out)


def read_banner(proc: subprocess.Popen[str]) -> tuple[str, str, str]:
    """The URL, the token and the whole text ``nbagent mcp serve`` printed before it waits."""
    assert proc.stdout is not None
    lines: list[str] = []
    deadline = time.time() + 120
    while time.time() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        if "Press Ctrl+C" in line:
            break
    text = "".join(lines)
    found = re.search(r'(http://127\.0\.0\.1:\d+/mcp) --header "Authorization: Bearer (\S+)"', text)
    assert found, text + (proc.stderr.read() if proc.poll() is not None and proc.stderr else "")
    return found.group(1), found.group(2), text


def call(
    tmp_path: Path, url: str, token: str, calls: list[tuple[str, dict[str, Any]]]
) -> list[dict[str, Any]]:
    script = tmp_path / "client.py"
    script.write_text(CLIENT)
    done = subprocess.run(
        [sys.executable, str(script), url, token, json.dumps(calls)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]


def test_a_client_runs_code_in_the_kernel_of_an_open_notebook_until_ctrl_c(
    tmp_path: Path, served: Served
) -> None:
    kernel_id = served.open_session("analysis.ipynb")
    kernel = served.kernel(kernel_id)
    try:
        run_code(kernel, "x = 21")  # the user's state in the live kernel
        proc = served.serve("--notebook", "analysis.ipynb")
        url, token, text = read_banner(proc)
        assert "analysis.ipynb" in text and '"type": "remote"' in text  # the opencode.json snippet
        assert "no page shows this notebook" in text.lower()  # no browser here: prompts cannot be shown
        lines = call(
            tmp_path,
            url,
            token,
            [
                ("python", {"code": "y = x * 2\nprint('y is', y)"}),
                ("read", {"file_path": "/etc/hostname"}),  # outside the project: a question
                (
                    "notebook_edit",
                    {"notebook_path": "analysis.ipynb", "cell_id": "c1", "new_source": "x = 1"},
                ),
            ],
        )
        assert lines[0]["tools"] == ["inspect", "notebook_edit", "notebook_run", "python", "read"]
        assert lines[1]["is_error"] is False and "y is 42" in lines[1]["text"]  # allowed by nbagent.json
        refused, edit = lines[2], lines[3]
        assert refused["is_error"] is True and "no page shows this notebook" in refused["text"]
        assert 'allow "read" in nbagent.json' in refused["text"], refused
        # editing needs the live page: refused with what to do
        assert edit["is_error"] is True and "no nbagent front-end answers" in edit["text"]
        assert run_code(kernel, "print(y)").strip() == "42"  # it ran in the notebook's own kernel
        assert json.loads((served.lab.root / "analysis.ipynb").read_text())["cells"][0]["source"] == "x = 21"
        # a wrong token is refused before MCP sees it
        assert httpx.post(url, headers={"Authorization": "Bearer nope"}, json={}).status_code == 401

        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        assert "The MCP server stopped." in out
        with pytest.raises(httpx.TransportError):
            httpx.get(url, timeout=5)
        assert run_code(kernel, "print(y + 1)").strip() == "43"  # the kernel lives on
    finally:
        kernel.stop_channels()


def test_stopped_in_the_notebook_the_command_ends_and_errors_name_the_fix(
    tmp_path: Path, served: Served
) -> None:
    served.open_session("analysis.ipynb")
    other = served.kernel(served.open_session("other.ipynb"))
    try:
        # two notebooks open: the command asks which one
        ask = served.serve()
        _out, err = ask.communicate(timeout=60)
        assert ask.returncode == 1 and "2 notebooks with a kernel are open" in err and "other.ipynb" in err
        missing = served.serve("--notebook", "nowhere.ipynb")
        _out, err = missing.communicate(timeout=60)
        assert missing.returncode == 1 and "is not open with a kernel" in err and "analysis.ipynb" in err

        proc = served.serve("--notebook", str(served.lab.root / "other.ipynb"), "--port", "0")
        url, _token, _text = read_banner(proc)
        # a second server for the same kernel is refused, naming the running one
        again = served.serve("--notebook", "other.ipynb")
        _out, err = again.communicate(timeout=60)
        assert again.returncode == 1 and url in err and "/mcp-serve stop" in err
        # the user stops it in the notebook: the terminal's command ends by itself
        run_code(other, "%agent /mcp-serve stop")
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        assert "stopped (in the notebook" in out
    finally:
        other.stop_channels()


def test_ctrl_c_while_the_kernel_is_busy_starts_nothing_later(tmp_path: Path, served: Served) -> None:
    """The start waits behind a running cell; Ctrl+C then: when the cell ends, no server is left running
    with a token nobody has, and the next ``nbagent mcp serve`` works."""
    kernel = served.kernel(served.open_session("analysis.ipynb"))
    try:
        kernel.execute("import time; time.sleep(12)")  # the user's long cell
        proc = served.serve("--notebook", "analysis.ipynb")
        assert proc.stderr is not None
        line = proc.stderr.readline()
        assert "Waiting for the kernel" in line, line
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=60)
        assert proc.returncode == 130  # cancelled
        count = "from nbagent.jupyter.mcp_serve import _servers; print('servers', len(_servers))"
        assert run_code(kernel, count).strip() == "servers 0"  # ran after the long cell and both requests
        again = served.serve("--notebook", "analysis.ipynb")
        url, _token, _text = read_banner(again)
        again.send_signal(signal.SIGINT)
        assert again.communicate(timeout=60)[0].strip().endswith("The MCP server stopped.")
        with pytest.raises(httpx.TransportError):
            httpx.get(url, timeout=5)
    finally:
        kernel.stop_channels()
