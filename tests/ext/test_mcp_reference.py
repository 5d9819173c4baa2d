"""The MCP project's reference server (npm ``@modelcontextprotocol/server-everything``, installed by
scripts/bootstrap into .venv/mcp-reference) as a user's ``.mcp.json`` names it, through a session."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from nbagent.core.events import ToolCallCompleted
from nbagent.providers.scripted import ListScript, Reply, ToolCallSpec
from tests.conftest import Serve, collect, make_session, require

ROOT = Path(__file__).resolve().parents[2]
EVERYTHING = ROOT / ".venv" / "mcp-reference" / "node_modules" / ".bin" / "mcp-server-everything"


async def test_reference_server_everything(tmp_path: Path, serve: Serve) -> None:
    require(EVERYTHING.exists() and shutil.which("node") is not None, "the MCP reference server (node)")
    servers = {"everything": {"command": "node", "args": [str(EVERYTHING), "stdio"]}}
    (tmp_path / ".mcp.json").write_text(json.dumps({"mcpServers": servers}))
    calls: list[tuple[str, dict[str, Any]]] = [
        ("mcp__everything__echo", {"message": "hello reference"}),
        ("mcp__everything__get-tiny-image", {}),
        ("mcp__everything__get-resource-links", {"count": 2}),
        ("mcp__everything__get-structured-content", {"location": "Chicago"}),
        ("read_mcp_resource", {"server": "everything", "uri": "demo://resource/static/document/features.md"}),
    ]
    script = ListScript([*(Reply(tool_calls=[ToolCallSpec(n, a)]) for n, a in calls), Reply(text="done")])
    server = serve(script)
    session = make_session(tmp_path, server, trust_project=True)
    events = await collect(session, "exercise the reference server")
    done = {e.tool: e for e in events if isinstance(e, ToolCallCompleted)}
    assert set(done) == {n for n, _ in calls}, events
    assert "Echo: hello reference" in done["mcp__everything__echo"].output
    image = done["mcp__everything__get-tiny-image"]
    assert image.attachments and image.attachments[0].media_type == "image/png"
    assert done["mcp__everything__get-resource-links"].output.count("[resource link ") == 2
    assert "temperature" in json.loads(done["mcp__everything__get-structured-content"].output)
    assert len(done["read_mcp_resource"].output) > 20
    # The schemas went to the model as the server wrote them (sanitised per provider on the way).
    sent = {t["function"]["name"]: t for t in server.requests[0].body["tools"]}
    params = sent["mcp__everything__get-structured-content"]["function"]["parameters"]
    assert params["properties"]["location"]["enum"] == ["New York", "Chicago", "Los Angeles"]
