"""A direct client for the two wire protocols most coding models speak.

Anthropic Messages (``anthropic/<name>``) and OpenAI Chat Completions (``openai/<name>`` and the
OpenAI-compatible providers in :data:`ROUTES`), streamed over one keep-alive ``httpx`` client.
It skips litellm's import (seconds) and its per-request overhead, which grows with the history.
Every other model stays on :class:`~nbagent.providers.litellm_provider.LiteLLMProvider`;
:func:`supports` says which path a model string takes.

Numbers match the litellm path: ``input_tokens`` counts the whole prompt (cache reads and writes
included), ``cache_read_tokens`` / ``cache_write_tokens`` the cached parts, and cost comes from
the same price map (:mod:`nbagent.providers.models`). Failures become the same classified
:class:`ProviderError` kinds as :mod:`nbagent.providers.errors` gives litellm's exceptions.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from nbagent.core.errors import ProviderError
from nbagent.providers import models
from nbagent.providers.base import (
    Chunk,
    ModelRequest,
    StepDone,
)
from nbagent.providers.errors import classify
from nbagent.providers.native_anthropic import (
    _AnthropicStream,
    anthropic_body,
    anthropic_payload,
    message_events,
)
from nbagent.providers.native_errors import (
    _RULES,
    _Broken,
    _provider_error,
    _status_error,
    _stream_error,
)
from nbagent.providers.native_openai import _OpenAIStream, openai_body
from nbagent.providers.normalize import completion_events, empty_step_error, error_payload, prepare

if TYPE_CHECKING:
    import httpx  # imported on first use: `supports()` stays free of it

OPENAI = "openai"
ANTHROPIC = "anthropic"
ANTHROPIC_VERSION = "2023-06-01"
LOCAL_SERVER_KEY = "sk-no-key-required"  # servers that need no key still get a bearer header


@dataclass(frozen=True)
class Route:
    """How one litellm provider prefix is reached natively."""

    protocol: str  # OPENAI or ANTHROPIC
    base: str | None  # default base URL; None: the user must give one
    key_env: str
    base_env: tuple[str, ...] = ()
    key_required: bool = True  # local servers take any key
    cache_control: bool = False  # pass ``cache_control`` through (OpenRouter forwards it)


ROUTES: dict[str, Route] = {
    "anthropic": Route(
        ANTHROPIC,
        "https://api.anthropic.com",
        "ANTHROPIC_API_KEY",
        ("ANTHROPIC_API_BASE", "ANTHROPIC_BASE_URL"),
    ),
    "openai": Route(
        OPENAI, "https://api.openai.com/v1", "OPENAI_API_KEY", ("OPENAI_BASE_URL", "OPENAI_API_BASE")
    ),
    "hosted_vllm": Route(OPENAI, None, "HOSTED_VLLM_API_KEY", ("HOSTED_VLLM_API_BASE",), key_required=False),
    "lm_studio": Route(
        OPENAI, "http://localhost:1234/v1", "LM_STUDIO_API_KEY", ("LM_STUDIO_API_BASE",), key_required=False
    ),
    "ollama_chat": Route(
        OPENAI, "http://localhost:11434/v1", "OLLAMA_API_KEY", ("OLLAMA_API_BASE",), key_required=False
    ),
    "deepseek": Route(OPENAI, "https://api.deepseek.com/v1", "DEEPSEEK_API_KEY", ("DEEPSEEK_API_BASE",)),
    "groq": Route(OPENAI, "https://api.groq.com/openai/v1", "GROQ_API_KEY", ("GROQ_API_BASE",)),
    "openrouter": Route(
        OPENAI,
        "https://openrouter.ai/api/v1",
        "OPENROUTER_API_KEY",
        ("OPENROUTER_API_BASE",),
        cache_control=True,
    ),
    "xai": Route(OPENAI, "https://api.x.ai/v1", "XAI_API_KEY", ("XAI_API_BASE",)),
}

OFFICIAL_OPENAI = "https://api.openai.com/v1"


def supports(model: str) -> bool:
    """Whether the native path serves ``model``; everything else stays on litellm.

    OpenAI models served only on the Responses API (per the price map) stay on litellm, which
    bridges them.
    """
    prefix, sep, name = model.partition("/")
    if not sep or not name or prefix not in ROUTES:
        return False
    if prefix == "openai":
        info = models.model_info(model)
        return info is None or info.chat_completions
    return True


# -- where a request goes ---------------------------------------------------------------------


@dataclass(frozen=True)
class _Target:
    provider: str
    route: Route
    name: str  # the model name on the wire
    url: str
    headers: dict[str, str] = field(repr=False)  # holds the key: never shown
    official_openai: bool = False


def _env(names: tuple[str, ...]) -> str | None:
    for name in names:
        value = os.environ.get(name)
        if value:
            return value
    return None


def _target(request: ModelRequest) -> _Target:
    provider, _, name = request.model.partition("/")
    route = ROUTES.get(provider)
    if route is None or not name:
        raise ProviderError(
            f"{request.model} is not served by the native client.",
            "Use provider/name with one of: " + ", ".join(sorted(ROUTES)) + ".",
            kind="config",
        )
    custom_base = request.api_base or _env(route.base_env)
    base = custom_base or route.base
    if base is None:
        raise ProviderError(
            f"No endpoint for {request.model}.",
            f"Pass --api-base (or set {route.base_env[0]}) to the server's URL, e.g. http://localhost:8000/v1.",
            kind="config",
        )
    base = base.rstrip("/")
    key = (request.api_key or os.environ.get(route.key_env) or "").strip()
    if not key:
        if route.key_required and not custom_base:
            raise ProviderError(
                f"No API key for {request.model}.",
                f"Set {route.key_env} in the environment (or pass --api-key).",
                kind="auth",
            )
        key = LOCAL_SERVER_KEY
    if route.protocol == ANTHROPIC:
        if base.endswith("/v1/messages"):
            url = base
        elif base.endswith("/v1"):
            url = f"{base}/messages"
        else:
            url = f"{base}/v1/messages"
        headers = {
            "x-api-key": key,
            "anthropic-version": ANTHROPIC_VERSION,
            "content-type": "application/json",
            "accept": "text/event-stream",
        }
    else:
        if provider == "ollama_chat" and not base.endswith("/v1"):
            base = f"{base}/v1"  # litellm's OLLAMA_API_BASE has no /v1; the OpenAI-compatible API does
        url = base if base.endswith("/chat/completions") else f"{base}/chat/completions"
        headers = {
            "authorization": f"Bearer {key}",
            "content-type": "application/json",
            "accept": "text/event-stream",
        }
    return _Target(provider, route, name, url, headers, official_openai=base == OFFICIAL_OPENAI)


__all__ = ["ROUTES", "NativeProvider", "Route", "anthropic_payload", "supports"]


async def _no_lines() -> AsyncIterator[str]:
    return
    yield  # an empty async iterator


async def _whole_reply(
    response: httpx.Response,
    parser: _OpenAIStream | _AnthropicStream,
    anthropic: bool,
    model: str,
    key_env: str,
) -> list[Chunk]:
    """The chunks of a whole JSON reply to a streamed request (see :func:`normalize.completion_events`)."""
    raw = await response.aread()
    try:
        payload = json.loads(raw)
    except ValueError:
        payload = None
    error = error_payload(payload)
    if error is not None:
        raise _stream_error(error, model, key_env)
    if anthropic and isinstance(payload, dict) and payload.get("type") == "message":
        events = message_events(payload)
    elif not anthropic and isinstance(payload, dict) and isinstance(payload.get("choices"), list):
        events = completion_events(payload)
    else:
        text = " ".join(raw[:1000].decode("utf-8", "replace").split())[:200]
        raise ProviderError(
            f"The server answered without streaming, and not with a chat reply ({model}: {text}).",
            "Check --api-base: it should be the model server's API (e.g. http://localhost:8000/v1).",
            kind="bad_request",
        )
    chunks = [chunk for event in events for chunk in parser.feed_event(event)]
    if isinstance(parser, _OpenAIStream):
        parser.done = True
    return chunks


class NativeProvider:
    """Streams one step over the provider's own HTTP API; one keep-alive client per instance.

    ``timeout`` is the longest wait for the next bytes of a response (a stalled stream fails
    retryably after it); ``connect_timeout`` bounds opening a connection.
    """

    def __init__(self, timeout: float = 600.0, connect_timeout: float = 15.0) -> None:
        self.timeout, self.connect_timeout = timeout, connect_timeout
        self._client: httpx.AsyncClient | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @staticmethod
    def supports(model: str) -> bool:
        return supports(model)

    def _new_client(self) -> httpx.AsyncClient:
        import httpx

        return httpx.AsyncClient(
            timeout=httpx.Timeout(self.timeout, connect=self.connect_timeout),
            limits=httpx.Limits(max_connections=20, max_keepalive_connections=10, keepalive_expiry=60.0),
            trust_env=True,
        )

    async def _http(self) -> httpx.AsyncClient:
        loop = asyncio.get_running_loop()
        if self._client is None or self._loop is not loop or self._client.is_closed:
            # Connections belong to the loop that opened them; a new loop (asyncio.run per turn) gets a
            # new pool. Building one loads the certificate store (60-190 ms): a thread does it, so the
            # loop (a notebook kernel's) stays free.
            self._client = await asyncio.to_thread(self._new_client)
            self._loop = loop
        return self._client

    async def close(self) -> None:
        """Close the pooled connections (those of an earlier, finished event loop are just dropped)."""
        client, loop = self._client, self._loop
        self._client = self._loop = None
        if client is not None and loop is asyncio.get_running_loop():
            await client.aclose()

    aclose = close

    async def stream(self, request: ModelRequest) -> AsyncIterator[Chunk]:
        import httpx

        target = _target(request)
        request = prepare(request, official_openai=target.official_openai)
        anthropic = target.route.protocol == ANTHROPIC
        body = anthropic_body(request, target) if anthropic else openai_body(request, target)
        content = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
        key_env = target.route.key_env
        parser: _OpenAIStream | _AnthropicStream = (
            _AnthropicStream(request.model, key_env) if anthropic else _OpenAIStream(request.model, key_env)
        )
        client = await self._http()
        try:
            async with client.stream("POST", target.url, content=content, headers=target.headers) as response:
                if response.status_code >= 400:
                    raise await _status_error(response, request.model, key_env)
                if "json" in response.headers.get("content-type", ""):
                    # A server that ignored stream=true: a whole reply is a normal reply; an error body
                    # (an HTTP 200 some proxies send) is an error.
                    for chunk in await _whole_reply(response, parser, anthropic, request.model, key_env):
                        yield chunk
                    data: list[str] = []
                    response_lines = _no_lines()
                else:
                    data = []
                    response_lines = response.aiter_lines()
                async for line in response_lines:
                    if line.startswith("data:"):
                        data.append(line[6:] if line.startswith("data: ") else line[5:])
                    elif not line and data:
                        event, data = "\n".join(data), []
                        for chunk in parser.feed(event):
                            yield chunk
                if data:  # a last event without its blank line
                    for chunk in parser.feed("\n".join(data)):
                        yield chunk
                if parser.empty():
                    raise empty_step_error(request.model)
                if not parser.complete():
                    raise _Broken("the response stream ended before the model finished")
        except ProviderError:
            raise
        except _Broken as exc:
            rule = _RULES["MidStreamFallbackError"]
            raise _provider_error(rule, request.model, str(exc), key_env=key_env) from exc
        except ValueError as exc:  # a data line that is not JSON
            rule = _RULES["MidStreamFallbackError"]
            raise _provider_error(rule, request.model, f"unreadable event: {exc}", key_env=key_env) from exc
        except (httpx.HTTPError, OSError) as exc:
            raise classify(exc, model=request.model) from exc
        calls, usage, finish = parser.result()
        usage.cost = models.cost(request.model, usage)
        yield StepDone(calls, usage, finish)
