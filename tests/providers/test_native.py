"""NativeProvider over real HTTP: the scripted model server (both protocols) and a raw SSE server."""

from __future__ import annotations

import asyncio
import gc
import json
import warnings
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from typing import Any

import pytest

from nbagent.core.errors import ContextTooLong, ProviderError
from nbagent.providers import models
from nbagent.providers.base import (
    Chunk,
    ModelRequest,
    ReasoningChunk,
    StepDone,
    TextChunk,
    ToolCallStarted,
)
from nbagent.providers.native import LOCAL_SERVER_KEY, NativeProvider, supports
from nbagent.providers.scripted import CutStream, ErrorReply, ListScript, Reply, ToolCallSpec
from nbagent.providers.scripted.server import ScriptedModelServer
from tests.conftest import Serve

KEY = "sk-test-secret-0123456789"
PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
MODELS = {"openai": "openai/gpt-4.1", "anthropic": "anthropic/claude-sonnet-4-5"}
BOTH = pytest.mark.parametrize("protocol", ["openai", "anthropic"])

READ_SCHEMA = {
    "type": "object",
    "properties": {"file_path": {"type": "string"}},
    "required": ["file_path"],
}
TOOLS: list[dict[str, Any]] = [
    {
        "type": "function",
        "function": {"name": "read", "description": "Read a file.", "parameters": READ_SCHEMA},
    },
    {
        "type": "function",
        "function": {
            "name": "bash",
            "description": "Run a command.",
            "parameters": {"type": "object", "properties": {"command": {"type": "string"}}},
        },
        "cache_control": {"type": "ephemeral"},
    },
]


def history() -> list[dict[str, Any]]:
    """OpenAI-format history as nbagent.providers.wire builds it, with cache breakpoints added."""
    return [
        {
            "role": "system",
            "content": [
                {
                    "type": "text",
                    "text": "You are a coding agent. " * 40,
                    "cache_control": {"type": "ephemeral"},
                }
            ],
        },
        {"role": "user", "content": "Fix the bug in app.py."},
        {
            "role": "assistant",
            "content": "Reading both files.",
            "tool_calls": [
                {
                    "id": "c1",
                    "type": "function",
                    "function": {"name": "read", "arguments": '{"file_path": "app.py"}'},
                },
                {
                    "id": "c2",
                    "type": "function",
                    "function": {"name": "bash", "arguments": '{"command": "ls"}'},
                },
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "def main():\n    return 1\n"},
        {"role": "tool", "tool_call_id": "c2", "content": "app.py\nshot.png\n"},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Images returned by the tools above:"},
                {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
            ],
        },
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [
                {"id": "c3", "type": "function", "function": {"name": "bash", "arguments": "not json"}}
            ],
        },
        {
            "role": "tool",
            "tool_call_id": "c3",
            "content": [{"type": "text", "text": "ok", "cache_control": {"type": "ephemeral"}}],
        },
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Now run the tests."},
                {"type": "image_url", "image_url": {"url": "https://example.test/diagram.png"}},
            ],
        },
    ]


def base_of(server: ScriptedModelServer, protocol: str) -> str:
    return server.openai_base if protocol == "openai" else server.anthropic_base


def make_request(server: ScriptedModelServer, protocol: str, **kwargs: Any) -> ModelRequest:
    fields: dict[str, Any] = {
        "model": MODELS[protocol],
        "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}],
        "tools": [],
        "api_base": base_of(server, protocol),
        "api_key": KEY,
    }
    fields.update(kwargs)
    return ModelRequest(**fields)


async def collect(provider: Any, request: ModelRequest) -> list[Chunk]:
    return [chunk async for chunk in provider.stream(request)]


async def failure(provider: Any, request: ModelRequest) -> ProviderError:
    with pytest.raises(ProviderError) as info:
        await collect(provider, request)
    return info.value


@pytest.fixture
async def native() -> AsyncIterator[NativeProvider]:
    provider = NativeProvider()
    yield provider
    await provider.close()


def completion_tokens(reply: Reply) -> int:
    """What the scripted server bills for a reply (about four characters a token, plus one)."""
    chars = len(reply.text) + len(reply.reasoning) + sum(len(c.arguments_json()) for c in reply.tool_calls)
    return chars // 4 + 1


REPLY = Reply(
    text="I will read the file and then run the whole test suite for you.",
    reasoning="The user wants a fix; first look at the code, then the tests.",
    tool_calls=[
        ToolCallSpec("read", {"file_path": "src/some/deeply/nested/module/app.py"}, id="call_a"),
        ToolCallSpec("bash", {"command": "python -m pytest -q tests/test_app.py -k 'not slow'"}, id="call_b"),
        ToolCallSpec("grep", {"pattern": "def main", "path": "src", "output_mode": "content"}, id="call_c"),
    ],
)


# -- streaming --------------------------------------------------------------------------------


@BOTH
async def test_streams_reasoning_text_and_tool_calls(
    serve: Serve, native: NativeProvider, protocol: str
) -> None:
    server = serve(ListScript([REPLY]))
    chunks = await collect(native, make_request(server, protocol, tools=TOOLS))

    reasoning = [c for c in chunks if isinstance(c, ReasoningChunk)]
    texts = [c for c in chunks if isinstance(c, TextChunk)]
    assert len(reasoning) > 1 and len(texts) > 1  # streamed in pieces, not buffered
    assert "".join(c.text for c in reasoning) == REPLY.reasoning
    assert "".join(c.text for c in texts) == REPLY.text
    started = [c for c in chunks if isinstance(c, ToolCallStarted)]
    assert [(c.index, c.call_id, c.name) for c in started] == [
        (0, "call_a", "read"),
        (1, "call_b", "bash"),
        (2, "call_c", "grep"),
    ]
    done = chunks[-1]
    assert isinstance(done, StepDone) and sum(isinstance(c, StepDone) for c in chunks) == 1
    assert done.finish_reason == "tool_calls"
    assert [(c.call_id, c.name) for c in done.tool_calls] == [(s.id, s.name) for s in REPLY.tool_calls]
    for call, spec in zip(done.tool_calls, REPLY.tool_calls, strict=True):
        assert len(call.arguments) > 24  # arrived in several pieces (24 characters each)
        assert json.loads(call.arguments) == spec.arguments
    # Each call is announced before its arguments finish: the StepDone comes after all starts.
    assert chunks.index(started[-1]) < len(chunks) - 1
    assert done.usage.output_tokens == completion_tokens(REPLY)
    assert done.usage.input_tokens > 0
    assert done.usage.cost == pytest.approx(models.cost(MODELS[protocol], done.usage))
    assert done.usage.cost is not None and done.usage.cost > 0


@BOTH
async def test_plain_text_reply_finishes_with_stop(
    serve: Serve, native: NativeProvider, protocol: str
) -> None:
    server = serve(ListScript([Reply(text="All done here.")]))
    chunks = await collect(native, make_request(server, protocol))
    assert "".join(c.text for c in chunks if isinstance(c, TextChunk)) == "All done here."
    done = chunks[-1]
    assert isinstance(done, StepDone) and done.finish_reason == "stop" and done.tool_calls == []


async def test_openai_request_shape(serve: Serve, native: NativeProvider) -> None:
    server = serve(ListScript([Reply(text="ok")]))
    request = make_request(
        server, "openai", messages=history(), tools=TOOLS, max_tokens=1234, prompt_cache_key="ses_1"
    )
    await collect(native, request)

    sent = server.requests[0]
    assert sent.path == "/v1/chat/completions"
    assert sent.headers["authorization"] == f"Bearer {KEY}"
    body = sent.body
    assert body["model"] == "gpt-4.1"
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    assert body["max_tokens"] == 1234  # a compatible server (custom base) takes max_tokens
    assert body["prompt_cache_key"] == "ses_1"
    assert "cache_control" not in json.dumps(body)
    # Otherwise the history goes through unchanged.
    stripped = json.loads(json.dumps(history()).replace(', "cache_control": {"type": "ephemeral"}', ""))
    assert body["messages"] == stripped
    assert [t["function"]["name"] for t in body["tools"]] == ["read", "bash"]
    assert body["tools"][0] == TOOLS[0]


async def test_anthropic_request_translation(serve: Serve, native: NativeProvider) -> None:
    server = serve(ListScript([Reply(text="ok")]))
    await collect(native, make_request(server, "anthropic", messages=history(), tools=TOOLS))

    sent = server.requests[0]
    assert sent.path == "/v1/messages"
    assert sent.headers["x-api-key"] == KEY
    assert sent.headers["anthropic-version"] == "2023-06-01"
    assert "authorization" not in {k.lower() for k in sent.headers}
    body = sent.body
    assert body["model"] == "claude-sonnet-4-5"
    assert body["stream"] is True
    assert body["max_tokens"] == 64000  # the model's output limit from the price map
    assert body["system"] == [
        {"type": "text", "text": "You are a coding agent. " * 40, "cache_control": {"type": "ephemeral"}}
    ]
    assert body["tools"] == [
        {"name": "read", "input_schema": READ_SCHEMA, "description": "Read a file."},
        {
            "name": "bash",
            "input_schema": {"type": "object", "properties": {"command": {"type": "string"}}},
            "description": "Run a command.",
            "cache_control": {"type": "ephemeral"},
        },
    ]
    assert body["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "Fix the bug in app.py."}]},
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "Reading both files."},
                {"type": "tool_use", "id": "c1", "name": "read", "input": {"file_path": "app.py"}},
                {"type": "tool_use", "id": "c2", "name": "bash", "input": {"command": "ls"}},
            ],
        },
        {
            "role": "user",  # both results and the image message merged into one turn, results first
            "content": [
                {"type": "tool_result", "tool_use_id": "c1", "content": "def main():\n    return 1\n"},
                {"type": "tool_result", "tool_use_id": "c2", "content": "app.py\nshot.png\n"},
                {"type": "text", "text": "Images returned by the tools above:"},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
            ],
        },
        {
            "role": "assistant",  # empty text dropped (the API rejects empty text blocks)
            "content": [{"type": "tool_use", "id": "c3", "name": "bash", "input": {}}],
        },
        {
            "role": "user",
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": "c3",
                    "content": [{"type": "text", "text": "ok", "cache_control": {"type": "ephemeral"}}],
                },
                {"type": "text", "text": "Now run the tests."},
                {"type": "image", "source": {"type": "url", "url": "https://example.test/diagram.png"}},
            ],
        },
    ]


async def test_anthropic_max_tokens_from_request_or_default(serve: Serve, native: NativeProvider) -> None:
    server = serve(ListScript([Reply(text="ok")] * 2))
    await collect(native, make_request(server, "anthropic", max_tokens=777))
    await collect(native, make_request(server, "anthropic", model="anthropic/claude-not-in-the-map"))
    assert server.requests[0].body["max_tokens"] == 777
    assert server.requests[1].body["max_tokens"] == 8192
    assert server.requests[1].body["model"] == "claude-not-in-the-map"


@BOTH
async def test_usage_counts_cached_prefix(serve: Serve, native: NativeProvider, protocol: str) -> None:
    server = serve(ListScript([Reply(text="first"), Reply(text="second")]))
    messages = history()
    first = await collect(native, make_request(server, protocol, messages=messages, tools=TOOLS))
    messages.append({"role": "assistant", "content": "first"})
    messages.append({"role": "user", "content": "and then?"})
    second = await collect(native, make_request(server, protocol, messages=messages, tools=TOOLS))

    one, two = first[-1], second[-1]
    assert isinstance(one, StepDone) and isinstance(two, StepDone)
    assert one.usage.cache_read_tokens == 0
    assert two.usage.cache_read_tokens > 0
    assert two.usage.input_tokens > two.usage.cache_read_tokens + two.usage.cache_write_tokens
    if protocol == "anthropic":
        # The breakpoints were honoured: the first request wrote the cache, the second read it.
        assert one.usage.cache_write_tokens > 0
        assert two.usage.cache_read_tokens >= one.usage.cache_write_tokens
    for done in (one, two):
        assert done.usage.cost == pytest.approx(models.cost(MODELS[protocol], done.usage))
    assert two.usage.cost is not None and one.usage.cost is not None
    assert two.usage.cost < one.usage.cost * 1.5  # cached reads are cheap


async def test_unknown_model_has_no_cost(serve: Serve, native: NativeProvider) -> None:
    server = serve(ListScript([Reply(text="ok")]))
    chunks = await collect(native, make_request(server, "openai", model="openai/scripted"))
    done = chunks[-1]
    assert isinstance(done, StepDone) and done.usage.cost is None and done.usage.input_tokens > 0


# -- errors -----------------------------------------------------------------------------------


@BOTH
async def test_rate_limit_is_retryable_with_retry_after(
    serve: Serve, native: NativeProvider, protocol: str
) -> None:
    server = serve(
        ListScript(
            [
                ErrorReply(429, "slow down", headers={"retry-after": "7"}),
                ErrorReply(429, "slow down", headers={"retry-after-ms": "1500"}),
            ]
        )
    )
    first = await failure(native, make_request(server, protocol))
    assert first.kind == "rate_limit" and first.retryable and first.retry_after == 7.0
    assert "slow down" in str(first) and "429" in str(first)
    second = await failure(native, make_request(server, protocol))
    assert second.retry_after == 1.5


@pytest.mark.parametrize(
    ("protocol", "status", "kind"),
    [
        ("anthropic", 529, "overloaded"),
        ("openai", 503, "overloaded"),
        ("openai", 500, "server"),
        ("anthropic", 502, "server"),
        ("openai", 504, "timeout"),
        ("anthropic", 408, "timeout"),
        ("openai", 599, "server"),
    ],
)
async def test_server_errors_are_retryable(
    serve: Serve, native: NativeProvider, protocol: str, status: int, kind: str
) -> None:
    server = serve(ListScript([ErrorReply(status, "try later")]))
    error = await failure(native, make_request(server, protocol))
    assert (error.kind, error.retryable) == (kind, True)
    assert not isinstance(error, ContextTooLong)


@BOTH
async def test_auth_failure_names_the_key_variable(
    serve: Serve, native: NativeProvider, protocol: str
) -> None:
    server = serve(ListScript([ErrorReply(401, "invalid x-api-key"), ErrorReply(403, "no access to model")]))
    error = await failure(native, make_request(server, protocol))
    variable = "OPENAI_API_KEY" if protocol == "openai" else "ANTHROPIC_API_KEY"
    assert error.kind == "auth" and not error.retryable
    assert variable in error.hint and "--api-key" in error.hint
    assert "invalid x-api-key" in str(error)
    assert KEY not in str(error) and KEY not in error.hint
    denied = await failure(native, make_request(server, protocol))
    assert denied.kind == "permission" and not denied.retryable and variable in denied.hint


@pytest.mark.parametrize(
    ("protocol", "reply"),
    [
        (
            "anthropic",
            ErrorReply(
                400, "prompt is too long: 212000 tokens > 200000 maximum", error_type="invalid_request_error"
            ),
        ),
        ("openai", ErrorReply(400, "Input exceeds the window.", error_type="context_length_exceeded")),
        (
            "openai",
            ErrorReply(
                400,
                "This model's maximum context length is 128000 tokens.",
                error_type="invalid_request_error",
            ),
        ),
    ],
)
async def test_context_too_long(
    serve: Serve, native: NativeProvider, protocol: str, reply: ErrorReply
) -> None:
    server = serve(ListScript([reply]))
    error = await failure(native, make_request(server, protocol))
    assert isinstance(error, ContextTooLong)
    assert error.kind == "context_too_long" and not error.retryable
    assert "/compact" in error.hint


@BOTH
async def test_other_client_errors_are_final(serve: Serve, native: NativeProvider, protocol: str) -> None:
    server = serve(
        ListScript(
            [
                ErrorReply(400, "tools.0.name: bad name " + "x" * 5000, error_type="invalid_request_error"),
                ErrorReply(404, "model not found"),
                ErrorReply(422, "unprocessable"),
            ]
        )
    )
    bad = await failure(native, make_request(server, protocol))
    assert (bad.kind, bad.retryable, type(bad)) == ("bad_request", False, ProviderError)
    assert "tools.0.name: bad name" in str(bad)
    assert len(str(bad)) < 700  # the provider's text is shown, bounded
    missing = await failure(native, make_request(server, protocol))
    assert (missing.kind, missing.retryable) == ("not_found", False)
    unprocessable = await failure(native, make_request(server, protocol))
    assert (unprocessable.kind, unprocessable.retryable) == ("bad_request", False)


@BOTH
async def test_cut_stream_is_retryable(serve: Serve, native: NativeProvider, protocol: str) -> None:
    server = serve(ListScript([CutStream(REPLY, after_chunks=4), Reply(text="whole")]))
    error = await failure(native, make_request(server, protocol))
    assert error.kind == "stream_broken" and error.retryable
    # The pool recovers: the next request on the same provider works.
    chunks = await collect(native, make_request(server, protocol))
    assert "".join(c.text for c in chunks if isinstance(c, TextChunk)) == "whole"


@BOTH
async def test_stalled_stream_times_out(serve: Serve, protocol: str) -> None:
    server = serve(ListScript([Reply(text="a slow answer that takes a while", delay=2.0)]))
    provider = NativeProvider(timeout=0.3)
    try:
        loop = asyncio.get_running_loop()
        start = loop.time()
        error = await failure(provider, make_request(server, protocol))
        assert loop.time() - start < 1.8
    finally:
        await provider.close()
    assert error.kind == "timeout" and error.retryable


async def test_unreachable_server_is_a_connection_error(native: NativeProvider) -> None:
    probe = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = probe.sockets[0].getsockname()[1]
    probe.close()
    await probe.wait_closed()
    request = ModelRequest(
        model="openai/gpt-4.1", messages=[], tools=[], api_base=f"http://127.0.0.1:{port}/v1", api_key=KEY
    )
    error = await failure(native, request)
    assert error.kind == "connection" and error.retryable


# -- keys and routes --------------------------------------------------------------------------


@BOTH
async def test_missing_key_fails_before_sending(
    serve: Serve, native: NativeProvider, protocol: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    variable = "OPENAI_API_KEY" if protocol == "openai" else "ANTHROPIC_API_KEY"
    monkeypatch.delenv(variable, raising=False)
    for name in ("OPENAI_BASE_URL", "OPENAI_API_BASE", "ANTHROPIC_API_BASE", "ANTHROPIC_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    request = ModelRequest(model=MODELS[protocol], messages=[{"role": "user", "content": "hi"}], tools=[])
    error = await failure(native, request)
    assert error.kind == "auth" and not error.retryable
    assert error.hint == f"Set {variable} in the environment (or pass --api-key)."


@BOTH
async def test_key_from_environment_or_dummy_for_custom_base(
    serve: Serve, native: NativeProvider, protocol: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    variable = "OPENAI_API_KEY" if protocol == "openai" else "ANTHROPIC_API_KEY"
    header = "authorization" if protocol == "openai" else "x-api-key"
    server = serve(ListScript([Reply(text="ok")] * 2))
    monkeypatch.setenv(variable, "from-env")
    await collect(native, make_request(server, protocol, api_key=None))
    monkeypatch.delenv(variable)
    await collect(native, make_request(server, protocol, api_key=None))
    first, second = (r.headers[header] for r in server.requests)
    assert first.endswith("from-env")
    assert second.endswith(LOCAL_SERVER_KEY)


@BOTH
async def test_base_from_environment(
    serve: Serve, native: NativeProvider, protocol: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = serve(ListScript([Reply(text="ok")]))
    monkeypatch.setenv(
        "OPENAI_BASE_URL" if protocol == "openai" else "ANTHROPIC_BASE_URL", base_of(server, protocol)
    )
    await collect(native, make_request(server, protocol, api_base=None))
    assert len(server.requests) == 1


@pytest.mark.parametrize(
    ("model", "base_suffix", "path", "wire_name"),
    [
        ("ollama_chat/qwen3:8b", "", "/v1/chat/completions", "qwen3:8b"),  # litellm-style base without /v1
        ("ollama_chat/qwen3:8b", "/v1", "/v1/chat/completions", "qwen3:8b"),
        ("hosted_vllm/Qwen/Qwen3-Coder", "/v1", "/v1/chat/completions", "Qwen/Qwen3-Coder"),
        ("lm_studio/qwen3", "/v1", "/v1/chat/completions", "qwen3"),
        ("deepseek/deepseek-chat", "/v1", "/v1/chat/completions", "deepseek-chat"),
        ("groq/openai/gpt-oss-120b", "/v1", "/v1/chat/completions", "openai/gpt-oss-120b"),
        ("xai/grok-4.3", "/v1", "/v1/chat/completions", "grok-4.3"),
        (
            "openrouter/anthropic/claude-sonnet-4.5",
            "/v1",
            "/v1/chat/completions",
            "anthropic/claude-sonnet-4.5",
        ),
        ("anthropic/claude-sonnet-4-5", "/v1", "/v1/messages", "claude-sonnet-4-5"),
        ("anthropic/claude-sonnet-4-5", "/v1/messages", "/v1/messages", "claude-sonnet-4-5"),
    ],
)
async def test_routes(
    serve: Serve, native: NativeProvider, model: str, base_suffix: str, path: str, wire_name: str
) -> None:
    server = serve(ListScript([Reply(text="ok")]))
    request = ModelRequest(model=model, messages=history(), tools=TOOLS, api_base=server.url + base_suffix)
    chunks = await collect(native, request)
    assert isinstance(chunks[-1], StepDone)
    sent = server.requests[0]
    assert (sent.path, sent.body["model"]) == (path, wire_name)
    if model.startswith("openrouter/"):  # OpenRouter forwards breakpoints to the models that use them
        assert "cache_control" in json.dumps(sent.body)
    if model.startswith("deepseek/"):
        assert "prompt_cache_key" not in sent.body


async def test_vllm_needs_a_base(native: NativeProvider, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HOSTED_VLLM_API_BASE", raising=False)
    error = await failure(native, ModelRequest(model="hosted_vllm/qwen", messages=[], tools=[]))
    assert error.kind == "config" and "--api-base" in error.hint


def test_supports() -> None:
    for model in (
        "anthropic/claude-sonnet-4-5",
        "openai/gpt-4.1",
        "openai/my-local-model",
        "hosted_vllm/x",
        "ollama_chat/llama3",
        "deepseek/deepseek-chat",
        "groq/llama-3.3-70b-versatile",
        "openrouter/anthropic/claude-sonnet-4.5",
        "xai/grok-4.3",
        "lm_studio/qwen",
    ):
        assert supports(model), model
        assert NativeProvider.supports(model)
    for model in (
        "gemini/gemini-2.5-pro",
        "bedrock/anthropic.claude-3",
        "gpt-4.1",  # bare names stay with litellm's provider inference
        "anthropic/",
        "openai/o3-pro",  # served on the Responses API only
        "openai/gpt-5-codex",
    ):
        assert not supports(model), model


# -- a raw SSE server: keep-alive, protocol end markers, mid-stream errors ------------------------


@dataclass
class RawSSE:
    """An asyncio HTTP/1.1 server that answers every POST with the given SSE events."""

    events: list[str]
    content_type: str = "text/event-stream"
    connections: int = 0
    requests: int = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.decode().split("\r\n"):
                    name, _, value = line.partition(":")
                    if name.lower() == "content-length":
                        length = int(value)
                await reader.readexactly(length)
                self.requests += 1
                writer.write(
                    b"HTTP/1.1 200 OK\r\ncontent-type: %s\r\ntransfer-encoding: chunked\r\n\r\n"
                    % self.content_type.encode()
                )
                for event in self.events:
                    data = event.encode()
                    writer.write(b"%x\r\n%s\r\n" % (len(data), data))
                writer.write(b"0\r\n\r\n")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


@pytest.fixture
async def raw_sse() -> AsyncIterator[Callable[[list[str]], Any]]:
    servers: list[asyncio.Server] = []

    async def start(events: list[str], content_type: str = "text/event-stream") -> tuple[RawSSE, str]:
        state = RawSSE(events, content_type)
        server = await asyncio.start_server(state.handle, "127.0.0.1", 0)
        servers.append(server)
        return state, f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"

    yield start
    for server in servers:
        server.close()


def sse(data: dict[str, Any] | str, event: str | None = None) -> str:
    text = data if isinstance(data, str) else json.dumps(data)
    return (f"event: {event}\n" if event else "") + f"data: {text}\n\n"


def openai_delta(delta: dict[str, Any], finish: str | None = None) -> str:
    return sse({"choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})


async def test_one_connection_is_kept_alive(raw_sse: Any, native: NativeProvider) -> None:
    state, url = await raw_sse([openai_delta({"content": "hi"}), openai_delta({}, "stop"), sse("[DONE]")])
    request = ModelRequest(model="openai/x", messages=[], tools=[], api_base=url + "/v1", api_key=KEY)
    for _ in range(5):
        chunks = await collect(native, request)
        assert isinstance(chunks[-1], StepDone)
    assert (state.requests, state.connections) == (5, 1)


@pytest.mark.parametrize(
    ("protocol", "events"),
    [
        ("openai", [openai_delta({"content": "half an ans"})]),  # neither finish_reason nor [DONE]
        (
            "anthropic",
            [
                sse({"type": "message_start", "message": {"usage": {"input_tokens": 5, "output_tokens": 1}}}),
                sse(
                    {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}
                ),
                sse(
                    {
                        "type": "content_block_delta",
                        "index": 0,
                        "delta": {"type": "text_delta", "text": "half"},
                    }
                ),
            ],  # no message_stop
        ),
    ],
)
async def test_stream_ending_early_is_retryable(
    raw_sse: Any, native: NativeProvider, protocol: str, events: list[str]
) -> None:
    _, url = await raw_sse(events)
    request = ModelRequest(model=MODELS[protocol], messages=[], tools=[], api_base=url, api_key=KEY)
    if protocol == "openai":
        request = replace(request, api_base=url + "/v1")
    error = await failure(native, request)
    assert error.kind == "stream_broken" and error.retryable


@pytest.mark.parametrize(
    ("protocol", "event", "kind", "retryable"),
    [
        (
            "anthropic",
            sse({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}, "error"),
            "overloaded",
            True,
        ),
        (
            "anthropic",
            sse(
                {
                    "type": "error",
                    "error": {"type": "invalid_request_error", "message": "prompt is too long: 9 > 8"},
                },
                "error",
            ),
            "context_too_long",
            False,
        ),
        (
            "openai",
            sse({"error": {"message": "upstream failed", "type": "server_error", "code": 502}}),
            "server",
            True,
        ),
        ("openai", sse({"error": {"message": "boom", "type": "weird"}}), "server", True),
    ],
)
async def test_error_event_mid_stream(
    raw_sse: Any, native: NativeProvider, protocol: str, event: str, kind: str, retryable: bool
) -> None:
    _, url = await raw_sse([event])
    base = url + "/v1" if protocol == "openai" else url
    request = ModelRequest(model=MODELS[protocol], messages=[], tools=[], api_base=base, api_key=KEY)
    error = await failure(native, request)
    assert (error.kind, error.retryable) == (kind, retryable)


@pytest.mark.parametrize(
    ("body", "kind", "retryable"),
    [
        ({"error": {"message": "upstream overloaded", "type": "overloaded_error"}}, "overloaded", True),
        ({"object": "list", "data": []}, "bad_request", False),  # a whole chat reply is read: test_quirks_*
    ],
)
async def test_answer_that_is_not_a_stream(
    raw_sse: Any, native: NativeProvider, body: dict[str, Any], kind: str, retryable: bool
) -> None:
    _, url = await raw_sse([json.dumps(body)], "application/json")
    request = ModelRequest(model="openai/x", messages=[], tools=[], api_base=url + "/v1", api_key=KEY)
    error = await failure(native, request)
    assert (error.kind, error.retryable) == (kind, retryable)


async def test_openai_compatible_variants(raw_sse: Any, native: NativeProvider) -> None:
    """`reasoning` (Ollama, OpenRouter) instead of `reasoning_content`, calls without index, Groq usage."""
    _, url = await raw_sse(
        [
            openai_delta({"role": "assistant", "reasoning": "let me think"}),
            openai_delta({"content": "ok"}),
            openai_delta(
                {"tool_calls": [{"id": "t1", "function": {"name": "read", "arguments": '{"file_path":"a"}'}}]}
            ),
            openai_delta(
                {"tool_calls": [{"id": "t2", "function": {"name": "bash", "arguments": {"command": "ls"}}}]}
            ),
            sse(
                {
                    "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}],
                    "x_groq": {
                        "usage": {
                            "prompt_tokens": 30,
                            "completion_tokens": 4,
                            "prompt_tokens_details": {"cached_tokens": 10},
                            "completion_tokens_details": {"reasoning_tokens": 2},
                        }
                    },
                }
            ),
        ]  # no [DONE]: a finish_reason is enough
    )
    request = ModelRequest(model="openai/x", messages=[], tools=[], api_base=url + "/v1", api_key=KEY)
    chunks = await collect(native, request)
    assert chunks[:2] == [ReasoningChunk("let me think"), TextChunk("ok")]
    assert chunks[2:4] == [ToolCallStarted(0, "t1", "read"), ToolCallStarted(1, "t2", "bash")]
    done = chunks[-1]
    assert isinstance(done, StepDone)
    assert [(c.name, json.loads(c.arguments)) for c in done.tool_calls] == [
        ("read", {"file_path": "a"}),
        ("bash", {"command": "ls"}),
    ]
    assert (done.usage.input_tokens, done.usage.output_tokens, done.usage.cache_read_tokens) == (30, 4, 10)
    assert done.usage.reasoning_tokens == 2


def test_a_provider_survives_event_loops_ending() -> None:
    """`asyncio.run` per turn: the pooled client is rebuilt on the new loop instead of failing."""
    with ScriptedModelServer(ListScript([Reply(text="one"), Reply(text="two")])) as server:
        provider = NativeProvider()
        request = make_request(server, "openai")
        texts = []
        for _ in range(2):
            chunks = asyncio.run(collect(provider, request))
            texts.append("".join(c.text for c in chunks if isinstance(c, TextChunk)))
        asyncio.run(provider.close())
    assert texts == ["one", "two"]
    # The first loop's connection could not be closed once that loop ended: collect it here, so its
    # ResourceWarning does not surface in whichever test runs next.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()


# -- the same conversation through litellm --------------------------------------------------------


@BOTH
async def test_same_chunks_as_litellm(serve: Serve, native: NativeProvider, protocol: str) -> None:
    """Same script, same history: the same chunks, calls, usage and cost through both backends.

    The history has no earlier tool calls: for Anthropic litellm tags every tool "type": "custom"
    and adds a dummy tool, which changes the prompt size the scripted server bills (the
    translation itself is pinned by test_anthropic_request_translation).
    """
    from nbagent.providers.litellm_provider import LiteLLMProvider

    script = [REPLY, Reply(text="Second answer, all text.", reasoning="short")]
    messages = [history()[0], history()[1], {"role": "assistant", "content": "Looking."}, history()[5]]
    outputs = []
    for provider in (native, LiteLLMProvider()):
        server = serve(ListScript(list(script)))
        steps = [await collect(provider, make_request(server, protocol, messages=messages)) for _ in script]
        outputs.append(steps)
    for ours, theirs in zip(*outputs, strict=True):
        assert [c for c in ours if not isinstance(c, StepDone)] == [
            c for c in theirs if not isinstance(c, StepDone)
        ]
        done, expected = ours[-1], theirs[-1]
        assert isinstance(done, StepDone) and isinstance(expected, StepDone)
        assert done.tool_calls == expected.tool_calls
        assert done.finish_reason == expected.finish_reason
        # litellm estimates reasoning tokens with a tokenizer when the provider reports none; we report none.
        fields = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens")
        assert {f: getattr(done.usage, f) for f in fields} == {f: getattr(expected.usage, f) for f in fields}
        assert done.usage.cost == pytest.approx(expected.usage.cost)
    first, second = outputs[0]
    assert sum(isinstance(c, ToolCallStarted) for c in first) == 3
    assert isinstance(second[-1], StepDone) and second[-1].usage.cache_read_tokens > 0


async def test_anthropic_history_with_tool_blocks_but_no_tools(serve: Serve, native: NativeProvider) -> None:
    server = serve(ListScript([Reply(text="summary")]))
    await collect(native, make_request(server, "anthropic", messages=history(), tools=[]))
    tools = server.requests[0].body["tools"]
    assert [t["name"] for t in tools] == ["no_tools"]


def test_choosing_the_path_imports_neither_httpx_nor_litellm() -> None:
    import subprocess
    import sys

    code = (
        "import sys; from nbagent.providers.native import supports; "
        "print(supports('anthropic/claude-sonnet-4-5'), supports('openai/gpt-4.1'), "
        "'httpx' in sys.modules, 'litellm' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["True", "True", "False", "False"]


@BOTH
async def test_a_session_turn_through_the_native_client(
    serve: Serve, native: NativeProvider, protocol: str, tmp_path: Any
) -> None:
    from nbagent.core.events import ToolCallCompleted, TurnFinished
    from tests.conftest import collect as run_turn
    from tests.conftest import make_session

    script = ListScript(
        [
            Reply(tool_calls=[ToolCallSpec("write", {"file_path": "hi.py", "content": "print('hi')\n"})]),
            Reply(tool_calls=[ToolCallSpec("bash", {"command": "python3 hi.py", "description": "run"})]),
            Reply(text="It prints hi."),
        ]
    )
    server = serve(script)
    session = make_session(tmp_path, server, protocol, provider=native)
    events = await run_turn(session, "write hi.py and run it")
    done = [e for e in events if isinstance(e, ToolCallCompleted)]
    assert [e.tool for e in done] == ["write", "bash"] and "hi" in done[1].output
    finished = events[-1]
    assert isinstance(finished, TurnFinished) and finished.reason == "stop" and finished.steps == 3
    assert finished.usage.input_tokens > 0
    assert (finished.usage.cost is not None) == (protocol == "anthropic")  # "openai/scripted" has no prices
    # The model saw the tool results in its own protocol's shape.
    body = json.dumps(server.requests[-1].body)
    assert ("tool_result" in body) == (protocol == "anthropic")
