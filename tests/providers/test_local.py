"""The context window of a local or self-hosted model, read from the server, cached, and overridden.

Each server kind is played by the scripted model plus the routes that kind answers (Ollama
``POST /api/show``, vLLM ``GET /v1/models``, llama.cpp ``GET /props``), on 127.0.0.1.
"""

from __future__ import annotations

import socket
import stat
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from nbagent.core.commands import run_command
from nbagent.core.config import Config, ModelLimits, RetryConfig
from nbagent.core.context.budget import DEFAULT_CONTEXT, model_limits
from nbagent.core.events import TurnFinished, UsageUpdated
from nbagent.core.session import Session
from nbagent.providers import local
from nbagent.providers.scripted import ListScript, Reply
from nbagent.providers.scripted.info import InfoReply, LocalModelServer
from tests.conftest import _OPEN_SESSIONS, checked_servers, collect

VLLM = {"GET /v1/models": {"object": "list", "data": [{"id": "coder", "max_model_len": 12_288}]}}
LLAMA_CPP = {
    # llama.cpp lists the loaded model without max_model_len; /props has the window per slot
    "GET /v1/models": {"data": [{"id": "qwen2.5-coder-7b-q4_k_m.gguf", "meta": {"n_ctx_train": 32_768}}]},
    "GET /props": {"default_generation_settings": {"n_ctx": 6_144}, "total_slots": 1},
}
OLLAMA_SHOW = {
    "model_info": {"general.architecture": "gemma2", "gemma2.context_length": 131_072},
    "parameters": 'stop "<end_of_turn>"\nnum_ctx 16384',
}


@pytest.fixture
def local_server() -> Iterator[Any]:
    with checked_servers() as servers:

        def start(info: dict[str, Any], *replies: Reply) -> LocalModelServer:
            server = LocalModelServer(ListScript(list(replies)), info, exact=True).start()
            servers.append(server)
            return server

        yield start


def _config(model: str, base: str, **models: ModelLimits) -> Config:
    return Config(model=model, api_base=base, retry=RetryConfig(base_delay=0.0), models=models)


def _session(root: Path, config: Config) -> Session:
    session = Session(root, config, headless="allow")
    _OPEN_SESSIONS.append(session)
    return session


@pytest.mark.parametrize(
    ("kind", "model", "info", "expected", "said"),
    [
        ("vllm", "hosted_vllm/coder", VLLM, 12_288, "GET /v1/models (max_model_len)"),
        ("llama.cpp", "openai/local", LLAMA_CPP, 6_144, "GET /props (default_generation_settings.n_ctx)"),
        ("ollama", "ollama_chat/gemma2", {"POST /api/show": OLLAMA_SHOW}, 16_384, "POST /api/show (num_ctx)"),
    ],
)
async def test_a_session_uses_the_window_the_server_gives(
    tmp_path: Path, local_server: Any, kind: str, model: str, info: dict[str, Any], expected: int, said: str
) -> None:
    server = local_server(info, Reply(text="Hello from a local model."))
    base = server.url if kind == "ollama" else server.openai_base  # Ollama's base is given without /v1
    session = _session(tmp_path, _config(model, base))
    events = await collect(session, "hi")
    assert isinstance(events[-1], TurnFinished) and events[-1].reason == "stop"
    usage = next(e for e in events if isinstance(e, UsageUpdated))
    assert usage.context_limit == expected  # the first step already knew the window
    assert session.limits.known and session.limits.context == expected
    assert server.requests[0].path.endswith("/v1/chat/completions")
    if kind == "ollama":
        assert server.info_requests[0].body == {"model": "gemma2"}
    report = await run_command(session, "/context")
    assert f"{expected:,} tokens" in report.text and said in report.text


def test_ollama_gives_the_model_context_length_without_num_ctx(tmp_path: Path, local_server: Any) -> None:
    show = {"model_info": {"llama.context_length": 131_072, "llama.embedding_length": 4096}, "parameters": ""}
    server = local_server({"POST /api/show": show})
    limits = model_limits("ollama_chat/llama3.1", _config("ollama_chat/llama3.1", server.url))
    assert limits.pending is not None
    assert limits.pending.result(timeout=5).context == 131_072


async def test_the_window_is_cached_per_server_and_model(
    tmp_path: Path, local_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOSTED_VLLM_API_KEY", "sk-local-secret-1234")
    server = local_server(VLLM)
    config = _config("hosted_vllm/coder", server.openai_base)
    first = await model_limits("hosted_vllm/coder", config).settled()
    assert first.context == 12_288 and "cached" not in first.source
    assert server.info_requests[0].headers.get("authorization") == "Bearer sk-local-secret-1234"
    asked = len(server.info_requests)

    again = model_limits("hosted_vllm/coder", config)  # another session: no question, no wait
    assert again.pending is None and again.context == 12_288 and again.source.endswith("cached")
    assert len(server.info_requests) == asked

    path = local.cache_path()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    text = path.read_text()
    assert "sk-local-secret" not in text and server.openai_base in text and "coder" in text

    # another model on the same server is its own entry; an expired entry is asked again
    other = model_limits("hosted_vllm/other", _config("hosted_vllm/other", server.openai_base))
    assert other.pending is not None
    endpoint = local.endpoint_for("hosted_vllm/coder", config)
    assert endpoint is not None
    assert local.cached(endpoint) is not None
    assert local.cached(endpoint, now=time.time() + local.CACHE_TTL + 1) is None


async def test_the_configuration_wins_and_nothing_is_asked(tmp_path: Path, local_server: Any) -> None:
    server = local_server(VLLM)
    config = _config(
        "hosted_vllm/coder", server.openai_base, **{"hosted_vllm/coder": ModelLimits(context=3_000)}
    )
    limits = model_limits("hosted_vllm/coder", config)
    assert limits.pending is None and limits.context == 3_000 and "configuration" in limits.source
    # also over a cached answer
    await model_limits("hosted_vllm/coder", _config("hosted_vllm/coder", server.openai_base)).settled()
    assert model_limits("hosted_vllm/coder", config).context == 3_000
    assert server.info_paths() == ["GET /v1/models"]


async def test_a_server_that_does_not_say_falls_back_and_says_why(tmp_path: Path, local_server: Any) -> None:
    server = local_server({"GET /props": InfoReply(500, {"error": "busy"})}, Reply(text="ok"))
    session = _session(tmp_path, _config("openai/local", server.openai_base))
    events = await collect(session, "hi")
    assert isinstance(events[-1], TurnFinished) and events[-1].reason == "stop"
    assert session.limits.context == DEFAULT_CONTEXT and not session.limits.known
    report = await run_command(session, "/context")
    assert "the server did not say (GET /v1/models: HTTP 404; GET /props: HTTP 500)" in report.text
    assert not local.cache_path().exists()  # a failure is asked again next time


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_an_unreachable_server_is_not_waited_for() -> None:
    base = f"http://127.0.0.1:{_closed_port()}/v1"
    started = time.monotonic()
    limits = await model_limits("hosted_vllm/coder", _config("hosted_vllm/coder", base)).settled()
    assert time.monotonic() - started < 2
    assert limits.context == DEFAULT_CONTEXT and "cannot connect" in limits.source


def test_only_servers_the_user_points_at_are_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.delenv("OPENAI_API_BASE", raising=False)
    assert local.endpoint_for("openai/gpt-4.1", Config(model="openai/gpt-4.1")) is None
    official = Config(model="openai/gpt-4.1", api_base="https://api.openai.com/v1")
    assert local.endpoint_for("openai/gpt-4.1", official) is None
    assert (
        local.endpoint_for("anthropic/claude-sonnet-4-5", Config(model="anthropic/claude-sonnet-4-5")) is None
    )
    ollama = local.endpoint_for("ollama_chat/qwen3", Config(model="ollama_chat/qwen3"))
    assert ollama is not None and ollama.root == "http://localhost:11434"
    # the top-level api_base is the configured model's; another provider's model does not get it
    config = Config(model="anthropic/claude-sonnet-4-5", api_base="http://127.0.0.1:9/v1")
    assert local.endpoint_for("openai/backup", config) is None
    per_model = config.model_copy(
        update={"models": {"openai/backup": ModelLimits(api_base="http://127.0.0.1:9/v1")}}
    )
    found = local.endpoint_for("openai/backup", per_model)
    assert found is not None and found.base == "http://127.0.0.1:9/v1"


def test_credentials_in_the_base_url_never_reach_the_cache_key() -> None:
    config = Config(model="hosted_vllm/coder", api_base="http://user:hunter2@127.0.0.1:8000/v1?token=abc")
    endpoint = local.endpoint_for("hosted_vllm/coder", config)
    assert endpoint is not None
    assert "hunter2" not in endpoint.cache_key and "abc" not in endpoint.cache_key
    assert endpoint.cache_key == "http://127.0.0.1:8000/v1 coder"
