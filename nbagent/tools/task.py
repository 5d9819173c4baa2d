"""``task``: start a subagent (a child session with its own context, tools and permissions) and return
only its final message.

The tool is a thin front: the session puts a :class:`TaskRunner` in the tool state under
``TASK_RUNNER_KEY`` (``nbagent.core.subagents``), which makes and runs the child. The description lists
the subagents (name + description); it is fixed when the tool is made, so the request prefix stays
byte-identical across the session's steps (the prompt cache holds).
Permission key ``task``, pattern: the subagent's name.
"""

from __future__ import annotations

from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, Field

from nbagent.core.permission_types import PermissionQuery
from nbagent.tools.base import Tool, ToolContext, ToolFailure, ToolResult, load_description

TASK_RUNNER_KEY = "subagents"


class TaskParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    description: str = Field(description="A short (3-5 words) label for the task, shown to the user.")
    prompt: str = Field(
        description="The whole task for the subagent: it sees nothing of this conversation but this text."
    )
    subagent_type: str = Field(description="Which subagent runs the task (one of those listed).")
    task_id: str | None = Field(
        None,
        description="To continue an earlier task: the task_id its result gave (the child keeps its context).",
    )
    run_in_background: bool = Field(
        False,
        description="Return at once with the task_id; the result arrives as a notice at a later step.",
    )


class TaskOutcome(BaseModel):
    """What a child returns to its parent: its final message only, and facts for the user."""

    output: str
    title: str = ""
    metadata: dict[str, Any] = Field(default_factory=dict)


class TaskRunner(Protocol):
    async def run_task(self, args: TaskParams, ctx: ToolContext) -> TaskOutcome:
        """Run (or continue, or start in the background) a child; raise ``ToolFailure`` when it fails."""
        ...


class TaskTool(Tool[TaskParams]):
    name = "task"
    params = TaskParams
    read_only = False  # but several task calls of a step run concurrently (loop_tools)

    def __init__(self, listing: str) -> None:
        self.listing = listing

    @property
    def description(self) -> str:
        return load_description(self.name).replace("{agents}", self.listing or "(no subagents available)")

    async def run(self, args: TaskParams, ctx: ToolContext) -> ToolResult:
        runner: TaskRunner | None = ctx.state.get(TASK_RUNNER_KEY)
        if runner is None:
            raise ToolFailure("Subagents are not available in this session.")
        await ctx.ask(
            PermissionQuery(
                permission="task",
                patterns=[args.subagent_type],
                title=f"start subagent {args.subagent_type}: {args.description}",
            )
        )
        outcome = await runner.run_task(args, ctx)
        return ToolResult(output=outcome.output, title=outcome.title, metadata=outcome.metadata)
