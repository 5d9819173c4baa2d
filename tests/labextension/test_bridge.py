"""The sidebar's kernel side (nbagent.jupyter.bridge) in a real IPython kernel, driven over ZMQ the way
the JupyterLab extension drives it: a comm opened with target ``nbagent``, JSON messages both ways.

The model is the scripted server (loopback HTTP); the permission answers, the Stop and the prompts are
real comm messages; the `%%agent` cell that continues the sidebar's session runs for real.
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from nbagent.providers.scripted import FunctionScript, Reply, ScriptedModelServer, ToolCallSpec
from nbagent.store.notebook import TURN_MIME, notebook_turns
from tests.conftest import Serve
from tests.jupyter.harness import Kernel, python_env

pytestmark = pytest.mark.timeout(240)
PROBE = "__import__('nbagent.jupyter.bridge', fromlist=['probe']).probe()"


class Sidebar:
    """A frontend's end of the ``nbagent`` comm."""

    def __init__(self, kernel: Kernel) -> None:
        self.kernel = kernel
        self.comm_id = uuid.uuid4().hex
        self.received: list[dict[str, Any]] = []
        self.closed = False

    def open(self, data: dict[str, Any] | None = None) -> None:
        content = {"comm_id": self.comm_id, "target_name": "nbagent", "data": data or {"type": "hello"}}
        self.kernel.kc.shell_channel.send(self.kernel.kc.session.msg("comm_open", content))

    def send(self, data: dict[str, Any]) -> None:
        self.kernel.send_comm(self.comm_id, data)

    def pump(self, timeout: float = 0.2) -> None:
        try:
            m = self.kernel.kc.get_iopub_msg(timeout=timeout)
        except queue.Empty:
            return
        kind = m["header"]["msg_type"]
        content = m["content"]
        if content.get("comm_id") != self.comm_id:
            return
        if kind == "comm_msg":
            self.received.append(content["data"])
        elif kind == "comm_close":
            self.closed = True

    def wait_for(self, pred: Callable[[dict[str, Any]], bool], timeout: float = 30) -> dict[str, Any]:
        """The first message (seen so far or arriving) matching ``pred``; consumed."""
        deadline = time.time() + timeout
        while True:
            for i, msg in enumerate(self.received):
                if pred(msg):
                    del self.received[: i + 1]
                    return msg
            if time.time() > deadline:
                raise TimeoutError(
                    f"no matching message in {timeout}s; got {json.dumps(self.received)[:3000]}"
                )
            self.pump()

    def wait_type(self, kind: str, timeout: float = 30) -> dict[str, Any]:
        return self.wait_for(lambda m: m.get("type") == kind, timeout)

    def wait_event(self, kind: str, timeout: float = 30) -> dict[str, Any]:
        msg = self.wait_for(lambda m: m.get("type") == "event" and m["event"]["type"] == kind, timeout)
        return dict(msg["event"])

    def events(self) -> list[dict[str, Any]]:
        return [m["event"] for m in self.received if m.get("type") == "event"]


def probe(kernel: Kernel) -> dict[str, Any]:
    content = {
        "code": "",
        "silent": True,
        "store_history": False,
        "user_expressions": {"nbagent": PROBE},
        "allow_stdin": False,
    }
    msg = kernel.kc.session.msg("execute_request", content)
    kernel.kc.shell_channel.send(msg)
    while True:
        reply = kernel.kc.get_shell_msg(timeout=30)
        if reply["parent_header"].get("msg_id") == msg["header"]["msg_id"]:
            break
    result = reply["content"]["user_expressions"]["nbagent"]
    assert result["status"] == "ok", result
    assert json.loads(result["data"]["text/plain"]) == result["data"]["application/json"]
    return dict(result["data"]["application/json"])


def _last_prompt(request: dict[str, Any]) -> tuple[str, int]:
    """The last user prompt and how many assistant messages came after it."""
    after = 0
    for message in reversed(request.get("messages") or []):
        if message.get("role") == "assistant":
            after += 1
        elif message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, list):
                content = " ".join(str(c.get("text", "")) for c in content if isinstance(c, dict))
            return str(content or ""), after
    return "", after


def sidebar_script(seen: list[dict[str, Any]]) -> FunctionScript:
    def answer(request: dict[str, Any], protocol: str) -> Reply:
        seen.append(request)
        prompt, step = _last_prompt(request)
        if "greeting" in prompt:
            replies = [
                Reply(
                    text="I'll change the greeting.",
                    tool_calls=[
                        ToolCallSpec(
                            "todowrite",
                            {
                                "todos": [
                                    {"content": "Edit greet.py", "status": "in_progress", "priority": "high"}
                                ]
                            },
                        ),
                        ToolCallSpec("read", {"file_path": "greet.py"}),
                    ],
                ),
                Reply(
                    text="Now the edit.",
                    tool_calls=[
                        ToolCallSpec(
                            "edit",
                            {"file_path": "greet.py", "old_string": "hi", "new_string": "hello"},
                        )
                    ],
                ),
                Reply(text="Done: `greet.py` now says **hello**."),
            ]
        elif "slow" in prompt:
            replies = [
                Reply(
                    text="Running the slow job.", tool_calls=[ToolCallSpec("bash", {"command": "sleep 30"})]
                ),
                Reply(text="Finished."),
            ]
        elif "what did you do" in prompt:
            replies = [Reply(text=f"I saw {len(request['messages'])} messages.")]
        else:
            replies = [Reply(text="OK.")]
        return replies[min(step, len(replies) - 1)]

    return FunctionScript(answer)


@pytest.fixture
def kernel(
    tmp_path: Path, serve: Serve
) -> Iterator[tuple[Kernel, ScriptedModelServer, list[dict[str, Any]]]]:
    seen: list[dict[str, Any]] = []
    server = serve(sidebar_script(seen))
    env = python_env()
    env.update({"NBAGENT_MODEL": "openai/scripted", "NBAGENT_API_BASE": server.openai_base})
    (tmp_path / "greet.py").write_text("print('hi')\n")
    k = Kernel(tmp_path, env)
    try:
        yield k, server, seen
    finally:
        k.close()


def test_without_load_ext_the_comm_is_refused_and_the_probe_says_so(kernel: Any) -> None:
    k, _server, _seen = kernel
    state = probe(k)
    assert state["loaded"] is False and state["registered"] is False
    sidebar = Sidebar(k)
    sidebar.open()
    deadline = time.time() + 20
    while not sidebar.closed and time.time() < deadline:
        sidebar.pump()
    assert sidebar.closed  # the kernel closes a comm whose target is not registered
    assert k.run("%load_ext nbagent").status == "ok"
    state = probe(k)
    assert state["loaded"] is True and state["registered"] is True
    from nbagent import __version__

    assert state["version"] == __version__


def test_a_sidebar_turn_streams_asks_records_and_shares_the_cell_session(kernel: Any, tmp_path: Path) -> None:
    k, _server, seen = kernel
    assert k.run("%load_ext nbagent").status == "ok"
    probe(k)
    sidebar = Sidebar(k)
    sidebar.open({"type": "hello", "path": "demo.ipynb"})
    status = sidebar.wait_type("status")
    assert status["model"] == "openai/scripted" and status["busy"] is False
    assert {"help", "model", "new"} <= {c["name"] for c in status["commands"]}
    assert sidebar.wait_type("history")["events"] == []

    sidebar.send({"type": "prompt", "text": "Change the greeting"})
    started = sidebar.wait_event("turn_started")
    assert started["prompt"] == "Change the greeting"
    asked = sidebar.wait_event("permission_asked")
    assert asked["tool"] == "edit" and asked["details"].get("diff")
    sidebar.send({"type": "reply", "request_id": asked["request_id"], "reply": "once", "feedback": ""})
    diff = sidebar.wait_event("diff")
    assert "+print('hello')" in diff["diff"]
    finished = sidebar.wait_event("turn_finished")
    assert finished["reason"] == "stop"
    assert (tmp_path / "greet.py").read_text() == "print('hello')\n"

    record = sidebar.wait_type("record")
    assert record["source"] == "%%agent\nChange the greeting"
    turn = record["bundle"][TURN_MIME]
    assert turn["prompt"] == "Change the greeting" and turn["reason"] == "stop"
    assert "now says" in record["bundle"]["text/plain"]
    # the frontend adds it to the notebook as a %%agent cell: the notebook's turns include it
    cell = {
        "cell_type": "code",
        "id": "sidebar1",
        "source": record["source"],
        "metadata": {},
        "outputs": [{"output_type": "display_data", "data": record["bundle"], "metadata": {}}],
    }
    turns = notebook_turns({"cells": [cell]})
    assert [t.record.turn_id for t in turns] == [turn["turn_id"]]
    sidebar.send({"type": "sync_metadata", "cells": [cell]})
    meta = sidebar.wait_type("metadata")["metadata"]
    assert meta["active_session"] == turn["session_id"] and meta["sessions"][0]["turns"] == 1

    # the recorded cell replays offline like any %%agent cell: the edit runs again, no model call
    nb = {
        "nbformat": 4,
        "nbformat_minor": 5,
        "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
        "cells": [
            {
                "cell_type": "code",
                "id": "load",
                "source": "%load_ext nbagent",
                "metadata": {},
                "outputs": [],
                "execution_count": None,
            },
            cell,
        ],
    }
    replay_dir = tmp_path / "replay"
    replay_dir.mkdir()
    (replay_dir / "greet.py").write_text("print('hi')\n")
    (replay_dir / "nb.ipynb").write_text(json.dumps(nb))
    calls_before = len(seen)
    env = {
        **os.environ,
        **python_env(),
        "NBAGENT_MODEL": "openai/unreachable",
        "NBAGENT_API_BASE": "http://127.0.0.1:9",
    }
    done = subprocess.run(
        [sys.executable, "-m", "nbagent", "execute", "--replay", "--yes", "--strict", "nb.ipynb"],
        cwd=replay_dir,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert (replay_dir / "greet.py").read_text() == "print('hello')\n"
    assert len(seen) == calls_before
    replayed = json.loads((replay_dir / "nb.ipynb").read_text())
    assert replayed["metadata"]["nbagent"]["sessions"][0]["id"] == turn["session_id"]

    # a %%agent cell continues the same session, and the sidebar sees its events stream
    ex = k.run("%%agent\nwhat did you do?", timeout=120)
    assert ex.status == "ok", ex.errors
    assert "I saw" in json.dumps(ex.final_bundle(TURN_MIME))
    last = seen[-1]
    assert any("Change the greeting" in json.dumps(m) for m in last["messages"])
    # (Kernel.run reads iopub itself: the comm messages sent during the cell are among its messages)
    for m in ex.of_type("comm_msg"):
        if m["content"]["comm_id"] == sidebar.comm_id:
            sidebar.received.append(m["content"]["data"])
    cell_turn = sidebar.wait_event("turn_started")
    assert cell_turn["prompt"] == "what did you do?"
    assert cell_turn["session_id"] == turn["session_id"]
    sidebar.wait_event("turn_finished")

    # a second sidebar (another tab) gets the whole history of the session
    other = Sidebar(k)
    other.open()
    other.wait_type("status")
    history = other.wait_type("history")
    assert history["session_id"] == turn["session_id"]
    kinds = [e["type"] for e in history["events"]]
    assert kinds.count("turn_started") == 2 and "diff" in kinds and "tool_completed" in kinds
    assert [e["prompt"] for e in history["events"] if e["type"] == "turn_started"] == [
        "Change the greeting",
        "what did you do?",
    ]


def test_stop_cancels_a_running_tool(kernel: Any) -> None:
    k, _server, _seen = kernel
    assert k.run("%load_ext nbagent").status == "ok"
    probe(k)
    sidebar = Sidebar(k)
    sidebar.open()
    sidebar.wait_type("history")
    sidebar.send({"type": "prompt", "text": "run the slow job"})
    assert sidebar.wait_for(lambda m: m.get("type") == "status" and m["busy"])
    assert sidebar.wait_event("tool_running")["input"] == {"command": "sleep 30"}  # read-only: no prompt
    time.sleep(0.5)
    t0 = time.time()
    sidebar.send({"type": "cancel"})
    finished = sidebar.wait_event("turn_finished", timeout=20)
    assert finished["reason"] == "cancelled"
    assert time.time() - t0 < 10
    assert sidebar.wait_type("record")["bundle"][TURN_MIME]["reason"] == "cancelled"
    assert sidebar.wait_for(lambda m: m.get("type") == "status" and not m["busy"])
    # the kernel is free: a cell runs at once
    assert k.run("print(1 + 1)", timeout=20).stdout.strip() == "2"


def test_deny_with_feedback_commands_model_and_sessions(kernel: Any, tmp_path: Path) -> None:
    k, _server, seen = kernel
    assert k.run("%load_ext nbagent").status == "ok"
    probe(k)
    sidebar = Sidebar(k)
    sidebar.open()
    sidebar.wait_type("history")

    sidebar.send({"type": "prompt", "text": "Change the greeting"})
    asked = sidebar.wait_event("permission_asked")
    assert asked["always"] or asked["details"].get("always_rules")
    sidebar.send(
        {"type": "reply", "request_id": asked["request_id"], "reply": "reject", "feedback": "keep hi"}
    )
    replied = sidebar.wait_event("permission_replied")
    assert replied["reply"] == "reject" and replied["feedback"] == "keep hi"
    sidebar.wait_event("turn_finished")
    assert (tmp_path / "greet.py").read_text() == "print('hi')\n"
    assert "keep hi" in json.dumps(seen[-1]["messages"])

    sidebar.send({"type": "command", "line": "/help"})
    assert "/compact" in sidebar.wait_type("command_result")["text"]
    sidebar.send({"type": "command", "line": "/cost"})
    assert "input tokens" in sidebar.wait_type("command_result")["text"]

    sidebar.send({"type": "set_model", "model": "openai/other"})
    assert sidebar.wait_for(lambda m: m.get("type") == "status" and m["model"] == "openai/other")

    sidebar.send({"type": "list_sessions"})
    sessions = sidebar.wait_type("sessions")
    first = sessions["current"]
    assert first and [s["id"] for s in sessions["sessions"]] == [first]

    sidebar.send({"type": "new_session"})
    assert sidebar.wait_type("history")["events"] == []
    sidebar.send({"type": "prompt", "text": "hello there"})
    second = sidebar.wait_event("turn_started")["session_id"]
    assert second != first
    sidebar.wait_event("turn_finished")

    sidebar.send({"type": "prompt", "text": ""})
    assert "empty" in sidebar.wait_type("error")["message"]
    sidebar.send({"type": "bogus"})
    assert "Unknown message type" in sidebar.wait_type("error")["message"]


def test_unregister_closes_the_sidebars(kernel: Any) -> None:
    k, _server, _seen = kernel
    assert k.run("%load_ext nbagent").status == "ok"
    probe(k)
    sidebar = Sidebar(k)
    sidebar.open()
    sidebar.wait_type("history")
    ex = k.run(
        "import nbagent.jupyter.bridge as b; b.unregister(); print('nbagent' in get_ipython().kernel.comm_manager.targets)"
    )
    assert ex.stdout.strip() == "False"
    for m in ex.of_type("comm_close"):
        if m["content"]["comm_id"] == sidebar.comm_id:
            sidebar.closed = True
    deadline = time.time() + 10
    while not sidebar.closed and time.time() < deadline:
        sidebar.pump()
    assert sidebar.closed
    assert probe(k)["registered"] is True  # loaded: the probe registers the target again
