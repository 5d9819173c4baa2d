"""OpenAI Chat Completions on the wire: the request body and the stream parser."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from nbagent.core.messages import Usage
from nbagent.providers.base import (
    Chunk,
    ModelRequest,
    RawToolCall,
    ReasoningChunk,
    TextChunk,
)
from nbagent.providers.native_errors import _stream_error
from nbagent.providers.normalize import CallAssembler, flatten_delta

if TYPE_CHECKING:
    from nbagent.providers.native import _Target

# -- request bodies ---------------------------------------------------------------------------


def _without_cache_control(item: Any) -> Any:
    """``item`` with ``cache_control`` keys removed from it and its content blocks (copied only if needed)."""
    if not isinstance(item, dict):
        return item
    content: list[Any] = item["content"] if isinstance(item.get("content"), list) else []
    function: dict[str, Any] = item["function"] if isinstance(item.get("function"), dict) else {}
    marked_parts = any(isinstance(p, dict) and "cache_control" in p for p in content)
    marked_function = "cache_control" in function
    if "cache_control" not in item and not marked_parts and not marked_function:
        return item
    out = {k: v for k, v in item.items() if k != "cache_control"}
    if marked_parts:
        out["content"] = [
            {k: v for k, v in p.items() if k != "cache_control"} if isinstance(p, dict) else p
            for p in content
        ]
    if marked_function:
        out["function"] = {k: v for k, v in function.items() if k != "cache_control"}
    return out


def openai_body(request: ModelRequest, target: _Target) -> dict[str, Any]:
    """The request body, stable parts first and the growing ``messages`` last, so that each request's
    bytes are a prefix of the next one's (what prompt caches and proxies key on)."""
    keep = target.route.cache_control
    body: dict[str, Any] = {"model": target.name, "stream": True, "stream_options": {"include_usage": True}}
    if request.max_tokens:
        # The official API deprecated max_tokens (reasoning models reject it); compatible servers want it.
        body["max_completion_tokens" if target.official_openai else "max_tokens"] = request.max_tokens
    if request.prompt_cache_key and target.provider == "openai":
        body["prompt_cache_key"] = request.prompt_cache_key
    body.update(request.extra)
    if request.tools:
        body["tools"] = request.tools if keep else [_without_cache_control(t) for t in request.tools]
    body["messages"] = request.messages if keep else [_without_cache_control(m) for m in request.messages]
    return body


class _OpenAIStream:
    def __init__(self, model: str, key_env: str) -> None:
        self.model, self.key_env = model, key_env
        self.calls = CallAssembler()
        self.usage: dict[str, Any] | None = None
        self.finish: str | None = None
        self.done = False
        self.produced = False  # any text or reasoning

    def feed(self, data: str) -> Iterator[Chunk]:
        if data == "[DONE]":
            self.done = True
            return
        yield from self.feed_event(json.loads(data))

    def feed_event(self, event: Any) -> Iterator[Chunk]:
        if not isinstance(event, dict):
            return
        if "error" in event:
            raise _stream_error(event, self.model, self.key_env)
        usage = event.get("usage") or (event.get("x_groq") or {}).get("usage")
        if usage:
            self.usage = usage
        choices = event.get("choices")
        if not choices:
            return
        choice = choices[0]
        if choice.get("finish_reason"):
            self.finish = choice["finish_reason"]
        delta = flatten_delta(choice.get("delta") or {})
        reasoning = delta.get("reasoning_content") or delta.get("reasoning")
        if reasoning and isinstance(reasoning, str):
            self.produced = True
            yield ReasoningChunk(reasoning)
        text = delta.get("content")
        if text and isinstance(text, str):
            self.produced = True
            yield TextChunk(text)
        for call in delta.get("tool_calls") or ():
            if isinstance(call, dict):
                started = self.calls.add_openai(call)
                if started is not None:
                    yield started

    def complete(self) -> bool:
        # Some compatible servers omit [DONE]; a finish_reason also means the answer is whole.
        return self.done or self.finish is not None

    def empty(self) -> bool:
        """Nothing came: no text, no reasoning, no call, no finish reason."""
        return not self.produced and not len(self.calls) and self.finish is None

    def result(self) -> tuple[list[RawToolCall], Usage, str]:
        return self.calls.calls(), _openai_usage(self.usage), self.finish or "stop"


def _count(mapping: Any, name: str) -> int:
    value = mapping.get(name) if isinstance(mapping, dict) else None
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0


def _openai_usage(raw: dict[str, Any] | None) -> Usage:
    if not raw:
        return Usage()
    details = raw.get("prompt_tokens_details")
    completion = raw.get("completion_tokens_details")
    return Usage(
        input_tokens=_count(raw, "prompt_tokens"),
        output_tokens=_count(raw, "completion_tokens"),
        cache_read_tokens=_count(raw, "cache_read_input_tokens")
        or _count(details, "cached_tokens")
        or _count(raw, "prompt_cache_hit_tokens"),
        cache_write_tokens=_count(raw, "cache_creation_input_tokens")
        or _count(details, "cache_write_tokens"),
        reasoning_tokens=_count(completion, "reasoning_tokens"),
    )
