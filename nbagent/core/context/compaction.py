"""Compaction: the older part of the history becomes a summary with fixed sections.

A later compaction updates the previous summary with the messages since, rather than summarising
a summary of a summary. The messages themselves stay in the store; only the live context shrinks.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

from nbagent.core.messages import Message, ReasoningPart, TextPart, ToolPart, Usage
from nbagent.providers.base import ModelRequest, Provider, StepDone, TextChunk
from nbagent.providers.wire import tool_result_text

PROMPTS = Path(__file__).parent.parent / "prompts"
USER_TEXT_LIMIT = 6_000
ASSISTANT_TEXT_LIMIT = 3_000
TOOL_INPUT_LIMIT = 400
TOOL_OUTPUT_LIMIT = 800

SUMMARY_INTRO = (
    "This session continues from an earlier conversation that was compacted. Summary of everything before"
    " the messages that follow:\n\n"
)


@cache
def compaction_prompt() -> str:
    return (PROMPTS / "compaction.md").read_text(encoding="utf-8").strip()


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit // 2] + "\n[...]\n" + text[-limit // 2 :]


def render_transcript(messages: list[Message], budget_chars: int) -> str:
    """A compact text transcript. User prompts always stay (they carry the goal and constraints);
    other entries are dropped oldest first when the transcript exceeds ``budget_chars``."""
    entries: list[tuple[bool, str]] = []
    for message in messages:
        if message.role == "user":
            entries.append((True, f"USER: {_cut(message.text, USER_TEXT_LIMIT)}"))
            continue
        for part in message.parts:
            if isinstance(part, TextPart) and part.text.strip():
                entries.append((False, f"ASSISTANT: {_cut(part.text, ASSISTANT_TEXT_LIMIT)}"))
            elif isinstance(part, ToolPart):
                data = getattr(part.state, "input", {}) or {}
                call = _cut(json.dumps(data, ensure_ascii=False), TOOL_INPUT_LIMIT)
                result = _cut(tool_result_text(part), TOOL_OUTPUT_LIMIT)
                entries.append(
                    (False, f"TOOL CALL {part.tool} {call}\nRESULT ({part.state.status}): {result}")
                )
            elif isinstance(part, ReasoningPart):
                continue
    total = sum(len(text) + 2 for _, text in entries)
    kept: list[tuple[bool, str]] = []
    dropped = 0
    for keep_always, text in entries:
        if total > budget_chars and not keep_always:
            total -= len(text) + 2
            dropped += 1
            continue
        kept.append((keep_always, text))
    body = "\n\n".join(text for _, text in kept)
    return (f"[{dropped} older entries omitted for length]\n\n" if dropped else "") + body


def summary_message_text(summary: str) -> str:
    return SUMMARY_INTRO + summary


async def summarize(
    provider: Provider,
    *,
    model: str,
    api_base: str | None,
    api_key: str | None,
    messages: list[Message],
    previous: str | None,
    focus: str | None,
    budget_chars: int,
    max_tokens: int,
) -> tuple[str, Usage]:
    """Ask the model for the summary; returns it with the step's usage."""
    parts = []
    if previous:
        parts.append(f"<previous-summary>\n{previous}\n</previous-summary>")
    parts.append(f"<conversation>\n{render_transcript(messages, budget_chars)}\n</conversation>")
    if focus:
        parts.append(f"Focus the summary on: {focus}")
    parts.append("Write the updated summary now." if previous else "Write the summary now.")
    request = ModelRequest(
        model=model,
        messages=[
            {"role": "system", "content": compaction_prompt()},
            {"role": "user", "content": "\n\n".join(parts)},
        ],
        tools=[],
        api_base=api_base,
        api_key=api_key,
        max_tokens=max_tokens,
    )
    text: list[str] = []
    usage = Usage()
    async for chunk in provider.stream(request):
        if isinstance(chunk, TextChunk):
            text.append(chunk.text)
        elif isinstance(chunk, StepDone):
            usage = chunk.usage
    return "".join(text).strip(), usage
