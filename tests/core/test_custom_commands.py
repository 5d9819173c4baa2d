"""Custom commands: placeholders, user folders, !`cmd` and @file (permission-checked), frontmatter, skills."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from nbagent.core.command_expand import expand_args
from nbagent.core.commands import custom_commands, run_command
from nbagent.core.events import ModelSwitched, PermissionAsked
from nbagent.jupyter.bridge_views import COMMAND_NAMES
from nbagent.providers.scripted import ListScript, Reply
from tests.conftest import Serve, collect, make_session


def last_user_text(body: dict[str, Any]) -> str:
    users = [m for m in body["messages"] if m.get("role") == "user"]
    content = users[-1]["content"]
    return content if isinstance(content, str) else "".join(p.get("text", "") for p in content)


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    h = tmp_path / "home"
    h.mkdir()
    monkeypatch.setenv("HOME", str(h))
    return h


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_placeholders() -> None:
    assert expand_args("Review $1 for $2.", "a.py style issues here") == "Review a.py for style issues here."
    assert expand_args("$1|$2|$3", "x") == "x||"
    assert expand_args("Fix: $ARGUMENTS ($1)", "the flaky test") == "Fix: the flaky test (the flaky test)"
    assert expand_args("Summarise.", "briefly") == "Summarise.\n\nbriefly"
    assert expand_args("Summarise.", "") == "Summarise."
    assert expand_args("Move $1 to $2", '"my file.txt" dest/') == "Move my file.txt to dest/"


def test_user_folders_and_precedence(tmp_path: Path, home: Path) -> None:
    root = tmp_path / "proj"
    write(root / ".opencode/commands/deploy.md", "---\ndescription: Project deploy\n---\nDeploy.\n")
    write(home / ".claude/commands/deploy.md", "---\ndescription: User deploy\n---\nUser deploy.\n")
    write(home / ".claude/commands/standup.md", "Write my standup.\n")
    write(home / ".config/opencode/command/tidy.md", "Tidy up.\n")
    import os

    write(Path(os.environ["NBAGENT_CONFIG_DIR"]) / "commands/mine.md", "---\ndescription: mine\n---\nM\n")
    write(root / ".claude/commands/broken.md", "---\ndescription: [unclosed\n---\nx\n")
    found = custom_commands(root)
    assert found["deploy"].description == "Project deploy"
    assert {"standup", "tidy", "mine"} <= set(found)
    assert "broken" not in found  # a broken file is left out, not a crash


async def test_inline_shell_and_file_reach_the_model(tmp_path: Path, home: Path, serve: Serve) -> None:
    write(tmp_path / "notes.txt", "the notes body\n")
    write(
        tmp_path / ".claude/commands/ctx.md",
        "---\ndescription: with context\n---\nStatus: !`echo inline-$ARGUMENTS`\nSee @notes.txt and $ARGUMENTS.\n",
    )
    server = serve(ListScript([Reply(text="ok")]))
    session = make_session(tmp_path, server)
    out = await run_command(session, "/ctx alpha")
    assert out.prompt is not None and "!`echo inline-alpha`" in out.prompt
    await collect(session, out.prompt)
    sent = last_user_text(server.requests[0].body)
    assert "Status: inline-alpha" in sent  # echo is read-only: the policy allows it without asking
    assert '<file path="notes.txt">\nthe notes body' in sent


async def test_inline_command_refused_does_not_run(tmp_path: Path, home: Path, serve: Serve) -> None:
    write(tmp_path / ".nbagent/commands/make.md", "Result: !`touch made.txt`\n")
    server = serve(ListScript([Reply(text="ok")]))
    session = make_session(tmp_path, server, headless="deny")
    out = await run_command(session, "/make")
    assert out.prompt is not None
    events = await collect(session, out.prompt)
    assert any(isinstance(e, PermissionAsked) and e.tool == "bash" for e in events)
    assert not (tmp_path / "made.txt").exists()
    assert "was not run" in last_user_text(server.requests[0].body)


async def test_a_typed_prompt_never_runs_inline_commands(tmp_path: Path, serve: Serve) -> None:
    server = serve(ListScript([Reply(text="ok")]))
    session = make_session(tmp_path, server)
    await collect(session, "what does !`touch typed.txt` do?")
    assert not (tmp_path / "typed.txt").exists()
    assert "!`touch typed.txt`" in last_user_text(server.requests[0].body)


async def test_frontmatter_model_subtask_and_help(tmp_path: Path, home: Path, serve: Serve) -> None:
    write(
        tmp_path / ".opencode/commands/find.md",
        "---\ndescription: Find things\nagent: explore\nsubtask: true\nargument-hint: WHAT\n---\nFind $ARGUMENTS.\n",
    )
    write(tmp_path / ".opencode/commands/cheap.md", "---\nmodel: openai/other\n---\nQuick: $1\n")
    write(
        tmp_path / ".claude/skills/pdf-forms/SKILL.md",
        "---\nname: pdf-forms\ndescription: Fill PDF forms. Use when a form is mentioned.\n---\nUse fill.py on $ARGUMENTS.\n",
    )
    server = serve(ListScript([]))
    session = make_session(tmp_path, server)
    help_text = (await run_command(session, "/help")).text
    assert "`/find WHAT` | Find things" in help_text
    assert "`/pdf-forms` | (skill) Fill PDF forms" in help_text
    assert "`/memory" in help_text and "`/agents`" in help_text

    out = await run_command(session, "/find the config loader")
    assert out.prompt is not None
    assert 'subagent_type: "explore"' in out.prompt and "Find the config loader." in out.prompt

    out = await run_command(session, "/cheap now please")
    assert out.prompt == "Quick: now please\n"
    assert any(isinstance(e, ModelSwitched) for e in out.events) and session.model == "openai/other"

    out = await run_command(session, "/pdf-forms a.pdf")
    assert out.prompt is not None and "Use fill.py on a.pdf." in out.prompt
    assert str(tmp_path / ".claude/skills/pdf-forms") in out.prompt


def test_sidebar_lists_memory_and_agents_commands() -> None:
    names = [n for n, _ in COMMAND_NAMES]
    assert "memory" in names and "agents" in names
