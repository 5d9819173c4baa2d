"""The primary agent, skills and @mentions applied to a session (the scripted model over HTTP)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from nbagent.core.commands import run_command
from nbagent.core.errors import ConfigError
from nbagent.core.events import Notice
from nbagent.providers.scripted import ListScript, Reply, ToolCallSpec
from tests.conftest import Serve, collect, make_session


def tool_names(body: dict[str, Any]) -> list[str]:
    return [t["function"]["name"] for t in body.get("tools", [])]


def system_text(body: dict[str, Any]) -> str:
    content = body["messages"][0]["content"]
    return content if isinstance(content, str) else "".join(p.get("text", "") for p in content)


def last_user_text(body: dict[str, Any]) -> str:
    users = [m for m in body["messages"] if m.get("role") == "user"]
    content = users[-1]["content"]
    return content if isinstance(content, str) else "".join(p.get("text", "") for p in content)


REVIEWER = """\
---
description: Reviews code without changing it
mode: primary
model: openai/scripted
tools:
  read: true
  grep: true
  write: false
  bash: false
permission:
  bash: deny
color: blue
---
You are the reviewer. Point out bugs; never edit.
"""


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


async def test_primary_agent_prompt_tools_mode_and_rules(tmp_path: Path, serve: Serve) -> None:
    write(tmp_path / ".opencode/agents/reviewer.md", REVIEWER)
    write(
        tmp_path / ".claude/agents/careful.md",
        "---\ndescription: careful\npermissionMode: plan\n---\nBe careful.\n",
    )
    server = serve(ListScript([Reply(text="looks fine"), Reply(text="planned")]))
    session = make_session(tmp_path, server, agent="reviewer")
    events = await collect(session, "review a.py")
    body = server.requests[0].body
    assert "You are the reviewer. Point out bugs; never edit." in system_text(body)
    names = set(tool_names(body))
    assert {"read", "grep"} <= names and not names & {"write", "edit", "bash", "apply_patch"}
    from nbagent.core.permission_types import PermissionQuery

    assert session.policy.evaluate(PermissionQuery(permission="bash", patterns=["ls"])).action == "deny"
    # the unknown key 'color' is cosmetic; nothing to warn about here, and no crash
    assert events[-1].type == "turn_finished"

    with pytest.raises(ConfigError, match="subagent only"):
        make_session(tmp_path, server, agent="careful")  # .claude agents are subagents
    plan = make_session(tmp_path, server, agent="plan")
    assert plan.policy.mode == "plan"
    await collect(plan, "plan it")
    assert "You are in plan mode" in system_text(server.requests[1].body)
    assert "write" not in tool_names(server.requests[1].body)


def test_unknown_agent_names_the_available_ones(tmp_path: Path, serve: Serve) -> None:
    server = serve(ListScript([]))
    with pytest.raises(ConfigError) as info:
        make_session(tmp_path, server, agent="nope")
    assert "does not exist" in str(info.value) and "build" in info.value.hint


async def test_skills_listed_and_loaded(tmp_path: Path, serve: Serve) -> None:
    write(
        tmp_path / ".claude/skills/release-notes/SKILL.md",
        "---\nname: release-notes\ndescription: Write release notes. Use when asked for a changelog.\n---\n"
        "Group changes by type.\n",
    )
    write(tmp_path / ".claude/skills/release-notes/template.md", "## Added\n")
    script = ListScript(
        [Reply(tool_calls=[ToolCallSpec("skill", {"name": "release-notes"})]), Reply(text="done")]
    )
    server = serve(script)
    session = make_session(tmp_path, server)
    await collect(session, "write the changelog")
    first = server.requests[0].body
    assert "release-notes: Write release notes. Use when asked for a changelog." in system_text(first)
    assert "skill" in tool_names(first)
    result = [m for m in server.requests[1].body["messages"] if m.get("role") == "tool"][-1]
    assert "Group changes by type." in str(result["content"]) and "template.md" in str(result["content"])
    assert system_text(server.requests[1].body) == system_text(first)  # fixed per session


async def test_no_skills_no_skill_tool(tmp_path: Path, serve: Serve) -> None:
    server = serve(ListScript([Reply(text="ok")]))
    session = make_session(tmp_path, server)
    await collect(session, "hi")
    assert "skill" not in tool_names(server.requests[0].body)
    assert "# Skills" not in system_text(server.requests[0].body)


async def test_mention_asks_to_delegate(tmp_path: Path, serve: Serve) -> None:
    server = serve(ListScript([Reply(text="ok"), Reply(text="ok")]))
    session = make_session(tmp_path, server)
    assert "task" in session.tools_by_name
    await collect(session, "ask @explore where the config is loaded")
    text = last_user_text(server.requests[0].body)
    assert 'subagent_type: "explore"' in text
    await collect(session, "email me at a@build.org about @nobody")
    assert "subagent_type" not in last_user_text(server.requests[1].body)


async def test_definition_warnings_shown_once(tmp_path: Path, serve: Serve) -> None:
    write(tmp_path / ".nbagent/agents/odd.md", "---\ndescription: odd\nflavour: salty\n---\nHi.\n")
    server = serve(ListScript([Reply(text="1"), Reply(text="2")]))
    session = make_session(tmp_path, server)
    first = await collect(session, "one")
    second = await collect(session, "two")
    assert any(isinstance(e, Notice) and "flavour" in e.message for e in first)
    assert not any(isinstance(e, Notice) and "flavour" in e.message for e in second)
    agents = (await run_command(session, "/agents")).text
    assert "`odd`: odd" in agents and "`explore`" in agents


def test_cli_run_with_agent(tmp_path: Path, serve: Serve) -> None:
    write(tmp_path / ".opencode/agents/reviewer.md", REVIEWER)
    server = serve(ListScript([Reply(text="reviewed")]))
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True", "OPENAI_API_KEY": "test-key"}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "nbagent",
            "run",
            "--agent",
            "reviewer",
            "--api-base",
            server.openai_base,
            "--cwd",
            str(tmp_path),
            "--output-format",
            "json",
            "review",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    body = server.requests[0].body
    assert "You are the reviewer." in system_text(body) and "bash" not in tool_names(body)
