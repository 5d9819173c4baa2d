"""Models without native tool calling, through the text tool protocol, against the scripted model.

The scripted model only replies text here: the calls are written in its replies, as a local model
without tool support writes them, and nbagent's loop runs them as native calls.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from nbagent.core.config import ModelLimits
from nbagent.core.events import ErrorEvent, Notice, TextDelta, ToolCallCompleted, ToolCallError, TurnFinished
from nbagent.core.messages import ToolCompleted
from nbagent.providers.scripted import ErrorReply, ListScript, Reply
from nbagent.providers.scripted.server import RecordedRequest
from tests.conftest import Serve, collect, make_session

BACKENDS = pytest.mark.parametrize("backend", ["native", "litellm"])
TEXT = {"openai/scripted": ModelLimits(tools="text")}
OLLAMA_REJECTS_TOOLS = "registry.ollama.ai/library/gemma:2b does not support tools"


def _system(request: RecordedRequest) -> str:
    content = request.body["messages"][0]["content"]
    return content if isinstance(content, str) else "".join(b["text"] for b in content)


def _assert_text_protocol(request: RecordedRequest) -> None:
    """No native tools anywhere: no ``tools``, no tool messages, no tool calls; roles alternate."""
    body = request.body
    assert "tools" not in body and "tool_choice" not in body
    messages = body["messages"]
    assert all(m["role"] in ("system", "user", "assistant") for m in messages)
    assert not any(m.get("tool_calls") for m in messages)
    roles = [m["role"] for m in messages[1:]]
    assert all(a != b for a, b in itertools.pairwise(roles)), roles
    assert "```tool_call" in _system(request) and "## edit" in _system(request)


@BACKENDS
async def test_a_text_protocol_model_reads_edits_and_answers(
    tmp_path: Path, serve: Serve, backend: str
) -> None:
    (tmp_path / "notes.txt").write_text("Remember teh milk.\n")
    server = serve(
        ListScript(
            [
                Reply(
                    text="I'll read the file first.\n\n```tool_call\n"
                    '{"name": "read", "arguments": {"file_path": "notes.txt"}}\n```\n'
                ),
                # another common shape: Hermes-style tags, single quotes and a trailing comma
                Reply(
                    text="Found the typo. <tool_call>{'name': 'edit', 'arguments': {'file_path': 'notes.txt',"
                    " 'old_string': 'teh', 'new_string': 'the',}}</tool_call>"
                ),
                Reply(text="Fixed the typo in notes.txt: it now says 'Remember the milk.'"),
            ]
        )
    )
    session = make_session(tmp_path, server, models=TEXT, provider=backend)
    events = await collect(session, "Fix the typo in notes.txt")

    finished = events[-1]
    assert isinstance(finished, TurnFinished) and finished.reason == "stop" and finished.steps == 3
    assert (tmp_path / "notes.txt").read_text() == "Remember the milk.\n"
    assert finished.text.startswith("Fixed the typo")
    assert [e.tool for e in events if isinstance(e, ToolCallCompleted)] == ["read", "edit"]
    shown = "".join(e.text for e in events if isinstance(e, TextDelta))
    assert "I'll read the file first." in shown and "tool_call" not in shown  # the calls are not prose

    for request in server.requests:
        _assert_text_protocol(request)
    second, third = server.requests[1].body["messages"], server.requests[2].body["messages"]
    # the model's own call, written back as the block it is asked to write; the result as a user message
    assert second[-2]["role"] == "assistant" and '```tool_call\n{"name": "read"' in second[-2]["content"]
    assert second[-1]["role"] == "user" and second[-1]["content"].startswith('<tool_result name="read">')
    assert "Remember teh milk." in second[-1]["content"]
    assert third[-1]["content"].startswith('<tool_result name="edit">')
    parts = [p for m in session.messages for p in m.tool_parts()]
    assert [p.tool for p in parts] == ["read", "edit"]
    assert all(isinstance(p.state, ToolCompleted) for p in parts)
    assert all(len(p.call_id) == 9 and p.call_id.isalnum() for p in parts)


async def test_an_unreadable_call_gets_the_exact_format_back(tmp_path: Path, serve: Serve) -> None:
    (tmp_path / "a.txt").write_text("alpha\n")
    server = serve(
        ListScript(
            [
                Reply(text='```tool_call\n{"name": "read", "arguments": {"file_path": }\n```'),
                Reply(text='```tool_call\n{"name": "read", "arguments": {"file_path": "a.txt"}}\n```'),
                Reply(text="a.txt says alpha."),
            ]
        )
    )
    session = make_session(tmp_path, server, models=TEXT)
    events = await collect(session, "What does a.txt say?")
    assert isinstance(events[-1], TurnFinished) and events[-1].reason == "stop"
    assert len([e for e in events if isinstance(e, ToolCallError)]) == 1
    told = server.requests[1].body["messages"][-1]["content"]
    assert told.startswith("Error: your tool call could not be read: the call cannot be read: its JSON")
    assert '```tool_call\n{"name": "read", "arguments": {"path": "src/app.py"}}\n```' in told
    # the model sees what it wrote, so it can correct it
    assert '{"file_path": }' in server.requests[1].body["messages"][-2]["content"]
    assert "alpha" in server.requests[2].body["messages"][-1]["content"]


@BACKENDS
async def test_a_server_that_rejects_tools_switches_to_text_once(
    tmp_path: Path, serve: Serve, backend: str
) -> None:
    server = serve(
        ListScript(
            [
                ErrorReply(400, OLLAMA_REJECTS_TOOLS, error_type="invalid_request_error"),
                Reply(text='<tool_call>{"name": "glob", "arguments": {"pattern": "*.md"}}</tool_call>'),
                Reply(text="There is one markdown file: README.md."),
                Reply(text="Still here, in text mode."),
            ]
        )
    )
    (tmp_path / "README.md").write_text("# hi\n")
    session = make_session(tmp_path, server, provider=backend)
    events = await collect(session, "List the markdown files")
    events += await collect(session, "Anything else?")

    assert not [e for e in events if isinstance(e, ErrorEvent)]
    notices = [e.message for e in events if isinstance(e, Notice) and "text tool protocol" in e.message]
    assert len(notices) == 1
    assert "does not support tools" in notices[0] and '"tools": "text"' in notices[0]
    assert [e.tool for e in events if isinstance(e, ToolCallCompleted)] == ["glob"]
    assert "tools" in server.requests[0].body  # asked natively first
    for request in server.requests[1:]:  # then the same request in text, and every later one
        _assert_text_protocol(request)
    assert "README.md" in server.requests[2].body["messages"][-1]["content"]


async def test_native_mode_does_not_switch(tmp_path: Path, serve: Serve) -> None:
    server = serve(ListScript([ErrorReply(400, OLLAMA_REJECTS_TOOLS, error_type="invalid_request_error")]))
    session = make_session(tmp_path, server, models={"openai/scripted": ModelLimits(tools="native")})
    events = await collect(session, "hi")
    errors = [e for e in events if isinstance(e, ErrorEvent)]
    assert len(errors) == 1 and "does not support tools" in errors[0].message


async def test_another_bad_request_about_tools_is_not_a_switch(tmp_path: Path, serve: Serve) -> None:
    message = "messages with role 'tool' must be a response to a preceding message with 'tool_calls'"
    server = serve(ListScript([ErrorReply(400, message, error_type="invalid_request_error")]))
    session = make_session(tmp_path, server)
    events = await collect(session, "hi")
    assert [e.kind for e in events if isinstance(e, ErrorEvent)] == ["bad_request"]
    assert not [e for e in events if isinstance(e, Notice) and "text tool protocol" in e.message]
