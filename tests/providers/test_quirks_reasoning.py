"""Reasoning that must go back, through both paths (native client, litellm), streamed and whole.

The scripted server plays each provider's rule (DeepSeek's ``reasoning_content``, Gemini's thought
signatures, Anthropic's signed thinking) and answers 400 with the provider's message when a request
breaks it; a turn of several tool steps finishing proves the round trip. A switch to another model
sends a history that model's server accepts. The helpers here serve the other quirk tests too."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import httpx
import pytest

from nbagent.core.config import Config, ModelLimits, RetryConfig
from nbagent.core.events import ErrorEvent, Event, TurnFinished
from nbagent.core.messages import Message, ReasoningPart
from nbagent.core.session import Session
from nbagent.providers.scripted import ListScript, Quirks, Reply, Script, ScriptedModelServer, ToolCallSpec
from tests.conftest import _OPEN_SESSIONS, checked_servers, collect

PATHS = pytest.mark.parametrize("path", ["native", "litellm"])
FORMS = pytest.mark.parametrize("form", ["stream", "whole"])  # whole: the server ignores stream=true


def bash(command: str) -> dict[str, str]:
    return {"command": command, "description": "run"}


def base_for(server: ScriptedModelServer, model: str) -> str:
    return server.anthropic_base if model.startswith("anthropic/") else server.openai_base


@pytest.fixture
def quirky(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Start scripted servers with quirks; exact consumption and no scripted-reply exception, checked."""
    monkeypatch.delenv("NBAGENT_PROVIDER", raising=False)
    with checked_servers() as servers:

        def start(script: Script, quirks: Quirks) -> ScriptedModelServer:
            server = ScriptedModelServer(script, exact=True, quirks=quirks).start()
            servers.append(server)
            return server

        yield start


def session_on(
    root: Path, path: Literal["native", "litellm"], models: dict[str, ScriptedModelServer]
) -> Session:
    """A session whose first model is the first of ``models``; each model reaches its own server."""
    first = next(iter(models))
    config = Config(
        model=first,
        api_base=base_for(models[first], first),
        provider=path,
        retry=RetryConfig(base_delay=0.0, max_attempts=3),
        models={m: ModelLimits(api_base=base_for(s, m)) for m, s in models.items()},
    )
    session = Session(root, config, api_key="test-key", headless="allow")
    _OPEN_SESSIONS.append(session)
    return session


async def turn(session: Session, prompt: str) -> tuple[list[Event], TurnFinished]:
    """Run a turn that must finish normally: its events and its end."""
    events = await collect(session, prompt)
    finished = events[-1]
    errors = [f"{e.message} {e.hint}" for e in events if isinstance(e, ErrorEvent)]
    assert isinstance(finished, TurnFinished) and finished.reason == "stop", errors
    return events, finished


def tool_steps(reasoning: bool = True) -> list[Reply]:
    """Two tool steps (the second with parallel calls) and an answer."""
    why = "I will look first." if reasoning else ""
    return [
        Reply(reasoning=why, tool_calls=[ToolCallSpec("bash", bash("echo one"))]),
        Reply(
            reasoning="Two at once." if reasoning else "",
            tool_calls=[ToolCallSpec("bash", bash("echo two")), ToolCallSpec("bash", bash("echo three"))],
        ),
        Reply(text="Done.", reasoning="All good." if reasoning else ""),
    ]


MODES = pytest.mark.parametrize(
    ("mode", "model"),
    [
        ("deepseek", "deepseek/deepseek-reasoner"),
        ("gemini", "openai/gemini-3-pro-preview"),  # Gemini's OpenAI-compatible API
        ("anthropic", "anthropic/claude-sonnet-4-5"),
    ],
)


@PATHS
@FORMS
@MODES
async def test_reasoning_goes_back_to_the_model_that_wrote_it(
    quirky: Any, tmp_path: Path, path: Literal["native", "litellm"], form: str, mode: str, model: str
) -> None:
    server = quirky(
        ListScript(tool_steps()), Quirks(reasoning=mode, redacted=True, ignore_stream=form == "whole")
    )
    session = session_on(tmp_path, path, {model: server})
    await turn(session, "run the commands")
    assert len(server.requests) == 3
    last = json.dumps(server.requests[-1].body)
    marker = {"deepseek": "reasoning_content", "gemini": "thought_signature", "anthropic": '"signature"'}[
        mode
    ]
    assert marker in last
    # The history keeps what went back: it survives a save and a reload (old sessions load too).
    assistant = [m for m in session.messages if m.role == "assistant"]
    reloaded = [Message.model_validate_json(m.model_dump_json()) for m in assistant]
    assert reloaded == assistant
    if mode == "anthropic":
        parts = [p for p in assistant[0].parts if isinstance(p, ReasoningPart)]
        assert parts[0].signature and parts[0].text == "I will look first." and parts[1].redacted
    if mode == "gemini":
        first_call = assistant[0].tool_parts()[0]
        assert first_call.extra and "thought_signature" in json.dumps(first_call.extra)


@MODES
async def test_the_server_refuses_a_turn_without_its_reasoning(
    quirky: Any, tmp_path: Path, mode: str, model: str
) -> None:
    """The check is real: the same history sent to the model with the metadata stripped is refused."""
    server = quirky(
        ListScript([*tool_steps()[:1], Reply(text="ok"), Reply(text="refused")]), Quirks(reasoning=mode)
    )
    session = session_on(tmp_path, "native", {model: server})
    await turn(session, "run it")  # the last reply is for the refused request below
    body = server.requests[-1].body
    stripped = json.loads(
        json.dumps(body)
        .replace('"reasoning_content"', '"x_reasoning"')
        .replace('"extra_content"', '"x_extra"')
        .replace('"type": "thinking"', '"type": "text"')
    )
    path = "/v1/messages" if mode == "anthropic" else "/v1/chat/completions"
    response = httpx.post(server.url + path, json=stripped, timeout=10)
    assert response.status_code == 400
    assert {"deepseek": "reasoning_content", "gemini": "thought_signature", "anthropic": "thinking"}[
        mode
    ] in (response.text)


@PATHS
async def test_another_model_gets_a_history_it_accepts(
    quirky: Any, tmp_path: Path, path: Literal["native", "litellm"]
) -> None:
    """Anthropic (signed thinking) -> DeepSeek (wants reasoning_content) -> Mistral (9-character ids, no
    unknown fields) -> back to Anthropic, which still wants its own signed thinking, and no other."""
    claude, deepseek, mistral = (
        "anthropic/claude-sonnet-4-5",
        "deepseek/deepseek-reasoner",
        ("mistral/magistral-medium-latest" if path == "litellm" else "openai/magistral-medium-latest"),
    )
    servers = {
        claude: quirky(
            ListScript([*tool_steps()[:1], Reply(text="one"), *tool_steps()[:1], Reply(text="four")]),
            Quirks(reasoning="anthropic", redacted=True),
        ),
        deepseek: quirky(ListScript([*tool_steps()[:1], Reply(text="two")]), Quirks(reasoning="deepseek")),
        mistral: quirky(
            ListScript([*tool_steps(reasoning=False)[:1], Reply(text="three")]), Quirks(mistral=True)
        ),
    }
    session = session_on(tmp_path, path, servers)
    await turn(session, "first")
    for model in (deepseek, mistral, claude):
        session.set_model(model)
        await turn(session, "next")
    sent = servers[deepseek].requests[0].body["messages"]
    foreign = [m for m in sent if m.get("role") == "assistant" and m.get("tool_calls")]
    assert foreign and all(m.get("reasoning_content") for m in foreign)  # Claude's reasoning, as text
    assert "signature" not in json.dumps(sent)
    back = json.dumps(servers[claude].requests[-1].body)
    assert back.count('"signature"') == 2  # its own two signed blocks, none invented for the others
