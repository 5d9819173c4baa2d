"""A real MCP server written with the SDK, for the MCP client tests.

python mcp_fixture_server.py [stdio | http PORT | sse PORT] [--tools N] [--name NAME]

``change_tools`` and ``change_prompts`` change what the server offers at run time and tell the client
(``notifications/*/list_changed`` on a 2025 connection, the ``subscriptions/listen`` stream on a 2026 one).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import os
import sys
from collections.abc import Callable
from typing import Any, Literal

from mcp.server.mcpserver import Context, MCPServer
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

    @server.tool()
    async def change_tools(
        ctx: Context, add: str = "", remove: str = "", shape: Literal["text", "count"] = "text", many: int = 0
    ) -> str:
        """Add a tool (taking "text", or "count"; ``many``: ADD_0 ... ADD_N-1, long-winded) and/or remove
        one, then send tools/list_changed."""
        if remove:
            server.remove_tool(remove)
        names = [f"{add}_{i}" for i in range(many)] if many else [add] if add else []
        for name in names:
            with contextlib.suppress(Exception):  # added again: its schema changes
                server.remove_tool(name)
            about = f"Added at run time: {name}." + " Many words about it." * (20 if many else 0)
            server.add_tool(_dynamic(name, shape), name=name, description=about)
        await _tell(ctx, "tools")
        return f"tools changed (+{add or '-'} -{remove or '-'})"

    @server.tool()
    async def change_prompts(ctx: Context, add: str = "", remove: str = "") -> str:
        """Add a prompt (one argument, topic) and/or remove one, then send prompts/list_changed."""
        if remove:
            server.remove_prompt(remove)
        if add:

            def prompt(topic: str) -> str:
                return f"{add} about {topic}."

            server.prompt(name=add, description=f"Added at run time: {add}.")(prompt)
        await _tell(ctx, "prompts")
        return "prompts changed"

    @server.resource("notes://readme", name="readme", mime_type="text/plain")
    def readme() -> str:
        return "The fixture's readme."

    @server.prompt()
    def review(topic: str) -> str:
        """Review a topic."""
        return f"Please review {topic} carefully."

    return server


def _dynamic(name: str, shape: str) -> Callable[..., str]:
    if shape == "count":

        def counted(count: int) -> str:
            return f"{name} counted {count}"

        return counted

    def texted(text: str) -> str:
        return f"{name} says {text}"

    return texted


async def _tell(ctx: Context[Any, Any], what: Literal["tools", "prompts"]) -> None:
    """The change notification, in whichever way the connection's protocol carries it."""
    with contextlib.suppress(Exception):  # a 2026 connection: its subscriptions/listen stream
        await (ctx.notify_tools_changed() if what == "tools" else ctx.notify_prompts_changed())
    with contextlib.suppress(Exception):  # a 2025 connection (stdio, SSE): a notification
        session = ctx.request_context.session
        await (session.send_tool_list_changed() if what == "tools" else session.send_prompt_list_changed())


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
