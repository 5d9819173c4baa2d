"""The HTTP transport under litellm: the shapes litellm cannot read, normalized before it sees them.

litellm reads OpenAI-style streams well, but not three shapes real servers send (checked against
litellm 1.106's handlers): a whole ``chat.completion`` JSON answered to ``stream: true`` (litellm keeps
only its finish reason: text and calls are lost), an HTTP 200 whose body is an error, and deltas whose
``content`` is a list of parts (litellm fails on them, except on its own ``mistral/`` route). This
transport rewrites those responses with :mod:`nbagent.providers.normalize`, the same functions the
native client uses, so both paths read them alike. It also ends a stream that carried nothing (no text,
no call, no finish reason) with an error event, since litellm would report it as an empty success.
Only streamed ``/chat/completions`` answers (and whole Anthropic ``message`` answers to a streamed
``/messages`` request) are touched; every other request passes as it is.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx

from nbagent.providers.normalize import completion_events, error_payload, flatten_delta

EMPTY_ERROR = {
    "error": {
        "message": "The model returned an empty response (no text, no tool call, no finish reason).",
        "type": "server_error",
    }
}
_STATUS_BY_TYPE = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "permission_error": 403,
    "not_found_error": 404,
    "rate_limit_error": 429,
    "overloaded_error": 529,
}


def _sse(events: list[dict[str, Any]]) -> bytes:
    return ("".join(f"data: {json.dumps(e)}\n\n" for e in events) + "data: [DONE]\n\n").encode()


def error_status(payload: dict[str, Any]) -> int:
    """The HTTP status an error body stands for (its numeric code, else its type; 500 otherwise)."""
    error = payload.get("error")
    if isinstance(error, dict):
        code = error.get("code")
        if isinstance(code, int) and 400 <= code < 600:
            return code
        if isinstance(code, str) and code.isdigit() and 400 <= int(code) < 600:
            return int(code)
        status = _STATUS_BY_TYPE.get(str(error.get("type") or error.get("status") or ""))
        if status is not None:
            return status
    return 500


class _Events(httpx.AsyncByteStream):
    """An SSE body passed through line by line; list ``content`` in a delta is flattened, and a stream
    that carried nothing ends with an error event."""

    def __init__(self, inner: httpx.AsyncByteStream) -> None:
        self._inner = inner
        self._seen = False  # any content, call or finish reason

    def _line(self, line: bytes) -> bytes:
        if not line.startswith(b"data:"):
            return line
        body = line[5:].strip()
        listed = b'"content":[' in body or b'"content": [' in body
        if (self._seen and not listed) or body == b"[DONE]":
            return line
        try:
            event = json.loads(body)
        except ValueError:
            return line
        if not isinstance(event, dict):
            return line
        changed = False
        self._seen = self._seen or "error" in event
        for choice in event.get("choices") or ():
            if not isinstance(choice, dict):
                continue
            delta = choice.get("delta")
            if isinstance(delta, dict):
                flat = flatten_delta(delta)
                if flat is not delta:
                    choice["delta"], changed = flat, True
                if any(flat.get(k) for k in ("content", "tool_calls", "reasoning_content", "reasoning")):
                    self._seen = True
            self._seen = self._seen or bool(choice.get("finish_reason"))
        return b"data: " + json.dumps(event).encode() if changed else line

    async def __aiter__(self) -> AsyncIterator[bytes]:
        buffer = b""
        async for piece in self._inner:
            buffer += piece
            if b"\n" not in buffer:
                continue
            *lines, buffer = buffer.split(b"\n")
            yield b"\n".join(self._line(line) for line in lines) + b"\n"
        if buffer:
            yield self._line(buffer)
        if not self._seen:
            yield b"\n\ndata: " + json.dumps(EMPTY_ERROR).encode() + b"\n\n"

    async def aclose(self) -> None:
        await self._inner.aclose()


class NormalizingTransport(httpx.AsyncBaseTransport):
    """Wraps the transport litellm's HTTP client sends through (see the module's docstring)."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self._inner = inner

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self._inner.handle_async_request(request)
        anthropic = request.url.path.endswith("/messages")
        if response.status_code != 200 or not (anthropic or request.url.path.endswith("/chat/completions")):
            return response
        kind = response.headers.get("content-type", "")
        if "event-stream" in kind and not anthropic:
            stream = response.stream
            assert isinstance(stream, httpx.AsyncByteStream)
            return httpx.Response(
                200, headers=response.headers, stream=_Events(stream), extensions=response.extensions
            )
        if "json" not in kind or b'"stream":true' not in request.content.replace(b" ", b""):
            return response
        stream = response.stream
        assert isinstance(stream, httpx.AsyncByteStream)
        try:
            raw = b"".join([piece async for piece in stream])
        finally:
            await stream.aclose()
        try:
            payload = json.loads(raw)
        except ValueError:
            payload = None
        headers = {
            k: v for k, v in response.headers.items() if k.lower() not in ("content-length", "content-type")
        }
        error = error_payload(payload)
        if error is not None:
            headers["content-type"] = "application/json"
            return httpx.Response(error_status(error), headers=headers, content=json.dumps(error).encode())
        if anthropic and isinstance(payload, dict) and payload.get("type") == "message":
            from nbagent.providers.native_anthropic import message_events

            headers["content-type"] = "text/event-stream"
            events = "".join(
                f"event: {e['type']}\ndata: {json.dumps(e)}\n\n" for e in message_events(payload)
            )
            return httpx.Response(200, headers=headers, content=events.encode())
        if not anthropic and isinstance(payload, dict) and isinstance(payload.get("choices"), list):
            headers["content-type"] = "text/event-stream"
            body = _Events(httpx.ByteStream(_sse(completion_events(payload))))  # an empty reply is an error
            return httpx.Response(200, headers=headers, stream=body)
        return httpx.Response(200, headers=dict(response.headers), content=raw)

    async def aclose(self) -> None:
        await self._inner.aclose()
