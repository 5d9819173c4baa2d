"""The sidebar's MCP section, kernel side: the ``status`` message lists the MCP servers (state, tools,
errors) and a fresh status follows each change of a server's state. Real kernels, real MCP servers (the
SDK's, tests/ext/mcp_fixture_server.py) and a server whose program does not exist.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from nbagent.core.mcp_session import McpSession
from nbagent.ext.mcp_config import load_mcp_config
from nbagent.providers.scripted import ListScript, Reply
from tests.conftest import Serve
from tests.jupyter.harness import Kernel, python_env
from tests.labextension.test_bridge import Sidebar, probe

pytestmark = pytest.mark.timeout(240)
FIXTURE = str(Path(__file__).parents[1] / "ext" / "mcp_fixture_server.py")
MISSING = "no-such-mcp-program-xyz"


def user_servers(**more: Any) -> None:
    """The user's nbagent.json (trusted: no question) with a working and a broken stdio server."""
    servers = {
        "fx": {"type": "local", "command": [sys.executable, FIXTURE, "stdio"]},
        "broken": {"type": "local", "command": [MISSING]},
    }
    config = Path(os.environ["NBAGENT_CONFIG_DIR"])
    config.mkdir(parents=True, exist_ok=True)
    (config / "nbagent.json").write_text(json.dumps({"mcp": {**servers, **more}}))


def servers_of(status: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {row["name"]: row for row in status["mcp"]["servers"]}


def settled(status: dict[str, Any]) -> bool:
    if status.get("type") != "status" or "mcp" not in status:
        return False
    rows = servers_of(status)
    return rows.get("fx", {}).get("state") == "ready" and rows.get("broken", {}).get("state") == "failed"


@pytest.fixture
def kernel(tmp_path: Path, serve: Serve) -> Iterator[Kernel]:
    server = serve(ListScript([Reply(text="OK.")]), exact=False)
    env = python_env()
    env.update({"NBAGENT_MODEL": "openai/scripted", "NBAGENT_API_BASE": server.openai_base})
    k = Kernel(tmp_path, env)
    try:
        assert k.run("%load_ext nbagent").status == "ok"
        probe(k)
        yield k
    finally:
        k.close()


def assert_settled_rows(status: dict[str, Any]) -> None:
    rows = servers_of(status)
    fx, broken = rows["fx"], rows["broken"]
    assert fx["transport"] == "stdio" and fx["scope"] == "user"
    assert {"echo", "add", "crash"} <= set(fx["tools"]) and fx["tool_count"] == len(fx["tools"])
    assert fx["prompts"] == ["review"] and fx["resources"] >= 1 and fx["start_ms"] > 0
    assert fx["error"] == ""
    assert broken["tools"] == [] and broken["tool_count"] == 0
    assert MISSING in broken["error"] and "not found" in broken["error"]
    assert status["mcp"]["errors"] == [] and status["mcp"]["serving"] is None


def test_status_lists_the_servers_not_started_then_ready_and_failed(kernel: Kernel) -> None:
    user_servers()
    sidebar = Sidebar(kernel)
    sidebar.open({"type": "hello"})
    first = sidebar.wait_type("status")
    # no session yet: the configured servers, none started because the sidebar asked
    assert {n: r["state"] for n, r in servers_of(first).items()} == {
        "fx": "not started",
        "broken": "not started",
    }
    assert first["mcp"]["deferred"] == 0 and first["mcp"]["serving"] is None

    sidebar.send({"type": "prompt", "text": "hello"})  # the first turn starts the servers
    sidebar.wait_event("turn_finished", timeout=90)
    status = sidebar.wait_for(settled, timeout=30)
    assert_settled_rows(status)


def test_a_status_follows_each_server_state_change(kernel: Kernel, tmp_path: Path) -> None:
    """``"startup": "session"``: the servers start in the background when the session is made, with no
    turn; the sidebar hears of each change. A project server in an untrusted folder needs trust."""
    user_servers(startup="session")
    (tmp_path / ".mcp.json").write_text(json.dumps({"mcpServers": {"proj": {"command": MISSING}}}))
    sidebar = Sidebar(kernel)
    sidebar.open({"type": "hello"})
    assert servers_of(sidebar.wait_type("status"))["proj"]["scope"] == "project"
    sidebar.send({"type": "command", "line": "/mcp"})  # makes the session: the servers start now
    text = sidebar.wait_type("command_result")["text"]
    assert "**fx** (stdio, user)" in text and "**proj** (stdio, project): needs trust" in text
    status = sidebar.wait_for(settled, timeout=60)  # no turn ran: this status is the change notice
    assert_settled_rows(status)
    proj = servers_of(status)["proj"]
    assert proj["state"] == "needs trust" and proj["error"] == ""
    assert not [m for m in sidebar.received if m.get("type") == "event"]


async def test_listeners_hear_each_state_change(tmp_path: Path) -> None:
    user_servers()
    mcp = McpSession(load_mcp_config(tmp_path))
    heard: list[dict[str, str]] = []
    mcp.listeners.append(lambda: heard.append({r.name: r.state for r in mcp.snapshot().servers}))
    assert [r.state for r in mcp.snapshot().servers] == ["not started", "not started"]
    hub = mcp._new_hub()
    try:
        await hub.start_all(True)
        assert {"fx": "starting", "broken": "starting"} in heard
        assert heard[-1] == {"fx": "ready", "broken": "failed"}
        assert "**broken** (stdio, user): failed" in mcp.describe() and "not found" in mcp.describe()
    finally:
        await hub.close()
    assert heard[-1] == {"fx": "idle", "broken": "failed"}  # stopped with the session


def test_serving_the_kernel_from_a_cell_shows_in_the_sidebar(kernel: Kernel) -> None:
    """``%agent /mcp-serve`` run in a cell (not the sidebar): the open sidebar hears the URL at once, and
    hears that it stopped."""
    sidebar = Sidebar(kernel)
    sidebar.open({"type": "hello"})
    assert sidebar.wait_type("status")["mcp"]["serving"] is None

    def serving_told(code: str) -> list[Any]:
        """What the statuses sent to the sidebar while the cell ran said of ``serving``."""
        ex = kernel.run(code)
        assert ex.status == "ok"
        sent = [
            m["content"]["data"]
            for m in ex.messages
            if m["header"]["msg_type"] == "comm_msg" and m["content"].get("comm_id") == sidebar.comm_id
        ]
        return [d["mcp"]["serving"] for d in sent if d.get("type") == "status"]

    told = serving_told("%agent /mcp-serve")
    assert told and told[-1].startswith("http://127.0.0.1:") and told[-1].endswith("/mcp")
    assert serving_told("%agent /mcp-serve stop")[-1:] == [None]
