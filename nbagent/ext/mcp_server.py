"""nbagent's tools served over MCP (streamable HTTP on 127.0.0.1, a bearer token on every request).

:class:`ToolServer` offers nbagent :class:`~nbagent.tools.base.Tool` objects under their own names and
schemas; a call goes to ``runner`` (which runs it where it belongs: the notebook's kernel loop, with the
session's permission rules, see ``nbagent.jupyter.mcp_serve``). :class:`HttpServer` runs the app in a
thread of its own with uvicorn; every request without the right ``Authorization: Bearer`` header is
answered 401 before the MCP layer sees it.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import secrets
import socket
import threading
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.context import Context
from mcp_types import CallToolResult, ContentBlock, ImageContent, InputRequiredResult, TextContent
from mcp_types import Tool as MCPTool
from pydantic import BaseModel
from starlette.types import ASGIApp, Receive, Scope, Send

from nbagent.tools.base import Tool, ToolResult

__all__ = ["HttpServer", "ToolOutcome", "ToolServer", "client_snippets", "new_token"]


class ToolOutcome(BaseModel):
    """What a served call answers: the tool's result, or the error the caller sees (``is_error``)."""

    result: ToolResult | None = None
    error: str = ""


Runner = Callable[[str, dict[str, Any]], Awaitable[ToolOutcome]]


def new_token() -> str:
    return secrets.token_urlsafe(32)


class ToolServer(MCPServer[Any]):
    """An MCP server whose tools are nbagent tools; ``runner`` runs a call."""

    def __init__(self, tools: list[Tool[Any]], runner: Runner, *, name: str = "nbagent") -> None:
        root = logging.getLogger()
        level, handlers = root.level, list(root.handlers)
        super().__init__(name=name, instructions="The live Jupyter kernel of an nbagent notebook.")
        # MCPServer calls logging.basicConfig (a stderr handler on the root logger at INFO): in a kernel
        # that is the user's logging, and its lines would show in whatever cell runs next. Undo it.
        root.setLevel(level)
        root.handlers[:] = handlers
        self.nb_tools = {t.name: t for t in tools}
        self.runner = runner

    async def list_tools(self) -> list[MCPTool]:
        out = []
        for tool in self.nb_tools.values():
            fn = tool.schema()["function"]
            out.append(MCPTool(name=tool.name, description=fn["description"], input_schema=fn["parameters"]))
        return out

    def _tool_input_schema(self, name: str) -> dict[str, Any] | None:
        tool = self.nb_tools.get(name)
        return None if tool is None else dict(tool.schema()["function"]["parameters"])

    async def call_tool(
        self, name: str, arguments: dict[str, Any], context: Context[Any, Any] | None = None
    ) -> CallToolResult | InputRequiredResult:
        if name not in self.nb_tools:
            return _error(f"Unknown tool '{name}'. Available tools: {', '.join(sorted(self.nb_tools))}.")
        outcome = await self.runner(name, dict(arguments))
        if outcome.result is None:
            return _error(outcome.error or "The call failed.")
        return _content(outcome.result)


def _error(text: str) -> CallToolResult:
    return CallToolResult(content=[TextContent(type="text", text=text)], is_error=True)


def _content(result: ToolResult) -> CallToolResult:
    blocks: list[ContentBlock] = [TextContent(type="text", text=result.output)]
    for att in result.attachments:
        if att.media_type.startswith("image/"):
            blocks.append(ImageContent(type="image", data=att.data, mime_type=att.media_type))
    return CallToolResult(content=blocks)


class BearerGate:
    """ASGI middleware: an HTTP request without ``Authorization: Bearer <token>`` gets 401."""

    def __init__(self, app: ASGIApp, token: str, on_first_use: Callable[[], None] | None = None) -> None:
        self.app = app
        self._expected = f"Bearer {token}".encode()
        self._on_first_use = on_first_use  # called once, at the first request with the right token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            given = dict(scope.get("headers") or []).get(b"authorization", b"")
            if not hmac.compare_digest(given, self._expected):
                if scope["type"] == "websocket":
                    await send({"type": "websocket.close", "code": 1008})
                    return
                body = b'{"error": "missing or wrong bearer token (printed once by %agent /mcp-serve)"}'
                await send(
                    {
                        "type": "http.response.start",
                        "status": 401,
                        "headers": [
                            (b"content-type", b"application/json"),
                            (b"www-authenticate", b"Bearer"),
                        ],
                    }
                )
                await send({"type": "http.response.body", "body": body})
                return
            first, self._on_first_use = self._on_first_use, None
            if first is not None:
                first()
        await self.app(scope, receive, send)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class HttpServer:
    """The MCP app on 127.0.0.1, in a daemon thread with its own event loop (uvicorn)."""

    def __init__(
        self,
        server: MCPServer[Any],
        token: str,
        *,
        port: int = 0,
        host: str = "127.0.0.1",
        on_first_use: Callable[[], None] | None = None,
    ) -> None:
        self.host = host
        self.port = port or free_port(host)
        self.token = token
        self._app = BearerGate(server.streamable_http_app(host=host), token, on_first_use)
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/mcp"

    def start(self, timeout: float = 10.0) -> None:
        import uvicorn

        config = uvicorn.Config(
            self._app, host=self.host, port=self.port, log_level="warning", lifespan="on", access_log=False
        )
        self._server = uvicorn.Server(config)
        self._server.install_signal_handlers = lambda: None  # not the main thread: the kernel owns signals

        def run() -> None:
            try:
                asyncio.run(self._server.serve())
            except BaseException as exc:  # reported by start()
                self._error = exc

        self._thread = threading.Thread(target=run, name="nbagent-mcp-serve", daemon=True)
        self._thread.start()
        self._thread.join(0)
        waited = 0.0
        while not self._server.started and waited < timeout:
            if self._error is not None or not self._thread.is_alive():
                break
            threading.Event().wait(0.02)
            waited += 0.02
        if not self._server.started:
            raise OSError(
                f"The MCP server did not start on {self.host}:{self.port}: {self._error or 'timeout'}"
            )

    def stop(self, timeout: float = 5.0) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)
        self._server = self._thread = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()


def client_snippets(url: str, token: str, name: str = "nbagent-kernel") -> Mapping[str, str]:
    """Ready-to-paste configuration for Claude Code, OpenCode and Codex (which takes the token from an
    environment variable only)."""
    claude = f'claude mcp add --transport http {name} {url} --header "Authorization: Bearer {token}"'
    opencode = json.dumps(
        {
            "$schema": "https://opencode.ai/config.json",
            "mcp": {name: {"type": "remote", "url": url, "headers": {"Authorization": f"Bearer {token}"}}},
        },
        indent=2,
    )
    codex = (
        f"# ~/.codex/config.toml; Codex reads the token from its environment: NBAGENT_MCP_TOKEN={token} codex\n"
        f'[mcp_servers.{name.replace("-", "_")}]\nurl = "{url}"\nbearer_token_env_var = "NBAGENT_MCP_TOKEN"'
    )
    return {"claude": claude, "opencode": opencode, "codex": codex}
