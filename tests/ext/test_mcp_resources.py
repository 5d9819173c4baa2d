"""MCP resources and prompts through a session: ``read_mcp_resource``, ``@server:uri`` in a prompt,
``/mcp__server__prompt``, ``/mcp`` and ``nbagent mcp list`` (real SDK servers, real processes)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from nbagent.core.commands import run_command
from nbagent.core.events import ToolCallCompleted
from nbagent.providers.scripted import ListScript, Reply, ToolCallSpec
from tests.conftest import Serve, collect, make_session

FIXTURE = str(Path(__file__).with_name("mcp_fixture_server.py"))


def project(root: Path, **more: object) -> None:
    servers = {"fx": {"command": sys.executable, "args": [FIXTURE, "stdio"]}, **more}
    (root / ".mcp.json").write_text(json.dumps({"mcpServers": servers}))


def user_messages(body: dict[str, object]) -> str:
    messages = body["messages"]
    assert isinstance(messages, list)
    return "\n".join(str(m["content"]) for m in messages if m["role"] == "user")


async def test_read_mcp_resource_tool(tmp_path: Path, serve: Serve) -> None:
    project(tmp_path)
    script = [
        Reply(tool_calls=[ToolCallSpec("read_mcp_resource", {})]),
        Reply(tool_calls=[ToolCallSpec("read_mcp_resource", {"server": "fx", "uri": "notes://readme"})]),
        Reply(text="done"),
    ]
    session = make_session(tmp_path, serve(ListScript(script)), trust_project=True)
    events = await collect(session, "what resources are there?")
    outputs = [e.output for e in events if isinstance(e, ToolCallCompleted)]
    assert "fx notes://readme (text/plain): readme" in outputs[0]
    assert "The fixture's readme." in outputs[1]


async def test_mention_reads_the_resource_into_the_prompt(tmp_path: Path, serve: Serve) -> None:
    project(tmp_path)
    server = serve(ListScript([Reply(text="done")]))
    session = make_session(tmp_path, server, trust_project=True)
    await collect(session, "summarise @fx:notes://readme please")
    sent = user_messages(server.requests[0].body)
    assert '<mcp-resource server="fx" uri="notes://readme">' in sent and "The fixture's readme." in sent


async def test_prompt_as_slash_command_and_mcp_status(tmp_path: Path, serve: Serve) -> None:
    project(tmp_path, broken={"command": "no-such-mcp-program-xyz"})
    server = serve(ListScript([Reply(text="first"), Reply(text="reviewed")]))
    session = make_session(tmp_path, server, trust_project=True)
    before = await run_command(session, "/mcp__fx__review x")
    assert "first turn" in before.text
    await collect(session, "hello")
    status = (await run_command(session, "/mcp")).text
    assert "**fx** (stdio, project): ready" in status and "review" in status and "echo" in status
    assert "**broken**" in status and "not found" in status
    out = await run_command(session, "/mcp__fx__review the parser")
    assert out.prompt == "Please review the parser carefully."
    out = await run_command(session, "/mcp__fx__review topic=caching")
    assert out.prompt == "Please review caching carefully."
    await collect(session, out.prompt)
    assert "Please review caching carefully." in user_messages(server.requests[1].body)


def test_nbagent_mcp_list(tmp_path: Path) -> None:
    project(tmp_path)
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    run = [sys.executable, "-m", "nbagent", "mcp", "list"]
    untrusted = subprocess.run(run, cwd=tmp_path, capture_output=True, text=True, timeout=120, env=env)
    assert "untrusted" in untrusted.stdout and "nbagent trust" in untrusted.stdout, untrusted
    env["NBAGENT_TRUST_PROJECT"] = "1"
    trusted = subprocess.run(run, cwd=tmp_path, capture_output=True, text=True, timeout=120, env=env)
    assert trusted.returncode == 0, trusted.stderr
    assert "**fx** (stdio, project): ready" in trusted.stdout and "echo" in trusted.stdout
