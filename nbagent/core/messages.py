"""The canonical, typed history of a session: messages made of parts.

Tool calls carry a state that moves pending -> running -> completed | error. This is the
wire format we store; providers get a translation (see ``nbagent.providers.wire``).
"""

from __future__ import annotations

import time
import uuid
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:16]}"


class Attachment(BaseModel):
    """Binary content handed to the model (images) as base64."""

    media_type: str
    data: str  # base64
    name: str = ""


class ToolPending(BaseModel):
    status: Literal["pending"] = "pending"
    raw_input: str = ""


class ToolRunning(BaseModel):
    status: Literal["running"] = "running"
    input: dict[str, Any]
    started: float = Field(default_factory=time.time)
    title: str = ""


class ToolCompleted(BaseModel):
    status: Literal["completed"] = "completed"
    input: dict[str, Any]
    output: str
    title: str = ""
    metadata: dict[str, Any] = Field(default_factory=dict)
    attachments: list[Attachment] = Field(default_factory=list)
    started: float = 0.0
    ended: float = Field(default_factory=time.time)
    pruned: str | None = None  # set when the output was pruned from the context: the marker the model sees


class ToolError(BaseModel):
    status: Literal["error"] = "error"
    input: dict[str, Any] = Field(default_factory=dict)
    raw_input: str = ""
    error: str
    started: float = 0.0
    ended: float = Field(default_factory=time.time)


ToolState = Annotated[ToolPending | ToolRunning | ToolCompleted | ToolError, Field(discriminator="status")]


class TextPart(BaseModel):
    type: Literal["text"] = "text"
    text: str


class ReasoningPart(BaseModel):
    """The model's reasoning. ``signature`` (Anthropic's thinking signature) and ``redacted`` (a
    redacted thinking block's data) go back to the model that wrote them, never to another."""

    type: Literal["reasoning"] = "reasoning"
    text: str
    signature: str | None = None
    redacted: str | None = None


class ToolPart(BaseModel):
    type: Literal["tool"] = "tool"
    call_id: str
    tool: str
    state: ToolState
    extra: dict[str, Any] | None = None  # provider metadata of the call, sent back to the same model only

    @property
    def finished(self) -> bool:
        return self.state.status in ("completed", "error")


Part = Annotated[TextPart | ReasoningPart | ToolPart, Field(discriminator="type")]


class Usage(BaseModel):
    """Tokens of one step (or a total). ``input_tokens`` is the whole prompt, cache reads and writes
    included, for every provider; the cache fields say how much of it was read from / written to cache."""

    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    cost: float | None = None

    def __add__(self, other: Usage) -> Usage:
        cost = None if self.cost is None and other.cost is None else (self.cost or 0.0) + (other.cost or 0.0)
        return Usage(
            input_tokens=self.input_tokens + other.input_tokens,
            output_tokens=self.output_tokens + other.output_tokens,
            cache_read_tokens=self.cache_read_tokens + other.cache_read_tokens,
            cache_write_tokens=self.cache_write_tokens + other.cache_write_tokens,
            reasoning_tokens=self.reasoning_tokens + other.reasoning_tokens,
            cost=cost,
        )


class Message(BaseModel):
    id: str = Field(default_factory=lambda: new_id("msg"))
    role: Literal["user", "assistant"]
    parts: list[Part] = Field(default_factory=list)
    created: float = Field(default_factory=time.time)
    model: str | None = None
    usage: Usage | None = None
    finish_reason: str | None = None
    synthetic: bool = False  # written by the harness, not typed by the user

    @property
    def text(self) -> str:
        return "".join(p.text for p in self.parts if isinstance(p, TextPart))

    def tool_parts(self) -> list[ToolPart]:
        return [p for p in self.parts if isinstance(p, ToolPart)]


def user_message(text: str, *, synthetic: bool = False) -> Message:
    return Message(role="user", parts=[TextPart(text=text)], synthetic=synthetic)
