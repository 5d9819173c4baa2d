"""MCP client costs: start-up of 3 stdio servers (in parallel, vs one after the other) and the per-call
overhead of an ``mcp__server__tool`` call (permission check, result rendering, bounding) over calling the
same server directly through the SDK's client on the same connection.

    .venv/bin/python -m bench.mcp [CALLS]
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

from nbagent.ext.mcp_client import McpHub
from nbagent.ext.mcp_config import McpConfig, ServerSpec
from nbagent.tools.base import ToolContext
from nbagent.tools.mcp_tools import McpArgs, make_tool

FIXTURE = str(Path(__file__).parent.parent / "tests" / "ext" / "mcp_fixture_server.py")


def spec(name: str) -> ServerSpec:
    return ServerSpec(name=name, transport="stdio", command=[sys.executable, FIXTURE, "stdio"])


async def startup(parallel: bool) -> float:
    hub = McpHub(McpConfig(servers={n: spec(n) for n in ("a", "b", "c")}))
    began = time.perf_counter()
    if parallel:
        await hub.start_all(trusted=True)
    else:
        for conn in hub.servers.values():
            await conn.start()
    took = time.perf_counter() - began
    assert all(c.state == "ready" for c in hub.servers.values())
    await hub.close()
    return took


async def per_call(calls: int) -> tuple[float, float]:
    hub = McpHub(McpConfig(servers={"a": spec("a")}))
    await hub.start_all(trusted=True)
    conn = hub.servers["a"]
    assert conn.client is not None
    client = conn.client
    with tempfile.TemporaryDirectory() as tmp:
        ctx = ToolContext(root=Path(tmp), output_dir=Path(tmp) / "out")
        tool = make_tool(conn, next(t for t in conn.tools if t.name == "echo"))
        direct: list[float] = []
        wrapped: list[float] = []
        for i in range(calls):  # interleaved, so drift hits both alike
            t0 = time.perf_counter()
            await client.call_tool("echo", {"text": f"hi {i}"})
            t1 = time.perf_counter()
            await tool.run(McpArgs(text=f"hi {i}"), ctx)
            t2 = time.perf_counter()
            direct.append(t1 - t0)
            wrapped.append(t2 - t1)
    await hub.close()
    return statistics.median(direct), statistics.median(wrapped)


async def main(calls: int) -> None:
    parallel = min([await startup(True) for _ in range(3)])
    serial = min([await startup(False) for _ in range(2)])
    direct, wrapped = await per_call(calls)
    print(
        f"start-up, 3 stdio servers: parallel {parallel * 1000:.0f} ms, one after the other {serial * 1000:.0f} ms"
    )
    print(
        f"per call (median of {calls}): SDK client {direct * 1000:.2f} ms, mcp__ tool {wrapped * 1000:.2f} ms,"
        f" overhead {(wrapped - direct) * 1000:.2f} ms (target < 5 ms)"
    )


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 200))
