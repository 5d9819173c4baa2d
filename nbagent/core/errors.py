"""Exceptions that carry the message a user (or the model) should see."""

from __future__ import annotations


class NbagentError(Exception):
    """Base class: ``str(exc)`` is the message, ``hint`` tells the user the fix."""

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.hint = hint


class ConfigError(NbagentError):
    """Configuration that does not validate: names the file and the key."""


class ProviderError(NbagentError):
    """A model request failed for good (after retries, or not retryable)."""

    def __init__(
        self,
        message: str,
        hint: str = "",
        *,
        kind: str = "",
        retryable: bool = False,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, hint)
        self.kind = kind
        self.retryable = retryable
        self.retry_after = retry_after


class ContextTooLong(ProviderError):
    """The provider rejected the request as too long for the model's window."""


class TurnCancelled(NbagentError):
    """The user stopped the turn."""
