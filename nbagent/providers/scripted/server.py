"""A threaded loopback HTTP server that plays a :class:`Script` in two wire protocols.

- ``POST /v1/chat/completions`` (and ``/chat/completions``): OpenAI Chat Completions, streaming
  (SSE, usage in the last chunk when ``stream_options.include_usage``) and not.
- ``POST /v1/messages``: Anthropic Messages, streaming (typed SSE events) and not.

Honest for tests: an exception raised while answering (an assertion inside a scripted reply, say) is
recorded in :attr:`ScriptedModelServer.errors` and answered with a 500 whose message is the traceback,
and :meth:`ScriptedModelServer.check` (called on leaving the ``with`` block, and by the tests' ``serve``
fixture) re-raises it. With ``exact=True`` a counted script (one with a ``remaining`` count of replies,
such as :class:`ListScript`) must be consumed exactly: a request past its last reply gets a 400 naming
the problem, and replies never requested are reported by :meth:`check`.

Tool-call arguments are split across chunks. Usage counts about four characters a token, and
prompt caching is simulated: a request's prefix that matches the previous request counts as a
cache read (OpenAI-style: automatic; Anthropic: only up to the last ``cache_control`` breakpoint).
"""

from __future__ import annotations

import json
import socket
import threading
import time
import traceback
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from nbagent.providers.scripted.quirks import Quirks, QuirkState
from nbagent.providers.scripted.script import (
    Answer,
    CutStream,
    EmptyStream,
    ErrorBody,
    ErrorReply,
    Reply,
    Script,
)
from nbagent.providers.scripted.wire import (
    anthropic_message,
    anthropic_stream,
    openai_message,
    openai_stream,
    tokens,
)


@dataclass
class RecordedRequest:
    path: str
    body: dict[str, Any]
    headers: dict[str, str]
    received: float
    raw: bytes = b""
    served: float = 0.0  # seconds the server spent answering (the model's share of a step)


def common_prefix(a: str | bytes, b: str | bytes) -> int:
    """Length of the common prefix, by bisection over C-speed slice comparisons."""
    lo, hi = 0, min(len(a), len(b))
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if a[:mid] == b[:mid]:
            lo = mid
        else:
            hi = mid - 1
    return lo


def _strip_cache_control(node: Any) -> tuple[Any, bool]:
    if isinstance(node, dict):
        marked = "cache_control" in node
        out = {}
        for k, v in node.items():
            if k == "cache_control":
                continue
            out[k], m = _strip_cache_control(v)
            marked = marked or m
        return out, marked
    if isinstance(node, list):
        items = [_strip_cache_control(v) for v in node]
        return [i for i, _ in items], any(m for _, m in items)
    return node, False


def _segments(body: dict[str, Any], protocol: str) -> list[tuple[str, bool]]:
    """The request cut into serialized pieces in prompt order, each flagged if it carries a breakpoint."""
    pieces: list[Any] = []
    if protocol == "anthropic":
        system = body.get("system") or []
        pieces.extend(system if isinstance(system, list) else [system])
    pieces.extend(body.get("tools") or [])
    for message in body.get("messages") or []:
        content = message.get("content")
        if protocol == "anthropic" and isinstance(content, list):
            pieces.append({"role": message.get("role")})
            pieces.extend(content)
        else:
            pieces.append(message)
    out = []
    for piece in pieces:
        clean, marked = _strip_cache_control(piece)
        out.append((json.dumps(clean, sort_keys=True), marked))
    return out


class _Cache:
    """Remembers the last prompt and tells how much of a new one is a cached prefix."""

    def __init__(self) -> None:
        self._last = ""
        self._lock = threading.Lock()

    def measure(self, body: dict[str, Any], protocol: str) -> tuple[int, int, int]:
        """Returns (input_tokens, cache_read_tokens, cache_write_tokens)."""
        segments = _segments(body, protocol)
        text = "".join(s for s, _ in segments)
        with self._lock:
            common = common_prefix(text, self._last)
            self._last = text
        total = tokens(len(text))
        if protocol == "anthropic":
            end, limit = 0, 0
            for s, marked in segments:
                end += len(s)
                if marked:
                    limit = end
            read = tokens(min(common, limit))
            write = tokens(limit) - read
            return total - read - write, read, write
        read = (tokens(common) // 128) * 128
        return total, read, 0  # OpenAI reports cached tokens inside prompt_tokens


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Clients that drop a connection (resets, broken pipes) are normal here; stay quiet."""
        return None


class ScriptMismatch(AssertionError):
    """The conversation did not consume the script exactly (requests past its end, or replies left)."""


class ScriptedModelServer:
    """Serve ``script`` on 127.0.0.1 (an ephemeral port unless given). Use as a context manager.

    ``exact``: a counted script must be consumed exactly (see the module's docstring).
    """

    def __init__(
        self, script: Script, port: int = 0, *, exact: bool = False, quirks: Quirks | None = None
    ) -> None:
        self.script = script
        self.exact = exact
        self.quirks = QuirkState(quirks) if quirks is not None else None
        self.requests: list[RecordedRequest] = []
        self.errors: list[BaseException] = []  # raised while answering; check() re-raises the first
        self.extra_requests = 0  # requests past the end of a counted script (exact mode)
        self._lock = threading.Lock()
        self._cache = _Cache()
        self._httpd = _QuietServer(("127.0.0.1", port), self._handler_class())
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="scripted-model",
            daemon=True,
        )

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def openai_base(self) -> str:
        return f"{self.url}/v1"

    @property
    def anthropic_base(self) -> str:
        return self.url  # litellm appends /v1/messages

    def start(self) -> ScriptedModelServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> ScriptedModelServer:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        self.stop()
        if exc_type is None:
            self.check()

    def problems(self) -> list[str]:
        """What went wrong while serving, one line each: exceptions, then exactness misses."""
        out = [f"the scripted reply raised {type(e).__name__}: {e}" for e in self.errors]
        if self.extra_requests:
            out.append(
                f"{self.extra_requests} request(s) came after the script's last reply "
                f"({len(self.requests)} requests in all): script the extra replies, or find why the "
                "conversation made more requests than expected"
            )
        left = self._remaining()
        if self.exact and left:
            out.append(
                f"{left} scripted reply(ies) were never requested ({len(self.requests)} requests came): "
                "the conversation stopped earlier than the script expects"
            )
        return out

    def check(self) -> None:
        """Raise what went wrong while serving: the first exception a reply raised (as itself, the rest
        noted), else a :class:`ScriptMismatch` for an inexactly consumed script."""
        problems = self.problems()
        if not problems:
            return
        if self.errors:
            first = self.errors[0]
            note = "scripted model server, also: " + "; ".join(problems[1:])
            if len(problems) > 1 and note not in getattr(first, "__notes__", []):
                first.add_note(note)
            raise first
        raise ScriptMismatch("scripted model server: " + "; ".join(problems))

    def _remaining(self) -> int:
        remaining = getattr(self.script, "remaining", None)
        return remaining if isinstance(remaining, int) else 0

    def _answer(self, body: dict[str, Any], protocol: str) -> Answer | None:
        """The script's answer, or None for a request past the end of a counted script (exact mode)."""
        if not self.exact or getattr(self.script, "remaining", None) is None:
            return self.script.answer(body, protocol)
        with self._lock:
            if self._remaining() <= 0:
                self.extra_requests += 1
                return None
            return self.script.answer(body, protocol)

    # -- request handling -------------------------------------------------------------------

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # small streamed writes must not wait for delayed ACKs

            def log_message(self, format: str, *args: Any) -> None:
                return None

            def do_POST(self) -> None:
                self.headers_sent = False
                protocol = "anthropic" if self.path.split("?")[0].endswith("/messages") else "openai"
                try:
                    self._post()
                except ConnectionError:
                    # the client went away mid-answer (a cancelled turn, a killed process): its choice,
                    # not a failure of the script
                    self.close_connection = True
                except Exception as exc:
                    # Recorded for the test that started the server (check() re-raises it), and shown
                    # to the client: a visible 500, never a silent disconnect that the client retries.
                    server.errors.append(exc)
                    text = "scripted model server: the scripted reply raised\n" + traceback.format_exc()
                    if self.headers_sent:
                        self.close_connection = True
                        return
                    server._error(self, protocol, ErrorReply(500, text, error_type="scripted_reply_raised"))

            def _post(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(length)
                body = json.loads(raw or b"{}")
                path = self.path.split("?")[0]
                record = RecordedRequest(path, body, dict(self.headers.items()), time.time(), raw)
                server.requests.append(record)
                if path.endswith("/chat/completions"):
                    protocol = "openai"
                elif path.endswith("/messages"):
                    protocol = "anthropic"
                else:
                    self._json(404, {"error": {"message": f"no route {path}"}})
                    return
                answer = server._answer(body, protocol)
                if answer is None:
                    message = (
                        f"scripted model server: request {len(server.requests)} came after the script's "
                        "last reply (the conversation made more requests than scripted)"
                    )
                    server._error(self, protocol, ErrorReply(400, message, error_type="script_exhausted"))
                    return
                server._serve(self, body, protocol, answer)
                record.served = time.time() - record.received

            def _json(
                self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None
            ) -> None:
                data = json.dumps(payload).encode()
                self.headers_sent = True
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

        return Handler

    def _serve(self, h: Any, body: dict[str, Any], protocol: str, answer: Answer) -> None:
        if self.quirks is not None:
            refused = self.quirks.check(body, protocol)
            if refused is not None:
                kind = "invalid_request_error" if refused[0] == 400 else "unprocessable_entity"
                self._error(h, protocol, ErrorReply(refused[0], refused[1], error_type=kind))
                return
        if isinstance(answer, ErrorReply):
            self._error(h, protocol, answer)
            return
        if isinstance(answer, ErrorBody):
            h._json(200, answer.payload())
            return
        if isinstance(answer, EmptyStream):
            self._empty(h, body, protocol)
            return
        reply = answer.reply if isinstance(answer, CutStream) else answer
        cut = answer.after_chunks if isinstance(answer, CutStream) else None
        usage = self._cache.measure(body, protocol)
        model = str(body.get("model", "scripted"))
        if self.quirks is not None:
            self._serve_quirky(h, body, protocol, reply, usage, cut)
        elif body.get("stream"):
            if protocol == "openai":
                include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
                events = openai_stream(reply, model, usage, include_usage)
            else:
                events = anthropic_stream(reply, model, usage)
            self._stream(h, events, cut, reply.delay)
        elif protocol == "openai":
            h._json(200, openai_message(reply, model, usage))
        else:
            h._json(200, anthropic_message(reply, model, usage))

    def _serve_quirky(
        self,
        h: Any,
        body: dict[str, Any],
        protocol: str,
        reply: Reply,
        usage: tuple[int, int, int],
        cut: int | None,
    ) -> None:
        assert self.quirks is not None
        reply, issued, _ = self.quirks.prepare(reply, protocol)
        model = str(body.get("model", "scripted"))
        stream = bool(body.get("stream")) and not self.quirks.quirks.ignore_stream
        if protocol == "openai" and stream:
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            events = self.quirks.openai_events(openai_stream(reply, model, usage, include_usage), issued)
            self._stream(h, events, cut, reply.delay)
        elif protocol == "openai":
            payload = openai_message(reply, model, usage)
            payload["choices"][0]["message"] = self.quirks.openai_message(
                payload["choices"][0]["message"], issued
            )
            h._json(200, payload)
        elif stream:
            self._stream(
                h,
                self.quirks.anthropic_events(anthropic_stream(reply, model, usage), issued),
                cut,
                reply.delay,
            )
        else:
            payload = anthropic_message(reply, model, usage)
            payload["content"] = self.quirks.anthropic_blocks(payload["content"], issued)
            h._json(200, payload)

    def _empty(self, h: Any, body: dict[str, Any], protocol: str) -> None:
        """Nothing: no text, no call, no finish reason."""
        ignore = self.quirks is not None and self.quirks.quirks.ignore_stream
        if not body.get("stream") or ignore:
            if protocol == "openai":
                message = {"role": "assistant", "content": None}
                h._json(
                    200,
                    {
                        "object": "chat.completion",
                        "choices": [{"index": 0, "message": message, "finish_reason": None}],
                    },
                )
            else:
                h._json(200, {"type": "message", "role": "assistant", "content": [], "stop_reason": None})
            return
        events = ["data: [DONE]\n\n"] if protocol == "openai" else []
        self._stream(h, events, None, 0.0)

    def _error(self, h: Any, protocol: str, err: ErrorReply) -> None:
        if protocol == "anthropic":
            kind = err.error_type or {429: "rate_limit_error", 529: "overloaded_error"}.get(
                err.status, "api_error"
            )
            payload: dict[str, Any] = {"type": "error", "error": {"type": kind, "message": err.message}}
        else:
            payload = {
                "error": {"message": err.message, "type": err.error_type or "server_error", "code": None}
            }
        h._json(err.status, payload, err.headers)

    def _stream(self, h: Any, events: list[str], cut: int | None, delay: float) -> None:
        h.headers_sent = True
        h.send_response(200)
        h.send_header("content-type", "text/event-stream")
        h.send_header("transfer-encoding", "chunked")
        h.end_headers()
        for i, event in enumerate(events):
            if cut is not None and i >= cut:
                h.wfile.flush()
                h.connection.shutdown(socket.SHUT_RDWR)
                h.close_connection = True
                return
            data = event.encode()
            h.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            h.wfile.flush()
            if delay:
                time.sleep(delay)
        h.wfile.write(b"0\r\n\r\n")
        h.wfile.flush()
