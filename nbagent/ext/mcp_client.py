"""Connections to MCP servers (the ``mcp`` SDK's ``Client``): stdio, streamable HTTP and SSE.

Each connection lives in its own task (the SDK's transports are task-scoped), which holds the client
open until ``close``. Servers start in parallel with a start timeout; a server that fails is reported
once with its error and the others go on. A call that finds its server dead restarts it once and is
answered with a clear error (the model may call again); a slow call times out.

A server may change its tools, prompts and resources while it runs: its ``list_changed`` notification (a
2025 connection), or its ``subscriptions/listen`` stream (a 2026 one), makes the connection's task list
them again; ``revision`` counts the changes, which the session applies before its next model step
(``core/mcp_session.py``).

A remote server whose entry does not say which protocol it speaks (OpenCode's ``"remote"``, a bare
``"url"``) is tried over streamable HTTP, then over SSE when its answer says the URL is no streamable HTTP
endpoint (an HTTP 400, 404, 405, 406 or 415 that is no JSON-RPC answer), within the same start timeout;
the transport that worked is kept for restarts (``transport``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, TextIO

import mcp.types as mt
from mcp import Client, StdioServerParameters
from mcp.client.caching import CacheMode
from mcp.client.session import IncomingMessage
from mcp.client.sse import sse_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

from nbagent.core.errors import ToolFailure
from nbagent.core.private import cache_dir, private_dir
from nbagent.ext.mcp_config import McpConfig, ServerSpec, Transport
from nbagent.ext.mcp_failures import Answers, Unreachable, describe, url_secrets

State = Literal["idle", "starting", "ready", "failed", "disabled", "untrusted"]
Kind = Literal["tools", "prompts", "resources"]
MAX_STDERR_TAIL = 2_000
KINDS: tuple[Kind, ...] = ("tools", "prompts", "resources")
LIST_CHANGED: dict[type[Any], Kind] = {
    mt.ToolListChangedNotification: "tools",
    mt.PromptListChangedNotification: "prompts",
    mt.ResourceListChangedNotification: "resources",
}
RELIST_TIMEOUT = 30.0  # seconds for a server to list again what it said changed
LISTEN_PAUSE = 1.0  # seconds before a dropped subscriptions/listen stream is opened again (doubling)
_log = logging.getLogger(__name__)


def log_dir() -> Path:
    return cache_dir() / "mcp-logs"


class ServerConn:
    """One MCP server: its state, its tools, its error; started once, restarted once after a crash."""

    def __init__(self, spec: ServerSpec) -> None:
        self.spec = spec
        # called when ``state`` changes, and when the server's lists change (the sidebar)
        self.on_change: Callable[[], None] | None = None
        self._state: State = "idle" if spec.enabled else "disabled"
        self.error = ""
        self.transport: Transport = spec.transport  # the one in use: "sse" after a fallback
        self.tools: list[mt.Tool] = []
        self.prompts: list[mt.Prompt] = []
        self.resources: list[mt.Resource] = []
        self.revision = 0  # counts the changes of the three lists
        self.started_in = 0.0  # seconds the last start took
        self.restarts = 0
        self.client: Client | None = None
        self._task: asyncio.Task[None] | None = None
        self._stop: asyncio.Event | None = None
        self._wake: asyncio.Event | None = None  # a list changed (or the connection stops)
        self._pending: set[Kind] = set()  # lists to fetch again
        self._settled = asyncio.Event()  # set when no change waits to be listed
        self._settled.set()
        self._lock = asyncio.Lock()
        self._log: TextIO | None = None
        self._answers: Answers | None = None

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
        spec, handler = self.spec, self._on_message
        self._answers = None
        if self.transport == "stdio":
            private_dir(log_dir())
            if self._log is None:
                self._log = open(log_dir() / f"{spec.name}.log", "a", encoding="utf-8")  # noqa: SIM115
            params = StdioServerParameters(
                command=spec.command[0], args=spec.command[1:], env=spec.env or None, cwd=spec.cwd
            )
            from mcp.client.stdio import stdio_client

            return Client(stdio_client(params, errlog=self._log), mode="legacy", message_handler=handler)
        if self.transport == "sse":
            return Client(sse_client(spec.url, headers=spec.headers), mode="legacy", message_handler=handler)
        http = create_mcp_http_client(headers=spec.headers)
        self._answers = Answers()
        http.event_hooks["response"].append(self._answers)
        return Client(streamable_http_client(spec.url, http_client=http), message_handler=handler)

    async def _on_message(self, message: IncomingMessage) -> None:
        """The SDK's message handler (on the client's task): a list changed, to be listed again."""
        kind = LIST_CHANGED.get(type(message))
        if kind is not None:
            self._mark(kind)

    def _mark(self, *kinds: Kind) -> None:
        self._pending.update(kinds)
        self._settled.clear()
        if self._wake is not None:
            self._wake.set()

    @property
    def settled(self) -> bool:
        """No change the server announced waits to be listed."""
        return self._settled.is_set()

    async def settle(self) -> None:
        """Wait until the changes the server announced are listed (the session bounds the wait)."""
        await self._settled.wait()

    async def _hold(self, ready: asyncio.Future[None]) -> None:
        """Open the client, list what the server offers, then hold it open until stopped, listing again
        what the server says changed."""
        stop = self._stop = asyncio.Event()
        wake = self._wake = asyncio.Event()
        try:
            async with self._client() as client:
                self.client = client
                watch: asyncio.Task[None] | None = None
                try:
                    if client.protocol_version in MODERN_PROTOCOL_VERSIONS:  # changes come on a stream
                        opened: asyncio.Future[None] = asyncio.get_running_loop().create_future()
                        watch = asyncio.create_task(
                            self._watch(client, opened), name=f"mcp-watch-{self.name}"
                        )
                        await opened
                    self._pending.clear()
                    await self._list(client, KINDS, first=True)
                    if not ready.done():
                        ready.set_result(None)
                    while True:
                        if not self._pending:
                            self._settled.set()
                            await wake.wait()
                        wake.clear()
                        if stop.is_set():
                            break
                        kinds, self._pending = tuple(self._pending), set()
                        try:  # a server that never answers must not hold every later model step
                            async with asyncio.timeout(min(self.spec.call_timeout, RELIST_TIMEOUT)):
                                await self._list(client, kinds, first=False)
                        except TimeoutError:
                            _log.warning("MCP server %s did not list its %s again in time", self.name, kinds)
                finally:
                    if watch is not None:
                        watch.cancel()
                        await asyncio.gather(watch, return_exceptions=True)
        except BaseException as exc:
            if not ready.done():
                ready.set_exception(exc if isinstance(exc, Exception) else RuntimeError(repr(exc)))
            elif self.state == "ready" and not isinstance(exc, asyncio.CancelledError):
                self.error = self.redact(f"the connection ended: {describe(exc)}")
                self.state = "failed"  # after the error: the sidebar's refresh shows this one
            if isinstance(exc, asyncio.CancelledError):
                raise
        finally:
            self.client = None
            self._pending.clear()
            self._settled.set()

    async def _list(self, client: Client, kinds: tuple[Kind, ...], *, first: bool) -> None:
        """List ``kinds`` again; a change bumps ``revision`` and, once ready, tells ``on_change``. At the
        first listing a failure to list the tools fails the start; later ones keep the lists as they were."""
        caps = client.server_capabilities
        tools, prompts, resources = self.tools, self.prompts, self.resources
        cache: CacheMode = "use" if first else "bypass"
        try:
            if "tools" in kinds:
                tools = await _all_tools(client, cache) if caps.tools is not None else []
        except Exception:
            if first:
                raise
            _log.debug("listing the tools of MCP server %s again failed", self.name, exc_info=True)
        with contextlib.suppress(Exception):
            if "prompts" in kinds and caps.prompts is not None:
                prompts = list((await client.list_prompts(cache_mode=cache)).prompts)
        with contextlib.suppress(Exception):
            if "resources" in kinds and caps.resources is not None:
                resources = list((await client.list_resources(cache_mode=cache)).resources)
        if not first and (tools, prompts, resources) == (self.tools, self.prompts, self.resources):
            return
        self.tools, self.prompts, self.resources = tools, prompts, resources
        self.revision += 1
        if not first and self.state == "ready" and self.on_change is not None:
            self.on_change()

    async def _watch(self, client: Client, opened: asyncio.Future[None]) -> None:
        """A 2026 connection: its list changes come on a ``subscriptions/listen`` stream (they reach
        ``_on_message`` too). A stream that drops is opened again and the lists fetched again; a server that
        refuses one is not asked again."""
        caps = client.server_capabilities
        tools = bool(caps.tools and caps.tools.list_changed)
        prompts = bool(caps.prompts and caps.prompts.list_changed)
        resources = bool(caps.resources and caps.resources.list_changed)
        pause = LISTEN_PAUSE
        try:
            while tools or prompts or resources:
                try:
                    async with client.listen(
                        tools_list_changed=tools,
                        prompts_list_changed=prompts,
                        resources_list_changed=resources,
                    ) as stream:
                        if opened.done():  # opened again: what changed meanwhile is unknown
                            self._mark(*KINDS)
                        else:
                            opened.set_result(None)
                        pause = LISTEN_PAUSE
                        async for _event in stream:
                            pass
                except Exception:
                    _log.debug("the list-change stream of MCP server %s ended", self.name, exc_info=True)
                    if not opened.done():
                        return  # refused: the lists stay as listed at the start
                await asyncio.sleep(pause)
                pause = min(pause * 2, 60.0)
        finally:
            if not opened.done():
                opened.set_result(None)

    async def start(self) -> bool:
        """Connect (within the start timeout); True when ready. A failure sets ``error``."""
        async with self._lock:
            return await self._start()

    async def _start(self) -> bool:
        if self.state == "ready":
            return True
        self.state = "starting"
        began = time.perf_counter()
        try:
            async with asyncio.timeout(self.spec.start_timeout):
                try:
                    await self._open()
                except Exception as exc:
                    status = self._answers.not_streamable() if self._answers is not None else None
                    if status is None or not self.spec.fallback_sse or self.transport != "http":
                        raise
                    await self._open_sse(status, exc)
        except TimeoutError:
            await self._cancel()
            self._fail(f"did not start within {self.spec.start_timeout:g}s")
            return False
        except Exception as exc:
            await self._cancel()
            self._fail(describe(exc))
            return False
        self.started_in = time.perf_counter() - began
        self.state, self.error = "ready", ""
        return True

    async def _open(self) -> None:
        ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._task = asyncio.create_task(self._hold(ready), name=f"nbagent-mcp-{self.name}")
        await ready

    async def _open_sse(self, status: int, exc: Exception) -> None:
        """The URL is no streamable HTTP endpoint (``status``): SSE, kept for restarts when it works."""
        await self._cancel()
        self.transport = "sse"
        try:
            await self._open()
        except BaseException as sse:  # the start timeout too: a restart tries streamable HTTP again
            self.transport = "http"
            if not isinstance(sse, Exception):
                raise
            raise Unreachable(
                f"is no streamable HTTP endpoint (HTTP {status}: {describe(exc)}) and SSE failed too:"
                f' {describe(sse)}; check "url"'
            ) from None

    def _fail(self, why: str) -> None:
        self.state = "failed"
        tail = self.stderr_tail()
        self.error = self.redact(
            f"MCP server '{self.name}' ({self.spec.where}) {why}."
            + (f" Its stderr ends: {tail}" if tail else "")
        )

    def redact(self, text: str) -> str:
        """``text`` without what the config puts in the URL, command, headers and environment (errors reach
        ``/mcp``, the sidebar and notebook outputs): the URL as written, the values masked, and each word
        of a header value (a token after "Bearer") too."""
        spec, shown = self.spec, self.spec.where
        secrets = [*spec.env.values(), *(a for a in spec.command if a not in shown)]
        for value in spec.headers.values():
            secrets += [value, *value.split()]
        if spec.url:
            secrets += url_secrets(spec.url)
            text = text.replace(spec.url, shown)
        for value in sorted({v for v in secrets if len(v) >= 6}, key=len, reverse=True):
            text = text.replace(value, "***")
        return text

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
            if self._stop is not None and self._wake is not None:
                self._stop.set()
                self._wake.set()
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
                raise ToolFailure(
                    self.redact(f"{what} on MCP server '{self.name}' failed: {describe(exc)}")
                ) from None
            raise ToolFailure(await self._restart(what, exc)) from None

    async def _alive(self, client: Client) -> bool:
        if self.client is not client or self.state != "ready":
            return False
        try:
            async with asyncio.timeout(2):
                if self.transport == "http":  # ping is gone from the 2026 protocol
                    await client.list_tools(cache_mode="bypass")
                else:
                    with warnings.catch_warnings():  # the legacy protocol (stdio, SSE) still has it
                        warnings.simplefilter("ignore")
                        await client.send_ping()
        except Exception:
            return False
        return True

    async def _restart(self, what: str, exc: BaseException) -> str:
        crashed = self.redact(f"MCP server '{self.name}' stopped during {what} ({describe(exc)})")
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


async def _all_tools(client: Client, cache: CacheMode = "use") -> list[mt.Tool]:
    tools: list[mt.Tool] = []
    cursor: str | None = None
    for _ in range(100):
        page = await client.list_tools(cursor=cursor, cache_mode=cache)
        tools += page.tools
        cursor = page.next_cursor
        if not cursor:
            break
    return tools


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
