"""A threaded loopback HTTP server that plays a :class:`Script` in two wire protocols.

- ``POST /v1/chat/completions`` (and ``/chat/completions``): OpenAI Chat Completions, streaming
  (SSE, usage in the last chunk when ``stream_options.include_usage``) and not.
- ``POST /v1/messages``: Anthropic Messages, streaming (typed SSE events) and not.

Tool-call arguments are split across chunks. Usage counts about four characters a token, and
prompt caching is simulated: a request's prefix that matches the previous request counts as a
cache read (OpenAI-style: automatic; Anthropic: only up to the last ``cache_control`` breakpoint).
"""

from __future__ import annotations

import json
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from nbagent.providers.scripted.script import Answer, CutStream, ErrorReply, Reply, Script

CHARS_PER_TOKEN = 4
ARG_CHUNK = 24  # characters of tool-call arguments per streamed chunk


def _tokens(chars: int) -> int:
    return max(0, chars // CHARS_PER_TOKEN)


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
        total = _tokens(len(text))
        if protocol == "anthropic":
            end, limit = 0, 0
            for s, marked in segments:
                end += len(s)
                if marked:
                    limit = end
            read = _tokens(min(common, limit))
            write = _tokens(limit) - read
            return total - read - write, read, write
        read = (_tokens(common) // 128) * 128
        return total, read, 0  # OpenAI reports cached tokens inside prompt_tokens


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Clients that drop a connection (resets, broken pipes) are normal here; stay quiet."""
        return None


class ScriptedModelServer:
    """Serve ``script`` on 127.0.0.1 (an ephemeral port unless given). Use as a context manager."""

    def __init__(self, script: Script, port: int = 0) -> None:
        self.script = script
        self.requests: list[RecordedRequest] = []
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

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- request handling -------------------------------------------------------------------

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # small streamed writes must not wait for delayed ACKs

            def log_message(self, format: str, *args: Any) -> None:
                return None

            def do_POST(self) -> None:
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
                answer = server.script.answer(body, protocol)
                server._serve(self, body, protocol, answer)
                record.served = time.time() - record.received

            def _json(
                self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None
            ) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

        return Handler

    def _serve(self, h: Any, body: dict[str, Any], protocol: str, answer: Answer) -> None:
        if isinstance(answer, ErrorReply):
            self._error(h, protocol, answer)
            return
        reply = answer.reply if isinstance(answer, CutStream) else answer
        cut = answer.after_chunks if isinstance(answer, CutStream) else None
        usage = self._cache.measure(body, protocol)
        model = str(body.get("model", "scripted"))
        if body.get("stream"):
            if protocol == "openai":
                include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
                events = _openai_stream(reply, model, usage, include_usage)
            else:
                events = _anthropic_stream(reply, model, usage)
            self._stream(h, events, cut, reply.delay)
        elif protocol == "openai":
            h._json(200, _openai_message(reply, model, usage))
        else:
            h._json(200, _anthropic_message(reply, model, usage))

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


# -- OpenAI Chat Completions --------------------------------------------------------------------


def _openai_usage(usage: tuple[int, int, int], reply: Reply) -> dict[str, Any]:
    prompt, read, _ = usage
    completion = (
        _tokens(
            len(reply.text) + len(reply.reasoning) + sum(len(c.arguments_json()) for c in reply.tool_calls)
        )
        + 1
    )
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": read},
    }


def _call_id(i: int, spec_id: str) -> str:
    return spec_id or f"call_{uuid.uuid4().hex[:12]}_{i}"


def _openai_message(reply: Reply, model: str, usage: tuple[int, int, int]) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": reply.text or None}
    if reply.reasoning:
        message["reasoning_content"] = reply.reasoning
    if reply.tool_calls:
        message["tool_calls"] = [
            {
                "id": _call_id(i, c.id),
                "type": "function",
                "function": {"name": c.name, "arguments": c.arguments_json()},
            }
            for i, c in enumerate(reply.tool_calls)
        ]
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex[:12]}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {"index": 0, "message": message, "finish_reason": "tool_calls" if reply.tool_calls else "stop"}
        ],
        "usage": _openai_usage(usage, reply),
    }


def _split(text: str, size: int) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]


def _words(text: str) -> list[str]:
    out, cur = [], ""
    for ch in text:
        cur += ch
        if ch in " \n" and len(cur) >= 8:
            out.append(cur)
            cur = ""
    if cur:
        out.append(cur)
    return out


def _openai_stream(reply: Reply, model: str, usage: tuple[int, int, int], include_usage: bool) -> list[str]:
    cid = f"chatcmpl-{uuid.uuid4().hex[:12]}"
    created = int(time.time())

    def chunk(
        delta: dict[str, Any], finish: str | None = None, usage_block: dict[str, Any] | None = None
    ) -> str:
        payload: dict[str, Any] = {
            "id": cid,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}] if usage_block is None else [],
        }
        if usage_block is not None:
            payload["usage"] = usage_block
        return f"data: {json.dumps(payload)}\n\n"

    events = [chunk({"role": "assistant", "content": ""})]
    events += (
        [chunk({"reasoning_content": piece}) for piece in _words(reply.reasoning)] if reply.reasoning else []
    )
    events += [chunk({"content": piece}) for piece in _words(reply.text)] if reply.text else []
    for i, call in enumerate(reply.tool_calls):
        pieces = _split(call.arguments_json(), ARG_CHUNK)
        head = {
            "index": i,
            "id": _call_id(i, call.id),
            "type": "function",
            "function": {"name": call.name, "arguments": ""},
        }
        events.append(chunk({"tool_calls": [head]}))
        events += [chunk({"tool_calls": [{"index": i, "function": {"arguments": p}}]}) for p in pieces]
    events.append(chunk({}, "tool_calls" if reply.tool_calls else "stop"))
    if include_usage:
        events.append(chunk({}, usage_block=_openai_usage(usage, reply)))
    events.append("data: [DONE]\n\n")
    return events


# -- Anthropic Messages -------------------------------------------------------------------------


def _anthropic_usage(usage: tuple[int, int, int], reply: Reply) -> dict[str, Any]:
    prompt, read, write = usage
    out = (
        _tokens(
            len(reply.text) + len(reply.reasoning) + sum(len(c.arguments_json()) for c in reply.tool_calls)
        )
        + 1
    )
    return {
        "input_tokens": prompt,
        "output_tokens": out,
        "cache_read_input_tokens": read,
        "cache_creation_input_tokens": write,
    }


def _anthropic_blocks(reply: Reply) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    if reply.reasoning:
        blocks.append({"type": "thinking", "thinking": reply.reasoning, "signature": "scripted"})
    if reply.text:
        blocks.append({"type": "text", "text": reply.text})
    for i, call in enumerate(reply.tool_calls):
        args = call.arguments if isinstance(call.arguments, dict) else {}
        blocks.append(
            {
                "type": "tool_use",
                "id": call.id or f"toolu_{uuid.uuid4().hex[:12]}_{i}",
                "name": call.name,
                "input": args,
            }
        )
    return blocks


def _anthropic_message(reply: Reply, model: str, usage: tuple[int, int, int]) -> dict[str, Any]:
    return {
        "id": f"msg_{uuid.uuid4().hex[:12]}",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": _anthropic_blocks(reply),
        "stop_reason": "tool_use" if reply.tool_calls else "end_turn",
        "stop_sequence": None,
        "usage": _anthropic_usage(usage, reply),
    }


def _anthropic_stream(reply: Reply, model: str, usage: tuple[int, int, int]) -> list[str]:
    def ev(name: str, data: dict[str, Any]) -> str:
        return f"event: {name}\ndata: {json.dumps({'type': name, **data})}\n\n"

    full_usage = _anthropic_usage(usage, reply)
    start_usage = {**full_usage, "output_tokens": 1}
    events = [
        ev(
            "message_start",
            {
                "message": {
                    "id": f"msg_{uuid.uuid4().hex[:12]}",
                    "type": "message",
                    "role": "assistant",
                    "model": model,
                    "content": [],
                    "stop_reason": None,
                    "stop_sequence": None,
                    "usage": start_usage,
                }
            },
        )
    ]
    index = 0
    if reply.reasoning:
        events.append(
            ev("content_block_start", {"index": index, "content_block": {"type": "thinking", "thinking": ""}})
        )
        events += [
            ev("content_block_delta", {"index": index, "delta": {"type": "thinking_delta", "thinking": p}})
            for p in _words(reply.reasoning)
        ]
        events.append(
            ev(
                "content_block_delta",
                {"index": index, "delta": {"type": "signature_delta", "signature": "scripted"}},
            )
        )
        events.append(ev("content_block_stop", {"index": index}))
        index += 1
    if reply.text:
        events.append(
            ev("content_block_start", {"index": index, "content_block": {"type": "text", "text": ""}})
        )
        events += [
            ev("content_block_delta", {"index": index, "delta": {"type": "text_delta", "text": p}})
            for p in _words(reply.text)
        ]
        events.append(ev("content_block_stop", {"index": index}))
        index += 1
    for i, call in enumerate(reply.tool_calls):
        block = {
            "type": "tool_use",
            "id": call.id or f"toolu_{uuid.uuid4().hex[:12]}_{i}",
            "name": call.name,
            "input": {},
        }
        events.append(ev("content_block_start", {"index": index, "content_block": block}))
        events += [
            ev(
                "content_block_delta",
                {"index": index, "delta": {"type": "input_json_delta", "partial_json": p}},
            )
            for p in _split(call.arguments_json(), ARG_CHUNK)
        ]
        events.append(ev("content_block_stop", {"index": index}))
        index += 1
    events.append(
        ev(
            "message_delta",
            {
                "delta": {
                    "stop_reason": "tool_use" if reply.tool_calls else "end_turn",
                    "stop_sequence": None,
                },
                "usage": {"output_tokens": full_usage["output_tokens"]},
            },
        )
    )
    events.append(ev("message_stop", {}))
    return events
