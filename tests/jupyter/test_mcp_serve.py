"""``%agent /mcp-serve``: an MCP client process (the SDK's Client) runs code in a real kernel.

The kernel is driven over ZMQ as JupyterLab drives it; the permission prompt the served call raises is
answered by clicking its button (a real comm message); the client is a separate Python process talking
streamable HTTP to 127.0.0.1 with the bearer token the cell printed.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
import time
import tomllib
from pathlib import Path

import httpx
import pytest

from tests.jupyter.conftest import StartKernel
from tests.jupyter.harness import Kernel

pytestmark = pytest.mark.timeout(180)

CLIENT = textwrap.dedent(
    """
    import asyncio, json, sys
    import httpx2
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client

    async def main(url: str, token: str, calls: str) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        async with httpx2.AsyncClient(headers=headers, timeout=120) as http:
            async with Client(streamable_http_client(url, http_client=http)) as client:
                tools = await client.list_tools()
                print(json.dumps({"tools": sorted(t.name for t in tools.tools)}), flush=True)
                for name, args in json.loads(calls):
                    result = await client.call_tool(name, args)
                    text = "".join(getattr(c, "text", "") for c in result.content)
                    print(json.dumps({"is_error": bool(result.is_error), "text": text}), flush=True)

    asyncio.run(main(*sys.argv[1:]))
    """
)


def serve_cell(kernel: Kernel) -> tuple[str, str, str]:
    """Run ``%agent /mcp-serve``; the URL, the token and the text the cell shows."""
    ex = kernel.run("%agent /mcp-serve")
    assert ex.status == "ok", [m["content"] for m in ex.errors]
    shown = "".join(
        str(m["content"]["data"].get("text/plain", ""))
        for m in ex.of_type("display_data", "update_display_data")
    )
    found = re.search(
        r'claude mcp add --transport http \S+ (http://127\.0\.0\.1:\d+/mcp) --header "Authorization: Bearer (\S+)"',
        shown,
    )
    assert found, shown
    return found.group(1), found.group(2), shown


def start_client(
    tmp_path: Path, url: str, token: str, calls: list[tuple[str, dict[str, object]]]
) -> subprocess.Popen[str]:
    script = tmp_path / "client.py"
    script.write_text(CLIENT)
    return subprocess.Popen(
        [sys.executable, str(script), url, token, json.dumps(calls)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(kernel: Kernel, proc: subprocess.Popen[str], seconds: float = 60) -> list[dict[str, object]]:
    """Keep reading the kernel's messages (as a frontend would) until the client process ends."""
    kernel.pump(seconds, lambda: proc.poll() is not None)
    out, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def click_when_asked(kernel: Kernel, label: str, seconds: float = 60) -> str:
    """Wait for the prompt's button, click it; its question's text."""

    def button() -> list[str]:
        return list(kernel.find_widgets("ButtonModel", description=label))

    assert kernel.pump(seconds, lambda: bool(button())), "no permission prompt appeared in the notebook"
    questions = [s.get("value", "") for s in kernel.widgets.values() if s.get("_model_name") == "HTMLModel"]
    kernel.click(button()[0])
    return "\n".join(str(q) for q in questions)


def test_an_mcp_client_runs_python_in_the_kernel_after_a_click(
    tmp_path: Path, start_kernel: StartKernel
) -> None:
    kernel = start_kernel(NBAGENT_MODEL="openai/scripted")
    kernel.run("x = 21")
    url, token, shown = serve_cell(kernel)
    assert '"type": "remote"' in shown and url in shown  # the opencode.json snippet
    codex = tomllib.loads(shown.split("Codex:")[1].split("```")[1])  # valid TOML for ~/.codex/config.toml
    assert codex["mcp_servers"]["nbagent_kernel"] == {"url": url, "bearer_token_env_var": "NBAGENT_MCP_TOKEN"}
    assert f"NBAGENT_MCP_TOKEN={token} codex" in shown
    proc = start_client(tmp_path, url, token, [("python", {"code": "y = x * 2\nprint('y is', y)"})])
    question = click_when_asked(kernel, "Allow once")
    assert "y = x * 2" in question
    lines = finish(kernel, proc)
    assert lines[0]["tools"] == ["inspect", "notebook_edit", "notebook_run", "python", "read"]
    assert lines[1]["is_error"] is False and "y is 42" in str(lines[1]["text"])
    # the notebook keeps no secret: once a client used the token, the cell shows it no more
    updates = [
        str(m["content"]["data"].get("text/plain", ""))
        for m in kernel._backlog
        if m["header"]["msg_type"] == "update_display_data"
    ]
    masked = [u for u in updates if "A client connected" in u]
    assert masked and token not in masked[-1] and "<token hidden>" in masked[-1]
    assert kernel.run("print(y)").stdout.strip() == "42"  # it ran in the live kernel's namespace


def test_deny_in_the_notebook_is_a_tool_error_and_the_code_does_not_run(
    tmp_path: Path, start_kernel: StartKernel
) -> None:
    kernel = start_kernel()  # no model configured: the served tools need none
    url, token, _shown = serve_cell(kernel)
    proc = start_client(tmp_path, url, token, [("python", {"code": "ran = True"})])
    click_when_asked(kernel, "Deny")
    lines = finish(kernel, proc)
    assert lines[1]["is_error"] is True and "refused" in str(lines[1]["text"])
    assert kernel.run("print('ran' in dir())").stdout.strip() == "False"


def test_a_request_without_the_token_is_refused(tmp_path: Path, start_kernel: StartKernel) -> None:
    kernel = start_kernel()
    url, token, _shown = serve_cell(kernel)
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
    for headers in ({}, {"Authorization": f"Bearer {token[:-2]}xx"}, {"Authorization": token}):
        answer = httpx.post(
            url, json=body, headers={"Accept": "application/json, text/event-stream", **headers}
        )
        assert answer.status_code == 401 and "bearer token" in answer.text
    proc = start_client(tmp_path, url, "wrong", [("python", {"code": "pwned = 1"})])  # the SDK's client too
    kernel.pump(30, lambda: proc.poll() is not None)
    proc.communicate(timeout=10)
    assert proc.returncode != 0
    assert kernel.run("print('pwned' in dir())").stdout.strip() == "False"


def test_stop_ends_the_server(tmp_path: Path, start_kernel: StartKernel) -> None:
    kernel = start_kernel()
    url, token, _shown = serve_cell(kernel)
    ex = kernel.run("%agent /mcp-serve stop")
    assert ex.status == "ok"
    time.sleep(0.2)
    proc = start_client(tmp_path, url, token, [])
    kernel.pump(30, lambda: proc.poll() is not None)
    _out, err = proc.communicate(timeout=10)
    assert proc.returncode != 0 and (
        "ConnectError" in err or "Connection refused" in err or "connect" in err.lower()
    )


def test_without_widgets_a_question_is_refused_with_the_fix_and_rules_still_allow(
    tmp_path: Path, start_kernel: StartKernel
) -> None:
    kernel = start_kernel(NBAGENT_NO_WIDGETS="1")
    url, token, _shown = serve_cell(kernel)
    proc = start_client(tmp_path, url, token, [("python", {"code": "ran = True"})])
    lines = finish(kernel, proc)
    assert lines[1]["is_error"] is True and "Install ipywidgets" in str(lines[1]["text"])
    assert kernel.run("print('ran' in dir())").stdout.strip() == "False"
    # nbagent's rules apply to served calls: a project rule allowing python needs no prompt
    (tmp_path / "nbagent.json").write_text(json.dumps({"permission": {"python": "allow"}}))
    kernel.run("%agent /mcp-serve stop")
    kernel.run("%agent /new")
    url, token, _shown = serve_cell(kernel)
    proc = start_client(tmp_path, url, token, [("python", {"code": "ran = 6 * 7\nprint(ran)"})])
    lines = finish(kernel, proc)
    assert lines[1]["is_error"] is False and "[stdout]\n42" in str(lines[1]["text"])
    assert kernel.run("print(ran)").stdout.strip() == "42"


def test_inspect_read_bad_arguments_and_images(tmp_path: Path, start_kernel: StartKernel) -> None:
    kernel = start_kernel()
    (tmp_path / "notes.txt").write_text("hello from the project\n")
    (tmp_path / "nbagent.json").write_text(
        json.dumps({"permission": {"python": "allow", "inspect": "allow"}})
    )
    kernel.run("import numpy as np\nx = np.arange(3)")
    url, token, _shown = serve_cell(kernel)
    png = (
        "import base64, IPython.display as d\n"
        "d.display(d.Image(base64.b64decode('iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==')))"
    )
    calls: list[tuple[str, dict[str, object]]] = [
        ("inspect", {"name": "x"}),
        ("read", {"file_path": str(tmp_path / "notes.txt")}),
        ("python", {"cod": "1"}),
        ("python", {"code": png}),
    ]
    script = tmp_path / "client_images.py"
    script.write_text(
        CLIENT.replace('getattr(c, "text", "")', 'getattr(c, "text", "") or getattr(c, "mime_type", "")')
    )
    proc = subprocess.Popen(
        [sys.executable, str(script), url, token, json.dumps(calls)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines = finish(kernel, proc)
    inspect, read, bad, image = lines[1:]
    assert inspect["is_error"] is False and "ndarray" in str(inspect["text"])
    assert read["is_error"] is False and "hello from the project" in str(read["text"])
    assert bad["is_error"] is True and "Invalid arguments for python" in str(bad["text"])
    assert image["is_error"] is False and "image/png" in str(image["text"])


def test_a_kernel_interrupt_stops_a_served_call(tmp_path: Path, start_kernel: StartKernel) -> None:
    kernel = start_kernel()
    (tmp_path / "nbagent.json").write_text(json.dumps({"permission": {"python": "allow"}}))
    url, token, _shown = serve_cell(kernel)
    code = "import time\nstarted = True\nfor i in range(600):\n    time.sleep(0.1)\nfinished = True"
    proc = start_client(tmp_path, url, token, [("python", {"code": code})])
    kernel.pump(2)
    t0 = time.time()
    kernel.interrupt()
    lines = finish(kernel, proc, seconds=30)
    assert time.time() - t0 < 20
    assert lines[1]["is_error"] is True and "interrupt" in str(lines[1]["text"]).lower()
    assert kernel.run("print('started' in dir(), 'finished' in dir())").stdout.strip() == "True False"
    again = start_client(tmp_path, url, token, [("python", {"code": "print('still serving')"})])
    assert "still serving" in str(finish(kernel, again)[1]["text"])


def test_stop_in_the_serve_cell_ends_a_call_waiting_for_its_prompt(
    tmp_path: Path, start_kernel: StartKernel
) -> None:
    kernel = start_kernel()
    url, token, _shown = serve_cell(kernel)
    proc = start_client(tmp_path, url, token, [("python", {"code": "ran = True"})])
    assert kernel.pump(60, lambda: bool(list(kernel.find_widgets("ButtonModel", description="Allow once"))))
    kernel.click(next(kernel.find_widgets("ButtonModel", description="Stop")))
    lines = finish(kernel, proc, seconds=30)
    assert lines[1]["is_error"] is True and "stopped in the notebook" in str(lines[1]["text"])
    assert kernel.run("print('ran' in dir())").stdout.strip() == "False"


def test_hooks_apply_to_served_calls(tmp_path: Path, start_kernel: StartKernel) -> None:
    """The user's PreToolUse and PostToolUse hooks run around a served call as around the model's own:
    a hook that denies blocks it, one that allows answers the question, and PostToolUse adds context."""
    gate = tmp_path / "gate.py"
    gate.write_text(
        "import json, sys\n"
        "code = json.load(sys.stdin)['tool_input']['code']\n"
        "if 'forbidden' in code:\n"
        "    print('no forbidden code here', file=sys.stderr)\n"
        "    sys.exit(2)\n"
        "print(json.dumps({'hookSpecificOutput': {'hookEventName': 'PreToolUse', 'permissionDecision': 'allow'}}))\n"
    )
    post = 'echo \'{"hookSpecificOutput": {"hookEventName": "PostToolUse", "additionalContext": "seen by the post hook"}}\''
    config_dir = Path(os.environ["NBAGENT_CONFIG_DIR"])  # the user's own configuration: trusted
    config_dir.mkdir(parents=True, exist_ok=True)
    hooks = {
        "PreToolUse": [{"matcher": "python", "hooks": [{"command": f"{sys.executable} {gate}"}]}],
        "PostToolUse": [{"matcher": "python", "hooks": [{"command": post}]}],
    }
    (config_dir / "nbagent.json").write_text(json.dumps({"hooks": hooks}))
    kernel = start_kernel(NBAGENT_NO_WIDGETS="1")  # no prompt can be shown: the hook's allow must answer
    url, token, _shown = serve_cell(kernel)
    calls: list[tuple[str, dict[str, object]]] = [
        ("python", {"code": "forbidden = 1"}),
        ("python", {"code": "print(6 * 7)"}),
    ]
    proc = start_client(tmp_path, url, token, calls)
    blocked, allowed = finish(kernel, proc)[1:]
    assert blocked["is_error"] is True and "Blocked by a PreToolUse hook: no forbidden code here" in str(
        blocked["text"]
    )
    assert allowed["is_error"] is False and "42" in str(allowed["text"])
    assert "<hook>seen by the post hook</hook>" in str(allowed["text"])
    assert kernel.run("print('forbidden' in dir())").stdout.strip() == "False"
