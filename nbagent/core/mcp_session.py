"""MCP in a session: the servers start (in parallel) at the session's first turn, their tools join the
session's tools, problems become notices once. ``snapshot()`` is their state (servers, tools, errors) as
data: ``/mcp`` and ``nbagent mcp list`` render it as text, the JupyterLab sidebar as its MCP section, which
``listeners`` tell when a server's state or lists change.

A server that changes its tools while the session runs (``list_changed``) is listed again by its
connection; ``sync``, before each model step, makes the change the session's: new tools are sent (or wait
behind ``tool_search`` over the budget), changed ones replace the old in place, removed ones leave, and a
call to one answers that it is gone. Never in the middle of a step: a request's tool list stays as built.

Kept light: the ``mcp`` SDK is imported only when servers are configured.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import shlex
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, Field

from nbagent.core.errors import NbagentError
from nbagent.ext.cc_plugins import project_defines_dirs
from nbagent.ext.mcp_config import McpConfig, add_servers, load_mcp_config, safe_name

if TYPE_CHECKING:
    import mcp.types as mt

    from nbagent.core.loop import TurnRunner
    from nbagent.core.session import Session
    from nbagent.ext.mcp_client import McpHub, ServerConn
    from nbagent.ext.mcp_config import ServerSpec
    from nbagent.ext.trust import ProjectTrust
    from nbagent.tools.base import Tool

STATE_KEY = "mcp"
MENTION = re.compile(r"(?<![\w/@])@([A-Za-z0-9_-]+):(\S+)")
MAX_MENTION = 50_000
NO_SERVERS = (
    'No MCP servers configured. Add them to nbagent.json ("mcp": {"NAME": {"type": "local",'
    ' "command": [...]}}) or .mcp.json ("mcpServers").'
)
SETTLE_SECONDS = 5.0  # how long a step waits for the lists a server said changed
_log = logging.getLogger(__name__)

# "not started": no connection yet; "idle": a connection not started (or stopped); "needs trust": a
# project server in a folder not trusted (yet)
ServerState = Literal["ready", "failed", "starting", "idle", "not started", "disabled", "needs trust"]


class McpServerRow(BaseModel):
    """One configured MCP server, as ``/mcp`` and the sidebar show it."""

    name: str
    transport: str
    scope: Literal["user", "project"]
    where: str  # the command or the URL as written (no secret from a variable: ``ServerSpec.where``)
    source: str = ""  # the file that defined it
    state: ServerState
    tools: list[str] = Field(default_factory=list)  # when ready
    tool_count: int = 0
    prompts: list[str] = Field(default_factory=list)
    resources: int = 0
    start_ms: int | None = None  # how long the (last) start took, when ready
    error: str = ""


class McpSnapshot(BaseModel):
    """The MCP servers of a session (or of the config, before there is one): one row per server."""

    servers: list[McpServerRow] = Field(default_factory=list)
    errors: list[str] = Field(default_factory=list)  # config problems
    deferred: int = 0  # MCP tools held back behind tool_search


class McpSession:
    """The session's MCP servers (``hub``: None until started, and when there are none)."""

    def __init__(self, config: McpConfig, trust: ProjectTrust | None = None) -> None:
        self.config = config
        self.trust = trust  # the session's project trust (None: unknown, e.g. no session yet)
        self.hub: McpHub | None = None
        self.started = False
        self.deferred = 0  # MCP tools held back behind tool_search
        self._revision = 0  # the servers' list revisions the session's tools were made from
        self._early: asyncio.Task[list[str]] | None = None
        # called (with no argument, in the thread of the change) when a server's state changes
        self.listeners: list[Callable[[], None]] = []

    def _changed(self) -> None:
        for listener in list(self.listeners):
            try:
                listener()
            except Exception:
                _log.debug("an MCP state listener failed", exc_info=True)

    def _new_hub(self) -> McpHub:
        """The hub of this session's servers, each telling ``listeners`` when its state changes."""
        from nbagent.ext.mcp_client import McpHub

        hub = self.hub = McpHub(self.config)
        for conn in hub.servers.values():
            conn.on_change = self._changed
        self._changed()
        return hub

    def __bool__(self) -> bool:
        return bool(self.config.servers) or bool(self.config.errors)

    async def start(self, session: Session) -> None:
        """Once: start the servers, add their tools, report problems as notices."""
        if self.started:
            return
        self.started = True
        if not self.config.servers:
            for line in self.config.errors:
                _notice(session, line)
            return
        lines: list[str] = []
        if self._early is not None:  # "startup": "session": some are connecting already
            (early,) = await asyncio.gather(self._early, return_exceptions=True)
            lines += early if isinstance(early, list) else []
        hub = self.hub or self._new_hub()
        pending = [c for c in hub.servers.values() if c.state == "idle"]
        trusted = True
        if any(c.spec.project for c in pending):
            trusted = await session._trust_project()
        lines += await hub.start_all(trusted, pending)
        for line in [*lines, *hub.take_problems()]:
            _notice(session, line)
        self._apply(session)
        self._changed()  # the tools offered, the deferred count

    async def sync(self, session: Session) -> None:
        """Before a model step: the servers' list changes since the last one become the session's tools
        (the lists a server said changed are waited for, ``SETTLE_SECONDS`` at most)."""
        hub = self.hub
        if hub is None or not self.started:
            return
        waiting = [c.settle() for c in hub.servers.values() if not c.settled]
        if waiting:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(SETTLE_SECONDS):
                    await asyncio.gather(*waiting)
        if sum(c.revision for c in hub.servers.values()) != self._revision:
            self._apply(session)
            self._changed()

    def start_early(self, session: Session) -> None:
        """``"startup": "session"``: connect now, in the background, to the servers that need no trust
        question (the user's, and the project's in a folder trusted already); the rest wait for the turn."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # no event loop yet (a CLI run): the first turn starts them
        known = self.trusted() is True
        hub = self._new_hub()
        early = [c for c in hub.servers.values() if known or not c.spec.project]
        self._early = loop.create_task(hub.start_all(True, early), name="nbagent-mcp-early")

    def trusted(self) -> bool | None:
        """Whether the project's servers may start without a question: True (trusted, or trusted before),
        False (not trusted yet, or refused), None (no session trust to ask)."""
        trust = self.trust
        return None if trust is None else trust.trusted_now()

    def budget_tokens(self, context: int) -> int:
        budget = self.config.tool_budget
        return int(budget) if budget > 1 else int(budget * context)

    def _apply(self, session: Session) -> None:
        """The session's MCP tools from the ready servers' lists: all, or ``tool_search`` for those over the
        budget (``mcp_search.plan``), in the places they had (``merge``). A tool no server offers any more
        stays callable by name only, to answer that it is gone."""
        from nbagent.core.context.budget import estimate_chars
        from nbagent.tools.mcp_search import ToolSearchTool, merge, plan
        from nbagent.tools.mcp_tools import McpTool, ReadMcpResourceTool

        hub = self.hub
        self._revision = sum(c.revision for c in hub.servers.values()) if hub is not None else 0
        budget = self.budget_tokens(session.limits.context)

        def fits(tools: list[Tool[Any]]) -> bool:
            return session.estimator.tokens(estimate_chars([t.schema() for t in tools])) <= budget

        def ours(tool: Tool[Any]) -> bool:
            return isinstance(tool, McpTool | ToolSearchTool | ReadMcpResourceTool)

        offered = self.tools()
        loaded = {t.name for t in session.tools if isinstance(t, McpTool)}
        wanted, self.deferred = plan(offered, loaded, fits)
        tools = merge(session.tools, wanted, ours)
        live = {t.name for t in offered} | {t.name for t in tools}
        gone = {n: t for n, t in session.tools_by_name.items() if isinstance(t, McpTool) and n not in live}
        _install(session, tools, gone)

    def tools(self) -> list[Tool[Any]]:
        """The tools of the ready servers (and ``read_mcp_resource`` when any offers resources)."""
        from nbagent.tools.mcp_tools import ReadMcpResourceTool, make_tool

        if self.hub is None:
            return []
        out: list[Tool[Any]] = []
        for conn in self.hub.servers.values():
            if conn.state == "ready":
                out += [make_tool(conn, remote) for remote in conn.tools]
        if any(c.resources for c in self.hub.servers.values()):
            out.append(ReadMcpResourceTool(self.hub))
        return out

    async def with_mentions(self, prompt: str) -> str:
        """``prompt`` with the resources it mentions (``@server:uri``) appended; unreadable ones say why."""
        if self.hub is None or "@" not in prompt:
            return prompt
        from nbagent.core.errors import ToolFailure

        blocks: list[str] = []
        for match in MENTION.finditer(prompt):
            conn = self.hub.servers.get(match.group(1))
            if conn is None or conn.state != "ready":
                continue
            uri = match.group(2).rstrip(".,;:)")
            try:
                result: mt.ReadResourceResult = await conn.request(f"reading {uri}", _reader(uri))
                body = "\n".join(
                    getattr(c, "text", None) or f"[binary content {c.uri}]" for c in result.contents
                )
            except ToolFailure as exc:
                body = f"(could not be read: {exc})"
            blocks.append(
                f'<mcp-resource server="{conn.name}" uri="{uri}">\n{body[:MAX_MENTION]}\n</mcp-resource>'
            )
        return prompt if not blocks else prompt + "\n\n" + "\n\n".join(blocks)

    async def close(self) -> None:
        if self._early is not None:
            await asyncio.gather(self._early, return_exceptions=True)
        if self.hub is not None:
            await self.hub.close()

    def snapshot(self) -> McpSnapshot:
        """Each configured server's state, tools, prompts and error; the config errors (cheap: nothing
        starts)."""
        trust: list[bool | None] = []  # asked once, only when a project server is not started

        def trusted() -> bool | None:
            if not trust:
                trust.append(self.trusted())
            return trust[0]

        rows = []
        for name, spec in self.config.servers.items():
            conn = self.hub.servers.get(name) if self.hub is not None else None
            rows.append(_row(spec, conn, trusted))
        return McpSnapshot(servers=rows, errors=list(self.config.errors), deferred=self.deferred)

    def describe(self) -> str:
        """Servers, state, tools and errors (``/mcp``, ``nbagent mcp list``): the snapshot as text."""
        if not self:
            return NO_SERVERS
        snap = self.snapshot()
        lines: list[str] = []
        for row in snap.servers:
            state = "needs trust (folder untrusted)" if row.state == "needs trust" else row.state
            lines.append(
                f"- **{row.name}** ({row.transport}, {row.scope}): {state} — `{row.where}` (from {row.source})"
            )
            if row.state == "ready":
                names = ", ".join(row.tools) or "no tools"
                lines.append(f"  tools: {names} ({row.start_ms} ms to start)")
                if row.prompts:
                    lines.append("  prompts: " + ", ".join(row.prompts))
                if row.resources:
                    lines.append(f"  resources: {row.resources}")
            if row.error:
                lines.append(f"  error: {row.error}")
        if snap.deferred:
            lines.append(
                f"{snap.deferred} MCP tools are loaded on demand through tool_search (over the budget)."
            )
        lines += [f"- error: {e}" for e in snap.errors]
        return "\n".join(lines)


def _row(spec: ServerSpec, conn: ServerConn | None, trusted: Callable[[], bool | None]) -> McpServerRow:
    state: ServerState
    if not spec.enabled:
        state = "disabled"
    elif (conn is None or conn.state == "idle") and spec.project and trusted() is False:
        state = "needs trust"
    elif conn is None:
        state = "not started"
    elif conn.state == "untrusted":
        state = "needs trust"
    else:
        state = conn.state
    ready = conn is not None and state == "ready"
    tools = [t.name for t in conn.tools] if conn is not None and ready else []
    return McpServerRow(
        name=spec.name,
        transport=conn.transport if conn is not None else spec.transport,  # "sse" after a fallback
        scope="project" if spec.project else "user",
        where=spec.where,
        source=spec.source,
        state=state,
        tools=tools,
        tool_count=len(tools),
        prompts=[p.name for p in conn.prompts] if conn is not None and ready else [],
        resources=len(conn.resources) if conn is not None and ready else 0,
        start_ms=round(conn.started_in * 1000) if conn is not None and ready else None,
        error=conn.error if conn is not None else "",
    )


def _reader(uri: str) -> Callable[[Any], Awaitable[Any]]:
    return lambda client: client.read_resource(uri)


def _notice(session: Session, line: str) -> None:
    from nbagent.core.events import Notice

    session._emit(Notice(session_id=session.id, level="warning", message=line))


def add_tools(session: Session, tools: list[Tool[Any]]) -> None:
    """Add tools to a session (``tool_search``'s finds), sent from its next request on."""
    taken = set(session.tools_by_name)
    new: list[Tool[Any]] = []
    for tool in tools:
        if tool.name not in taken:
            taken.add(tool.name)
            new.append(tool)
    if new:
        _install(session, [*session.tools, *new], session.tools_by_name)


def _install(session: Session, tools: list[Tool[Any]], also: Mapping[str, Tool[Any]]) -> None:
    """``tools`` become the session's (their schemas, their share of the context); ``also`` are callable
    by name without being sent (a removed MCP tool, which says so)."""
    from nbagent.core.context.budget import estimate_chars

    session.tools = tools
    session.tools_by_name = {**also, **{t.name: t for t in tools}}
    session._tool_schemas = [t.schema() for t in tools]
    session._fixed = len(session.system_prompt) + estimate_chars(session._tool_schemas)


def attach_mcp(session: Session, root: Path | None = None) -> McpSession:
    """The session's MCP servers, not started yet; a child session has none (its parent's tools serve)."""
    from nbagent.tools.mcp_search import LOAD_KEY

    session.tool_state[LOAD_KEY] = lambda found: add_tools(session, found)
    if session.setup.child:
        return McpSession(McpConfig())
    try:
        config = load_mcp_config(root or session.root)
        plugins = session.setup.cc_plugins
        if (
            plugins.mcp_servers()
        ):  # Claude Code plugin folders' .mcp.json: project code when the project named them
            named = project_defines_dirs(root or session.root)
            add_servers(config, plugins.mcp_servers(), source=Path("<Claude Code plugins>"), project=named)
    except Exception as exc:
        config = McpConfig(errors=[f"MCP servers are not available: {exc}"])
    mcp = McpSession(config, session.project_trust)
    session.tool_state[STATE_KEY] = mcp
    if config.startup == "session" and config.servers:
        mcp.start_early(session)
    return mcp


async def mcp_turn(session: Session, runner: TurnRunner, prompt: str) -> None:
    """A turn that first starts the session's MCP servers (the first time) and reads the resources the
    prompt mentions (``@server:uri``)."""
    from nbagent.core.prompt_prep import run_turn

    await session.mcp.start(session)
    await run_turn(session, runner, await session.mcp.with_mentions(prompt))


async def mcp_command(session: Session, name: str, args: str) -> tuple[str, str | None] | None:
    """``/mcp`` (the servers' state) and ``/mcp__server__prompt ARGS`` (an MCP prompt run as a turn):
    ``(text, prompt)``; None for any other command."""
    mcp: McpSession = session.mcp
    if name == "mcp":
        return mcp.describe(), None
    if not name.startswith("mcp__") or mcp.hub is None:
        if name.startswith("mcp__") and mcp:
            return "The MCP servers start with the session's first turn; send a prompt first.", None
        return None
    for conn in mcp.hub.servers.values():
        for prompt in conn.prompts if conn.state == "ready" else []:
            if prompt_command(conn.name, prompt.name) == name:
                return "", await get_prompt(conn, prompt, args)
    return None


def prompt_command(server: str, prompt: str) -> str:
    return f"mcp__{safe_name(server)}__{safe_name(prompt)}"


async def get_prompt(conn: ServerConn, prompt: mt.Prompt, args: str) -> str:
    """The prompt's messages as one user prompt; ``args`` is ``key=value ...`` or, for a prompt with one
    argument, the whole text."""
    from nbagent.tools.base import ToolContext
    from nbagent.tools.mcp_tools import render_content

    declared = [a.name for a in prompt.arguments or []]
    values: dict[str, str] = {}
    pairs = [p.partition("=") for p in shlex.split(args)] if "=" in args else []
    if pairs and all(sep and key in declared for key, sep, _ in pairs):
        values = {key: value for key, _, value in pairs}
    elif declared and args.strip():
        values = {declared[0]: args.strip()}
    missing = [a.name for a in prompt.arguments or [] if a.required and a.name not in values]
    if missing:
        raise NbagentError(
            f"/{prompt_command(conn.name, prompt.name)} needs {', '.join(missing)}.",
            "Pass them as key=value (or the text itself when the prompt takes one argument).",
        )
    result: mt.GetPromptResult = await conn.request(
        f"the prompt {prompt.name}", lambda c: c.get_prompt(prompt.name, values)
    )
    ctx = ToolContext(root=Path.cwd())
    texts = [render_content([m.content], ctx)[0] for m in result.messages]
    return "\n\n".join(t for t in texts if t)


def mcp_list(root: Path) -> int:
    """``nbagent mcp list``: start every configured server (project ones only in a trusted folder), show
    their state, tools and errors, stop them; the exit code is 1 when a server failed."""
    import asyncio

    from nbagent.core.config import load_config
    from nbagent.ext.trust import ProjectTrust, project_code_sources

    config = load_mcp_config(root)
    mcp = McpSession(config)
    if not config.servers:
        print(mcp.describe())
        return 0
    trust = ProjectTrust(root, project_code_sources(root, load_config(root)))
    trusted = trust.trusted_now()

    async def run() -> str:
        hub = mcp._new_hub()
        mcp.started = True
        try:
            await hub.start_all(trusted)
            return mcp.describe()  # while they run
        finally:
            await hub.close()

    print(asyncio.run(run()))
    if not trusted and config.project_servers:
        print(f"Project servers were not started: trust the folder first (`nbagent trust {root}`).")
    failed = mcp.hub is not None and any(c.state == "failed" for c in mcp.hub.servers.values())
    return 1 if failed else 0
