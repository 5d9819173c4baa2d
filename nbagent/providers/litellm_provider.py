"""The litellm adapter: any litellm model string, streamed, with tool calls, usage and cost.

litellm is imported on first use only (it takes seconds), with its cost map read locally and
its banners silenced.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
from collections.abc import AsyncIterator
from functools import cache
from types import ModuleType
from typing import TYPE_CHECKING, Any

from nbagent.core.errors import ProviderError
from nbagent.core.messages import Usage
from nbagent.providers.base import (
    Chunk,
    ModelRequest,
    ReasoningChunk,
    StepDone,
    TextChunk,
)
from nbagent.providers.errors import classify
from nbagent.providers.normalize import CallAssembler, content_pieces, empty_step_error, prepare

if TYPE_CHECKING:
    import httpx

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


# litellm providers whose chat requests go through litellm's own HTTP handler (OpenAI-style streams):
# they take our client, so their responses pass through the normalizing transport.
HANDLER_PROVIDERS = frozenset(
    {"anthropic", "deepseek", "mistral", "hosted_vllm", "lm_studio", "openrouter", "xai", "groq", "moonshot"}
)
OPENAI_BASE_ENV = ("OPENAI_BASE_URL", "OPENAI_API_BASE")


class LiteLLMProvider:
    """Streams one step through ``litellm.acompletion``; failures come out classified.

    OpenAI-style providers get an HTTP client of ours whose transport normalizes what litellm cannot
    read (:mod:`nbagent.providers.litellm_transport`); chunks are folded with
    :mod:`nbagent.providers.normalize`, as the native client does."""

    def __init__(self, timeout: float = 600.0) -> None:
        self.timeout = timeout
        self._http: httpx.AsyncClient | None = None
        self._handler: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def close(self) -> None:
        """Close our HTTP client and the clients litellm cached for this event loop."""
        http, loop = self._http, self._loop
        self._http = self._handler = self._loop = None
        if http is not None and loop is asyncio.get_running_loop():
            with contextlib.suppress(Exception):
                await http.aclose()
        await close_clients()

    def _new_http(self) -> httpx.AsyncClient:
        import httpx

        from nbagent.providers.litellm_transport import NormalizingTransport

        transport = NormalizingTransport(httpx.AsyncHTTPTransport(retries=0))
        return httpx.AsyncClient(transport=transport, timeout=httpx.Timeout(self.timeout, connect=15.0))

    async def _client(self, provider: str, request: ModelRequest, api_key: str | None) -> Any:
        """The client litellm should send ``request`` with, or None (litellm's own)."""
        if provider != "openai" and provider not in HANDLER_PROVIDERS:
            return None
        loop = asyncio.get_running_loop()
        if self._http is None or self._loop is not loop or self._http.is_closed:
            # The certificate store loads in a thread: the loop (a notebook kernel's) stays free.
            self._http = await asyncio.to_thread(self._new_http)
            self._handler, self._loop = None, loop
        if provider == "openai":
            from openai import AsyncOpenAI

            base = request.api_base or next(
                (os.environ[n] for n in OPENAI_BASE_ENV if os.environ.get(n)), "https://api.openai.com/v1"
            )
            key = api_key or os.environ.get("OPENAI_API_KEY") or LOCAL_SERVER_KEY
            return AsyncOpenAI(api_key=key, base_url=base, http_client=self._http, max_retries=0)
        if self._handler is None:
            from litellm.llms.custom_httpx.http_handler import AsyncHTTPHandler

            handler = AsyncHTTPHandler(timeout=self.timeout)
            handler._client = self._http
            handler._owns_client = False
            self._handler = handler
        return self._handler

    async def stream(self, request: ModelRequest) -> AsyncIterator[Chunk]:
        litellm = litellm_module()
        request = prepare(
            request, official_openai=request.model.startswith("openai/") and not request.api_base
        )
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

        calls = CallAssembler()
        usage = Usage()
        finish: str | None = None
        produced = False
        response: Any = None
        try:
            try:
                provider = litellm.get_llm_provider(request.model)[1]
            except Exception:
                provider = ""
            client = await self._client(provider, request, kwargs.get("api_key"))
            if client is not None:
                kwargs["client"] = client
            response = await litellm.acompletion(**kwargs)
            async for chunk in response:
                if getattr(chunk, "usage", None):
                    usage = _usage_from(chunk.usage)
                if not chunk.choices:
                    continue
                choice = chunk.choices[0]
                if choice.finish_reason:
                    finish = choice.finish_reason
                for piece in delta_chunks(choice.delta):
                    produced = True
                    yield piece
                for tc in getattr(choice.delta, "tool_calls", None) or []:
                    function = tc.function
                    extra = {k: getattr(tc, k) for k in CallAssembler.META if getattr(tc, k, None)}
                    started = calls.add(
                        tc.index,
                        tc.id or None,
                        function.name if function else None,
                        function.arguments if function else None,
                        extra or None,
                    )
                    if started is not None:
                        yield started
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
        if not produced and not len(calls) and finish is None:
            raise empty_step_error(request.model)
        usage.cost = step_cost(request.model, usage)
        yield StepDone(calls.calls(), usage, finish or "stop")


def delta_chunks(delta: Any) -> list[Chunk]:
    """Text and reasoning chunks of a litellm delta: ``reasoning_content``, the signatures and
    redacted blocks of ``thinking_blocks`` (their text is in ``reasoning_content`` already), and
    ``content`` as a string or a list of parts."""
    out: list[Chunk] = []
    reasoning = getattr(delta, "reasoning_content", None)
    if reasoning and isinstance(reasoning, str):
        out.append(ReasoningChunk(reasoning))
    for block in getattr(delta, "thinking_blocks", None) or ():
        if not isinstance(block, dict):
            continue
        if block.get("type") == "redacted_thinking" and block.get("data"):
            out.append(ReasoningChunk("", redacted=str(block["data"])))
        elif block.get("signature"):
            out.append(ReasoningChunk("", signature=str(block["signature"])))
    content = delta.content
    if isinstance(content, str):
        if content:
            out.append(TextChunk(content))
    else:
        for is_reasoning, text in content_pieces(content):
            out.append(ReasoningChunk(text) if is_reasoning else TextChunk(text))
    return out
