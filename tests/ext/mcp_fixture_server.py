"""A real MCP server written with the SDK, for the MCP client tests.

python mcp_fixture_server.py [stdio | http PORT | sse PORT] [--tools N] [--name NAME]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import sys

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.utilities.types import Image

PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)


def build(name: str, extra_tools: int) -> MCPServer:
    server = MCPServer(name)

    @server.tool()
    def echo(text: str) -> str:
        """Echo the text back."""
        return f"echo: {text}"

    @server.tool()
    def add(a: int, b: int) -> dict[str, int]:
        """Add two numbers; structured result."""
        return {"sum": a + b}

    @server.tool()
    def picture() -> Image:
        """A one-pixel PNG."""
        return Image(data=PNG, format="png")

    @server.tool()
    def fail(reason: str) -> str:
        """Always fails."""
        raise ValueError(f"refused: {reason}")

    @server.tool()
    def crash() -> str:
        """The process dies in the middle of the call."""
        sys.stdout.flush()
        os._exit(3)

    @server.tool()
    async def slow(seconds: float) -> str:
        """Sleeps, then answers."""
        await asyncio.sleep(seconds)
        return "woke up"

    @server.tool()
    def env(name: str) -> str:
        """The value of an environment variable of the server process."""
        return os.environ.get(name, "<unset>")

    @server.tool()
    def big() -> str:
        """A very long output."""
        return "\n".join(f"line {i} " + "x" * 50 for i in range(5000))

    for i in range(extra_tools):

        def make(i: int) -> None:
            def tool(query: str, limit: int = 10) -> str:
                return f"extra {i}: {query} {limit}"

            tool.__name__ = f"extra_{i}"
            tool.__doc__ = f"Extra tool number {i}: searches the imaginary catalogue {i}. " + "Words " * 40
            server.tool()(tool)

        make(i)

    @server.resource("notes://readme", name="readme", mime_type="text/plain")
    def readme() -> str:
        return "The fixture's readme."

    @server.prompt()
    def review(topic: str) -> str:
        """Review a topic."""
        return f"Please review {topic} carefully."

    return server


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("transport", choices=["stdio", "http", "sse"])
    parser.add_argument("port", nargs="?", type=int, default=0)
    parser.add_argument("--tools", type=int, default=0)
    parser.add_argument("--name", default="fixture")
    opts = parser.parse_args()
    server = build(opts.name, opts.tools)
    if opts.transport == "stdio":
        server.run("stdio")
    elif opts.transport == "http":
        server.run("streamable-http", host="127.0.0.1", port=opts.port)
    else:
        server.run("sse", host="127.0.0.1", port=opts.port)


if __name__ == "__main__":
    main()
