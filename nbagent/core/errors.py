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


class ToolFailure(Exception):
    """Raised by a tool: the message goes back to the model as the tool's error result."""


class PermissionRejected(ToolFailure):
    """A rule, a mode or the user refused the call; the message (and feedback) goes back to the model.

    ``stops_turn``: a person said no without saying what to do instead, so the turn ends and waits for
    them; a refusal by rule lets the model adapt and go on.
    """

    def __init__(self, message: str, feedback: str = "", *, stops_turn: bool = False) -> None:
        super().__init__(message + (f"\nThe user said: {feedback}" if feedback else ""))
        self.feedback = feedback
        self.stops_turn = stops_turn and not feedback
