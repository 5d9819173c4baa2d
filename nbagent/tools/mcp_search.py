"""``tool_search``: MCP tools held back when their schemas would take too much of the context window.

The model searches by keywords (or ``select:NAME,NAME``); the tools found are loaded into the session
and can be called from the next step on. Only MCP tools are deferred; built-in tools are always sent.

``plan`` decides which MCP tools are sent, ``merge`` puts them among the session's tools; both run when
the servers start and again when a server changes its tools (``core/mcp_session.py``).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from nbagent.tools.base import Tool, ToolContext, ToolFailure, ToolResult

MAX_RESULTS = 10
LOAD_KEY = "tool_search_load"  # tool_state: adds tools to the calling session (core/mcp_session.py)
_WORD = re.compile(r"[a-z0-9]+")


def plan(
    tools: list[Tool[Any]], loaded: set[str], fits: Callable[[list[Tool[Any]]], bool]
) -> tuple[list[Tool[Any]], int]:
    """The MCP tools to send, and how many wait behind ``tool_search``: all of them when the schemas of
    the ``mcp__`` ones ``fits`` the budget; else those sent already (``loaded``) and ``tool_search`` for the
    others, so a server that adds tools over the budget does not push out the ones in use."""
    remote = [t for t in tools if t.name.startswith("mcp__")]
    rest = [t for t in remote if t.name not in loaded]
    if not rest or fits(remote):
        return tools, 0
    held = {t.name for t in rest}
    return [ToolSearchTool(rest), *(t for t in tools if t.name not in held)], len(rest)


def merge(
    current: list[Tool[Any]], wanted: list[Tool[Any]], ours: Callable[[Tool[Any]], bool]
) -> list[Tool[Any]]:
    """``current`` with its MCP tools (``ours``) replaced by ``wanted``: a tool that stays keeps its place
    (the cached prompt prefix), a new one comes last, a gone one leaves."""
    taken = {t.name for t in current if not ours(t)}  # never replaced by an MCP tool of the same name
    by_name = {t.name: t for t in wanted if t.name not in taken}
    out: list[Tool[Any]] = []
    for tool in current:
        if not ours(tool):
            out.append(tool)
        elif tool.name in by_name:
            out.append(by_name.pop(tool.name))
    return [*out, *by_name.values()]


class SearchArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")
    query: str = Field(
        description='Keywords naming what the tool should do, or "select:NAME,NAME" to load tools by name.'
    )
    limit: int = Field(5, ge=1, le=MAX_RESULTS, description="How many tools to load at most.")


def _words(text: str) -> set[str]:
    return set(_WORD.findall(text.lower()))


class ToolSearchTool(Tool[SearchArgs]):
    name = "tool_search"
    params = SearchArgs
    read_only = True

    def __init__(self, deferred: list[Tool[Any]]) -> None:
        self.deferred = {t.name: t for t in deferred}

    @property
    def description(self) -> str:
        servers = sorted({n.split("__")[1] for n in self.deferred if n.count("__") >= 2})
        return (
            f"Find and load MCP tools that are not sent by default ({len(self.deferred)} tools from the MCP"
            f" servers {', '.join(servers)}). Search by keywords, or load by exact name with"
            ' "select:NAME,NAME". The tools found can be called from your next step on.'
        )

    def search(self, query: str, limit: int) -> list[Tool[Any]]:
        if query.startswith("select:"):
            names = [n.strip() for n in query[len("select:") :].split(",") if n.strip()]
            return [self.deferred[n] for n in names if n in self.deferred]
        wanted = _words(query)
        scored: list[tuple[float, str]] = []
        for name, tool in self.deferred.items():
            in_name = _words(name.replace("__", " ").replace("_", " "))
            in_text = _words(tool.description)
            score = 3 * len(wanted & in_name) + len(wanted & in_text)
            if score:
                scored.append((-score, name))
        return [self.deferred[n] for _, n in sorted(scored)[:limit]]

    async def run(self, args: SearchArgs, ctx: ToolContext) -> ToolResult:
        found = self.search(args.query.strip(), args.limit)
        if not found:
            names = ", ".join(sorted(self.deferred)[:30])
            raise ToolFailure(f"No MCP tool matches {args.query!r}. Try other keywords; some tools: {names}")
        load: Callable[[list[Tool[Any]]], None] | None = ctx.state.get(LOAD_KEY)
        if load is None:
            raise ToolFailure("tool_search cannot load tools in this session.")
        load(found)  # into the session that called it (a subagent's own, for a subagent)
        lines = [f"- {t.name}: {t.description[:300]}" for t in found]
        return ToolResult(
            output="Loaded these tools; call them directly from now on:\n" + "\n".join(lines),
            title=f"tool_search {args.query}",
            metadata={"loaded": [t.name for t in found]},
        )
