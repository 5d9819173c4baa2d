"""The seam between the loop and a model: a request in, a stream of chunks out."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from nbagent.core.messages import Usage


@dataclass
class ModelRequest:
    model: str
    messages: list[dict[str, Any]]  # OpenAI chat format, system message first
    tools: list[dict[str, Any]]
    max_tokens: int | None = None
    api_base: str | None = None
    api_key: str | None = None
    prompt_cache_key: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class TextChunk:
    text: str


@dataclass
class ReasoningChunk:
    """Reasoning text; ``signature`` closes the current reasoning block (Anthropic's thinking signature),
    ``redacted`` is a whole redacted block (its opaque data). Both go back to the same model only."""

    text: str
    signature: str | None = None
    redacted: str | None = None


@dataclass
class ToolCallStarted:
    index: int
    call_id: str
    name: str


@dataclass
class RawToolCall:
    call_id: str
    name: str
    arguments: str  # JSON text as the model sent it; may not parse
    extra: dict[str, Any] | None = None  # provider metadata of the call (Gemini's thought signature)


@dataclass
class StepDone:
    tool_calls: list[RawToolCall]
    usage: Usage
    finish_reason: str


Chunk = TextChunk | ReasoningChunk | ToolCallStarted | StepDone


class Provider(Protocol):
    def stream(self, request: ModelRequest) -> AsyncIterator[Chunk]:
        """Stream one model step. Raises ``ProviderError`` (classified) on failure."""
        ...

    async def close(self) -> None:
        """Release connections (the session calls it when it ends)."""
        ...
