"""MCP tools in the session: ``mcp__<server>__<tool>`` with the server's schema, and ``read_mcp_resource``.

Each call is permission-gated with the tool's name as the rule key (``"mcp__github__*": "allow"``
works), bounded like any tool output; images become attachments, embedded resources and resource
links are described, structured content is shown as JSON when there is no text. A result with
``is_error`` is a tool error. A tool the server no longer offers (it changed its list while the session
ran) answers that it is gone. The session wiring: ``core/mcp_session.py``.
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

import mcp.types as mt
from pydantic import BaseModel, ConfigDict, Field

from nbagent.core.messages import Attachment
from nbagent.ext.mcp_client import McpHub, ServerConn
from nbagent.ext.mcp_config import safe_name
from nbagent.tools.base import PermissionQuery, Tool, ToolContext, ToolFailure, ToolResult, bound_output

PREFIX = "mcp__"
MAX_NAME = 64
MAX_DESCRIPTION = 2_000
MAX_IMAGE_BYTES = 5_000_000


class McpArgs(BaseModel):
    """Whatever the server's schema asks for: the server validates its own input."""

    model_config = ConfigDict(extra="allow")


def tool_name(server: str, tool: str) -> str:
    """``mcp__<server>__<tool>``, made of letters, digits, ``_`` and ``-``, at most 64 characters."""
    name = f"{PREFIX}{safe_name(server)}__{safe_name(tool)}"
    if len(name) <= MAX_NAME:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return f"{name[: MAX_NAME - 9]}_{digest}"


class McpTool(Tool[McpArgs]):
    """One tool of one MCP server."""

    params = McpArgs
    conn: ServerConn
    remote: mt.Tool

    @property
    def description(self) -> str:
        text = (self.remote.description or self.remote.title or "").strip()
        if len(text) > MAX_DESCRIPTION:
            text = text[: MAX_DESCRIPTION - 1] + "…"
        return f"[MCP server {self.conn.name}] {text}".strip()

    def schema(self) -> dict[str, Any]:
        params = dict(self.remote.input_schema or {})
        params.setdefault("type", "object")
        params.setdefault("properties", {})
        return {
            "type": "function",
            "function": {"name": self.name, "description": self.description, "parameters": params},
        }

    async def run(self, args: McpArgs, ctx: ToolContext) -> ToolResult:
        if not any(t.name == self.remote.name for t in self.conn.tools):
            offered = ", ".join(tool_name(self.conn.name, t.name) for t in self.conn.tools[:30]) or "none"
            raise ToolFailure(
                f"The MCP server '{self.conn.name}' no longer offers the tool '{self.remote.name}': it was"
                f" removed while the session ran. Its tools now: {offered}."
            )
        arguments = args.model_dump()
        shown = json.dumps(arguments, ensure_ascii=False)
        await ctx.ask(
            PermissionQuery(
                permission=self.name,
                patterns=[""],
                title=f"{self.conn.name}: {self.remote.name} {shown[:200]}",
                metadata={"server": self.conn.name, "tool": self.remote.name, "input": arguments},
            )
        )
        result: mt.CallToolResult = await self.conn.request(
            f"the call of {self.remote.name}", lambda c: c.call_tool(self.remote.name, arguments)
        )
        text, attachments = render_content(result.content, ctx)
        if result.structured_content is not None and not text.strip():
            text = json.dumps(result.structured_content, ensure_ascii=False, indent=1)
        if result.is_error:
            raise ToolFailure(bound_output(text or "The MCP tool reported an error.", ctx, label="mcp"))
        return ToolResult(
            output=bound_output(text or "(no output)", ctx, label="mcp"),
            title=f"{self.conn.name}: {self.remote.name}",
            metadata={"server": self.conn.name, "tool": self.remote.name},
            attachments=attachments,
        )


def make_tool(conn: ServerConn, remote: mt.Tool) -> McpTool:
    name = tool_name(conn.name, remote.name)
    cls = type(f"McpTool_{name}", (McpTool,), {"name": name, "read_only": False})
    tool: McpTool = cls()
    tool.conn, tool.remote = conn, remote
    return tool


def render_content(content: list[Any], ctx: ToolContext) -> tuple[str, list[Attachment]]:
    """The model's view of MCP content blocks: text, images as attachments, resources described."""
    parts: list[str] = []
    attachments: list[Attachment] = []
    for block in content:
        if isinstance(block, mt.TextContent):
            parts.append(block.text)
        elif isinstance(block, mt.ImageContent):
            size = len(block.data) * 3 // 4
            if size > MAX_IMAGE_BYTES:
                parts.append(f"[image {block.mime_type}, {size} bytes: too large to show]")
            else:
                attachments.append(Attachment(media_type=block.mime_type, data=block.data))
                parts.append(f"[image {block.mime_type} attached]")
        elif isinstance(block, mt.AudioContent):
            parts.append(f"[audio {block.mime_type}: not shown]")
        elif isinstance(block, mt.EmbeddedResource):
            parts.append(_resource_text(block.resource))
        elif isinstance(block, mt.ResourceLink):
            mime = f" ({block.mime_type})" if block.mime_type else ""
            parts.append(f"[resource link {block.uri}{mime}: {block.name}; read it with read_mcp_resource]")
        else:
            parts.append(f"[{getattr(block, 'type', type(block).__name__)} content: not shown]")
    return "\n".join(parts), attachments


def _resource_text(resource: Any) -> str:
    if isinstance(resource, mt.TextResourceContents):
        return f"[resource {resource.uri}]\n{resource.text}"
    if isinstance(resource, mt.BlobResourceContents):
        size = len(base64.b64decode(resource.blob, validate=False)) if resource.blob else 0
        return f"[binary resource {resource.uri} ({resource.mime_type or 'unknown type'}), {size} bytes]"
    return f"[resource {getattr(resource, 'uri', '?')}]"


# -- resources --------------------------------------------------------------------------------------


class ResourceArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")
    server: str | None = Field(None, description="The MCP server; omit to list every server's resources.")
    uri: str | None = Field(None, description="The resource to read; omit to list the server's resources.")


class ReadMcpResourceTool(Tool[ResourceArgs]):
    name = "read_mcp_resource"
    params = ResourceArgs
    read_only = True

    def __init__(self, hub: McpHub) -> None:
        self.hub = hub

    @property
    def description(self) -> str:
        return (
            "List the resources of the MCP servers (no arguments, or server), or read one (server and uri)."
        )

    async def run(self, args: ResourceArgs, ctx: ToolContext) -> ToolResult:
        if args.uri is None:
            return ToolResult(output=bound_output(self._listing(args.server), ctx, label="mcp"))
        conn = self.hub.servers.get(args.server or "")
        if conn is None:
            raise ToolFailure(
                f"No MCP server '{args.server}'. Servers: {', '.join(self.hub.servers) or 'none'}."
            )
        await ctx.ask(
            PermissionQuery(
                permission=f"{PREFIX}{safe_name(conn.name)}__{self.name}",
                patterns=[args.uri],
                title=f"{conn.name}: read resource {args.uri}",
            )
        )
        return await read_resource(conn, args.uri, ctx)

    def _listing(self, server: str | None) -> str:
        lines: list[str] = []
        for conn in self.hub.servers.values():
            if server and conn.name != server:
                continue
            for res in conn.resources:
                about = f" ({res.mime_type})" if res.mime_type else ""
                lines.append(f"{conn.name} {res.uri}{about}: {res.name} {res.description or ''}".rstrip())
        return "\n".join(lines) or "No MCP resources."


async def read_resource(conn: ServerConn, uri: str, ctx: ToolContext) -> ToolResult:
    result: mt.ReadResourceResult = await conn.request(f"reading {uri}", lambda c: c.read_resource(uri))
    texts: list[str] = []
    attachments: list[Attachment] = []
    for item in result.contents:
        if isinstance(item, mt.BlobResourceContents) and (item.mime_type or "").startswith("image/"):
            attachments.append(Attachment(media_type=item.mime_type or "image/png", data=item.blob))
            texts.append(f"[image {item.uri} attached]")
        else:
            texts.append(_resource_text(item))
    return ToolResult(
        output=bound_output("\n".join(texts) or "(empty resource)", ctx, label="mcp"),
        title=f"{conn.name}: {uri}",
        attachments=attachments,
    )
