"""Subagents (the task tool) against the scripted model over HTTP: the parent's and the children's
requests are told apart by their system prompt (each built-in subagent has its own)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from nbagent.core.config import SubagentsConfig
from nbagent.core.events import (
    Event,
    PermissionAsked,
    SubagentEvent,
    ToolCallCompleted,
    ToolCallError,
    TurnFinished,
    UsageUpdated,
)
from nbagent.core.messages import ToolError as ToolErrorState
from nbagent.providers.scripted import FunctionScript, Reply, ToolCallSpec
from nbagent.store import SessionStore
from nbagent.tools.base import ToolFailure
from tests.conftest import Serve, collect, make_session

Body = dict[str, Any]
READ_ONLY = {"bash", "bash_output", "glob", "grep", "read"}


def system_of(body: Body) -> str:
    return "".join(str(m.get("content")) for m in body["messages"] if m.get("role") == "system")


def tools_of(body: Body) -> set[str]:
    return {t["function"]["name"] for t in body.get("tools") or []}


def results_of(body: Body) -> list[str]:
    return [str(m.get("content")) for m in body["messages"] if m.get("role") == "tool"]


def conversation(body: Body) -> str:
    return json.dumps([m for m in body["messages"] if m.get("role") != "system"])


def is_child(body: Body, agent: str) -> bool:
    return f"You are {agent}" in system_of(body)


def task_call(prompt: str, agent: str = "explore", **extra: Any) -> ToolCallSpec:
    return ToolCallSpec(
        "task", {"description": "look it up", "prompt": prompt, "subagent_type": agent, **extra}
    )


def inner(events: list[Event]) -> list[dict[str, Any]]:
    return [e.event for e in events if isinstance(e, SubagentEvent)]


def session_with(tmp_path: Path, serve: Serve, fn: Callable[[Body], Reply], **kwargs: Any) -> Any:
    server = serve(FunctionScript(lambda body, _p: fn(body)))
    store = SessionStore(tmp_path / "store.db")
    return make_session(tmp_path, server, store=store, **kwargs), server, store


async def test_parent_gets_only_the_childs_final_message(tmp_path: Path, serve: Serve) -> None:
    (tmp_path / "app.py").write_text("def handler():\n    return 42  # SECRET_MARKER\n")

    def answer(body: Body) -> Reply:
        if is_child(body, "explore"):
            if not results_of(body):
                return Reply(tool_calls=[ToolCallSpec("grep", {"pattern": "handler"})])
            return Reply(text="handler is defined in app.py:1.")
        if not results_of(body):
            return Reply(text="Delegating.", tool_calls=[task_call("Where is handler defined?")])
        return Reply(text="It is in app.py.")

    session, server, store = session_with(tmp_path, serve, answer)
    events = await collect(session, "PARENT_ONLY_PROMPT: find the handler")

    finished = events[-1]
    assert isinstance(finished, TurnFinished) and finished.text == "It is in app.py."
    done = [e for e in events if isinstance(e, ToolCallCompleted) and e.tool == "task"]
    assert len(done) == 1
    child_id = done[0].metadata["task_id"]
    assert done[0].output.startswith("handler is defined in app.py:1.")
    assert f"task_id: {child_id}" in done[0].output
    assert done[0].metadata["agent"] == "explore" and done[0].metadata["usage"]["input_tokens"] > 0
    # The parent's model saw the final message only: not the child's grep output.
    last_parent = server.requests[-1].body
    assert not is_child(last_parent, "explore")
    assert "SECRET_MARKER" not in conversation(last_parent)
    # The child's requests: read-only tools only, no task, none of the parent's conversation.
    child_requests = [r.body for r in server.requests if is_child(r.body, "explore")]
    assert len(child_requests) == 2
    for body in child_requests:
        assert tools_of(body) <= READ_ONLY and "read" in tools_of(body)
        assert "PARENT_ONLY_PROMPT" not in conversation(body)
        assert "Where is handler defined?" in conversation(body)
    assert "task" in tools_of(server.requests[0].body)
    # Every child event reached the parent's stream, under the parent's task call.
    forwarded = [e for e in events if isinstance(e, SubagentEvent)]
    assert {e.child_session_id for e in forwarded} == {child_id}
    assert {e.call_id for e in forwarded} == {done[0].call_id}
    kinds = [e["type"] for e in inner(events)]
    assert kinds[0] == "turn_started" and kinds[-1] == "turn_finished" and "tool_completed" in kinds
    # The child's tokens roll up into the parent's totals.
    rolled = [e for e in events if isinstance(e, UsageUpdated) and e.step == 0]
    assert rolled and rolled[-1].usage.input_tokens > 0
    assert session.usage.input_tokens >= sum(r.usage.input_tokens for r in rolled)
    # The child is a real session: stored with its parent's id and its agent.
    children = store.children(session.id)
    assert [c.id for c in children] == [child_id] and children[0].agent == "explore"
    _, messages = store.load_session(child_id)
    assert messages[0].text.startswith("Where is handler defined?")


async def test_child_cannot_write_and_parent_denies_apply(tmp_path: Path, serve: Serve) -> None:
    """explore is read-only even when its parent is in bypass; the parent's own deny (here its agent's
    rule, which the child's rules do not have) binds a general child."""

    def answer(body: Body) -> Reply:
        results = results_of(body)
        if is_child(body, "explore") or is_child(body, "general"):
            if not results:
                return Reply(
                    tool_calls=[ToolCallSpec("bash", {"command": "touch made.txt", "description": "x"})]
                )
            return Reply(text=f"child saw: {results[-1][:200]}")
        if not results:
            return Reply(
                tool_calls=[task_call("make a file", "explore"), task_call("make a file", "general")]
            )
        return Reply(text="ok")

    from nbagent.permissions.policy import RulePolicy

    session, _server, _store = session_with(tmp_path, serve, answer)
    session.config = session.config.model_copy(update={"permission": {"bash": "allow"}})
    strict = session.config.model_copy(
        update={"agent": {"strict": {"permission": {"bash": {"touch *": "deny"}}}}}
    )
    session.policy = RulePolicy(tmp_path, strict, agent="strict", mode="bypass")
    events = await collect(session, "go")
    assert not (tmp_path / "made.txt").exists()
    errors = [e["error"] for e in inner(events) if e["type"] == "tool_error"]
    assert len(errors) == 2 and all("denied" in err.lower() for err in errors)
    assert any("parent session" in err for err in errors)


async def test_childs_permission_prompt_is_answered_from_the_parent(tmp_path: Path, serve: Serve) -> None:
    def answer(body: Body) -> Reply:
        results = results_of(body)
        if is_child(body, "general"):
            if not results:
                return Reply(
                    tool_calls=[
                        ToolCallSpec("write", {"file_path": "note.txt", "content": "from the child\n"})
                    ]
                )
            return Reply(text="wrote note.txt")
        return Reply(tool_calls=[task_call("write note.txt", "general")]) if not results else Reply(text="ok")

    session, _server, _store = session_with(tmp_path, serve, answer, headless=None)
    events: list[Event] = []
    async for event in session.run("write a note through a subagent"):
        events.append(event)
        if isinstance(event, SubagentEvent) and event.event["type"] == "permission_asked":
            assert event.agent == "general"
            session.reply(event.event["request_id"], "once")
    assert (tmp_path / "note.txt").read_text() == "from the child\n"
    assert [e["reply"] for e in inner(events) if e["type"] == "permission_replied"] == ["once"]
    assert not any(isinstance(e, PermissionAsked) for e in events)  # only nested, never as the parent's
    done = [e for e in events if isinstance(e, ToolCallCompleted) and e.tool == "task"]
    assert done and done[0].output.startswith("wrote note.txt")


async def test_parallel_children_and_the_bound(tmp_path: Path, serve: Serve) -> None:
    barrier = threading.Barrier(3, timeout=10)
    met: list[bool] = []

    def answer(body: Body) -> Reply:
        results = results_of(body)
        if is_child(body, "explore"):
            if not results:
                try:
                    barrier.wait()  # only returns when all three children asked at once
                    met.append(True)
                except threading.BrokenBarrierError:
                    met.append(False)
                return Reply(tool_calls=[ToolCallSpec("glob", {"pattern": "*.py"})])
            return Reply(text="child done")
        if not results:
            return Reply(tool_calls=[task_call(f"question {i}") for i in range(3)])
        return Reply(text=f"{len(results)} answers")

    session, _server, store = session_with(tmp_path, serve, answer)
    events = await collect(session, "three questions")
    assert met == [True, True, True]
    assert events[-1].text == "3 answers"  # type: ignore[union-attr]
    assert len(store.children(session.id)) == 3

    barrier.reset()
    met.clear()
    session.config = session.config.model_copy(update={"subagents": SubagentsConfig(max_parallel=2)})
    barrier = threading.Barrier(3, timeout=1)
    events = await collect(session, "three more, two at a time")
    assert met.count(True) == 0  # never three at once


async def test_background_child_reports_on_a_later_step(tmp_path: Path, serve: Serve) -> None:
    release = threading.Event()

    def answer(body: Body) -> Reply:
        results = results_of(body)
        if is_child(body, "explore"):
            release.wait(10)
            return Reply(text="BACKGROUND_RESULT: 7 files")
        if "BACKGROUND_RESULT" in conversation(body):
            return Reply(text="saw the background result")
        if not results:
            return Reply(tool_calls=[task_call("count files", run_in_background=True)])
        return Reply(text="started it")

    session, _server, _store = session_with(tmp_path, serve, answer)
    events = await collect(session, "count in the background")
    done = [e for e in events if isinstance(e, ToolCallCompleted) and e.tool == "task"]
    assert "background" in done[0].output and done[0].metadata["background"] is True
    assert events[-1].text == "started it"  # type: ignore[union-attr]
    assert "running" in session.subagents.describe()
    release.set()
    for _ in range(200):
        if "done" in session.subagents.describe():
            break
        await asyncio.sleep(0.05)
    assert "done" in session.subagents.describe()
    events = await collect(session, "anything new?")
    assert events[-1].text == "saw the background result"  # type: ignore[union-attr]


async def test_cancelling_the_parent_cancels_the_child(tmp_path: Path, serve: Serve) -> None:
    def answer(body: Body) -> Reply:
        if is_child(body, "general"):
            if not results_of(body):
                return Reply(
                    tool_calls=[ToolCallSpec("bash", {"command": "sleep 37.25", "description": "wait"})]
                )
            return Reply(text="child ended")
        return (
            Reply(tool_calls=[task_call("wait a long time", "general")])
            if not results_of(body)
            else Reply(text="x")
        )

    server = serve(FunctionScript(lambda body, _p: answer(body)), exact=False)
    store = SessionStore(tmp_path / "s.db")
    session = make_session(tmp_path, server, store=store)
    events: list[Event] = []
    async for event in session.run("start and stop"):
        events.append(event)
        if isinstance(event, SubagentEvent) and event.event["type"] == "tool_running":
            session.cancel()
    finished = events[-1]
    assert isinstance(finished, TurnFinished) and finished.reason == "cancelled"
    assert any(isinstance(e, ToolCallError) and e.tool == "task" for e in events)
    (child,) = session.subagents.children.values()
    assert child.status == "cancelled" and not child.session.busy
    # The child's history was saved with its command closed as interrupted.
    _, messages = store.load_session(child.session.id)
    bash = [p for m in messages for p in m.tool_parts() if p.tool == "bash"]
    assert bash and isinstance(bash[0].state, ToolErrorState) and "Interrupted" in bash[0].state.error
    await asyncio.sleep(0.2)
    out = subprocess.run(["pgrep", "-f", "sleep 37.25"], capture_output=True, text=True)
    assert out.stdout.strip() == ""  # the child's command was stopped with it


async def test_task_id_continues_the_same_child(tmp_path: Path, serve: Serve) -> None:
    seen: list[str] = []

    def answer(body: Body) -> Reply:
        if is_child(body, "explore"):
            seen.append(conversation(body))
            return Reply(text=f"answer {len(seen)}")
        if body["messages"][-1]["role"] == "user":
            previous = [m for m in body["messages"] if "task_id: " in str(m.get("content"))]
            if previous:
                task_id = str(previous[-1]["content"]).split("task_id: ")[1].split()[0]
                return Reply(tool_calls=[task_call("FOLLOW_UP", task_id=task_id)])
            return Reply(tool_calls=[task_call("FIRST_QUESTION")])
        return Reply(text="ok")

    session, _server, store = session_with(tmp_path, serve, answer)
    await collect(session, "first")
    # A fresh parent object (as after a restart) continues the stored child.
    session.subagents.children.clear()
    events = await collect(session, "second")
    errors = [e.error for e in events if isinstance(e, ToolCallError)]
    assert not errors
    assert len(store.children(session.id)) == 1
    assert "FIRST_QUESTION" in seen[1] and "answer 1" in seen[1] and "FOLLOW_UP" in seen[1]


@pytest.mark.parametrize("max_depth", [1, 2])
async def test_depth_limit(tmp_path: Path, serve: Serve, max_depth: int) -> None:
    agents = tmp_path / ".nbagent" / "agents"
    agents.mkdir(parents=True)
    (agents / "lead.md").write_text(
        "---\ndescription: delegates further\nmode: subagent\ntools: [read, task]\n---\nYou are lead.\n"
    )
    tools_seen: list[set[str]] = []

    def answer(body: Body) -> Reply:
        if is_child(body, "lead"):
            tools_seen.append(tools_of(body))
            return Reply(text="lead done")
        return Reply(tool_calls=[task_call("go", "lead")]) if not results_of(body) else Reply(text="ok")

    session, _server, _store = session_with(tmp_path, serve, answer)
    session.config = session.config.model_copy(update={"subagents": SubagentsConfig(max_depth=max_depth)})
    await collect(session, "delegate")
    assert tools_seen == [{"read", "task"} if max_depth == 2 else {"read"}]


async def test_nbagent_sessions_lists_children_under_their_parent(tmp_path: Path, serve: Serve) -> None:
    def answer(body: Body) -> Reply:
        if is_child(body, "explore"):
            return Reply(text="found")
        return Reply(tool_calls=[task_call("find")]) if not results_of(body) else Reply(text="ok")

    session, _server, store = session_with(tmp_path, serve, answer)
    await collect(session, "top level prompt")
    child_id = store.children(session.id)[0].id
    (tmp_path / "nbagent.json").write_text(json.dumps({"store": str(tmp_path / "store.db")}))
    out = subprocess.run(
        [sys.executable, "-m", "nbagent", "sessions"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    lines = out.splitlines()
    parent_line = next(i for i, line in enumerate(lines) if line.startswith(session.id))
    assert child_id in lines[parent_line + 1] and lines[parent_line + 1].startswith("  ")
    assert "[explore]" in lines[parent_line + 1]
    assert sum(child_id in line for line in lines) == 1


async def test_run_subtask_and_tasks_command(tmp_path: Path, serve: Serve) -> None:
    """The one call a command's ``subtask: true`` uses; ``/tasks`` lists the child with its tokens."""
    from nbagent.core.commands import run_command

    def answer(body: Body) -> Reply:
        assert is_child(body, "explore"), "only the child asks the model"
        return Reply(text="subtask answer")

    session, _server, store = session_with(tmp_path, serve, answer)
    forwarded: list[Event] = []
    outcome = await session.subagents.run_subtask(
        "explore", "COMMAND_PROMPT", forwarded.append, call_id="cmd1"
    )
    assert outcome.output.startswith("subtask answer") and outcome.metadata["agent"] == "explore"
    nested = [e for e in forwarded if isinstance(e, SubagentEvent)]
    assert nested and all(e.call_id == "cmd1" for e in nested)
    assert [type(e) for e in forwarded if not isinstance(e, SubagentEvent)] == [UsageUpdated]
    assert [c.id for c in store.children(session.id)] == [outcome.metadata["task_id"]]
    listed = (await run_command(session, "/tasks")).text
    assert outcome.metadata["task_id"] in listed and "explore" in listed and "done" in listed
    with pytest.raises(ToolFailure, match="no_such_agent"):
        await session.subagents.run_subtask("no_such_agent", "x", forwarded.append)
