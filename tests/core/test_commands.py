"""Slash commands shared by the front-ends."""

from __future__ import annotations

from pathlib import Path

from nbagent.core.commands import custom_commands, expand, run_command
from nbagent.core.events import ContextReport
from nbagent.providers.scripted import ListScript, Reply
from tests.conftest import Serve, collect, make_session


def test_custom_commands_from_all_three_folders(tmp_path: Path) -> None:
    (tmp_path / ".nbagent/commands").mkdir(parents=True)
    (tmp_path / ".claude/commands/git").mkdir(parents=True)
    (tmp_path / ".opencode/command").mkdir(parents=True)
    (tmp_path / ".nbagent/commands/review.md").write_text(
        "---\ndescription: Review a file\n---\nReview $1 for $2.\n"
    )
    (tmp_path / ".claude/commands/review.md").write_text("shadowed\n")
    (tmp_path / ".claude/commands/git/log.md").write_text("Summarise the git log.\n")
    (tmp_path / ".opencode/command/fix.md").write_text("Fix: $ARGUMENTS\n")
    found = custom_commands(tmp_path)
    assert sorted(found) == ["fix", "git:log", "review"]
    assert found["review"].description == "Review a file"
    assert (
        expand(found["review"].template, 'src/a.py "style issues"') == "Review src/a.py for style issues.\n"
    )
    assert expand(found["fix"].template, "the flaky test") == "Fix: the flaky test\n"
    assert expand("Summarise.", "briefly") == "Summarise.\n\nbriefly"


async def test_builtin_commands(tmp_path: Path, serve: Serve) -> None:
    (tmp_path / ".nbagent/commands").mkdir(parents=True)
    (tmp_path / ".nbagent/commands/hello.md").write_text("Say hello to $ARGUMENTS.\n")
    server = serve(ListScript([Reply(text="hi")]))
    session = make_session(tmp_path, server)
    await collect(session, "hello")

    help_text = (await run_command(session, "/help")).text
    assert "/compact" in help_text and "/hello" in help_text
    context = await run_command(session, "/context")
    assert isinstance(context.events[0], ContextReport)
    assert "Tool definitions" in context.text and "Free" in context.text
    assert "input tokens" in (await run_command(session, "/cost")).text
    assert (await run_command(session, "/model anthropic/claude-sonnet-4-5")).text.startswith(
        "Model switched"
    )
    assert session.model == "anthropic/claude-sonnet-4-5" and session.limits.context >= 100_000
    assert "AGENTS.md" in ((await run_command(session, "/init")).prompt or "")
    assert (await run_command(session, "/hello the team")).prompt == "Say hello to the team.\n"
    assert (await run_command(session, "/new")).action == "new_session"
    assert "Unknown command" in (await run_command(session, "/nope")).text
    assert (await run_command(session, "/undo")).text == "Nothing to undo."
