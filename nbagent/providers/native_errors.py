"""How the native client turns HTTP statuses, error bodies and broken streams into the classified
``ProviderError`` kinds of :mod:`nbagent.providers.errors` (the table litellm's exceptions use too)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from nbagent.core.errors import ContextTooLong, ProviderError
from nbagent.providers.errors import (
    BY_STATUS,
    BY_TYPE,
    TABLE,
    USAGE_LIMIT,
    ErrorRule,
    error_fields,
    is_usage_limit,
    retry_after,
    usage_hint,
)

if TYPE_CHECKING:
    import httpx

ERROR_BODY_LIMIT = 16_000  # bytes of an error response we read
ERROR_DETAIL_LIMIT = 500  # characters of it the user sees


# -- errors -------------------------------------------------------------------------------------

_RULES = {rule.exception: rule for rule in TABLE}
_SERVER = ErrorRule("APIError", "server", True, "The provider returned an error.", "Try again later.")
_BY_STATUS = BY_STATUS
_BY_TYPE = BY_TYPE
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


_error_fields = error_fields  # (message, type, code) of a body in any shape providers send


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
    hint = usage_hint(wait) if rule is USAGE_LIMIT else rule.hint
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
    rule, wait = _usage_rule(
        _rule_for(status, message, kind, code), message, retry_after(_Headers(response.headers))
    )
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
    if isinstance(payload, list) and payload and isinstance(payload[0], dict) and "error" in payload[0]:
        payload = payload[0]
    if isinstance(payload, dict) and "error" in payload:
        return _stream_error(payload, model, key_env)
    return ProviderError(
        f"The server answered without streaming ({model}: {' '.join(text.split())[:200]}).",
        "Use an endpoint that supports stream=true (server-sent events).",
        kind="bad_request",
    )


def _stream_error(payload: Any, model: str, key_env: str) -> ProviderError:
    message, kind, code = _error_fields(payload)
    rule, wait = _usage_rule(_rule_for(None, message, kind, code), message, None)
    return _provider_error(rule, model, message or "error event", key_env=key_env, wait=wait)


def _usage_rule(rule: ErrorRule, message: str, wait: float | None) -> tuple[ErrorRule, float | None]:
    """A rate limit, refusal or billing failure that is a usage limit (or quota) gets its own rule; the
    wait is the provider's reset time where it named one."""
    limited, reset = is_usage_limit(rule.kind, message, wait)
    if limited:
        return USAGE_LIMIT, reset
    return rule, reset if rule.kind == "rate_limit" else wait


# -- streaming ----------------------------------------------------------------------------------


class _Broken(Exception):
    """The stream ended before the protocol's end marker."""
