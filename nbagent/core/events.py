"""Everything a front-end sees of a turn: a discriminated union of events.

Front-ends (CLI, cell widget, sidebar) only consume these and send replies back through
``Session.reply``; none reaches into the loop.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, TypeAdapter

from nbagent.core.messages import Attachment, Usage


class _Event(BaseModel):
    session_id: str = ""


class TurnStarted(_Event):
    type: Literal["turn_started"] = "turn_started"
    turn_id: str
    prompt: str
    model: str


class StepStarted(_Event):
    type: Literal["step_started"] = "step_started"
    step: int


class TextDelta(_Event):
    type: Literal["text_delta"] = "text_delta"
    message_id: str
    text: str


class ReasoningDelta(_Event):
    type: Literal["reasoning_delta"] = "reasoning_delta"
    message_id: str
    text: str


class ToolCallPending(_Event):
    type: Literal["tool_pending"] = "tool_pending"
    call_id: str
    tool: str


class ToolCallRunning(_Event):
    type: Literal["tool_running"] = "tool_running"
    call_id: str
    tool: str
    input: dict[str, Any]
    title: str = ""


class ToolCallOutput(_Event):
    """Live output of a long-running tool (a shell command's stdout, ...)."""

    type: Literal["tool_output"] = "tool_output"
    call_id: str
    chunk: str


class ToolCallCompleted(_Event):
    type: Literal["tool_completed"] = "tool_completed"
    call_id: str
    tool: str
    input: dict[str, Any]
    output: str
    title: str = ""
    metadata: dict[str, Any] = Field(default_factory=dict)
    attachments: list[Attachment] = Field(default_factory=list)


class ToolCallError(_Event):
    type: Literal["tool_error"] = "tool_error"
    call_id: str
    tool: str
    input: dict[str, Any] = Field(default_factory=dict)
    error: str


class PermissionAsked(_Event):
    type: Literal["permission_asked"] = "permission_asked"
    request_id: str
    call_id: str | None = None
    tool: str
    title: str
    patterns: list[str] = Field(default_factory=list)
    reason: str = ""
    always: list[str] = Field(default_factory=list)  # scoped rules an "always" reply would save
    details: dict[str, Any] = Field(default_factory=dict)
    person_only: bool = False  # --yes, bypass and headless policies cannot approve it: a person must


class PermissionReplied(_Event):
    type: Literal["permission_replied"] = "permission_replied"
    request_id: str
    reply: Literal["once", "always", "reject"]
    feedback: str = ""
    by: str = "user"  # "user", or the headless policy that answered


class TodoItem(BaseModel):
    content: str
    status: Literal["pending", "in_progress", "completed", "cancelled"] = "pending"
    priority: Literal["high", "medium", "low"] = "medium"
    id: str = ""


class TodoUpdated(_Event):
    type: Literal["todo_updated"] = "todo_updated"
    todos: list[TodoItem]


class DiffProduced(_Event):
    type: Literal["diff"] = "diff"
    call_id: str
    path: str
    diff: str
    additions: int = 0
    deletions: int = 0


class UsageUpdated(_Event):
    type: Literal["usage"] = "usage"
    step: int
    model: str
    usage: Usage
    total: Usage
    context_tokens: int = 0
    context_limit: int = 0


class Retrying(_Event):
    type: Literal["retrying"] = "retrying"
    attempt: int
    max_attempts: int
    wait: float
    reason: str
    discard_message_id: str = ""  # the partial assistant message front-ends should drop


class SubagentEvent(_Event):
    """An event of a child agent (the ``task`` tool), forwarded to its parent's front-ends.

    ``call_id`` is the parent's ``task`` call the child runs under (front-ends nest the child's
    transcript inside that call's card); ``event`` is the child's own event as JSON (itself a
    ``SubagentEvent`` for a grandchild). A child's permission prompt arrives this way too and is
    answered with the parent session's ``reply`` (the request id is unique across the tree)."""

    type: Literal["subagent"] = "subagent"
    call_id: str
    agent: str
    child_session_id: str
    event: dict[str, Any]


class ModelSwitched(_Event):
    """The session goes on with another model: a failover, the switch back after its cool-down, or
    the user's ``/model``. The prompt cache starts over on the new model."""

    type: Literal["model_switched"] = "model_switched"
    from_model: str
    to_model: str
    reason: Literal["failover", "switch_back", "user"]
    message: str  # for the user: "anthropic/claude-sonnet-4-5: usage limit hit; continuing on openai/gpt-5"


class BudgetStatus(_Event):
    """A spending budget is near (``warning``) or reached (``stop``: the turn ends)."""

    type: Literal["budget"] = "budget"
    level: Literal["warning", "stop"]
    budget: Literal["session_cost", "session_tokens", "daily_cost", "daily_tokens"]
    spent: float
    limit: float
    message: str  # names the budget and how to raise it


class Notice(_Event):
    type: Literal["notice"] = "notice"
    level: Literal["info", "warning"] = "info"
    message: str


class Compacted(_Event):
    type: Literal["compaction"] = "compaction"
    summary: str
    tokens_before: int = 0
    tokens_after: int = 0
    auto: bool = True


class ContextReport(_Event):
    """What the next request is made of, in tokens (``/context``)."""

    type: Literal["context"] = "context"
    model: str
    context_limit: int
    reserve: int
    system_prompt: int
    tools: int
    memory: int
    summary: int
    messages: int
    tool_results: int
    free: int
    limits_known: bool = True


class ErrorEvent(_Event):
    type: Literal["error"] = "error"
    message: str
    hint: str = ""
    kind: str = ""


class TurnFinished(_Event):
    type: Literal["turn_finished"] = "turn_finished"
    turn_id: str
    reason: Literal["stop", "step_limit", "cancelled", "error"]
    steps: int
    usage: Usage
    text: str = ""


Event = Annotated[
    TurnStarted
    | StepStarted
    | TextDelta
    | ReasoningDelta
    | ToolCallPending
    | ToolCallRunning
    | ToolCallOutput
    | ToolCallCompleted
    | ToolCallError
    | PermissionAsked
    | PermissionReplied
    | TodoUpdated
    | DiffProduced
    | UsageUpdated
    | Retrying
    | ModelSwitched
    | BudgetStatus
    | SubagentEvent
    | Notice
    | Compacted
    | ContextReport
    | ErrorEvent
    | TurnFinished,
    Field(discriminator="type"),
]

EVENT_ADAPTER: TypeAdapter[Event] = TypeAdapter(Event)


def event_json_schema() -> dict[str, Any]:
    """The published schema of the event stream (front-ends generate their types from it)."""
    return EVENT_ADAPTER.json_schema()
