"""The wire formats the scripted model speaks: OpenAI Chat Completions and Anthropic Messages bodies and
SSE streams, built from a :class:`Reply` and a (prompt, cache read, cache write) token count."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from nbagent.providers.scripted.script import Reply

CHARS_PER_TOKEN = 4
ARG_CHUNK = 24  # characters of tool-call arguments per streamed chunk


def tokens(chars: int) -> int:
    return max(0, chars // CHARS_PER_TOKEN)


# -- OpenAI Chat Completions --------------------------------------------------------------------


def _openai_usage(usage: tuple[int, int, int], reply: Reply) -> dict[str, Any]:
    prompt, read, _ = usage
    completion = (
        tokens(
            len(reply.text) + len(reply.reasoning) + sum(len(c.arguments_json()) for c in reply.tool_calls)
        )
        + 1
    )
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": read},
    }


def _call_id(i: int, spec_id: str) -> str:
    return spec_id or f"call_{uuid.uuid4().hex[:12]}_{i}"


def openai_message(reply: Reply, model: str, usage: tuple[int, int, int]) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": reply.text or None}
    if reply.reasoning:
        message["reasoning_content"] = reply.reasoning
    if reply.tool_calls:
        message["tool_calls"] = [
            {
                "id": _call_id(i, c.id),
                "type": "function",
                "function": {"name": c.name, "arguments": c.arguments_json()},
            }
            for i, c in enumerate(reply.tool_calls)
        ]
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex[:12]}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {"index": 0, "message": message, "finish_reason": "tool_calls" if reply.tool_calls else "stop"}
        ],
        "usage": _openai_usage(usage, reply),
    }


def _split(text: str, size: int) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]


def _words(text: str) -> list[str]:
    out, cur = [], ""
    for ch in text:
        cur += ch
        if ch in " \n" and len(cur) >= 8:
            out.append(cur)
            cur = ""
    if cur:
        out.append(cur)
    return out


def openai_stream(reply: Reply, model: str, usage: tuple[int, int, int], include_usage: bool) -> list[str]:
    cid = f"chatcmpl-{uuid.uuid4().hex[:12]}"
    created = int(time.time())

    def chunk(
        delta: dict[str, Any], finish: str | None = None, usage_block: dict[str, Any] | None = None
    ) -> str:
        payload: dict[str, Any] = {
            "id": cid,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}] if usage_block is None else [],
        }
        if usage_block is not None:
            payload["usage"] = usage_block
        return f"data: {json.dumps(payload)}\n\n"

    events = [chunk({"role": "assistant", "content": ""})]
    events += (
        [chunk({"reasoning_content": piece}) for piece in _words(reply.reasoning)] if reply.reasoning else []
    )
    events += [chunk({"content": piece}) for piece in _words(reply.text)] if reply.text else []
    for i, call in enumerate(reply.tool_calls):
        pieces = _split(call.arguments_json(), ARG_CHUNK)
        head = {
            "index": i,
            "id": _call_id(i, call.id),
            "type": "function",
            "function": {"name": call.name, "arguments": ""},
        }
        events.append(chunk({"tool_calls": [head]}))
        events += [chunk({"tool_calls": [{"index": i, "function": {"arguments": p}}]}) for p in pieces]
    events.append(chunk({}, "tool_calls" if reply.tool_calls else "stop"))
    if include_usage:
        events.append(chunk({}, usage_block=_openai_usage(usage, reply)))
    events.append("data: [DONE]\n\n")
    return events


# -- Anthropic Messages -------------------------------------------------------------------------


def _anthropic_usage(usage: tuple[int, int, int], reply: Reply) -> dict[str, Any]:
    prompt, read, write = usage
    out = (
        tokens(
            len(reply.text) + len(reply.reasoning) + sum(len(c.arguments_json()) for c in reply.tool_calls)
        )
        + 1
    )
    return {
        "input_tokens": prompt,
        "output_tokens": out,
        "cache_read_input_tokens": read,
        "cache_creation_input_tokens": write,
    }


def _anthropic_blocks(reply: Reply) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    if reply.reasoning:
        blocks.append({"type": "thinking", "thinking": reply.reasoning, "signature": "scripted"})
    if reply.text:
        blocks.append({"type": "text", "text": reply.text})
    for i, call in enumerate(reply.tool_calls):
        args = call.arguments if isinstance(call.arguments, dict) else {}
        blocks.append(
            {
                "type": "tool_use",
                "id": call.id or f"toolu_{uuid.uuid4().hex[:12]}_{i}",
                "name": call.name,
                "input": args,
            }
        )
    return blocks


def anthropic_message(reply: Reply, model: str, usage: tuple[int, int, int]) -> dict[str, Any]:
    return {
        "id": f"msg_{uuid.uuid4().hex[:12]}",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": _anthropic_blocks(reply),
        "stop_reason": "tool_use" if reply.tool_calls else "end_turn",
        "stop_sequence": None,
        "usage": _anthropic_usage(usage, reply),
    }


def anthropic_stream(reply: Reply, model: str, usage: tuple[int, int, int]) -> list[str]:
    def ev(name: str, data: dict[str, Any]) -> str:
        return f"event: {name}\ndata: {json.dumps({'type': name, **data})}\n\n"

    full_usage = _anthropic_usage(usage, reply)
    start_usage = {**full_usage, "output_tokens": 1}
    events = [
        ev(
            "message_start",
            {
                "message": {
                    "id": f"msg_{uuid.uuid4().hex[:12]}",
                    "type": "message",
                    "role": "assistant",
                    "model": model,
                    "content": [],
                    "stop_reason": None,
                    "stop_sequence": None,
                    "usage": start_usage,
                }
            },
        )
    ]
    index = 0
    if reply.reasoning:
        events.append(
            ev("content_block_start", {"index": index, "content_block": {"type": "thinking", "thinking": ""}})
        )
        events += [
            ev("content_block_delta", {"index": index, "delta": {"type": "thinking_delta", "thinking": p}})
            for p in _words(reply.reasoning)
        ]
        events.append(
            ev(
                "content_block_delta",
                {"index": index, "delta": {"type": "signature_delta", "signature": "scripted"}},
            )
        )
        events.append(ev("content_block_stop", {"index": index}))
        index += 1
    if reply.text:
        events.append(
            ev("content_block_start", {"index": index, "content_block": {"type": "text", "text": ""}})
        )
        events += [
            ev("content_block_delta", {"index": index, "delta": {"type": "text_delta", "text": p}})
            for p in _words(reply.text)
        ]
        events.append(ev("content_block_stop", {"index": index}))
        index += 1
    for i, call in enumerate(reply.tool_calls):
        block = {
            "type": "tool_use",
            "id": call.id or f"toolu_{uuid.uuid4().hex[:12]}_{i}",
            "name": call.name,
            "input": {},
        }
        events.append(ev("content_block_start", {"index": index, "content_block": block}))
        events += [
            ev(
                "content_block_delta",
                {"index": index, "delta": {"type": "input_json_delta", "partial_json": p}},
            )
            for p in _split(call.arguments_json(), ARG_CHUNK)
        ]
        events.append(ev("content_block_stop", {"index": index}))
        index += 1
    events.append(
        ev(
            "message_delta",
            {
                "delta": {
                    "stop_reason": "tool_use" if reply.tool_calls else "end_turn",
                    "stop_sequence": None,
                },
                "usage": {"output_tokens": full_usage["output_tokens"]},
            },
        )
    )
    events.append(ev("message_stop", {}))
    return events
