"""The shared normalization: ids, tool schemas, the request shaped per target, and both providers
sending a schema Gemini would refuse, sanitized, to a scripted server that checks it."""

from __future__ import annotations

from typing import Any

import pytest

from nbagent.core.messages import Message, ReasoningPart, TextPart, ToolCompleted, ToolPart
from nbagent.providers.base import ModelRequest, StepDone
from nbagent.providers.normalize import CallAssembler, prepare, wire_id
from nbagent.providers.scripted import ListScript, Quirks, Reply
from nbagent.providers.tool_schemas import gemini_schema, strict_compatible
from nbagent.providers.wire import to_openai
from tests.providers.test_quirks_reasoning import quirky

__all__ = ["quirky"]

NASTY = {
    "type": "object",
    "$schema": "http://json-schema.org/draft-07/schema#",
    "additionalProperties": False,
    "properties": {
        "when": {"type": "string", "format": "date-time"},
        "site": {"type": "string", "format": "uri"},
        "level": {"type": "integer", "enum": [1, 2, 3]},
        "tags": {"type": "array", "items": {"type": "object", "additionalProperties": {"type": "string"}}},
        "note": {"type": ["string", "null"]},
    },
    "required": ["when"],
}


def test_ids_every_provider_accepts() -> None:
    assert wire_id("call_abc", nine=False) == "call_abc"  # already fine: unchanged
    long = "functions.read:0|" + "x" * 60
    mapped = wire_id(long, nine=False)
    assert mapped == wire_id(long, nine=False) and len(mapped) == 9 and mapped.isalnum()
    assert wire_id("abcDEF123", nine=True) == "abcDEF123"
    assert len(wire_id("toolu_01ABC", nine=True)) == 9


def test_gemini_schema_keeps_meaning_drops_what_gemini_refuses() -> None:
    out = gemini_schema(NASTY)
    text = repr(out)
    assert "additionalProperties" not in text and "$schema" not in text and "uri" not in text
    assert out["properties"]["when"]["format"] == "date-time"
    assert out["properties"]["level"] == {"type": "string", "enum": ["1", "2", "3"]}
    assert out["properties"]["note"] == {"type": "string", "nullable": True}
    assert out["required"] == ["when"]


def test_strict_only_where_it_changes_nothing() -> None:
    closed = {
        "type": "object",
        "properties": {"a": {"type": "string"}},
        "required": ["a"],
        "additionalProperties": False,
    }
    assert strict_compatible(closed) and not strict_compatible(NASTY)
    tools = [
        {"type": "function", "function": {"name": n, "parameters": p}}
        for n, p in (("a", closed), ("b", NASTY))
    ]
    request = prepare(ModelRequest("openai/gpt-5", [], tools), official_openai=True)
    assert [t["function"].get("strict") for t in request.tools] == [True, None]


def test_calls_sharing_index_zero_and_calls_without_ids() -> None:
    calls = CallAssembler()
    calls.add(0, "a", "read", '{"p": 1}')
    calls.add(0, "b", "bash", '{"c": 2}')
    calls.add(0, None, "bash", '{"c": 3}')  # no id, whole call at a busy index: a new call
    calls.add(1, None, "read", '{"p"')
    calls.add(1, None, None, ": 4}")  # continues
    out = calls.calls()
    assert [(c.name, c.arguments) for c in out] == [
        ("read", '{"p": 1}'),
        ("bash", '{"c": 2}'),
        ("bash", '{"c": 3}'),
        ("read", '{"p": 4}'),
    ]
    assert out[0].call_id == "a" and all(len(c.call_id) == 9 for c in out[2:])


def _history(model: str) -> list[Message]:
    call = ToolPart(
        call_id="toolu_01XyZ",
        tool="read",
        state=ToolCompleted(input={"p": 1}, output="ok"),
        extra={"extra_content": {"google": {"thought_signature": "S"}}},
    )
    parts: list[Any] = [ReasoningPart(text="why", signature="sig"), TextPart(text="reading"), call]
    return [Message(role="assistant", model=model, parts=parts)]


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("anthropic/claude-sonnet-4-5", {"thinking_blocks"}),
        ("deepseek/deepseek-reasoner", {"reasoning_content"}),  # another model's reasoning, as text
        ("openai/gpt-5", set()),
        ("mistral/devstral", set()),
    ],
)
def test_metadata_goes_back_to_its_model_only(target: str, expected: set[str]) -> None:
    mine = to_openai(_history("anthropic/claude-sonnet-4-5"), model=target)[0]
    assert {k for k in ("thinking_blocks", "reasoning_content") if k in mine} == expected
    assert ("extra_content" in mine["tool_calls"][0]) == (target == "anthropic/claude-sonnet-4-5")
    gemini = to_openai(_history("openai/gemini-3"), model="openai/gemini-3")[0]
    assert gemini["tool_calls"][0]["extra_content"] == {"google": {"thought_signature": "S"}}


def test_old_sessions_load() -> None:
    old = (
        '{"role": "assistant", "parts": [{"type": "reasoning", "text": "t"}, {"type": "tool", "call_id": "c",'
        ' "tool": "read", "state": {"status": "pending"}}]}'
    )
    message = Message.model_validate_json(old)
    assert message.parts[0].signature is None and message.tool_parts()[0].extra is None  # type: ignore[union-attr]


def test_prepare_copies_nothing_when_nothing_changes() -> None:
    messages: list[dict[str, Any]] = [
        {"role": "user", "content": "hi"},
        {
            "role": "assistant",
            "content": "x",
            "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "a", "arguments": "{}"}}
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "ok"},
    ]
    request = ModelRequest("openai/gpt-4.1", messages, [])
    assert prepare(request) is request


@pytest.mark.parametrize("path", ["native", "litellm"])
async def test_a_schema_gemini_refuses_is_sanitized_on_both_paths(quirky: Any, path: str) -> None:
    from nbagent.providers.litellm_provider import LiteLLMProvider
    from nbagent.providers.native import NativeProvider

    server = quirky(ListScript([Reply(text="ok")]), Quirks(reasoning="gemini"))
    provider: Any = NativeProvider() if path == "native" else LiteLLMProvider()
    tools = [{"type": "function", "function": {"name": "plan", "description": "d", "parameters": NASTY}}]
    request = ModelRequest(
        "openai/gemini-3-pro-preview",
        [{"role": "user", "content": "hi"}],
        tools,
        api_base=server.openai_base,
        api_key="k",
    )
    chunks = [c async for c in provider.stream(request)]
    await provider.close()
    assert isinstance(chunks[-1], StepDone) and chunks[-1].finish_reason == "stop"
    assert "additionalProperties" not in repr(server.requests[0].body["tools"])
