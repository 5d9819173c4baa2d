"""Claude Code-compatible hooks, run as real shell commands."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import pytest

from nbagent.core.config import Config, load_config
from nbagent.core.errors import ConfigError
from nbagent.ext.hooks import HookRunner


def runner(root: Path, hooks: dict[str, Any], *, trusted: bool = False) -> HookRunner:
    return HookRunner(Config.model_validate({"hooks": hooks}), root, "sess-1", trusted=trusted)


def pre(matcher: str, command: str, timeout: float = 30) -> dict[str, Any]:
    return {
        "PreToolUse": [
            {"matcher": matcher, "hooks": [{"type": "command", "command": command, "timeout": timeout}]}
        ]
    }


def script(tmp_path: Path, name: str, body: str) -> str:
    path = tmp_path / name
    path.write_text("#!/usr/bin/env python3\nimport json, sys\ndata = json.load(sys.stdin)\n" + body)
    path.chmod(0o755)
    return str(path)


BASH_INPUT = {"tool_input": {"command": "rm -rf build"}}


async def test_exit_2_blocks_with_stderr(tmp_path: Path) -> None:
    r = runner(tmp_path, pre("bash", "echo 'no rm here' >&2; exit 2"))
    out = await r.run("PreToolUse", BASH_INPUT, tool_name="bash")
    assert out.blocked and out.reason == "no rm here" and out.ran == 1


async def test_hook_receives_the_event_json(tmp_path: Path) -> None:
    dump = tmp_path / "seen.json"
    r = runner(tmp_path, pre("", f"cat > {dump}"))
    await r.run("PreToolUse", BASH_INPUT, tool_name="bash")
    seen = json.loads(dump.read_text())
    assert seen["session_id"] == "sess-1"
    assert seen["cwd"] == str(tmp_path)
    assert seen["hook_event_name"] == "PreToolUse"
    assert seen["tool_name"] == "bash"
    assert seen["tool_input"] == {"command": "rm -rf build"}


async def test_json_allow_and_deny(tmp_path: Path) -> None:
    allow = script(tmp_path, "allow.py", (
        "print(json.dumps({'hookSpecificOutput': {'hookEventName': 'PreToolUse', 'permissionDecision': 'allow',"
        " 'permissionDecisionReason': 'safe: ' + data['tool_input']['command']}}))\n"
    ))  # fmt: skip
    deny = script(tmp_path, "deny.py", (
        "rm = 'rm ' in data['tool_input']['command']\n"
        "print(json.dumps({'hookSpecificOutput': {'hookEventName': 'PreToolUse',"
        " 'permissionDecision': 'deny' if rm else 'allow', 'permissionDecisionReason': 'rm is not allowed'}}))\n"
    ))  # fmt: skip
    out = await runner(tmp_path, pre("bash", allow)).run(
        "PreToolUse", {"tool_input": {"command": "ls"}}, "bash"
    )
    assert out.permission_decision == "allow" and out.reason == "safe: ls" and not out.blocked
    both = {"PreToolUse": [{"matcher": "bash", "hooks": [{"command": allow}, {"command": deny}]}]}
    out = await runner(tmp_path, both).run("PreToolUse", BASH_INPUT, "bash")
    assert out.permission_decision == "deny" and out.reason == "rm is not allowed"
    out = await runner(tmp_path, both).run("PreToolUse", {"tool_input": {"command": "ls"}}, "bash")
    assert out.permission_decision == "allow"


async def test_ask_beats_allow(tmp_path: Path) -> None:
    ask = 'echo \'{"hookSpecificOutput": {"permissionDecision": "ask"}}\''
    allow = 'echo \'{"hookSpecificOutput": {"permissionDecision": "allow"}}\''
    hooks = {
        "PreToolUse": [
            {"matcher": "", "hooks": [{"command": allow}]},
            {"matcher": "*", "hooks": [{"command": ask}]},
        ]
    }
    out = await runner(tmp_path, hooks).run("PreToolUse", BASH_INPUT, "bash")
    assert out.permission_decision == "ask" and out.ran == 2


async def test_rewrite_input(tmp_path: Path) -> None:
    rewrite = script(tmp_path, "rewrite.py", (
        "cmd = data['tool_input']['command']\n"
        "print(json.dumps({'hookSpecificOutput': {'hookEventName': 'PreToolUse', 'permissionDecision': 'allow',"
        " 'updatedInput': {'command': cmd + ' --dry-run'}}}))\n"
    ))  # fmt: skip
    out = await runner(tmp_path, pre("bash", rewrite)).run("PreToolUse", BASH_INPUT, "bash")
    assert out.updated_input == {"command": "rm -rf build --dry-run"}


async def test_additional_context(tmp_path: Path) -> None:
    ctx = 'echo \'{"hookSpecificOutput": {"hookEventName": "UserPromptSubmit", "additionalContext": "Today is Tuesday."}}\''
    hooks = {"UserPromptSubmit": [{"hooks": [{"command": ctx}, {"command": "echo plain text context"}]}]}
    out = await runner(tmp_path, hooks).run("UserPromptSubmit", {"prompt": "hi"})
    assert out.additional_context.splitlines() == ["Today is Tuesday.", "plain text context"]
    post = {"PostToolUse": [{"matcher": "edit", "hooks": [{"command": ctx}]}]}
    out = await runner(tmp_path, post).run("PostToolUse", {"tool_input": {}, "tool_response": "ok"}, "edit")
    assert out.additional_context == "Today is Tuesday."


async def test_decision_block_and_continue_false(tmp_path: Path) -> None:
    block = 'echo \'{"decision": "block", "reason": "tests fail: fix them first"}\''
    out = await runner(tmp_path, {"Stop": [{"hooks": [{"command": block}]}]}).run(
        "Stop", {"stop_hook_active": False}
    )
    assert out.blocked and out.reason == "tests fail: fix them first"
    stop = 'echo \'{"continue": false, "stopReason": "budget reached", "systemMessage": "bye"}\''
    out = await runner(tmp_path, {"UserPromptSubmit": [{"hooks": [{"command": stop}]}]}).run(
        "UserPromptSubmit", {"prompt": "x"}
    )
    assert out.stop and out.stop_reason == "budget reached" and out.messages == ["bye"]


async def test_timeout_kills_the_hook_and_does_not_block(tmp_path: Path) -> None:
    marker = tmp_path / "late"
    r = runner(tmp_path, pre("bash", f"sleep 1.5; touch {marker}; exit 2", timeout=0.3))
    t0 = time.monotonic()
    out = await r.run("PreToolUse", BASH_INPUT, "bash")
    assert time.monotonic() - t0 < 1.2
    assert not out.blocked and out.errors and "timed out" in out.errors[0]
    await asyncio.sleep(2)
    assert not marker.exists()  # the whole hook (its shell and children) was killed


async def test_matcher_is_a_regex_on_the_tool_name(tmp_path: Path) -> None:
    hooks = {"PreToolUse": [{"matcher": "edit|write", "hooks": [{"command": "echo no >&2; exit 2"}]}]}
    r = runner(tmp_path, hooks)
    assert (await r.run("PreToolUse", {}, "edit")).blocked
    assert (await r.run("PreToolUse", {}, "write")).blocked
    assert not (await r.run("PreToolUse", {}, "bash")).blocked
    assert not (await r.run("PreToolUse", {}, "edit_notebook")).blocked  # the whole name must match
    claude_style = runner(tmp_path, {"PreToolUse": [{"matcher": "Bash", "hooks": [{"command": "exit 2"}]}]})
    assert (await claude_style.run("PreToolUse", {}, "bash")).blocked


async def test_other_exit_codes_and_bad_json_are_non_blocking_errors(tmp_path: Path) -> None:
    hooks = {
        "PreToolUse": [{"hooks": [{"command": "echo broken >&2; exit 1"}, {"command": "echo '{not json'"}]}]
    }
    out = await runner(tmp_path, hooks).run("PreToolUse", BASH_INPUT, "bash")
    assert not out.blocked and out.permission_decision is None
    assert (
        len(out.errors) == 2 and "exit 1" in " ".join(out.errors) and "invalid JSON" in " ".join(out.errors)
    )


async def test_no_matching_hooks_runs_nothing(tmp_path: Path) -> None:
    out = await runner(tmp_path, pre("edit", "exit 2")).run("PreToolUse", BASH_INPUT, "bash")
    assert out.ran == 0 and not out.blocked


async def test_hooks_from_claude_settings(tmp_path: Path) -> None:
    (tmp_path / ".claude").mkdir()
    (tmp_path / ".claude" / "settings.json").write_text(json.dumps({
        "permissions": {"allow": ["Bash(ls:*)"]},
        "hooks": {
            "PreToolUse": [{"matcher": "Bash", "hooks": [{"type": "command", "command": "echo 'from claude' >&2; exit 2"}]}],
            "Notification": [{"hooks": [{"type": "command", "command": "true"}]}],
        },
    }))  # fmt: skip
    off = runner(tmp_path, {}, trusted=True)
    assert not (await off.run("PreToolUse", BASH_INPUT, "bash")).blocked
    on = runner(tmp_path, {"use_claude_settings": True}, trusted=True)  # the project's hooks: trusted here
    out = await on.run("PreToolUse", BASH_INPUT, "bash")
    assert out.blocked and out.reason == "from claude"
    assert any("Notification" in n for n in on.notes)
    untrusted = await runner(tmp_path, {"use_claude_settings": True}).run("PreToolUse", BASH_INPUT, "bash")
    assert not untrusted.blocked and untrusted.ran == 0 and untrusted.skipped == 1


async def test_hook_runs_in_the_project_with_its_dir_in_env(tmp_path: Path) -> None:
    dump = tmp_path / "env.txt"
    r = runner(
        tmp_path, {"SessionStart": [{"hooks": [{"command": f'echo "$PWD|$CLAUDE_PROJECT_DIR" > {dump}'}]}]}
    )
    await r.run("SessionStart", {"source": "startup"})
    assert dump.read_text().strip() == f"{tmp_path}|{tmp_path}"


def test_invalid_hooks_config_names_file_and_key(tmp_path: Path) -> None:
    (tmp_path / "nbagent.json").write_text(
        json.dumps({"hooks": {"PreToolUse": [{"matcher": "(", "hooks": []}]}})
    )
    with pytest.raises(ConfigError) as exc:
        HookRunner(load_config(tmp_path), tmp_path, "s")
    assert "nbagent.json" in str(exc.value) and "hooks.PreToolUse.0.matcher" in str(exc.value)
    (tmp_path / "nbagent.json").write_text(json.dumps({"hooks": {"BeforeEverything": []}}))
    with pytest.raises(ConfigError, match=r"hooks\.BeforeEverything"):
        HookRunner(load_config(tmp_path), tmp_path, "s")


async def test_unknown_event_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown hook event"):
        await runner(tmp_path, {}).run("Whenever", {})
