"""Kernel tools: ``python(code)`` runs code in the live namespace, ``inspect(name)`` summarises variables.

These tools import nothing from Jupyter: they act on a :class:`Namespace` found in the session's tool
state under ``KERNEL_KEY``. ``nbagent.jupyter.kernel`` provides the IPython one; :class:`DictNamespace`
runs code in a plain dict (scripts, tests). Running code lives in :mod:`nbagent.tools.kernel_exec`,
the value summaries in :mod:`nbagent.tools.kernel_summary`; their public names are re-exported here.
"""

from __future__ import annotations

import asyncio
import base64
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from nbagent.core.messages import Attachment
from nbagent.tools.base import PermissionQuery, Tool, ToolContext, ToolFailure, ToolResult, bound_output
from nbagent.tools.kernel_exec import (
    DictNamespace,
    ExecResult,
    Guard,
    Namespace,
    execute_into,
    format_error,
    run_compiled,
    split_last_expression,
)
from nbagent.tools.kernel_summary import (
    MAX_SUMMARY_CHARS,
    MAX_VARIABLES,
    brief,
    clip_text,
    list_variables,
    lookup,
    short_repr,
    state_card,
    summarize,
    type_name,
)

__all__ = [
    "KERNEL_KEY",
    "MAX_IMAGES",
    "MAX_IMAGE_BYTES",
    "MAX_SECTION_CHARS",
    "MAX_SUMMARY_CHARS",
    "MAX_VARIABLES",
    "NO_KERNEL",
    "DictNamespace",
    "ExecResult",
    "Guard",
    "InspectParams",
    "InspectTool",
    "Namespace",
    "PythonParams",
    "PythonTool",
    "brief",
    "execute_into",
    "format_error",
    "format_exec",
    "kernel_of",
    "list_variables",
    "lookup",
    "run_compiled",
    "short_repr",
    "split_last_expression",
    "state_card",
    "summarize",
    "type_name",
]

KERNEL_KEY = "kernel"
MAX_SECTION_CHARS = 8_000  # stdout, stderr, result: each
MAX_IMAGES = 3
MAX_IMAGE_BYTES = 2 * 1024 * 1024
NO_KERNEL = (
    "No live Python kernel in this session: python and inspect work in a notebook (%%agent). "
    "Use bash to run scripts instead."
)


# ---------------------------------------------------------------------------------------------- tools


def kernel_of(ctx: ToolContext) -> Namespace:
    namespace = ctx.state.get(KERNEL_KEY)
    if namespace is None:
        raise ToolFailure(NO_KERNEL)
    return namespace  # type: ignore[no-any-return]


class PythonParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: str = Field(description="Python code; the last expression's value is returned")


def _section(title: str, text: str) -> str:
    return f"[{title}]\n{clip_text(text.rstrip(), MAX_SECTION_CHARS)}"


def _display_summary(bundle: dict[str, Any]) -> str:
    for media in ("text/markdown", "text/plain"):
        if media in bundle:
            value = bundle[media]
            return clip_text(value if isinstance(value, str) else "".join(value), 2000)
    return f"(display of {', '.join(sorted(bundle))})"


def format_exec(result: ExecResult) -> str:
    sections = []
    if result.stdout:
        sections.append(_section("stdout", result.stdout))
    if result.stderr:
        sections.append(_section("stderr", result.stderr))
    for bundle in result.displays:
        sections.append(_section("display", _display_summary(bundle)))
    if result.images:
        sections.append(f"[images] {min(len(result.images), MAX_IMAGES)} attached")
    if result.has_result:
        sections.append(_section(f"result: {type_name(result.result)}", summarize(result.result)))
    if result.error:
        sections.append(_section("error", result.error))
    return "\n".join(sections) if sections else "(no output)"


class PythonTool(Tool[PythonParams]):
    name = "python"
    params = PythonParams

    async def run(self, args: PythonParams, ctx: ToolContext) -> ToolResult:
        namespace = kernel_of(ctx)
        code = args.code
        if not code.strip():
            raise ToolFailure("code is empty.")
        stripped = code.lstrip()
        if stripped.startswith(("%%agent", "%agent")):
            raise ToolFailure("The agent cannot call itself through the %agent magic.")
        first = stripped.splitlines()[0]
        await ctx.ask(
            PermissionQuery(
                permission="python",
                patterns=[code],
                title=f"Run Python in the kernel: {first[:80]}{' ...' if len(code.splitlines()) > 1 else ''}",
                metadata={"code": code},
            )
        )
        result = await namespace.execute(code)
        if result.interrupted:
            raise asyncio.CancelledError("kernel interrupt")
        attachments = [
            Attachment(media_type=media, data=base64.b64encode(data).decode("ascii"), name=f"figure {i + 1}")
            for i, (media, data) in enumerate(result.images[:MAX_IMAGES])
            if len(data) <= MAX_IMAGE_BYTES
        ]
        output = bound_output(format_exec(result), ctx, label="python")
        title = "error" if result.error else (type_name(result.result) if result.has_result else "ok")
        return ToolResult(
            output=output,
            title=f"→ {title}",
            attachments=attachments,
            metadata={"error": bool(result.error), "images": len(attachments)},
        )


class InspectParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, description="Variable or dotted attribute; omit to list variables")


class InspectTool(Tool[InspectParams]):
    name = "inspect"
    params = InspectParams
    read_only = True

    async def run(self, args: InspectParams, ctx: ToolContext) -> ToolResult:
        namespace = kernel_of(ctx)
        if not args.name:
            return ToolResult(output=state_card(namespace), title="kernel state")
        await ctx.ask(
            PermissionQuery(permission="inspect", patterns=[args.name], title=f"Inspect {args.name}")
        )
        value = lookup(namespace, args.name)
        return ToolResult(output=summarize(value), title=f"{args.name}: {brief(value)[:80]}")
