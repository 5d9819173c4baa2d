"""The scripted model server cannot let a test lie: a scripted reply that raises fails the test that
started the server (and the client sees a 500 with the traceback), and with ``exact`` a conversation must
consume its script exactly (a request past the end gets an error naming it; unrequested replies are
reported)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from nbagent.core.events import ErrorEvent, TurnFinished
from nbagent.providers.scripted import (
    FunctionScript,
    ListScript,
    Reply,
    ScriptedModelServer,
    ScriptMismatch,
)
from tests.conftest import collect, make_session

CHAT = {"model": "scripted", "messages": [{"role": "user", "content": "hi"}]}
MESSAGES = {"model": "claude", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}


def _asserting(request: dict[str, Any], protocol: str) -> Reply:
    last = request["messages"][-1]["content"]
    assert last == "something else", f"the scripted reply expected another prompt, got {last!r}"
    return Reply(text="unreachable")


@pytest.mark.parametrize(
    ("path", "body"),
    [("/v1/chat/completions", CHAT), ("/v1/messages", MESSAGES)],
    ids=["openai", "anthropic"],
)
def test_a_reply_that_raises_is_a_visible_500_and_is_reraised(path: str, body: dict[str, Any]) -> None:
    server = ScriptedModelServer(FunctionScript(_asserting)).start()
    try:
        response = httpx.post(server.url + path, json=body, timeout=10)
    finally:
        server.stop()
    assert response.status_code == 500
    assert "Traceback" in response.text and "expected another prompt" in response.text
    with pytest.raises(AssertionError, match="expected another prompt, got 'hi'"):
        server.check()


def test_leaving_the_with_block_reraises_what_a_reply_raised() -> None:
    with pytest.raises(AssertionError, match="expected another prompt"):  # noqa: SIM117
        with ScriptedModelServer(FunctionScript(_asserting)) as server:
            httpx.post(server.openai_base + "/chat/completions", json=CHAT, timeout=10)


async def test_an_assertion_in_a_reply_fails_a_real_turn(tmp_path: Path) -> None:
    """Through litellm and the agent loop: the turn ends in an error, and the assertion surfaces."""
    server = ScriptedModelServer(FunctionScript(_asserting)).start()
    try:
        events = await collect(make_session(tmp_path, server), "hi")
    finally:
        server.stop()
    errors = [e for e in events if isinstance(e, ErrorEvent)]
    assert errors, [e.type for e in events]
    assert server.errors and all(isinstance(e, AssertionError) for e in server.errors)
    with pytest.raises(AssertionError, match="expected another prompt"):
        server.check()


def test_a_request_past_the_last_reply_is_refused_and_reported() -> None:
    server = ScriptedModelServer(ListScript([Reply(text="one")]), exact=True).start()
    try:
        first = httpx.post(server.openai_base + "/chat/completions", json=CHAT, timeout=10)
        extra = httpx.post(server.openai_base + "/chat/completions", json=CHAT, timeout=10)
    finally:
        server.stop()
    assert first.status_code == 200 and first.json()["choices"][0]["message"]["content"] == "one"
    assert extra.status_code == 400
    assert "request 2 came after the script's last reply" in extra.json()["error"]["message"]
    with pytest.raises(ScriptMismatch, match=r"1 request\(s\) came after the script's last reply"):
        server.check()


def test_replies_never_requested_are_reported() -> None:
    server = ScriptedModelServer(ListScript([Reply(text="one"), Reply(text="two")]), exact=True).start()
    try:
        httpx.post(server.url + "/v1/messages", json=MESSAGES, timeout=10)
    finally:
        server.stop()
    with pytest.raises(ScriptMismatch, match=r"1 scripted reply\(ies\) were never requested"):
        server.check()


async def test_an_exactly_consumed_conversation_passes(tmp_path: Path) -> None:
    script = ListScript([Reply(text="one"), Reply(text="two")])
    with ScriptedModelServer(script, exact=True) as server:
        session = make_session(tmp_path, server)
        for prompt in ("a", "b"):
            events = await collect(session, prompt)
            assert isinstance(events[-1], TurnFinished)
    assert len(server.requests) == 2 and server.problems() == []


def test_without_exact_the_fallback_answers_past_the_end() -> None:
    """The demo and the benches serve open-ended scripts: not exact, the fallback answers."""
    with ScriptedModelServer(ListScript([], fallback=Reply(text="again"))) as server:
        for _ in range(2):
            response = httpx.post(server.openai_base + "/chat/completions", json=CHAT, timeout=10)
            assert response.json()["choices"][0]["message"]["content"] == "again"
