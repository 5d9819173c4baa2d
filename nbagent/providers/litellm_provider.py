"""The litellm adapter: any litellm model string, streamed, with tool calls, usage and cost.

litellm is imported on first use only (it takes seconds), with its cost map read locally and
its banners silenced.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import AsyncIterator
from functools import cache
from types import ModuleType
from typing import Any

from nbagent.core.errors import ProviderError
from nbagent.core.messages import Usage
from nbagent.providers.base import (
    Chunk,
    ModelRequest,
    RawToolCall,
    ReasoningChunk,
    StepDone,
    TextChunk,
    ToolCallStarted,
)
from nbagent.providers.errors import classify

LOCAL_SERVER_KEY = "sk-no-key-required"


@cache
def litellm_module() -> ModuleType:
    """Import litellm quietly. Safe to call from any thread; the import happens once."""
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    os.environ.setdefault("LITELLM_LOG", "ERROR")
    import litellm

    litellm.suppress_debug_info = True
    litellm.set_verbose = False  # type: ignore[attr-defined]
    litellm.drop_params = True
    litellm.telemetry = False
    for name in ("LiteLLM", "LiteLLM Router", "LiteLLM Proxy", "litellm"):
        logging.getLogger(name).setLevel(logging.ERROR)
    return litellm


async def close_clients() -> None:
    if "litellm" not in sys.modules:
        return
    from litellm.llms.custom_httpx.async_client_cleanup import close_litellm_async_clients

    with contextlib.suppress(Exception):
        await close_litellm_async_clients()  # type: ignore[no-untyped-call]


def missing_keys(model: str, api_key: str | None, api_base: str | None) -> list[str]:
    if api_key:
        return []
    try:
        result = litellm_module().validate_environment(model=model, api_base=api_base)
    except Exception:
        return []
    keys = result.get("missing_keys") or []
    return [str(k) for k in keys if not os.environ.get(str(k))]


def step_cost(model: str, usage: Usage) -> float | None:
    """Cost of a step in USD where litellm knows the model's prices; None otherwise."""
    litellm = litellm_module()
    try:
        prompt_cost, completion_cost = litellm.cost_per_token(
            model=model,
            prompt_tokens=usage.input_tokens,
            completion_tokens=usage.output_tokens,
            cache_read_input_tokens=usage.cache_read_tokens,
            cache_creation_input_tokens=usage.cache_write_tokens,
        )
    except Exception:
        return None
    return float(prompt_cost) + float(completion_cost)


def _usage_from(raw: Any) -> Usage:
    if raw is None:
        return Usage()

    def get(obj: Any, name: str) -> int:
        value = obj.get(name) if isinstance(obj, dict) else getattr(obj, name, None)
        return int(value) if isinstance(value, int | float) else 0

    details = (
        raw.get("prompt_tokens_details")
        if isinstance(raw, dict)
        else getattr(raw, "prompt_tokens_details", None)
    )
    completion_details = (
        raw.get("completion_tokens_details")
        if isinstance(raw, dict)
        else getattr(raw, "completion_tokens_details", None)
    )
    cache_read = get(raw, "cache_read_input_tokens") or (get(details, "cached_tokens") if details else 0)
    cache_write = get(raw, "cache_creation_input_tokens")
    return Usage(
        input_tokens=get(raw, "prompt_tokens"),
        output_tokens=get(raw, "completion_tokens"),
        cache_read_tokens=cache_read,
        cache_write_tokens=cache_write,
        reasoning_tokens=get(completion_details, "reasoning_tokens") if completion_details else 0,
    )


class LiteLLMProvider:
    """Streams one step through ``litellm.acompletion``; failures come out classified."""

    def __init__(self, timeout: float = 600.0) -> None:
        self.timeout = timeout

    async def close(self) -> None:
        """Close the HTTP clients litellm cached for this event loop."""
        await close_clients()

    async def stream(self, request: ModelRequest) -> AsyncIterator[Chunk]:
        litellm = litellm_module()
        kwargs: dict[str, Any] = {
            "model": request.model,
            "messages": request.messages,
            "stream": True,
            "stream_options": {"include_usage": True},
            "num_retries": 0,
            "timeout": self.timeout,
            **request.extra,
        }
        if request.tools:
            kwargs["tools"] = request.tools
        if request.max_tokens:
            kwargs["max_tokens"] = request.max_tokens
        if request.api_base:
            kwargs["api_base"] = request.api_base
        if request.api_key:
            kwargs["api_key"] = request.api_key
        else:
            missing = missing_keys(request.model, None, request.api_base)
            if missing and request.api_base:
                kwargs["api_key"] = LOCAL_SERVER_KEY  # local servers need none, but the client wants one
            elif missing:
                raise ProviderError(
                    f"No API key for {request.model}.",
                    f"Set {' and '.join(missing)} in the environment (or pass --api-key).",
                    kind="auth",
                )
        if request.prompt_cache_key:
            kwargs["prompt_cache_key"] = request.prompt_cache_key

        calls: dict[int, dict[str, str]] = {}
        usage = Usage()
        finish = "stop"
        response: Any = None
        try:
            response = await litellm.acompletion(**kwargs)
            async for chunk in response:
                if getattr(chunk, "usage", None):
                    usage = _usage_from(chunk.usage)
                if not chunk.choices:
                    continue
                choice = chunk.choices[0]
                if choice.finish_reason:
                    finish = choice.finish_reason
                delta = choice.delta
                reasoning = getattr(delta, "reasoning_content", None)
                if reasoning:
                    yield ReasoningChunk(reasoning)
                if delta.content:
                    yield TextChunk(delta.content)
                for tc in getattr(delta, "tool_calls", None) or []:
                    index = tc.index if tc.index is not None else len(calls)
                    entry = calls.get(index)
                    if entry is None:
                        entry = calls[index] = {"id": tc.id or f"call_{index}", "name": "", "arguments": ""}
                        if tc.function and tc.function.name:
                            entry["name"] = tc.function.name
                        yield ToolCallStarted(index, entry["id"], entry["name"])
                    elif tc.function and tc.function.name and not entry["name"]:
                        entry["name"] = tc.function.name
                    if tc.function and tc.function.arguments:
                        entry["arguments"] += tc.function.arguments
        except ProviderError:
            raise
        except Exception as exc:  # every provider/transport failure goes through the table
            raise classify(
                exc,
                model=request.model,
                missing_keys=missing_keys(request.model, request.api_key, request.api_base),
            ) from exc
        finally:
            close = getattr(response, "aclose", None)
            if close is not None:
                with contextlib.suppress(Exception):
                    await close()
        usage.cost = step_cost(request.model, usage)
        raw_calls = [RawToolCall(c["id"], c["name"], c["arguments"]) for _, c in sorted(calls.items())]
        yield StepDone(raw_calls, usage, finish)
