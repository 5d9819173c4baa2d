"""The agent loop against the scripted model over HTTP: steps, invalid calls, retries, cancellation."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from nbagent.core.config import RetryConfig
from nbagent.core.events import (
    ErrorEvent,
    PermissionAsked,
    Retrying,
    TextDelta,
    ToolCallCompleted,
    ToolCallError,
    ToolCallRunning,
    TurnFinished,
)
from nbagent.core.messages import ToolError
from nbagent.providers.scripted import CutStream, ErrorReply, ListScript, Reply, ToolCallSpec
from tests.conftest import Serve, collect, make_session


def tool_messages(body: dict[str, object]) -> list[dict[str, object]]:
    return [m for m in body["messages"] if isinstance(m, dict) and m.get("role") == "tool"]  # type: ignore[union-attr]


BACKENDS = pytest.mark.parametrize("backend", ["native", "litellm"])


@BACKENDS
@pytest.mark.parametrize("protocol", ["openai", "anthropic"])
async def test_multi_step_edit_and_run(tmp_path: Path, serve: Serve, protocol: str, backend: str) -> None:
    script = ListScript(
        [
            Reply(
                text="Creating the file.",
                tool_calls=[ToolCallSpec("write", {"file_path": "hello.py", "content": "print('hi')\n"})],
            ),
            Reply(
                tool_calls=[ToolCallSpec("bash", {"command": "python3 hello.py", "description": "run it"})]
            ),
            Reply(text="It prints hi."),
        ]
    )
    server = serve(script)
    session = make_session(tmp_path, server, protocol, provider=backend)
    events = await collect(session, "make hello.py and run it")

    assert (tmp_path / "hello.py").read_text() == "print('hi')\n"
    done = [e for e in events if isinstance(e, ToolCallCompleted)]
    assert [e.tool for e in done] == ["write", "bash"]
    assert "hi" in done[1].output
    finished = events[-1]
    assert isinstance(finished, TurnFinished)
    assert finished.reason == "stop" and finished.steps == 3
    assert finished.text == "It prints hi."
    assert "".join(e.text for e in events if isinstance(e, TextDelta)).startswith("Creating the file.")
    # The third request carried both tool results back to the model.
    last = server.requests[-1].body
    if protocol == "openai":
        assert len(tool_messages(last)) == 2
    else:
        results = [
            b
            for m in last["messages"]
            for b in (m["content"] if isinstance(m["content"], list) else [])
            if b.get("type") == "tool_result"
        ]
        assert len(results) == 2
    assert finished.usage.input_tokens > 0 and finished.usage.output_tokens > 0


async def test_invalid_tool_calls_go_back_to_the_model(tmp_path: Path, serve: Serve) -> None:
    script = ListScript(
        [
            Reply(
                tool_calls=[
                    ToolCallSpec("no_such_tool", {"x": 1}),
                    ToolCallSpec("read", '{"file_path": "a.txt"'),  # JSON cut short
                    ToolCallSpec("read", {"path": "a.txt"}),  # wrong parameter name
                ]
            ),
            Reply(tool_calls=[ToolCallSpec("read", {"file_path": "a.txt"})]),
            Reply(text="done"),
        ]
    )
    (tmp_path / "a.txt").write_text("content\n")
    server = serve(script)
    events = await collect(make_session(tmp_path, server), "read a.txt")

    errors = [e for e in events if isinstance(e, ToolCallError)]
    assert len(errors) == 3
    assert "Unknown tool 'no_such_tool'" in errors[0].error and "read" in errors[0].error
    assert "not valid JSON" in errors[1].error
    assert "file_path" in errors[2].error
    results = tool_messages(server.requests[1].body)
    assert [str(r["content"]).startswith("Error:") for r in results] == [True, True, True]
    assert isinstance(events[-1], TurnFinished) and events[-1].reason == "stop"
    assert any(isinstance(e, ToolCallCompleted) and "content" in e.output for e in events)


@BACKENDS
@pytest.mark.parametrize("protocol", ["openai", "anthropic"])
async def test_retries_then_success(tmp_path: Path, serve: Serve, protocol: str, backend: str) -> None:
    script = ListScript(
        [
            ErrorReply(429, headers={"retry-after": "0"}),
            ErrorReply(529 if protocol == "anthropic" else 503),
            CutStream(Reply(text="this answer will break off " * 5), after_chunks=3),
            Reply(text="finally"),
        ]
    )
    server = serve(script)
    events = await collect(make_session(tmp_path, server, protocol, provider=backend), "hi")
    retries = [e for e in events if isinstance(e, Retrying)]
    assert len(retries) == 3
    assert retries[0].wait == 0.0  # retry-after honoured
    finished = events[-1]
    assert isinstance(finished, TurnFinished) and finished.reason == "stop" and finished.text == "finally"
    assert len(server.requests) == 4


async def test_retry_after_is_honoured(tmp_path: Path, serve: Serve) -> None:
    server = serve(ListScript([ErrorReply(429, headers={"retry-after": "1"}), Reply(text="ok")]))
    session = make_session(tmp_path, server)
    events = await collect(session, "hi")
    (retry,) = [e for e in events if isinstance(e, Retrying)]
    assert retry.wait == 1.0
    gap = server.requests[1].received - server.requests[0].received
    assert gap >= 0.95


async def test_retries_exhausted(tmp_path: Path, serve: Serve) -> None:
    server = serve(ListScript([ErrorReply(503)] * 3))
    session = make_session(tmp_path, server, retry=RetryConfig(max_attempts=3, base_delay=0.0))
    events = await collect(session, "hi")
    assert len([e for e in events if isinstance(e, Retrying)]) == 2
    (error,) = [e for e in events if isinstance(e, ErrorEvent)]
    assert "gave up after 3 attempts" in error.message and error.hint
    assert isinstance(events[-1], TurnFinished) and events[-1].reason == "error"
    assert len(server.requests) == 3


@BACKENDS
async def test_auth_error_is_not_retried_and_names_the_fix(
    tmp_path: Path, serve: Serve, backend: str
) -> None:
    server = serve(ListScript([ErrorReply(401, message="invalid x-api-key")]))
    events = await collect(make_session(tmp_path, server, "anthropic", provider=backend), "hi")
    (error,) = [e for e in events if isinstance(e, ErrorEvent)]
    assert error.kind == "auth" and "--api-key" in error.hint
    assert len(server.requests) == 1


async def test_cancel_mid_tool_closes_the_call_and_kills_the_process(tmp_path: Path, serve: Serve) -> None:
    pidfile = tmp_path / "pid"
    script = ListScript(
        [
            Reply(tool_calls=[ToolCallSpec("bash", {"command": f"echo $$ > {pidfile}; sleep 30"})]),
            Reply(text="after the interruption"),
        ]
    )
    server = serve(script)
    session = make_session(tmp_path, server)
    events = []
    async for event in session.run("sleep"):
        events.append(event)
        if isinstance(event, ToolCallRunning):
            for _ in range(100):
                if pidfile.exists() and pidfile.read_text().strip():
                    break
                await asyncio.sleep(0.05)
            session.cancel()
    finished = events[-1]
    assert isinstance(finished, TurnFinished) and finished.reason == "cancelled"
    part = session.messages[-1].tool_parts()[0]
    assert isinstance(part.state, ToolError) and "Interrupted" in part.state.error
    pid = int(pidfile.read_text())
    await asyncio.sleep(0.3)
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    # The history stays valid: the next turn sends the interrupted call with its result.
    events = await collect(session, "go on")
    assert isinstance(events[-1], TurnFinished) and events[-1].text == "after the interruption"
    (result,) = tool_messages(server.requests[-1].body)
    assert "Interrupted" in str(result["content"])


async def test_doom_loop_asks_and_headless_deny_stops(tmp_path: Path, serve: Serve) -> None:
    (tmp_path / "a.txt").write_text("x\n")
    call = ToolCallSpec("read", {"file_path": "a.txt"})
    # The third identical call asks (doom loop); headless deny ends the turn: no fourth request.
    server = serve(ListScript([Reply(tool_calls=[call])] * 3))
    session = make_session(tmp_path, server, headless="deny")
    events = await collect(session, "loop")
    asked = [e for e in events if isinstance(e, PermissionAsked)]
    assert len(asked) == 1 and asked[0].tool == "doom_loop"
    errors = [e for e in events if isinstance(e, ToolCallError)]
    assert len(errors) == 1 and "refused" in errors[0].error
    assert isinstance(events[-1], TurnFinished) and events[-1].steps == 3


async def test_permission_reply_with_feedback_continues(tmp_path: Path, serve: Serve) -> None:
    (tmp_path / "a.txt").write_text("x\n")
    call = ToolCallSpec("read", {"file_path": "a.txt"})
    server = serve(ListScript([Reply(tool_calls=[call])] * 3 + [Reply(text="ok, stopping")]))
    session = make_session(tmp_path, server, headless=None)
    events = []
    async for event in session.run("loop"):
        events.append(event)
        if isinstance(event, PermissionAsked):
            session.reply(event.request_id, "reject", "stop re-reading, it has not changed")
    assert isinstance(events[-1], TurnFinished) and events[-1].text == "ok, stopping"
    results = tool_messages(server.requests[-1].body)
    assert "stop re-reading" in str(results[-1]["content"])
    assert "stop re-reading" not in str(results[0]["content"])


async def test_read_only_calls_run_concurrently(tmp_path: Path, serve: Serve) -> None:
    for name in "abc":
        (tmp_path / f"{name}.txt").write_text(name)
    server = serve(
        ListScript(
            [
                Reply(tool_calls=[ToolCallSpec("grep", {"pattern": n}) for n in "abc"]),
                Reply(text="searched"),
            ]
        )
    )
    events = await collect(make_session(tmp_path, server), "search")
    kinds = [type(e).__name__ for e in events if isinstance(e, ToolCallRunning | ToolCallCompleted)]
    # All three start before the first finishes: one concurrent batch.
    assert kinds == ["ToolCallRunning"] * 3 + ["ToolCallCompleted"] * 3
