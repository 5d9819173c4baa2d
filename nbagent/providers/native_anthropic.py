"""Anthropic Messages on the wire: OpenAI-shaped history converted to blocks, and the stream parser."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from nbagent.core.messages import Usage
from nbagent.providers import models
from nbagent.providers.base import (
    Chunk,
    ModelRequest,
    RawToolCall,
    ReasoningChunk,
    TextChunk,
    ToolCallStarted,
)
from nbagent.providers.native_errors import _stream_error
from nbagent.providers.native_openai import _count

if TYPE_CHECKING:
    from nbagent.providers.native import _Target

DEFAULT_MAX_TOKENS = 8192


def _image_block(part: dict[str, Any]) -> dict[str, Any]:
    image = part.get("image_url")
    url = image.get("url", "") if isinstance(image, dict) else str(image or "")
    if url.startswith("data:"):
        header, _, data = url.partition(",")
        media_type = header[5:].split(";")[0] or "image/png"
        return {"type": "image", "source": {"type": "base64", "media_type": media_type, "data": data}}
    return {"type": "image", "source": {"type": "url", "url": url}}


def _blocks(content: Any) -> list[dict[str, Any]]:
    """OpenAI message content -> Anthropic content blocks (``cache_control`` carried over)."""
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    out: list[dict[str, Any]] = []
    for part in content if isinstance(content, list) else []:
        if isinstance(part, str):
            block: dict[str, Any] | None = {"type": "text", "text": part} if part else None
        elif not isinstance(part, dict):
            block = None
        elif part.get("type") == "text":
            block = {"type": "text", "text": part.get("text") or ""} if part.get("text") else None
        elif part.get("type") == "image_url":
            block = _image_block(part)
        else:
            block = {k: v for k, v in part.items() if k != "cache_control"}  # already Anthropic-shaped
        if block is None:
            continue
        if isinstance(part, dict) and "cache_control" in part:
            block["cache_control"] = part["cache_control"]
        out.append(block)
    return out


def _tool_input(arguments: Any) -> dict[str, Any]:
    if isinstance(arguments, dict):
        return arguments
    try:
        value = json.loads(arguments) if isinstance(arguments, str) and arguments else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _tool_result(message: dict[str, Any]) -> dict[str, Any]:
    content = message.get("content")
    block: dict[str, Any] = {"type": "tool_result", "tool_use_id": str(message.get("tool_call_id") or "")}
    mark = message.get("cache_control")
    if isinstance(content, list):
        block["content"] = _blocks(content) or "(no output)"
    else:
        block["content"] = str(content) if content else "(no output)"
    if mark is not None:
        block["cache_control"] = mark
    return block


NO_TOOLS: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "no_tools",
        "description": "No tools are available for this request; do not call this.",
        "parameters": {"type": "object", "properties": {}},
    },
}


def anthropic_payload(
    messages: list[dict[str, Any]], tools: list[dict[str, Any]]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    """OpenAI chat messages and tools -> Anthropic (system blocks, messages, tools).

    Consecutive messages of one role merge (tool results and the user text after them become
    one user turn, results first, as the API requires).
    """
    system: list[dict[str, Any]] = []
    out: list[dict[str, Any]] = []

    def push(role: str, blocks: list[dict[str, Any]], mark: Any = None) -> None:
        if not blocks:
            return
        if mark is not None and "cache_control" not in blocks[-1]:
            blocks[-1]["cache_control"] = mark
        if out and out[-1]["role"] == role:
            out[-1]["content"].extend(blocks)
        else:
            out.append({"role": role, "content": blocks})

    for message in messages:
        role = message.get("role")
        mark = message.get("cache_control")
        if role in ("system", "developer"):
            blocks = _blocks(message.get("content"))
            if mark is not None and blocks and "cache_control" not in blocks[-1]:
                blocks[-1]["cache_control"] = mark
            system.extend(blocks)
        elif role == "tool":
            push("user", [_tool_result(message)])
        elif role == "assistant":
            blocks = [dict(b) for b in message.get("thinking_blocks") or () if isinstance(b, dict)]
            blocks += _blocks(message.get("content"))
            for call in message.get("tool_calls") or []:
                function = call.get("function") or {}
                blocks.append(
                    {
                        "type": "tool_use",
                        "id": str(call.get("id") or ""),
                        "name": str(function.get("name") or ""),
                        "input": _tool_input(function.get("arguments")),
                    }
                )
            push("assistant", blocks, mark)
        else:
            push("user", _blocks(message.get("content")), mark)

    anthropic_tools: list[dict[str, Any]] = []
    if not tools and any(b["type"] in ("tool_use", "tool_result") for m in out for b in m["content"]):
        tools = [NO_TOOLS]  # the API refuses tool blocks in a request that defines no tools
    for tool in tools:
        function = tool.get("function", tool)
        entry: dict[str, Any] = {
            "name": function.get("name", ""),
            "input_schema": function.get("parameters") or {"type": "object", "properties": {}},
        }
        if function.get("description"):
            entry["description"] = function["description"]
        mark = tool.get("cache_control") or function.get("cache_control")
        if mark is not None:
            entry["cache_control"] = mark
        anthropic_tools.append(entry)
    return system, out, anthropic_tools


def anthropic_body(request: ModelRequest, target: _Target) -> dict[str, Any]:
    """Stable parts first (tools, system), the growing ``messages`` last: see ``openai_body``."""
    system, messages, tools = anthropic_payload(request.messages, request.tools)
    info = models.model_info(request.model)
    max_tokens = request.max_tokens or (info.max_output_tokens if info else None) or DEFAULT_MAX_TOKENS
    body: dict[str, Any] = {"model": target.name, "max_tokens": max_tokens, "stream": True}
    body.update(request.extra)
    if tools:
        body["tools"] = tools
    if system:
        body["system"] = system
    body["messages"] = messages
    return body


_STOP_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "tool_use": "tool_calls",
    "max_tokens": "length",
    "refusal": "content_filter",
    "compaction": "length",
}


class _AnthropicStream:
    def __init__(self, model: str, key_env: str) -> None:
        self.model, self.key_env = model, key_env
        self.calls: dict[
            int, tuple[str, str, list[str], Any]
        ] = {}  # block index -> (id, name, [json], input)
        self.usage: dict[str, Any] = {}
        self.stop_reason: str | None = None
        self.done = False
        self.produced = False  # any text or reasoning

    def feed(self, data: str) -> Iterator[Chunk]:
        yield from self.feed_event(json.loads(data))

    def feed_event(self, event: Any) -> Iterator[Chunk]:
        if not isinstance(event, dict):
            return
        kind = event.get("type")
        if kind == "content_block_delta":
            delta = event.get("delta") or {}
            dtype = delta.get("type")
            if dtype == "text_delta" and delta.get("text"):
                self.produced = True
                yield TextChunk(delta["text"])
            elif dtype == "thinking_delta" and delta.get("thinking"):
                self.produced = True
                yield ReasoningChunk(delta["thinking"])
            elif dtype == "signature_delta" and delta.get("signature"):
                yield ReasoningChunk("", signature=delta["signature"])
            elif dtype == "input_json_delta":
                call = self.calls.get(event.get("index", -1))
                if call is not None and delta.get("partial_json"):
                    call[2].append(delta["partial_json"])
        elif kind == "content_block_start":
            block = event.get("content_block") or {}
            btype = block.get("type")
            if btype == "tool_use":
                ordinal = len(self.calls)
                call = (
                    str(block.get("id") or f"toolu_{ordinal}"),
                    str(block.get("name") or ""),
                    [],
                    block.get("input"),
                )
                self.calls[event.get("index", ordinal)] = call
                yield ToolCallStarted(ordinal, call[0], call[1])
            elif btype == "text" and block.get("text"):
                self.produced = True
                yield TextChunk(block["text"])
            elif btype == "thinking" and (block.get("thinking") or block.get("signature")):
                self.produced = True
                yield ReasoningChunk(block.get("thinking") or "", signature=block.get("signature") or None)
            elif btype == "redacted_thinking" and block.get("data"):
                self.produced = True
                yield ReasoningChunk("", redacted=str(block["data"]))
        elif kind == "message_start":
            usage = (event.get("message") or {}).get("usage")
            if isinstance(usage, dict):
                self.usage.update({k: v for k, v in usage.items() if v is not None})
        elif kind == "message_delta":
            stop = (event.get("delta") or {}).get("stop_reason")
            if stop:
                self.stop_reason = stop
            usage = event.get("usage")
            if isinstance(usage, dict):
                self.usage.update({k: v for k, v in usage.items() if v is not None})
        elif kind == "message_stop":
            self.done = True
        elif kind == "error":
            raise _stream_error(event, self.model, self.key_env)

    def complete(self) -> bool:
        return self.done

    def empty(self) -> bool:
        """Nothing came: no text, no reasoning, no call, no stop reason."""
        return not self.produced and not self.calls and self.stop_reason is None

    def result(self) -> tuple[list[RawToolCall], Usage, str]:
        calls = []
        for _, (call_id, name, pieces, start_input) in sorted(self.calls.items()):
            arguments = "".join(pieces)
            if not pieces and isinstance(start_input, dict) and start_input:
                arguments = json.dumps(start_input)
            calls.append(RawToolCall(call_id, name, arguments))
        read = _count(self.usage, "cache_read_input_tokens")
        write = _count(self.usage, "cache_creation_input_tokens")
        usage = Usage(
            input_tokens=_count(self.usage, "input_tokens") + read + write,  # litellm's prompt_tokens
            output_tokens=_count(self.usage, "output_tokens"),
            cache_read_tokens=read,
            cache_write_tokens=write,
        )
        stop = self.stop_reason or "end_turn"
        return calls, usage, _STOP_REASONS.get(stop, "stop")


def message_events(payload: dict[str, Any]) -> list[dict[str, Any]]:
    """A whole Anthropic ``message`` (a server that ignored ``stream: true``) as the stream events it
    stands for, so the stream parser reads it like any reply."""
    usage = payload.get("usage") or {}
    events: list[dict[str, Any]] = [{"type": "message_start", "message": {**payload, "content": []}}]
    for index, block in enumerate(payload.get("content") or []):
        if not isinstance(block, dict):
            continue
        kind = block.get("type")
        deltas: list[dict[str, Any]] = []
        if kind == "tool_use":
            start = {**block, "input": {}}
            deltas.append({"type": "input_json_delta", "partial_json": json.dumps(block.get("input") or {})})
        elif kind == "text":
            start = {"type": "text", "text": ""}
            deltas.append({"type": "text_delta", "text": block.get("text") or ""})
        elif kind == "thinking":
            start = {"type": "thinking", "thinking": ""}
            deltas.append({"type": "thinking_delta", "thinking": block.get("thinking") or ""})
            if block.get("signature"):
                deltas.append({"type": "signature_delta", "signature": block["signature"]})
        else:
            start = block
        events.append({"type": "content_block_start", "index": index, "content_block": start})
        events += [{"type": "content_block_delta", "index": index, "delta": d} for d in deltas]
        events.append({"type": "content_block_stop", "index": index})
    end: dict[str, Any] = {
        "stop_reason": payload.get("stop_reason"),
        "stop_sequence": payload.get("stop_sequence"),
    }
    events.append({"type": "message_delta", "delta": end, "usage": usage})
    events.append({"type": "message_stop"})
    return events
