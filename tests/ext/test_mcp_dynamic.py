"""MCP servers that change while the session runs, and remote servers reached over SSE when they are no
streamable HTTP endpoint. Real SDK servers (tests/ext/mcp_fixture_server.py) in real processes; the
sessions talk to the scripted model server over HTTP.

- ``list_changed``: the model calls the fixture's ``change_tools``; its next request carries the new tool
  (callable), a changed schema replaces the old one in place, a removed tool leaves the request and a call
  to it says the server no longer offers it; over the budget, new tools wait behind ``tool_search``;
  prompts follow (``/mcp__server__prompt``); over streamable HTTP the changes come on the 2026
  ``subscriptions/listen`` stream.
- SSE fallback: ``"type": "remote"`` (OpenCode's) and a bare ``"url"`` try streamable HTTP, then SSE;
  Claude Code's ``"type": "http"`` does not.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from nbagent.core.commands import run_command
from nbagent.core.events import ToolCallCompleted, ToolCallError
from nbagent.ext.mcp_client import McpHub
from nbagent.ext.mcp_config import McpConfig, ServerSpec, load_mcp_config
from nbagent.providers.scripted import ListScript, Reply, ToolCallSpec
from nbagent.tools.base import ToolContext
from tests.conftest import Serve, collect, make_session
from tests.ext.test_mcp_client import FIXTURE, _serve, call


@pytest.fixture
def sse_server() -> Iterator[str]:
    """The fixture over SSE: the base URL (its stream is at /sse)."""
    yield from _serve("sse", "")


@pytest.fixture
def http_server() -> Iterator[str]:
    yield from _serve("http", "/mcp")


def project(root: Path, **options: Any) -> None:
    servers = {"fx": {"type": "local", "command": [sys.executable, FIXTURE, "stdio"]}}
    (root / "nbagent.json").write_text(json.dumps({"mcp": {**servers, **options}}))


def sent(request: Any) -> list[str]:
    return [t["function"]["name"] for t in request.body["tools"]]


def params(request: Any, name: str) -> set[str]:
    tool = next(t for t in request.body["tools"] if t["function"]["name"] == name)
    return set(tool["function"]["parameters"]["properties"])


def change(**args: Any) -> Reply:
    return Reply(tool_calls=[ToolCallSpec("mcp__fx__change_tools", args)])


def use(name: str, **args: Any) -> Reply:
    return Reply(tool_calls=[ToolCallSpec(name, args)])


async def test_tools_added_changed_and_removed_between_steps(tmp_path: Path, serve: Serve) -> None:
    project(tmp_path)
    script = [
        change(add="dyn"),
        use("mcp__fx__dyn", text="hi"),
        change(add="dyn", shape="count"),
        use("mcp__fx__dyn", count=3),
        change(remove="dyn"),
        use("mcp__fx__dyn", count=4),
        Reply(text="done"),
    ]
    server = serve(ListScript(script))
    session = make_session(tmp_path, server, trust_project=True)
    told: list[int] = []
    session.mcp.listeners.append(lambda: told.append(1))
    events = await collect(session, "grow a tool, use it, change it, drop it")
    req = server.requests
    assert "mcp__fx__dyn" not in sent(req[0])
    # The new tool joins the next request; the others keep their places (the cached prompt prefix).
    assert sent(req[1]) == [*sent(req[0]), "mcp__fx__dyn"]
    assert params(req[1], "mcp__fx__dyn") == {"text"}
    assert params(req[3], "mcp__fx__dyn") == {"count"}  # the changed schema, in the same place
    assert sent(req[3]) == sent(req[1])
    assert "mcp__fx__dyn" not in sent(req[5]) and sent(req[5]) == sent(req[0])
    done = [e.output for e in events if isinstance(e, ToolCallCompleted) and e.tool == "mcp__fx__dyn"]
    assert done == ["dyn says hi", "dyn counted 3"], events
    errors = [e.error for e in events if isinstance(e, ToolCallError)]
    assert len(errors) == 1, events
    assert "'fx'" in errors[0] and "no longer offers the tool 'dyn'" in errors[0]
    assert told  # the sidebar heard of the changes
    assert "dyn" not in session.mcp.describe()


async def test_new_tools_over_the_budget_wait_behind_tool_search(tmp_path: Path, serve: Serve) -> None:
    project(tmp_path, tool_budget=3000)  # tokens: the fixture's own tools fit, 40 more do not
    script = [
        change(add="bulk", many=40),
        use("tool_search", query="select:mcp__fx__bulk_7"),
        use("mcp__fx__bulk_7", text="found"),
        Reply(text="done"),
    ]
    server = serve(ListScript(script))
    session = make_session(tmp_path, server, trust_project=True)
    events = await collect(session, "add many tools")
    req = server.requests
    assert "tool_search" not in sent(req[0]) and "mcp__fx__echo" in sent(req[0])
    after = sent(req[1])
    assert "tool_search" in after and not any(n.startswith("mcp__fx__bulk_") for n in after)
    assert after[: len(sent(req[0]))] == sent(req[0])  # the tools in use stay sent
    assert "mcp__fx__bulk_7" in sent(req[2]) and "mcp__fx__bulk_8" not in sent(req[2])
    done = [e.output for e in events if isinstance(e, ToolCallCompleted)]
    assert done[-1] == "bulk_7 says found", events
    assert "40 MCP tools are loaded on demand" in session.mcp.describe()


async def test_prompt_commands_follow_the_server(tmp_path: Path, serve: Serve) -> None:
    project(tmp_path)
    script = [
        use("mcp__fx__change_prompts", add="brief"),
        Reply(text="added"),
        use("mcp__fx__change_prompts", remove="brief"),
        Reply(text="removed"),
    ]
    session = make_session(tmp_path, serve(ListScript(script)), trust_project=True)
    await collect(session, "add a prompt")
    out = await run_command(session, "/mcp__fx__brief the cache")
    assert out.prompt == "brief about the cache."
    assert "brief" in session.mcp.describe()
    await collect(session, "remove it")
    out = await run_command(session, "/mcp__fx__brief the cache")
    assert out.prompt is None
    assert "brief" not in session.mcp.describe()


async def test_streamable_http_changes_come_on_the_listen_stream(tmp_path: Path, http_server: str) -> None:
    hub = McpHub(McpConfig(servers={"web": ServerSpec(name="web", transport="http", url=http_server)}))
    await hub.start_all(trusted=True)
    conn = hub.servers["web"]
    try:
        assert conn.state == "ready", conn.error
        assert conn.client is not None and conn.client.protocol_version == "2026-07-28"
        ctx = ToolContext(root=tmp_path, output_dir=tmp_path / "out")
        before = conn.revision
        await call(conn, "change_tools", ctx, add="late")
        async with asyncio.timeout(10):
            while conn.revision == before or not conn.settled:
                await asyncio.sleep(0.02)
        assert (await call(conn, "late", ctx, text="x")).output == "late says x"
        await call(conn, "change_prompts", ctx, add="brief")
        async with asyncio.timeout(10):
            while "brief" not in [p.name for p in conn.prompts]:
                await asyncio.sleep(0.02)
    finally:
        await hub.close()


def _remote(root: Path, entry: dict[str, Any]) -> ServerSpec:
    (root / "nbagent.json").write_text(json.dumps({"mcp": {"old": entry}}))
    return load_mcp_config(root).servers["old"]


async def test_remote_falls_back_to_sse_and_keeps_it(tmp_path: Path, sse_server: str) -> None:
    spec = _remote(tmp_path, {"type": "remote", "url": f"{sse_server}/sse"})
    assert spec.transport == "http" and spec.fallback_sse
    hub = McpHub(McpConfig(servers={"old": spec}))
    conn = hub.servers["old"]
    ctx = ToolContext(root=tmp_path, output_dir=tmp_path / "out")
    try:
        await hub.start_all(trusted=True)
        assert conn.state == "ready", conn.error
        assert conn.transport == "sse"
        assert (await call(conn, "echo", ctx, text="old school")).output == "echo: old school"
        await conn.close()
        assert await conn.start(), conn.error  # a restart goes straight to SSE
        assert conn.transport == "sse"
        assert (await call(conn, "echo", ctx, text="again")).output == "echo: again"
    finally:
        await hub.close()


async def test_mcp_shows_the_transport_in_use(tmp_path: Path, serve: Serve, sse_server: str) -> None:
    spec = {"url": f"{sse_server}/sse"}  # a bare URL: the protocol is not said either
    (tmp_path / "nbagent.json").write_text(json.dumps({"mcp": {"old": spec}}))
    session = make_session(tmp_path, serve(ListScript([Reply(text="hi")])), trust_project=True)
    await collect(session, "hello")
    status = (await run_command(session, "/mcp")).text
    assert "**old** (sse, project): ready" in status, status


async def test_no_fallback_when_the_type_says_http(tmp_path: Path, sse_server: str) -> None:
    spec = ServerSpec(name="cc", transport="http", url=f"{sse_server}/sse", start_timeout=10)
    hub = McpHub(McpConfig(servers={"cc": spec}))  # Claude Code's "type": "http"
    problems = await hub.start_all(trusted=True)
    conn = hub.servers["cc"]
    assert conn.state == "failed" and conn.transport == "http"
    assert problems and "'cc'" in problems[0]
    await hub.close()


async def test_neither_transport_says_both(tmp_path: Path, sse_server: str) -> None:
    spec = _remote(tmp_path, {"type": "remote", "url": f"{sse_server}/nothing", "timeout": 10})
    hub = McpHub(McpConfig(servers={"old": spec}))
    problems = await hub.start_all(trusted=True)
    conn = hub.servers["old"]
    assert conn.state == "failed" and conn.transport == "http"
    assert "no streamable HTTP endpoint (HTTP 404" in problems[0] and "SSE failed too" in problems[0]
    await hub.close()


async def test_a_streamable_http_remote_stays_http(tmp_path: Path, http_server: str) -> None:
    spec = _remote(tmp_path, {"type": "remote", "url": http_server})
    hub = McpHub(McpConfig(servers={"old": spec}))
    try:
        await hub.start_all(trusted=True)
        assert hub.servers["old"].state == "ready" and hub.servers["old"].transport == "http"
    finally:
        await hub.close()
