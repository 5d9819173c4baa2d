"""The loop with the permission layer, hooks and the sandbox: real rules, real hook processes, real bwrap."""

from __future__ import annotations

import json
from pathlib import Path

from nbagent.core.config import Config, RetryConfig
from nbagent.core.events import (
    PermissionAsked,
    PermissionReplied,
    ToolCallCompleted,
    ToolCallError,
    TurnFinished,
)
from nbagent.core.session import Session
from nbagent.providers.scripted import ListScript, Reply, ScriptedModelServer, ToolCallSpec
from tests.conftest import _OPEN_SESSIONS, Serve, collect


def session_for(
    root: Path, server: ScriptedModelServer, headless: str | None = "deny", **config: object
) -> Session:
    cfg = Config(
        model="openai/scripted", api_base=server.openai_base, retry=RetryConfig(base_delay=0), **config
    )  # type: ignore[arg-type]
    session = Session(root, cfg, api_key="k", headless=headless)  # type: ignore[arg-type]
    _OPEN_SESSIONS.append(session)
    return session


async def test_rules_deny_and_ask_headless(tmp_path: Path, serve: Serve) -> None:
    server = serve(
        ListScript(
            [
                Reply(
                    tool_calls=[
                        ToolCallSpec("bash", {"command": "ls"}),
                        ToolCallSpec("bash", {"command": "rm -rf build"}),
                    ]
                ),
                Reply(text="could not"),
            ]
        )
    )
    session = session_for(tmp_path, server, permission={"bash": {"rm *": "deny"}})
    events = await collect(session, "clean")
    done = [e for e in events if isinstance(e, ToolCallCompleted)]
    errors = [e for e in events if isinstance(e, ToolCallError)]
    assert [e.input["command"] for e in done] == ["ls"]  # a read-only command runs without asking
    assert "denied" in errors[0].error.lower() and "rm *" in errors[0].error
    assert not any(isinstance(e, PermissionAsked) for e in events)


async def test_always_saves_a_scoped_rule_and_covers_the_next_call(tmp_path: Path, serve: Serve) -> None:
    server = serve(
        ListScript(
            [
                Reply(tool_calls=[ToolCallSpec("bash", {"command": "touch a.txt"})]),
                Reply(tool_calls=[ToolCallSpec("bash", {"command": "touch b.txt"})]),
                Reply(text="done"),
            ]
        )
    )
    session = session_for(tmp_path, server, headless=None)
    asked: list[PermissionAsked] = []
    async for event in session.run("touch files"):
        if isinstance(event, PermissionAsked):
            asked.append(event)
            session.reply(event.request_id, "always")
    assert len(asked) == 1 and asked[0].always == ["touch *"]
    saved = json.loads((tmp_path / ".nbagent" / "permissions.local.json").read_text())
    assert "touch *" in json.dumps(saved)
    assert (tmp_path / "a.txt").exists() and (tmp_path / "b.txt").exists()
    # A new session (a restart) remembers it.
    server2 = serve(
        ListScript([Reply(tool_calls=[ToolCallSpec("bash", {"command": "touch c.txt"})]), Reply(text="ok")])
    )
    events = await collect(session_for(tmp_path, server2, headless=None), "again")
    assert not any(isinstance(e, PermissionAsked) for e in events)
    assert (tmp_path / "c.txt").exists()


async def test_plan_mode_refuses_edits(tmp_path: Path, serve: Serve) -> None:
    server = serve(
        ListScript(
            [
                Reply(tool_calls=[ToolCallSpec("write", {"file_path": "x.txt", "content": "x"})]),
                Reply(text="ok"),
            ]
        )
    )
    session = session_for(tmp_path, server, headless="allow", mode="plan")
    events = await collect(session, "write")
    assert any(isinstance(e, ToolCallError) for e in events)
    assert not (tmp_path / "x.txt").exists()


def _hook_config(
    tmp_path: Path, script: str, event: str = "PreToolUse", matcher: str = "bash"
) -> dict[str, object]:
    hook = tmp_path / f"{event}.py"
    hook.write_text(script)
    return {
        event: [
            {"matcher": matcher, "hooks": [{"type": "command", "command": f"python3 {hook}", "timeout": 20}]}
        ]
    }


async def test_pre_tool_use_hook_blocks_with_exit_2(tmp_path: Path, serve: Serve) -> None:
    hooks = _hook_config(tmp_path, "import sys\nprint('no shell today', file=sys.stderr)\nsys.exit(2)\n")
    server = serve(
        ListScript([Reply(tool_calls=[ToolCallSpec("bash", {"command": "echo hi"})]), Reply(text="ok")])
    )
    events = await collect(session_for(tmp_path, server, headless="allow", hooks=hooks), "echo")
    (error,) = [e for e in events if isinstance(e, ToolCallError)]
    assert "Blocked by a PreToolUse hook" in error.error and "no shell today" in error.error


async def test_pre_tool_use_hook_rewrites_input_and_allows(tmp_path: Path, serve: Serve) -> None:
    script = (
        "import json, sys\n"
        "data = json.load(sys.stdin)\n"
        "cmd = data['tool_input']['command'].replace('rm ', 'echo would-rm ')\n"
        "print(json.dumps({'hookSpecificOutput': {'hookEventName': 'PreToolUse', 'permissionDecision': 'allow',"
        " 'updatedInput': {'command': cmd}}}))\n"
    )
    hooks = _hook_config(tmp_path, script)
    (tmp_path / "keep.txt").write_text("x")
    server = serve(
        ListScript([Reply(tool_calls=[ToolCallSpec("bash", {"command": "rm keep.txt"})]), Reply(text="ok")])
    )
    events = await collect(session_for(tmp_path, server, headless="deny", hooks=hooks), "remove")
    (done,) = [e for e in events if isinstance(e, ToolCallCompleted)]
    assert "would-rm keep.txt" in done.output and (tmp_path / "keep.txt").exists()
    assert not any(isinstance(e, PermissionReplied) for e in events)  # the hook's allow skipped the prompt


async def test_user_prompt_submit_and_stop_hooks(tmp_path: Path, serve: Serve) -> None:
    hooks = {
        **_hook_config(
            tmp_path,
            "import json\nprint(json.dumps({'hookSpecificOutput': {'hookEventName': 'UserPromptSubmit',"
            " 'additionalContext': 'Project codename: ORCA'}}))\n",
            "UserPromptSubmit",
            "",
        ),
        **_hook_config(
            tmp_path,
            "import json, sys\nd = json.load(sys.stdin)\n"
            "print(json.dumps({} if d['stop_hook_active'] else {'decision': 'block', 'reason': 'run the tests first'}))\n",
            "Stop",
            "",
        ),
    }
    server = serve(ListScript([Reply(text="done early"), Reply(text="tests run, done")]))
    events = await collect(session_for(tmp_path, server, headless="allow", hooks=hooks), "do it")
    assert "Project codename: ORCA" in json.dumps(server.requests[0].body["messages"])
    assert "run the tests first" in json.dumps(server.requests[1].body["messages"])
    assert isinstance(events[-1], TurnFinished) and events[-1].text == "tests run, done"


async def test_sandboxed_bash_cannot_write_outside_or_reach_the_network(tmp_path: Path, serve: Serve) -> None:
    """bubblewrap is installed by scripts/bootstrap; this runs for real."""
    outside = tmp_path / "outside"
    outside.mkdir()
    project = tmp_path / "project"
    project.mkdir()
    server = serve(ListScript([]))
    command = (
        f"touch inside.txt; touch {outside}/x.txt; echo write=$?;"
        f" python3 -c \"import urllib.request as u; u.urlopen('{server.url}', timeout=3)\"; echo net=$?"
    )
    server.script = ListScript(
        [Reply(tool_calls=[ToolCallSpec("bash", {"command": command})]), Reply(text="ok")]
    )
    session = session_for(project, server, headless="allow", sandbox={"enabled": True})
    events = await collect(session, "try")
    (done,) = [e for e in events if isinstance(e, ToolCallCompleted)]
    assert (project / "inside.txt").exists()
    assert not (outside / "x.txt").exists()
    assert "write=1" in done.output and "net=1" in done.output
    assert len(server.requests) == 2  # the sandboxed urlopen never reached the server
