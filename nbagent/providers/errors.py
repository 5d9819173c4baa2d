"""One table of provider failures: retried or not, and what the user is told to do.

Exceptions are matched by class (most specific first), never by their message text.
"""

from __future__ import annotations

import email.utils
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
        "Wait a moment, lower concurrency, or configure a fallback model.",
    ),
    ErrorRule(
        "ServiceUnavailableError",
        "overloaded",
        True,
        "The provider is overloaded or unavailable.",
        "Try again later or configure a fallback model.",
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

_BY_NAME = {rule.exception: rule for rule in TABLE}
_GENERIC_SERVER = ErrorRule("APIError", "server", True, "The provider returned an error.", "Try again later.")
_GENERIC = ErrorRule("Exception", "unknown", False, "The model request failed.", "See the message above.")


def _status(exc: BaseException) -> int | None:
    status = getattr(exc, "status_code", None)
    return status if isinstance(status, int) else None


def find_rule(exc: BaseException) -> ErrorRule:
    for cls in type(exc).__mro__:
        rule = _BY_NAME.get(cls.__name__)
        if rule is not None:
            return rule
    status = _status(exc)
    if status is not None and (status == 429 or status >= 500):
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
    rule = find_rule(exc)
    detail = str(exc).strip().splitlines()[0][:500] if str(exc).strip() else type(exc).__name__
    hint = rule.hint
    if rule.kind == "auth" and missing_keys:
        hint = f"Set {' and '.join(missing_keys)} in the environment (or pass --api-key) for {model}."
    message = f"{rule.message} ({model}: {detail})"
    cls = ContextTooLong if rule.kind == "context_too_long" else ProviderError
    return cls(message, hint, kind=rule.kind, retryable=rule.retryable, retry_after=retry_after(exc))
