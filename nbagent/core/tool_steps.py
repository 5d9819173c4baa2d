"""The steps around one tool call that every caller shares: the agent loop and the kernel's MCP server.

Before the tool runs, :func:`prepare_call` validates the arguments, runs the PreToolUse hooks (which may
block, rewrite the input, or decide the permission) and the plugins' ``tool_before``. After it ran,
:func:`finish_call` scrubs known secrets and terminal colour codes, adds the nested memory note of a
``read``, and runs the plugins' ``tool_after`` and the PostToolUse hooks. A call served to another agent
over MCP therefore meets the same hooks, plugins and scrubbing as the model's own calls.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from nbagent.core.plugin_wiring import plugin_after, plugin_before
from nbagent.core.text import strip_ansi

if TYPE_CHECKING:
    from nbagent.core.turn_host import TurnHost
    from nbagent.tools.base import Tool, ToolContext, ToolResult

__all__ = ["Finished", "Prepared", "Refused", "finish_call", "invalid_arguments", "prepare_call"]


@dataclass
class Prepared:
    """A call ready to run: its parsed arguments, its (possibly rewritten) input, the hook's decision."""

    args: Any
    data: dict[str, Any]
    decision: str | None = None  # a PreToolUse hook's permission decision: allow / ask / None
    reason: str = ""


@dataclass
class Finished:
    output: str
    title: str
    metadata: dict[str, Any]


def invalid_arguments(tool: str, exc: ValidationError) -> str:
    problems = "; ".join(
        f"{'.'.join(str(x) for x in e['loc']) or 'arguments'}: {e['msg']}" for e in exc.errors()
    )
    return f"Invalid arguments for {tool}: {problems}. Fix them and call again."


@dataclass
class Refused:
    """Why the call must not run (an error for the caller), and its input as far as it got."""

    reason: str
    data: dict[str, Any]


async def prepare_call(s: TurnHost, tool: Tool[Any], data: dict[str, Any]) -> Prepared | Refused:
    """The call to run, or why it must not run."""
    try:
        args = tool.parse(data)
    except ValidationError as exc:
        return Refused(invalid_arguments(tool.name, exc), data)
    pre = await s.run_hook("PreToolUse", {"tool_input": data}, tool_name=tool.name)
    if pre.blocked or pre.permission_decision == "deny" or pre.stop:
        return Refused(
            f"Blocked by a PreToolUse hook: {pre.reason or pre.stop_reason or 'no reason given'}", data
        )
    if pre.updated_input is not None:
        try:
            args = tool.parse(pre.updated_input)
        except ValidationError as exc:
            return Refused(
                f"A PreToolUse hook rewrote the input into an invalid one: {exc.errors()[0]['msg']}", data
            )
        data = pre.updated_input
    rewritten = await plugin_before(s, tool, data)  # plugins may rewrite or refuse
    if isinstance(rewritten, str):
        return Refused(rewritten, data)
    if rewritten is not None:
        args, data = rewritten
    return Prepared(args, data, pre.permission_decision, pre.reason)


async def finish_call(
    s: TurnHost,
    tool: Tool[Any],
    data: dict[str, Any],
    result: ToolResult,
    ctx: ToolContext,
    *,
    memory_note: bool = True,
) -> Finished:
    """The result as the session keeps it. Known secrets and terminal colour codes never enter the
    session (nor the model's context, the store, the events). ``memory_note``: a ``read`` brings the
    nested AGENTS.md it reaches first (once per session: not for a call served to another agent)."""
    output = s.scrub(strip_ansi(result.output))
    title, metadata = s.scrub(result.title), s.scrubber.json(result.metadata)
    file_path = data.get("file_path")
    if memory_note and tool.name == "read" and isinstance(file_path, str):
        output += s.nested_memory_note(ctx.resolve(file_path))
    output = s.scrub(await plugin_after(s, tool.name, data, output))
    post = await s.run_hook(
        "PostToolUse",
        {"tool_input": data, "tool_response": {"output": output, "title": title}},
        tool_name=tool.name,
    )
    if post.blocked:
        output += s.scrub(f"\n\n<hook>PostToolUse: {post.reason}</hook>")
    if post.additional_context:
        output += s.scrub(f"\n\n<hook>{post.additional_context}</hook>")
    return Finished(output, title, metadata)
