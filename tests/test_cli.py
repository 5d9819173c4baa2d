"""The `nbagent` command end to end: a real process talking HTTP to the scripted model."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from nbagent.providers.scripted import ErrorReply, ListScript, Reply, ScriptedModelServer, ToolCallSpec
from tests.conftest import Serve

NBAGENT = [sys.executable, "-m", "nbagent"]


def run_cli(args: list[str], cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    return subprocess.run(
        [*NBAGENT, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env, check=False
    )


def run_json(server: ScriptedModelServer, cwd: Path) -> subprocess.CompletedProcess[str]:
    """``nbagent run --output-format json answer`` against the scripted ``server``."""
    args = ["run", "-m", "openai/scripted", "--api-base", server.openai_base, "--api-key", "k"]
    return run_cli([*args, "--output-format", "json", "answer"], cwd)


def test_run_multi_step_task_stream_json(tmp_path: Path, serve: Serve) -> None:
    (tmp_path / "calc.py").write_text("def add(a, b):\n    return a - b\n")
    (tmp_path / "test_calc.py").write_text(
        "from calc import add\n\ndef test_add():\n    assert add(2, 3) == 5\n"
    )
    server = serve(
        ListScript(
            [
                Reply(tool_calls=[ToolCallSpec("read", {"file_path": "calc.py"})]),
                Reply(
                    tool_calls=[
                        ToolCallSpec(
                            "edit", {"file_path": "calc.py", "old_string": "a - b", "new_string": "a + b"}
                        )
                    ]
                ),
                Reply(
                    tool_calls=[
                        ToolCallSpec(
                            "bash", {"command": f"{sys.executable} -m pytest -q -p no:cacheprovider"}
                        )
                    ]
                ),
                Reply(text="Fixed `add`; the test passes."),
            ]
        )
    )
    out = run_cli(
        [
            "run",
            "--model",
            "openai/scripted",
            "--api-base",
            server.openai_base,
            "--api-key",
            "sk-test-secret",
            "--yes",
            "--output-format",
            "stream-json",
            "fix add",
        ],
        tmp_path,
    )
    assert out.returncode == 0, out.stderr
    events = [json.loads(line) for line in out.stdout.splitlines()]
    types = [e["type"] for e in events]
    assert types[0] == "turn_started" and types[-1] == "turn_finished"
    completed = [e for e in events if e["type"] == "tool_completed"]
    assert [e["tool"] for e in completed] == ["read", "edit", "bash"]
    assert "1 passed" in completed[2]["output"]
    assert any(e["type"] == "diff" and "+    return a + b" in e["diff"] for e in events)
    assert events[-1]["text"] == "Fixed `add`; the test passes."
    assert "return a + b" in (tmp_path / "calc.py").read_text()
    assert "sk-test-secret" not in out.stdout + out.stderr
    assert server.requests[0].headers.get("authorization") == "Bearer sk-test-secret"


def test_run_text_output_renders_tools_and_usage(tmp_path: Path, serve: Serve) -> None:
    server = serve(
        ListScript(
            [
                Reply(
                    text="Planning.",
                    tool_calls=[
                        ToolCallSpec("todowrite", {"todos": [{"content": "say hi", "status": "in_progress"}]})
                    ],
                ),
                Reply(tool_calls=[ToolCallSpec("write", {"file_path": "hi.txt", "content": "hi\n"})]),
                Reply(text="Wrote hi.txt."),
            ]
        )
    )
    out = run_cli(
        [
            "run",
            "-m",
            "anthropic/claude-sonnet-4-5",
            "--api-base",
            server.anthropic_base,
            "--api-key",
            "k",
            "--yes",
            "go",
        ],
        tmp_path,
    )
    assert out.returncode == 0, out.stderr
    assert "say hi" in out.stdout and "write" in out.stdout and "+hi" in out.stdout
    assert "Wrote hi.txt." in out.stdout
    assert "3 steps" in out.stdout and "$" in out.stdout  # claude prices are known to litellm


def test_run_json_output(tmp_path: Path, serve: Serve) -> None:
    server = serve(ListScript([Reply(text="42")]))
    out = run_json(server, tmp_path)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["result"] == "42" and result["reason"] == "stop" and result["steps"] == 1


def test_without_yes_headless_prompts_are_refused_clearly(tmp_path: Path, serve: Serve) -> None:
    (tmp_path / "a.txt").write_text("x")
    call = ToolCallSpec("read", {"file_path": "a.txt"})
    # The third identical call asks (doom loop); the refusal ends the run: no fourth request.
    server = serve(ListScript([Reply(tool_calls=[call])] * 3))
    out = run_cli(
        [
            "run",
            "-m",
            "openai/scripted",
            "--api-base",
            server.openai_base,
            "--api-key",
            "k",
            "--output-format",
            "stream-json",
            "loop",
        ],
        tmp_path,
    )
    events = [json.loads(line) for line in out.stdout.splitlines()]
    replied = [e for e in events if e["type"] == "permission_replied"]
    assert replied and replied[0]["reply"] == "reject" and "headless" in replied[0]["by"]


def test_missing_model_and_missing_key_errors(tmp_path: Path) -> None:
    out = run_cli(["run", "hello"], tmp_path)
    assert out.returncode == 1
    assert "No model configured" in out.stderr and "--model" in out.stderr
    env_free = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    out = subprocess.run(
        [*NBAGENT, "run", "-m", "anthropic/claude-sonnet-4-5", "--output-format", "stream-json", "hi"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env={**env_free, "LITELLM_LOCAL_MODEL_COST_MAP": "True"},
        check=False,
    )
    events = [json.loads(line) for line in out.stdout.splitlines()]
    errors = [e for e in events if e["type"] == "error"]
    assert out.returncode == 1 and errors
    assert "ANTHROPIC_API_KEY" in errors[0]["hint"]


def test_broken_config_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "nbagent.json").write_text('{"max_steps": "many"}')
    out = run_cli(["run", "-m", "openai/x", "hi"], tmp_path)
    assert out.returncode == 1
    assert "nbagent.json" in out.stderr and "max_steps" in out.stderr


def test_demo_runs_end_to_end(tmp_path: Path) -> None:
    out = run_cli(["demo"], tmp_path, timeout=180)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SCRIPTED" in out.stdout
    assert "Demo finished: the tests pass" in out.stdout
    assert "--api-base" in out.stdout  # says how to point nbagent at a real model


def test_ctrl_c_stops_the_tool_and_saves_the_session(tmp_path: Path, serve: Serve) -> None:
    import signal
    import time

    from nbagent.store import SessionStore

    marker = tmp_path / "started"
    server = serve(
        ListScript([Reply(tool_calls=[ToolCallSpec("bash", {"command": f"touch {marker}; sleep 30"})])])
    )
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    proc = subprocess.Popen(
        [*NBAGENT, "run", "-m", "openai/scripted", "--api-base", server.openai_base, "--api-key", "k", "--yes", "go"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    deadline = time.time() + 60
    while not marker.exists() and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130 and "session was saved" in err
    (info,) = SessionStore().list_sessions(tmp_path)
    _, messages = SessionStore().load_session(info.id)
    state = messages[-1].tool_parts()[0].state
    assert state.status == "error" and "Interrupted" in state.error


def test_json_output_carries_the_error_of_a_failed_run(tmp_path: Path, serve: Serve) -> None:
    server = serve(
        ListScript([ErrorReply(401, "Incorrect API key provided", error_type="invalid_request_error")])
    )
    out = run_json(server, tmp_path)
    assert out.returncode == 1
    result = json.loads(out.stdout)
    assert result["reason"] == "error"
    assert "Incorrect API key" in result["error"]["message"] and result["error"]["hint"]
    assert "Incorrect API key" in out.stderr  # and a person reading the terminal sees it too


def test_json_output_of_a_run_that_cannot_start(tmp_path: Path) -> None:
    out = run_cli(["run", "--output-format", "json", "hello"], tmp_path)
    assert out.returncode == 1
    error = json.loads(out.stdout)["error"]
    assert "No model configured" in error["message"] and "--model" in error["hint"]


def test_run_in_a_terminal_asks_and_sends_the_refusal_feedback(tmp_path: Path, serve: Serve) -> None:
    from tests.terminal import Terminal

    server = serve(
        ListScript(
            [
                Reply(tool_calls=[ToolCallSpec("bash", {"command": "touch made.txt"})]),
                Reply(text="Understood, I will not create it."),
            ]
        )
    )
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    args = ["run", "-m", "openai/scripted", "--api-base", server.openai_base, "--api-key", "k", "make a file"]
    term = Terminal(args, tmp_path, env)
    try:
        asked = term.expect("(or type feedback): ")
        assert "Allow? [y]es once / [a]lways" in asked and "[n]o" in asked
        term.line("no, [b]ut keep the folder clean")
        term.expect("Understood, I will not create it.")
        assert term.wait() == 0
    finally:
        term.close()
    assert not (tmp_path / "made.txt").exists()
    tool_result = server.requests[-1].body["messages"][-1]
    assert tool_result["role"] == "tool" and "The user said: no, [b]ut keep the folder clean" in str(
        tool_result["content"]
    )


def test_demo_model_answers_a_refusal_honestly(tmp_path: Path, serve: Serve) -> None:
    """The scripted demo model follows what happened: refusing the test run with feedback gets an answer
    that says so, not the happy path's "All tests pass"."""
    import shutil

    from nbagent.demo.run import SAMPLE, test_command
    from nbagent.demo.script import TASK, demo_script
    from tests.terminal import Terminal

    project = tmp_path / "wordcount"
    shutil.copytree(SAMPLE, project, ignore=shutil.ignore_patterns("__pycache__", ".pytest_cache"))
    server = serve(demo_script(test_command()))
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    args = ["run", "-m", "openai/nbagent-demo", "--api-base", server.openai_base, "--api-key", "k", TASK]
    term = Terminal(args, project, env)
    try:
        while True:
            asked = term.expect("(or type feedback): ")
            if "Run the tests" in asked:
                term.line("do not run the tests now, I will run them myself")
                break
            term.line("y")
        term.expect("I will run them myself”")
        assert term.wait() == 0
    finally:
        term.close()
    assert "You declined that step" in term.screen
    assert "All tests pass" not in term.screen and "The test suite passes" not in term.screen


def test_sessions_says_when_a_damaged_store_was_moved_aside(tmp_path: Path) -> None:
    data = Path(os.environ["NBAGENT_DATA_DIR"])
    data.mkdir(parents=True, exist_ok=True)
    (data / "nbagent.db").write_bytes(b"this is not a database, " * 200)
    done = run_cli(["sessions"], tmp_path)
    assert done.returncode == 0, done.stderr
    assert "warning:" in done.stderr and "moved to" in done.stderr and "Traceback" not in done.stderr
    assert list(data.glob("nbagent.db.corrupt-*"))
