"""Connections to MCP servers (the ``mcp`` SDK's ``Client``): stdio, streamable HTTP and SSE.

Each connection lives in its own task (the SDK's transports are task-scoped), which holds the client
open until ``close``. Servers start in parallel with a start timeout; a server that fails is reported
once with its error and the others go on. A call that finds its server dead restarts it once and is
answered with a clear error (the model may call again); a slow call times out.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, TextIO

import mcp.types as mt
from mcp import Client, StdioServerParameters
from mcp.client.sse import sse_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

from nbagent.core.errors import ToolFailure
from nbagent.core.private import cache_dir, private_dir
from nbagent.ext.mcp_config import McpConfig, ServerSpec

State = Literal["idle", "starting", "ready", "failed", "disabled", "untrusted"]
MAX_STDERR_TAIL = 2_000


def log_dir() -> Path:
    return cache_dir() / "mcp-logs"


class ServerConn:
    """One MCP server: its state, its tools, its error; started once, restarted once after a crash."""

    def __init__(self, spec: ServerSpec) -> None:
        self.spec = spec
        self.on_change: Callable[[], None] | None = None  # called when ``state`` changes (the sidebar)
        self._state: State = "idle" if spec.enabled else "disabled"
        self.error = ""
        self.tools: list[mt.Tool] = []
        self.prompts: list[mt.Prompt] = []
        self.resources: list[mt.Resource] = []
        self.started_in = 0.0  # seconds the last start took
        self.restarts = 0
        self.client: Client | None = None
        self._task: asyncio.Task[None] | None = None
        self._stop: asyncio.Event | None = None
        self._lock = asyncio.Lock()
        self._log: TextIO | None = None

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def state(self) -> State:
        return self._state

    @state.setter
    def state(self, value: State) -> None:
        changed, self._state = value != self._state, value
        if changed and self.on_change is not None:
            self.on_change()

    # -- the connection ---------------------------------------------------------------------------

    def _client(self) -> Client:
        spec = self.spec
        if spec.transport == "stdio":
            private_dir(log_dir())
            if self._log is None:
                self._log = open(log_dir() / f"{spec.name}.log", "a", encoding="utf-8")  # noqa: SIM115
            params = StdioServerParameters(
                command=spec.command[0], args=spec.command[1:], env=spec.env or None, cwd=spec.cwd
            )
            from mcp.client.stdio import stdio_client

            return Client(stdio_client(params, errlog=self._log), mode="legacy")
        if spec.transport == "sse":
            return Client(sse_client(spec.url, headers=spec.headers), mode="legacy")
        http = create_mcp_http_client(headers=spec.headers)
        return Client(streamable_http_client(spec.url, http_client=http))

    async def _hold(self, ready: asyncio.Future[None]) -> None:
        """Open the client, list what the server offers, then hold it open until stopped."""
        stop = self._stop = asyncio.Event()
        try:
            async with self._client() as client:
                self.client = client
                caps = client.server_capabilities
                self.tools = await _all_tools(client) if caps.tools is not None else []
                if caps.prompts is not None:
                    with contextlib.suppress(Exception):
                        self.prompts = list((await client.list_prompts()).prompts)
                if caps.resources is not None:
                    with contextlib.suppress(Exception):
                        self.resources = list((await client.list_resources()).resources)
                if not ready.done():
                    ready.set_result(None)
                await stop.wait()
        except BaseException as exc:
            if not ready.done():
                ready.set_exception(exc if isinstance(exc, Exception) else RuntimeError(repr(exc)))
            elif self.state == "ready" and not isinstance(exc, asyncio.CancelledError):
                self.state = "failed"
                self.error = f"the connection ended: {_describe(exc)}"
            if isinstance(exc, asyncio.CancelledError):
                raise
        finally:
            self.client = None

    async def start(self) -> bool:
        """Connect (within the start timeout); True when ready. A failure sets ``error``."""
        async with self._lock:
            return await self._start()

    async def _start(self) -> bool:
        if self.state == "ready":
            return True
        self.state = "starting"
        began = time.perf_counter()
        ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._task = asyncio.create_task(self._hold(ready), name=f"nbagent-mcp-{self.name}")
        try:
            async with asyncio.timeout(self.spec.start_timeout):
                await ready
        except TimeoutError:
            await self._cancel()
            self._fail(f"did not start within {self.spec.start_timeout:g}s")
            return False
        except Exception as exc:
            await self._cancel()
            self._fail(_describe(exc))
            return False
        self.started_in = time.perf_counter() - began
        self.state, self.error = "ready", ""
        return True

    def _fail(self, why: str) -> None:
        self.state = "failed"
        where = self.spec.url or " ".join(self.spec.command)
        tail = self.stderr_tail()
        self.error = f"MCP server '{self.name}' ({where}) {why}." + (
            f" Its stderr ends: {tail}" if tail else ""
        )

    def stderr_tail(self) -> str:
        if self._log is None:
            return ""
        try:
            self._log.flush()
            text = Path(self._log.name).read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return " ".join(text[-MAX_STDERR_TAIL:].split()[-60:])

    async def _cancel(self) -> None:
        task, self._task = self._task, None
        if task is not None and not task.done():
            if self._stop is not None:
                self._stop.set()
            try:
                async with asyncio.timeout(5):
                    await asyncio.gather(task, return_exceptions=True)
            except TimeoutError:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)

    async def close(self) -> None:
        await self._cancel()
        if self.state == "ready":
            self.state = "idle"
        if self._log is not None:
            self._log.close()
            self._log = None

    # -- requests -------------------------------------------------------------------------------

    async def _ready_client(self) -> Client:
        async with self._lock:
            if self.state == "idle":  # not started with the others (a lazy start)
                await self._start()
            if self.state != "ready" or self.client is None:
                raise ToolFailure(self.error or f"MCP server '{self.name}' is not running ({self.state}).")
            return self.client

    async def request(self, what: str, send: Callable[[Client], Any], limit: float | None = None) -> Any:
        """``send(client)`` within the call timeout; a dead server is restarted once and the call answered
        with an error that says so."""
        client = await self._ready_client()
        limit = limit or self.spec.call_timeout
        try:
            async with asyncio.timeout(limit):
                return await send(client)
        except TimeoutError:
            raise ToolFailure(
                f"{what} on MCP server '{self.name}' timed out after {limit:g}s. Try a smaller request, or"
                f' raise "call_timeout" for this server in its config.'
            ) from None
        except ToolFailure:
            raise
        except Exception as exc:
            if await self._alive(client):
                raise ToolFailure(f"{what} on MCP server '{self.name}' failed: {_describe(exc)}") from None
            raise ToolFailure(await self._restart(what, exc)) from None

    async def _alive(self, client: Client) -> bool:
        if self.client is not client or self.state != "ready":
            return False
        try:
            async with asyncio.timeout(2):
                if self.spec.transport == "http":  # ping is gone from the 2026 protocol
                    await client.list_tools(cache_mode="bypass")
                else:
                    with warnings.catch_warnings():  # the legacy protocol (stdio, SSE) still has it
                        warnings.simplefilter("ignore")
                        await client.send_ping()
        except Exception:
            return False
        return True

    async def _restart(self, what: str, exc: BaseException) -> str:
        crashed = f"MCP server '{self.name}' stopped during {what} ({_describe(exc)})"
        async with self._lock:
            await self._cancel()
            self.state = "idle"
            if self.restarts >= 1:
                self._fail("crashed again after a restart; it stays stopped for this session")
                return f"{crashed}; it had been restarted once already, so it stays stopped. {self.error}"
            self.restarts += 1
            if await self._start():
                return f"{crashed}. It was restarted; call the tool again if the request is still needed."
            return f"{crashed}; restarting it failed: {self.error}"


async def _all_tools(client: Client) -> list[mt.Tool]:
    tools: list[mt.Tool] = []
    cursor: str | None = None
    for _ in range(100):
        page = await client.list_tools(cursor=cursor)
        tools += page.tools
        cursor = page.next_cursor
        if not cursor:
            break
    return tools


def _describe(exc: BaseException) -> str:
    if isinstance(exc, BaseExceptionGroup):
        return "; ".join(_describe(e) for e in exc.exceptions[:3])
    text = str(exc).strip()
    if isinstance(exc, FileNotFoundError):
        return f'the program was not found ({exc.filename or text}); install it or fix "command"'
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class McpHub:
    """The session's MCP servers: started together at the first turn, closed with the session."""

    def __init__(self, config: McpConfig) -> None:
        self.config = config
        self.servers = {name: ServerConn(spec) for name, spec in config.servers.items()}
        self.started = False
        self.start_seconds = 0.0
        self.reported: set[str] = set()

    def __bool__(self) -> bool:
        return bool(self.servers) or bool(self.config.errors)

    async def start_all(self, trusted: bool, only: list[ServerConn] | None = None) -> list[str]:
        """Start every enabled server not started yet (or those of ``only``) in parallel, project ones only
        when ``trusted``; the problems, once."""
        self.started = True
        began = time.perf_counter()
        todo = []
        for conn in self.servers.values() if only is None else only:
            if conn.state != "idle":
                continue
            if conn.spec.project and not trusted:
                conn.state = "untrusted"
                conn.error = f"MCP server '{conn.name}' ({conn.spec.source}) was not started: the folder is not trusted."
                continue
            todo.append(conn.start())
        await asyncio.gather(*todo)
        self.start_seconds = time.perf_counter() - began
        return self.take_problems()

    def take_problems(self) -> list[str]:
        """Config errors and failed servers not yet reported."""
        out = []
        for line in self.config.errors:
            if line not in self.reported:
                self.reported.add(line)
                out.append(line)
        for conn in self.servers.values():
            if conn.state in ("failed", "untrusted") and conn.error and conn.error not in self.reported:
                self.reported.add(conn.error)
                out.append(
                    conn.error + (" The session goes on without it." if conn.state == "failed" else "")
                )
        return out

    async def close(self) -> None:
        await asyncio.gather(*(c.close() for c in self.servers.values()), return_exceptions=True)
