"""One table of provider failures: retried or not, and what the user is told to do.

Exceptions are matched by class (most specific first). The message text decides one thing only: a
rate limit, a refusal or an overload that is really a usage limit or a quota (``"usage limit
reached"``, ``"limit resets in 4 hours"``, ``"exceeded your current quota"``, or a ``retry-after``
over a minute) becomes the ``usage_limit`` kind: not retried for minutes, failed over at once
(:mod:`nbagent.core.failover`). Error bodies are read in every shape providers send, Google's list
(``[{"error": {...}}]``) included, so the user sees the provider's own message.
"""

from __future__ import annotations

import ast
import email.utils
import json
import re
import time
from dataclasses import dataclass
from typing import Any

from nbagent.core.errors import ContextTooLong, ProviderError


@dataclass(frozen=True)
class ErrorRule:
    exception: str  # class name in litellm.exceptions, or a builtin/httpx class name
    kind: str
    retryable: bool
    message: str
    hint: str


TABLE: tuple[ErrorRule, ...] = (
    ErrorRule(
        "ContextWindowExceededError",
        "context_too_long",
        False,
        "The request is longer than the model's context window.",
        "Compact the session (/compact) or start a new one.",
    ),
    ErrorRule(
        "AuthenticationError",
        "auth",
        False,
        "The provider rejected the credentials.",
        "Set the provider's API key variable (or pass --api-key).",
    ),
    ErrorRule(
        "PermissionDeniedError",
        "permission",
        False,
        "The provider refused access to this model.",
        "Check that your key has access to the model.",
    ),
    ErrorRule(
        "NotFoundError",
        "not_found",
        False,
        "The provider does not know this model or endpoint.",
        "Check the model name (provider/model) and --api-base.",
    ),
    ErrorRule(
        "ContentPolicyViolationError",
        "content_policy",
        False,
        "The provider refused the request under its content policy.",
        "Rephrase the task.",
    ),
    ErrorRule(
        "PaymentRequiredError",
        "billing",
        False,
        "The provider needs payment or credit for this account.",
        "Check the account's billing.",
    ),
    ErrorRule(
        "BudgetExceededError",
        "billing",
        False,
        "The configured budget is exhausted.",
        "Raise the budget or start a new session.",
    ),
    ErrorRule(
        "RateLimitError",
        "rate_limit",
        True,
        "The provider is rate-limiting requests.",
        'Wait a moment, lower concurrency, or configure a fallback model ("fallback" in nbagent.json).',
    ),
    ErrorRule(
        "ServiceUnavailableError",
        "overloaded",
        True,
        "The provider is overloaded or unavailable.",
        'Try again later or configure a fallback model ("fallback" in nbagent.json).',
    ),
    ErrorRule(
        "BadGatewayError", "server", True, "The provider returned a gateway error.", "Try again later."
    ),
    ErrorRule(
        "InternalServerError", "server", True, "The provider had an internal error.", "Try again later."
    ),
    ErrorRule(
        "Timeout",
        "timeout",
        True,
        "The request to the provider timed out.",
        "Check the network or raise the timeout.",
    ),
    ErrorRule(
        "MidStreamFallbackError", "stream_broken", True, "The response stream broke mid-way.", "Try again."
    ),
    ErrorRule(
        "APIConnectionError",
        "connection",
        True,
        "Could not reach the provider.",
        "Check --api-base, the network, or that the local server runs.",
    ),
    ErrorRule(
        "RemoteProtocolError", "stream_broken", True, "The connection closed mid-response.", "Try again."
    ),
    ErrorRule("ReadError", "stream_broken", True, "The connection broke mid-response.", "Try again."),
    ErrorRule(
        "ConnectError",
        "connection",
        True,
        "Could not reach the provider.",
        "Check --api-base, the network, or that the local server runs.",
    ),
    ErrorRule("TimeoutException", "timeout", True, "The request timed out.", "Try again."),
    ErrorRule("ConnectionError", "connection", True, "The connection to the provider failed.", "Try again."),
    ErrorRule(
        "BadRequestError",
        "bad_request",
        False,
        "The provider rejected the request as invalid.",
        "See the provider's message above.",
    ),
    ErrorRule(
        "UnprocessableEntityError",
        "bad_request",
        False,
        "The provider could not process the request.",
        "See the provider's message above.",
    ),
)

FALLBACK_HINT = 'Add "fallback": ["provider/other-model"] to nbagent.json to continue on another model.'
USAGE_LIMIT = ErrorRule(
    "UsageLimit",
    "usage_limit",
    False,
    "The provider's usage limit or quota is reached.",
    "Wait until it resets, or " + FALLBACK_HINT[0].lower() + FALLBACK_HINT[1:],
)
USAGE_LIMIT_AFTER = 60.0  # a longer retry-after or reset time is a usage limit: not waited for
# Phrases of usage limits and quotas (Anthropic, OpenAI's insufficient_quota, Google, subscriptions).
_USAGE_PHRASES = (
    "usage limit",
    "usage_limit",
    "quota",
    "limit resets",
    "limit will reset",
    "resets at",
    "daily limit",
    "weekly limit",
    "monthly limit",
    "spending limit",
    "credit balance",
    "out of credits",
    "billing",
)
_DURATION = re.compile(
    r"(?:resets?|try again|retry|available again)\s+(?:in|after)\s+"
    r"((?:\d+(?:\.\d+)?\s*(?:ms|milliseconds?|s|secs?|seconds?|m|mins?|minutes?|h|hrs?|hours?|d|days?)(?![a-z])"
    r"[\s,]*(?:and\s+)?)+)",
    re.I,
)
_PART = re.compile(r"(\d+(?:\.\d+)?)\s*([a-z]+)", re.I)


def _unit_seconds(unit: str) -> float:
    unit = unit.lower()
    if unit == "ms" or unit.startswith("milli"):
        return 0.001
    if unit.startswith("s"):
        return 1.0
    if unit.startswith("m"):
        return 60.0
    if unit.startswith("h"):
        return 3600.0
    return 86400.0


def reset_seconds(message: str) -> float | None:
    """The wait a message names (``"limit resets in 4 hours"``, ``"Please try again in 7m12s"``)."""
    found = _DURATION.search(message)
    if found is None:
        return None
    return sum(float(n) * _unit_seconds(u) for n, u in _PART.findall(found.group(1)))


def is_usage_limit(kind: str, message: str, wait: float | None) -> tuple[bool, float | None]:
    """Whether a rate limit, a refusal or a billing failure is a usage limit or a quota, and the seconds
    until it resets when the provider said (``retry-after``, or a wait its message names). A short named
    wait (a per-minute quota saying "retry in 20s") stays a rate limit, retried."""
    if kind not in ("rate_limit", "permission", "billing"):
        return False, None
    reset = wait if wait is not None else reset_seconds(message)
    if reset is not None and reset > USAGE_LIMIT_AFTER:
        return True, reset
    lowered = message.lower()
    if any(phrase in lowered for phrase in _USAGE_PHRASES):
        return reset is None or kind != "rate_limit", reset
    return False, reset


def about(seconds: float) -> str:
    """``seconds`` for a person: "about 4 hours", "about 12 minutes", "30 seconds"."""
    if seconds >= 5400:
        return f"about {round(seconds / 3600)} hours"
    if seconds >= 90:
        return f"about {round(seconds / 60)} minutes"
    return f"{max(1, round(seconds))} seconds"


def usage_hint(reset: float | None) -> str:
    when = f" (in {about(reset)})" if reset is not None else ""
    return f"Wait until the limit resets{when}, or {FALLBACK_HINT[0].lower()}{FALLBACK_HINT[1:]}"


def error_fields(payload: Any) -> tuple[str, str, str]:
    """(message, type, code) from an error body: OpenAI's and Anthropic's ``{"error": {...}}``, a bare
    ``{"message": ...}``, Google's list ``[{"error": {"code": 429, "message": ..., "status": ...}}]``."""
    if isinstance(payload, list):
        payload = next((item for item in payload if isinstance(item, dict)), {})
    error = payload.get("error") if isinstance(payload, dict) else None
    if isinstance(error, str):
        return error, "", ""
    if not isinstance(error, dict):
        error = payload if isinstance(payload, dict) else {}
    code = error.get("code")
    kind = error.get("type") or error.get("status") or ""
    return str(error.get("message") or ""), str(kind), "" if code is None else str(code)


_BODY_START = re.compile(r"""b'|b"|[\[{]""")
BODY_LIMIT = 16_000
_BODY_TRIES = 6
_DECODER = json.JSONDecoder()


def _parse_body(candidate: str) -> Any:
    """A JSON value or a Python literal at the start of ``candidate`` (text may follow it)."""
    try:
        return _DECODER.raw_decode(candidate)[0]
    except ValueError:
        pass
    for text in (candidate, candidate.splitlines()[0] if candidate else ""):
        try:
            value = ast.literal_eval(text.strip())
        except (ValueError, SyntaxError, MemoryError, RecursionError, TypeError):
            continue
        if isinstance(value, bytes):
            try:
                return json.loads(value.decode("utf-8", "replace"))
            except ValueError:
                return None
        return value
    return None


def body_fields(text: str) -> tuple[str, str, str]:
    """(message, type, code) of the error body inside an exception's text (litellm quotes it as JSON, as
    a Python literal or as bytes); empty strings when there is none."""
    text = text[:BODY_LIMIT]
    for tries, found in enumerate(_BODY_START.finditer(text)):
        if tries >= _BODY_TRIES:
            break
        payload = _parse_body(text[found.start() :])
        if isinstance(payload, dict | list):
            fields = error_fields(payload)
            if fields[0]:
                return fields
    return "", "", ""


def body_message(text: str) -> str:
    """The provider's message inside an exception's text; empty when there is none."""
    return body_fields(text)[0]


BY_STATUS = {  # HTTP status -> the litellm exception name it stands for
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
BY_TYPE = {  # error types of mid-stream errors (Anthropic's, and OpenAI-compatible servers')
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
    "insufficient_quota": "RateLimitError",
    # Google's statuses (its error bodies, and its OpenAI-compatible API's)
    "RESOURCE_EXHAUSTED": "RateLimitError",
    "UNAVAILABLE": "ServiceUnavailableError",
    "INTERNAL": "InternalServerError",
    "DEADLINE_EXCEEDED": "Timeout",
    "PERMISSION_DENIED": "PermissionDeniedError",
    "UNAUTHENTICATED": "AuthenticationError",
    "INVALID_ARGUMENT": "BadRequestError",
    "NOT_FOUND": "NotFoundError",
}

_BY_NAME = {rule.exception: rule for rule in TABLE}
_GENERIC_SERVER = ErrorRule("APIError", "server", True, "The provider returned an error.", "Try again later.")
_GENERIC = ErrorRule("Exception", "unknown", False, "The model request failed.", "See the message above.")


def _status(exc: BaseException) -> int | None:
    status = getattr(exc, "status_code", None)
    return status if isinstance(status, int) else None


def find_rule(exc: BaseException, body_type: str = "") -> ErrorRule:
    """The rule of ``exc``: by its class; a generic class (a server error, or none known) says less than
    the error body's type (Anthropic's ``overloaded_error`` inside a 500) or the HTTP status."""
    rule = next((r for cls in type(exc).__mro__ if (r := _BY_NAME.get(cls.__name__)) is not None), None)
    if rule is not None and rule.kind not in ("server", "unknown"):
        return rule
    typed = BY_TYPE.get(body_type)
    if typed is not None and typed != "ContextWindowExceededError":
        return _BY_NAME[typed]
    if rule is not None:
        return rule
    status = _status(exc)
    if status is not None:
        name = BY_STATUS.get(status)
        if name is not None:
            return _BY_NAME[name]
        if status == 429 or status >= 500:
            return _GENERIC_SERVER
    return _GENERIC


def retry_after(exc: BaseException) -> float | None:
    """Seconds the provider asked us to wait (``retry-after-ms`` / ``retry-after``), if any."""
    headers: Any = None
    response = getattr(exc, "response", None)
    if response is not None:
        headers = getattr(response, "headers", None)
    headers = headers or getattr(exc, "litellm_response_headers", None) or getattr(exc, "headers", None)
    if not headers:
        return None
    try:
        ms = headers.get("retry-after-ms")
        if ms is not None:
            return max(0.0, float(ms) / 1000)
        value = headers.get("retry-after")
        if value is None:
            return None
        try:
            return max(0.0, float(value))
        except ValueError:
            parsed = email.utils.parsedate_to_datetime(value)
            return max(0.0, parsed.timestamp() - time.time())
    except (TypeError, ValueError, AttributeError):
        return None


def classify(exc: BaseException, *, model: str, missing_keys: list[str] | None = None) -> ProviderError:
    """The ProviderError a user sees for ``exc``, with retry flag and hint."""
    text = str(exc).strip()
    quoted, body_type, _ = body_fields(text)
    rule = find_rule(exc, body_type)
    detail = " ".join((quoted or (text.splitlines()[0] if text else type(exc).__name__)).split())[:500]
    status = _status(exc)
    if quoted and status is not None:
        detail = f"HTTP {status}: {detail}"
    wait = retry_after(exc)
    limited, reset = is_usage_limit(rule.kind, quoted or text, wait)
    if limited:
        rule = USAGE_LIMIT
    wait = reset if rule.kind in ("rate_limit", "usage_limit") else wait
    hint = usage_hint(wait) if limited else rule.hint
    if rule.kind == "auth" and missing_keys:
        hint = f"Set {' and '.join(missing_keys)} in the environment (or pass --api-key) for {model}."
    message = f"{rule.message} ({model}: {detail})"
    cls = ContextTooLong if rule.kind == "context_too_long" else ProviderError
    return cls(message, hint, kind=rule.kind, retryable=rule.retryable, retry_after=wait)
