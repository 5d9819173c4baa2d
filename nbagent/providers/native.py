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
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from nbagent.core.errors import ContextTooLong, ProviderError
from nbagent.core.messages import Usage
from nbagent.providers import models
from nbagent.providers.base import (
    Chunk,
    ModelRequest,
    RawToolCall,
    ReasoningChunk,
    StepDone,
    TextChunk,
    ToolCallStarted,
)
from nbagent.providers.errors import TABLE, ErrorRule, classify, retry_after

if TYPE_CHECKING:
    import httpx  # imported on first use: `supports()` stays free of it

OPENAI = "openai"
ANTHROPIC = "anthropic"
ANTHROPIC_VERSION = "2023-06-01"
DEFAULT_MAX_TOKENS = 8192
LOCAL_SERVER_KEY = "sk-no-key-required"  # servers that need no key still get a bearer header
ERROR_BODY_LIMIT = 16_000  # bytes of an error response we read
ERROR_DETAIL_LIMIT = 500  # characters of it the user sees


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
            blocks = _blocks(message.get("content"))
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


# -- errors -------------------------------------------------------------------------------------

_RULES = {rule.exception: rule for rule in TABLE}
_SERVER = ErrorRule("APIError", "server", True, "The provider returned an error.", "Try again later.")
_BY_STATUS = {
    400: "BadRequestError",
    401: "AuthenticationError",
    402: "PaymentRequiredError",
    403: "PermissionDeniedError",
    404: "NotFoundError",
    408: "Timeout",
    413: "BadRequestError",
    422: "UnprocessableEntityError",
    429: "RateLimitError",
    500: "InternalServerError",
    502: "BadGatewayError",
    503: "ServiceUnavailableError",
    504: "Timeout",
    529: "ServiceUnavailableError",
}
_BY_TYPE = {  # error types of mid-stream errors (Anthropic's, and OpenAI-compatible servers')
    "invalid_request_error": "BadRequestError",
    "authentication_error": "AuthenticationError",
    "permission_error": "PermissionDeniedError",
    "not_found_error": "NotFoundError",
    "request_too_large": "BadRequestError",
    "rate_limit_error": "RateLimitError",
    "api_error": "InternalServerError",
    "overloaded_error": "ServiceUnavailableError",
    "server_error": "InternalServerError",
    "context_length_exceeded": "ContextWindowExceededError",
}
# Last resort, documented: providers that report an over-long prompt only in the message text
# (Anthropic's invalid_request_error "prompt is too long: N tokens > M maximum", vLLM, DeepSeek).
_CONTEXT_PHRASES = (
    "prompt is too long",
    "maximum context length",
    "context length exceeded",
    "context_length_exceeded",
    "exceeds the context window",
    "input is too long",
    "too many input tokens",
)


def _error_fields(payload: Any) -> tuple[str, str, str]:
    """(message, type, code) from an OpenAI or Anthropic error body."""
    error = payload.get("error") if isinstance(payload, dict) else None
    if isinstance(error, str):
        return error, "", ""
    if not isinstance(error, dict):
        error = payload if isinstance(payload, dict) else {}
    code = error.get("code")
    return str(error.get("message") or ""), str(error.get("type") or ""), "" if code is None else str(code)


def _is_context_error(status: int | None, message: str, kind: str, code: str) -> bool:
    if "context_length_exceeded" in (code, kind):
        return True
    lowered = message.lower()
    return status in (None, 400, 413) and any(phrase in lowered for phrase in _CONTEXT_PHRASES)


def _rule_for(status: int | None, message: str, kind: str, code: str) -> ErrorRule:
    """The HTTP status decides; a body's error type only where there is no status (mid-stream errors)."""
    if status is None and code.isdigit():
        status = int(code)
    if _is_context_error(status, message, kind, code):
        return _RULES["ContextWindowExceededError"]
    if status is None:
        name = _BY_TYPE.get(kind)
        return _RULES[name] if name is not None else _SERVER
    name = _BY_STATUS.get(status)
    if name is not None:
        return _RULES[name]
    return _SERVER if status >= 500 else _RULES["BadRequestError"]


def _provider_error(
    rule: ErrorRule, model: str, detail: str, *, key_env: str, wait: float | None = None
) -> ProviderError:
    detail = " ".join(detail.split())
    if len(detail) > ERROR_DETAIL_LIMIT:
        detail = detail[: ERROR_DETAIL_LIMIT - 1] + "…"
    hint = rule.hint
    if rule.kind == "auth":
        hint = f"Set {key_env} in the environment (or pass --api-key) for {model}."
    elif rule.kind == "permission":
        hint = f"Check that the key in {key_env} (or --api-key) has access to {model}."
    cls = ContextTooLong if rule.kind == "context_too_long" else ProviderError
    return cls(
        f"{rule.message} ({model}: {detail})",
        hint,
        kind=rule.kind,
        retryable=rule.retryable,
        retry_after=wait,
    )


async def _bounded_text(response: httpx.Response) -> str:
    import httpx

    raw = bytearray()
    try:
        async for piece in response.aiter_bytes():
            raw += piece
            if len(raw) >= ERROR_BODY_LIMIT:
                break
    except httpx.HTTPError:
        pass
    return raw[:ERROR_BODY_LIMIT].decode("utf-8", "replace")


class _Headers(Exception):
    """Carries response headers to ``errors.retry_after``."""

    def __init__(self, headers: httpx.Headers) -> None:
        super().__init__("")
        self.headers = headers


async def _status_error(response: httpx.Response, model: str, key_env: str) -> ProviderError:
    text = await _bounded_text(response)
    try:
        message, kind, code = _error_fields(json.loads(text))
    except ValueError:
        message, kind, code = text.strip(), "", ""
    status = response.status_code
    rule = _rule_for(status, message, kind, code)
    wait = retry_after(_Headers(response.headers))
    return _provider_error(
        rule, model, f"HTTP {status}: {message or response.reason_phrase}", key_env=key_env, wait=wait
    )


async def _unstreamed(response: httpx.Response, model: str, key_env: str) -> ProviderError:
    """A 200 answer that is not an event stream: an error some proxies send that way, or no streaming."""
    text = await _bounded_text(response)
    try:
        payload = json.loads(text)
    except ValueError:
        payload = None
    if isinstance(payload, dict) and "error" in payload:
        return _stream_error(payload, model, key_env)
    return ProviderError(
        f"The server answered without streaming ({model}: {' '.join(text.split())[:200]}).",
        "Use an endpoint that supports stream=true (server-sent events).",
        kind="bad_request",
    )


def _stream_error(payload: Any, model: str, key_env: str) -> ProviderError:
    message, kind, code = _error_fields(payload)
    return _provider_error(
        _rule_for(None, message, kind, code), model, message or "error event", key_env=key_env
    )


# -- streaming ----------------------------------------------------------------------------------


class _Broken(Exception):
    """The stream ended before the protocol's end marker."""


class _OpenAIStream:
    def __init__(self, model: str, key_env: str) -> None:
        self.model, self.key_env = model, key_env
        self.calls: dict[int, tuple[str, list[str], list[str]]] = {}  # index -> (id, [name], [arguments])
        self.usage: dict[str, Any] | None = None
        self.finish: str | None = None
        self.done = False

    def feed(self, data: str) -> Iterator[Chunk]:
        if data == "[DONE]":
            self.done = True
            return
        event = json.loads(data)
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
        delta = choice.get("delta") or {}
        reasoning = delta.get("reasoning_content") or delta.get("reasoning")
        if reasoning and isinstance(reasoning, str):
            yield ReasoningChunk(reasoning)
        text = delta.get("content")
        if text and isinstance(text, str):
            yield TextChunk(text)
        for call in delta.get("tool_calls") or ():
            index = call.get("index")
            if not isinstance(index, int):
                index = len(self.calls)
            function = call.get("function") or {}
            entry = self.calls.get(index)
            if entry is None:
                entry = (call.get("id") or f"call_{index}", [function.get("name") or ""], [])
                self.calls[index] = entry
                yield ToolCallStarted(index, entry[0], entry[1][0])
            elif function.get("name") and not entry[1][0]:
                entry[1][0] = function["name"]
            arguments = function.get("arguments")
            if arguments:
                entry[2].append(arguments if isinstance(arguments, str) else json.dumps(arguments))

    def complete(self) -> bool:
        # Some compatible servers omit [DONE]; a finish_reason also means the answer is whole.
        return self.done or self.finish is not None

    def result(self) -> tuple[list[RawToolCall], Usage, str]:
        calls = [RawToolCall(c[0], c[1][0], "".join(c[2])) for _, c in sorted(self.calls.items())]
        return calls, _openai_usage(self.usage), self.finish or "stop"


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

    def feed(self, data: str) -> Iterator[Chunk]:
        event = json.loads(data)
        if not isinstance(event, dict):
            return
        kind = event.get("type")
        if kind == "content_block_delta":
            delta = event.get("delta") or {}
            dtype = delta.get("type")
            if dtype == "text_delta" and delta.get("text"):
                yield TextChunk(delta["text"])
            elif dtype == "thinking_delta" and delta.get("thinking"):
                yield ReasoningChunk(delta["thinking"])
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
                yield TextChunk(block["text"])
            elif btype == "thinking" and block.get("thinking"):
                yield ReasoningChunk(block["thinking"])
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

    def _http(self) -> httpx.AsyncClient:
        import httpx

        loop = asyncio.get_running_loop()
        if self._client is None or self._loop is not loop or self._client.is_closed:
            # Connections belong to the loop that opened them; a new loop (asyncio.run per turn) gets a new pool.
            self._client = httpx.AsyncClient(
                timeout=httpx.Timeout(self.timeout, connect=self.connect_timeout),
                limits=httpx.Limits(max_connections=20, max_keepalive_connections=10, keepalive_expiry=60.0),
                trust_env=True,
            )
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
        anthropic = target.route.protocol == ANTHROPIC
        body = anthropic_body(request, target) if anthropic else openai_body(request, target)
        content = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
        key_env = target.route.key_env
        parser: _OpenAIStream | _AnthropicStream = (
            _AnthropicStream(request.model, key_env) if anthropic else _OpenAIStream(request.model, key_env)
        )
        client = self._http()
        try:
            async with client.stream("POST", target.url, content=content, headers=target.headers) as response:
                if response.status_code >= 400:
                    raise await _status_error(response, request.model, key_env)
                if "json" in response.headers.get("content-type", ""):
                    raise await _unstreamed(response, request.model, key_env)
                data: list[str] = []
                async for line in response.aiter_lines():
                    if line.startswith("data:"):
                        data.append(line[6:] if line.startswith("data: ") else line[5:])
                    elif not line and data:
                        event, data = "\n".join(data), []
                        for chunk in parser.feed(event):
                            yield chunk
                if data:  # a last event without its blank line
                    for chunk in parser.feed("\n".join(data)):
                        yield chunk
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
