"""Our typed history -> the OpenAI chat format litellm takes for every provider."""

from __future__ import annotations

import json
from typing import Any

from nbagent.core.messages import Message, TextPart, ToolCompleted, ToolError, ToolPart
from nbagent.providers.normalize import assistant_extras, call_extras

INTERRUPTED = "[interrupted: the tool call did not finish]"


def tool_result_text(part: ToolPart) -> str:
    state = part.state
    if isinstance(state, ToolCompleted):
        return state.pruned or state.output
    if isinstance(state, ToolError):
        return f"Error: {state.error}"
    return INTERRUPTED


def tool_call_arguments(part: ToolPart) -> str:
    state = part.state
    if isinstance(state, ToolError) and not state.input and state.raw_input:
        return state.raw_input if _is_json_object(state.raw_input) else "{}"
    data = getattr(state, "input", None)
    return json.dumps(data if data is not None else {})


def _is_json_object(raw: str) -> bool:
    try:
        return isinstance(json.loads(raw), dict)
    except ValueError:
        return False


def to_openai(
    messages: list[Message], *, vision: bool = True, model: str | None = None
) -> list[dict[str, Any]]:
    """Translate the history. Every tool call gets a result, so the history is valid everywhere.

    ``model``: the model the request goes to. Reasoning, signatures and call metadata go back to the
    model that produced them (see :func:`nbagent.providers.normalize.assistant_extras`); without a
    model, none are sent."""
    out: list[dict[str, Any]] = []
    for message in messages:
        if message.role == "user":
            out.append({"role": "user", "content": message.text})
            continue
        text = "".join(p.text for p in message.parts if isinstance(p, TextPart))
        calls = message.tool_parts()
        entry: dict[str, Any] = {"role": "assistant", "content": text or None}
        entry.update(assistant_extras(message, model, bool(calls)))
        if calls:
            same = model is not None and message.model == model
            entry["tool_calls"] = [
                {
                    "id": p.call_id,
                    "type": "function",
                    "function": {"name": p.tool, "arguments": tool_call_arguments(p)},
                    **call_extras(p.extra, same),
                }
                for p in calls
            ]
        if not text and not calls:
            entry["content"] = "(no output)"
        out.append(entry)
        images: list[dict[str, Any]] = []
        for p in calls:
            out.append(
                {"role": "tool", "tool_call_id": p.call_id, "content": tool_result_text(p) or "(no output)"}
            )
            if vision and isinstance(p.state, ToolCompleted) and not p.state.pruned:
                images += [
                    {"type": "image_url", "image_url": {"url": f"data:{a.media_type};base64,{a.data}"}}
                    for a in p.state.attachments
                ]
        if images:
            out.append(
                {
                    "role": "user",
                    "content": [{"type": "text", "text": "Images returned by the tools above:"}, *images],
                }
            )
    return out
