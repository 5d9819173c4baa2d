"""Recorded model replies: a provider that records each step it streams, and one that plays them back.

A notebook keeps the recorded replies of every ``%%agent`` turn, so it re-executes offline and
deterministically: the :class:`ReplayProvider` answers each model step with the next recorded one,
whatever the request; the tools run for real.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable

from pydantic import BaseModel, Field

from nbagent.core.errors import ProviderError
from nbagent.core.messages import Usage
from nbagent.providers.base import (
    Chunk,
    ModelRequest,
    Provider,
    RawToolCall,
    ReasoningChunk,
    StepDone,
    TextChunk,
    ToolCallStarted,
)


class RecordedCall(BaseModel):
    id: str
    name: str
    arguments: str  # JSON text as the model sent it


class RecordedStep(BaseModel):
    """One model step as the model streamed it (the chunks, folded)."""

    text: str = ""
    reasoning: str = ""
    calls: list[RecordedCall] = Field(default_factory=list)
    usage: Usage = Field(default_factory=Usage)
    finish_reason: str = "stop"


class RecordingProvider:
    """Streams through ``inner`` and keeps a :class:`RecordedStep` for every step that completed."""

    def __init__(self, inner: Provider) -> None:
        self.inner = inner
        self.steps: list[RecordedStep] = []

    async def close(self) -> None:
        await self.inner.close()

    def take(self) -> list[RecordedStep]:
        """The steps recorded since the last call."""
        steps, self.steps = self.steps, []
        return steps

    async def stream(self, request: ModelRequest) -> AsyncIterator[Chunk]:
        text: list[str] = []
        reasoning: list[str] = []
        async for chunk in self.inner.stream(request):
            if isinstance(chunk, TextChunk):
                text.append(chunk.text)
            elif isinstance(chunk, ReasoningChunk):
                reasoning.append(chunk.text)
            elif isinstance(chunk, StepDone):
                self.steps.append(
                    RecordedStep(
                        text="".join(text),
                        reasoning="".join(reasoning),
                        calls=[
                            RecordedCall(id=c.call_id, name=c.name, arguments=c.arguments)
                            for c in chunk.tool_calls
                        ],
                        usage=chunk.usage.model_copy(),
                        finish_reason=chunk.finish_reason,
                    )
                )
            yield chunk


class ReplayProvider:
    """Answers each model step with the next recorded step; fails clearly when the recording ends."""

    def __init__(self, steps: Iterable[RecordedStep], chunk_chars: int = 64) -> None:
        self.steps = list(steps)
        self.index = 0
        self.chunk_chars = chunk_chars

    async def close(self) -> None:
        return None

    @property
    def remaining(self) -> int:
        return len(self.steps) - self.index

    async def stream(self, request: ModelRequest) -> AsyncIterator[Chunk]:
        if self.index >= len(self.steps):
            raise ProviderError(
                f"The recording has no model reply for step {self.index + 1} (it has {len(self.steps)}).",
                "The replayed turn went further than the recorded one. Run the cell without --replay to record it again.",
                kind="replay_exhausted",
            )
        step = self.steps[self.index]
        self.index += 1
        size = max(1, self.chunk_chars)
        for i in range(0, len(step.reasoning), size):
            yield ReasoningChunk(step.reasoning[i : i + size])
        for i in range(0, len(step.text), size):
            yield TextChunk(step.text[i : i + size])
        for i, call in enumerate(step.calls):
            yield ToolCallStarted(i, call.id, call.name)
        yield StepDone(
            [RawToolCall(c.id, c.name, c.arguments) for c in step.calls],
            step.usage.model_copy(),
            step.finish_reason,
        )
