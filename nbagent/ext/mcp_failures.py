"""How an MCP connection failed, told to the user: the description of an exception (a missing program, a
group of errors) and the answers that show a URL is no streamable HTTP endpoint (for the SSE fallback)."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

__all__ = ["NOT_STREAMABLE", "Answers", "Unreachable", "describe", "url_secrets"]

NOT_STREAMABLE = (400, 404, 405, 406, 415)  # the answer of a URL that is no streamable HTTP endpoint


class Answers:
    """The status and content type of each answer to a POST of a streamable HTTP connection (an httpx
    response hook), to tell a URL that is no streamable HTTP endpoint."""

    def __init__(self) -> None:
        self.seen: list[tuple[int, str]] = []

    async def __call__(self, response: Any) -> None:
        if response.request.method == "POST" and len(self.seen) < 20:
            self.seen.append((response.status_code, response.headers.get("content-type", "").lower()))

    def not_streamable(self) -> int | None:
        """The status that says so, or None (an answer that worked, or a JSON-RPC error: an MCP server)."""
        if any(status < 300 or kind.startswith("application/json") for status, kind in self.seen):
            return None
        return next((status for status, _ in self.seen if status in NOT_STREAMABLE), None)


class Unreachable(Exception):
    """Neither transport worked; the text says how each failed."""


def describe(exc: BaseException) -> str:
    if isinstance(exc, Unreachable):
        return str(exc)
    if isinstance(exc, BaseExceptionGroup):
        return "; ".join(describe(e) for e in exc.exceptions[:3])
    text = str(exc).strip()
    if isinstance(exc, FileNotFoundError):
        return f'the program was not found ({exc.filename or text}); install it or fix "command"'
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def url_secrets(url: str) -> list[str]:
    """What in a URL may be a secret: its query values and its credentials, as written and decoded."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return []
    found = [v for _k, v in parse_qsl(parts.query)] + [p for p in (parts.username, parts.password) if p]
    return [*found, *(unquote(v) for v in found), parts.query]
