"""The MCP client against real MCP servers (the SDK's, in tests/ext/mcp_fixture_server.py): stdio and
streamable HTTP, a crash mid-call, a slow call, servers that fail to start, and a whole session whose
scripted model calls an MCP tool under the permission rules."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from nbagent.core.events import Notice, ToolCallCompleted, ToolCallError
from nbagent.ext.mcp_client import McpHub, ServerConn
from nbagent.ext.mcp_config import McpConfig, ServerSpec
from nbagent.providers.scripted import ListScript, Reply, ToolCallSpec
from nbagent.tools.base import ToolContext, ToolFailure
from nbagent.tools.mcp_tools import McpArgs, make_tool
from tests.conftest import Serve, collect, make_session

FIXTURE = str(Path(__file__).with_name("mcp_fixture_server.py"))


def stdio(name: str = "fx", **kw: Any) -> ServerSpec:
    return ServerSpec(name=name, transport="stdio", command=[sys.executable, FIXTURE, "stdio"], **kw)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _serve(transport: str, path: str) -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, FIXTURE, transport, str(port)], stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.1)
        else:
            pytest.fail("the HTTP MCP server did not start")
        yield f"http://127.0.0.1:{port}{path}"
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.fixture
def http_url() -> Iterator[str]:
    yield from _serve("http", "/mcp")


@pytest.fixture
def sse_url() -> Iterator[str]:
    yield from _serve("sse", "/sse")


async def started(*specs: ServerSpec) -> McpHub:
    hub = McpHub(McpConfig(servers={s.name: s for s in specs}))
    await hub.start_all(trusted=True)
    return hub


async def call(conn: ServerConn, tool: str, ctx: ToolContext, **args: Any) -> Any:
    remote = next(t for t in conn.tools if t.name == tool)
    mcp_tool = make_tool(conn, remote)
    return await mcp_tool.run(McpArgs(**args), ctx)


async def test_stdio_tools_results_and_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-parent-secret")
    hub = await started(stdio(env={"GIVEN": "to-the-server"}))
    try:
        conn = hub.servers["fx"]
        assert conn.state == "ready", conn.error
        ctx = ToolContext(root=tmp_path, output_dir=tmp_path / "out")
        tool = make_tool(conn, next(t for t in conn.tools if t.name == "add"))
        assert tool.name == "mcp__fx__add"
        params = tool.schema()["function"]["parameters"]
        assert set(params["properties"]) == {"a", "b"}  # the server's own schema
        result = await call(conn, "add", ctx, a=2, b=3)
        assert json.loads(result.output) == {"sum": 5}
        picture = await call(conn, "picture", ctx)
        assert picture.attachments and picture.attachments[0].media_type == "image/png"
        with pytest.raises(ToolFailure):  # is_error: a tool error, not a crash
            await call(conn, "fail", ctx, reason="no")
        assert conn.state == "ready" and conn.restarts == 0
        big = await call(conn, "big", ctx)
        assert len(big.output) < 40_000 and "saved to" in big.output
        # The server's environment: what the config gives it, never the session's secrets.
        assert (await call(conn, "env", ctx, name="GIVEN")).output == "to-the-server"
        assert (await call(conn, "env", ctx, name="OPENAI_API_KEY")).output == "<unset>"
    finally:
        await hub.close()


async def test_streamable_http(tmp_path: Path, http_url: str) -> None:
    hub = await started(ServerSpec(name="web", transport="http", url=http_url, headers={"X-Test": "1"}))
    try:
        conn = hub.servers["web"]
        assert conn.state == "ready", conn.error
        ctx = ToolContext(root=tmp_path, output_dir=tmp_path / "out")
        assert (await call(conn, "echo", ctx, text="over http")).output == "echo: over http"
    finally:
        await hub.close()


async def test_sse_for_older_servers(tmp_path: Path, sse_url: str) -> None:
    hub = await started(ServerSpec(name="old", transport="sse", url=sse_url))
    try:
        conn = hub.servers["old"]
        assert conn.state == "ready", conn.error
        ctx = ToolContext(root=tmp_path, output_dir=tmp_path / "out")
        assert (await call(conn, "echo", ctx, text="over sse")).output == "echo: over sse"
    finally:
        await hub.close()


async def test_crash_mid_call_restarts_once(tmp_path: Path) -> None:
    hub = await started(stdio())
    ctx = ToolContext(root=tmp_path, output_dir=tmp_path / "out")
    conn = hub.servers["fx"]
    try:
        with pytest.raises(ToolFailure, match=r"stopped during .* It was restarted"):
            await call(conn, "crash", ctx)
        assert (await call(conn, "echo", ctx, text="again")).output == "echo: again"  # the new process
        with pytest.raises(ToolFailure, match="restarted once already, so it stays stopped"):
            await call(conn, "crash", ctx)
        assert conn.state == "failed"
        with pytest.raises(ToolFailure, match="crashed again"):
            await call(conn, "echo", ctx, text="x")
    finally:
        await hub.close()


async def test_slow_call_times_out(tmp_path: Path) -> None:
    hub = await started(stdio(call_timeout=1))
    ctx = ToolContext(root=tmp_path, output_dir=tmp_path / "out")
    try:
        began = time.monotonic()
        with pytest.raises(ToolFailure, match=r"timed out after 1s.*call_timeout"):
            await call(hub.servers["fx"], "slow", ctx, seconds=30)
        assert time.monotonic() - began < 5
        assert (await call(hub.servers["fx"], "slow", ctx, seconds=0.1)).output == "woke up"
    finally:
        await hub.close()


async def test_failing_servers_are_reported_once_and_the_others_run(tmp_path: Path) -> None:
    missing = ServerSpec(name="missing", transport="stdio", command=["no-such-mcp-program-xyz"])
    dies = ServerSpec(
        name="dies",
        transport="stdio",
        command=[sys.executable, "-c", "import sys; print('boom', file=sys.stderr)"],
    )
    mute = ServerSpec(name="mute", transport="stdio", command=["sleep", "30"], start_timeout=1)
    hub = McpHub(McpConfig(servers={s.name: s for s in (missing, dies, mute, stdio())}))
    try:
        began = time.monotonic()
        problems = await hub.start_all(trusted=True)
        assert time.monotonic() - began < 10  # in parallel, bounded by the start timeout
        assert hub.servers["fx"].state == "ready"
        text = "\n".join(problems)
        assert len(problems) == 3, problems
        assert "'missing'" in text and "not found" in text
        assert "'dies'" in text and "boom" in text  # its stderr, so the user sees why
        assert "'mute'" in text and "did not start within 1s" in text
        assert hub.take_problems() == []  # said once
    finally:
        await hub.close()


async def test_project_servers_wait_for_trust(tmp_path: Path) -> None:
    spec = stdio(project=True, source=str(tmp_path / ".mcp.json"))
    hub = McpHub(McpConfig(servers={"fx": spec}))
    problems = await hub.start_all(trusted=False)
    assert hub.servers["fx"].state == "untrusted"
    assert "not trusted" in problems[0]


def _write_project(root: Path, permission: dict[str, Any] | None = None) -> None:
    servers = {"fx": {"command": sys.executable, "args": [FIXTURE, "stdio"]}}
    (root / ".mcp.json").write_text(json.dumps({"mcpServers": servers}))
    if permission is not None:
        (root / "nbagent.json").write_text(json.dumps({"permission": permission}))


async def test_session_calls_mcp_tool(tmp_path: Path, serve: Serve) -> None:
    _write_project(tmp_path)
    call_echo = Reply(tool_calls=[ToolCallSpec("mcp__fx__echo", {"text": "from the model"})])
    server = serve(ListScript([call_echo, Reply(text="done")]))
    session = make_session(tmp_path, server, trust_project=True)
    events = await collect(session, "use the echo tool")
    done = [e for e in events if isinstance(e, ToolCallCompleted)]
    assert done and done[0].output == "echo: from the model", events
    sent = {t["function"]["name"] for t in server.requests[0].body["tools"]}
    assert {"mcp__fx__echo", "mcp__fx__add", "read_mcp_resource"} <= sent
    assert "**fx** (stdio, project): ready" in session.mcp.describe()


async def test_session_mcp_permission_patterns(tmp_path: Path, serve: Serve) -> None:
    from nbagent.core.config import Config
    from nbagent.permissions.policy import RulePolicy

    _write_project(tmp_path, {"mcp__fx__*": "deny", "mcp__fx__echo": "allow"})
    call_add = Reply(tool_calls=[ToolCallSpec("mcp__fx__add", {"a": 1, "b": 2})])
    call_echo = Reply(tool_calls=[ToolCallSpec("mcp__fx__echo", {"text": "ok"})])
    server = serve(ListScript([call_add, call_echo, Reply(text="done")]))
    config = Config(permission={"mcp__fx__*": "deny", "mcp__fx__echo": "allow"})
    session = make_session(tmp_path, server, trust_project=True, policy=RulePolicy(tmp_path, config))
    events = await collect(session, "add then echo")
    failed = [e for e in events if isinstance(e, ToolCallError)]
    done = [e for e in events if isinstance(e, ToolCallCompleted)]
    assert failed and failed[0].tool == "mcp__fx__add", events
    assert done and done[0].tool == "mcp__fx__echo"


async def test_untrusted_project_servers_do_not_start(tmp_path: Path, serve: Serve) -> None:
    _write_project(tmp_path)
    server = serve(ListScript([Reply(text="done")]))
    session = make_session(tmp_path, server, headless="deny")
    events = await collect(session, "hello")
    notices = [e.message for e in events if isinstance(e, Notice)]
    assert any("'fx'" in n and "not trusted" in n for n in notices), notices
    assert not any(t["function"]["name"].startswith("mcp__") for t in server.requests[0].body["tools"])
    assert session.mcp.hub is not None and session.mcp.hub.servers["fx"].state == "untrusted"
    await asyncio.sleep(0)


async def test_tool_search_when_schemas_exceed_the_budget(tmp_path: Path, serve: Serve) -> None:
    servers = {"fx": {"type": "local", "command": [sys.executable, FIXTURE, "stdio", "--tools", "60"]}}
    (tmp_path / "nbagent.json").write_text(json.dumps({"mcp": {**servers, "tool_budget": 0.02}}))
    script = [
        Reply(
            tool_calls=[ToolCallSpec("tool_search", {"query": "imaginary catalogue 7 extra_7", "limit": 1})]
        ),
        Reply(tool_calls=[ToolCallSpec("mcp__fx__extra_7", {"query": "q"})]),
        Reply(text="done"),
    ]
    server = serve(ListScript(script))
    session = make_session(tmp_path, server, trust_project=True)
    events = await collect(session, "find the catalogue tool")
    first = {t["function"]["name"] for t in server.requests[0].body["tools"]}
    assert "tool_search" in first and not any(n.startswith("mcp__fx__") for n in first)
    second = {t["function"]["name"] for t in server.requests[1].body["tools"]}
    assert "mcp__fx__extra_7" in second and "mcp__fx__extra_8" not in second
    done = [e.output for e in events if isinstance(e, ToolCallCompleted)]
    assert done[-1] == "extra 7: q 10", events
    assert "through tool_search" in session.mcp.describe()


async def test_all_tools_sent_under_the_budget(tmp_path: Path, serve: Serve) -> None:
    _write_project(tmp_path)
    server = serve(ListScript([Reply(text="done")]))
    session = make_session(tmp_path, server, trust_project=True)
    await collect(session, "hi")
    sent = {t["function"]["name"] for t in server.requests[0].body["tools"]}
    assert "tool_search" not in sent and "mcp__fx__echo" in sent


async def test_startup_session_connects_before_the_first_turn(tmp_path: Path, serve: Serve) -> None:
    servers = {"fx": {"type": "local", "command": [sys.executable, FIXTURE, "stdio"]}}
    (tmp_path / "nbagent.json").write_text(json.dumps({"mcp": {**servers, "startup": "session"}}))
    server = serve(ListScript([Reply(text="done")]))
    session = make_session(tmp_path, server, trust_project=True)
    assert session.mcp.hub is not None
    conn = session.mcp.hub.servers["fx"]
    deadline = time.monotonic() + 30
    while conn.state != "ready" and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert conn.state == "ready", conn.error  # connected with no turn started
    await collect(session, "hi")
    assert "mcp__fx__echo" in {t["function"]["name"] for t in server.requests[0].body["tools"]}
