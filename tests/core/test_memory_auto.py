"""Memory the agent keeps: ``# note`` and ``/memory`` (AGENTS.md, confirmed), and opt-in auto-memory."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from nbagent.core.commands import run_command
from nbagent.core.config import Config, MemoryConfig, RetryConfig
from nbagent.core.context import memory
from nbagent.core.events import Notice, PermissionAsked, TurnFinished
from nbagent.core.session import Session
from nbagent.providers.scripted import ListScript, Reply, ToolCallSpec
from nbagent.providers.scripted.server import ScriptedModelServer
from tests.conftest import Serve, collect, make_session


def auto_session(root: Path, server: ScriptedModelServer, auto: bool = True) -> Session:
    config = Config(
        model="openai/scripted",
        api_base=server.openai_base,
        retry=RetryConfig(base_delay=0.0),
        memory=MemoryConfig(auto=auto),
    )
    return Session(root, config, api_key="test-key", headless="allow")


def tool_names(body: dict[str, Any]) -> list[str]:
    return [t["function"]["name"] for t in body.get("tools", [])]


def system_text(body: dict[str, Any]) -> str:
    content = body["messages"][0]["content"]
    return content if isinstance(content, str) else "".join(p.get("text", "") for p in content)


async def test_hash_note_appends_to_agents_md_after_confirmation(tmp_path: Path, serve: Serve) -> None:
    (tmp_path / ".git").mkdir()
    (tmp_path / "AGENTS.md").write_text("# Project\nUse uv.")
    server = serve(ListScript([]))  # no model request at all
    session = make_session(tmp_path, server)
    events = await collect(session, "# run tests with `make test`")
    asked = [e for e in events if isinstance(e, PermissionAsked)]
    assert asked and "AGENTS.md" in asked[0].title
    assert (tmp_path / "AGENTS.md").read_text() == "# Project\nUse uv.\n- run tests with `make test`\n"
    assert isinstance(events[-1], TurnFinished) and "Added to `AGENTS.md`" in events[-1].text
    assert session.messages == []


async def test_hash_note_refused_writes_nothing(tmp_path: Path, serve: Serve) -> None:
    server = serve(ListScript([]))
    session = make_session(tmp_path, server, headless="deny")
    events = await collect(session, "# never written")
    assert not (tmp_path / "AGENTS.md").exists()
    assert any(isinstance(e, Notice) and "Not added" in e.message for e in events)


async def test_a_heading_with_two_hashes_is_a_prompt(tmp_path: Path, serve: Serve) -> None:
    server = serve(ListScript([Reply(text="ok")]))
    session = make_session(tmp_path, server)
    await collect(session, "## Task\nsay ok")
    assert len(server.requests) == 1 and not (tmp_path / "AGENTS.md").exists()


async def test_a_multi_line_prompt_under_a_heading_is_a_prompt(tmp_path: Path, serve: Serve) -> None:
    server = serve(ListScript([Reply(text="ok")]))
    session = make_session(tmp_path, server)
    await collect(session, "# Refactor\nsplit the module")
    assert len(server.requests) == 1 and not (tmp_path / "AGENTS.md").exists()


async def test_memory_command_lists_files_and_adds(tmp_path: Path, serve: Serve) -> None:
    (tmp_path / "CLAUDE.md").write_text("Be brief.\n")
    server = serve(ListScript([]))
    session = make_session(tmp_path, server)
    out = await run_command(session, "/memory")
    assert f"project: `{tmp_path / 'CLAUDE.md'}`" in out.text
    assert "Auto-memory is off" in out.text
    out = await run_command(session, "/memory add prefer pathlib")
    assert out.prompt == "# prefer pathlib"
    await collect(session, out.prompt)
    assert (tmp_path / "CLAUDE.md").read_text() == "Be brief.\n- prefer pathlib\n"  # the existing file


async def test_auto_memory_saved_shown_and_loaded_next_session(tmp_path: Path, serve: Serve) -> None:
    (tmp_path / ".git").mkdir()
    script = ListScript(
        [
            Reply(tool_calls=[ToolCallSpec("memory", {"fact": "tests run with `pytest -q tests/fast`"})]),
            Reply(text="saved"),
            Reply(text="second session"),
        ]
    )
    server = serve(script)
    first = auto_session(tmp_path, server)
    events = await collect(first, "remember how to test")
    assert "memory" in tool_names(server.requests[0].body)
    path = memory.auto_memory_path(tmp_path)
    assert path.is_file() and "tests run with `pytest -q tests/fast`" in path.read_text()
    assert Path(os.environ["NBAGENT_DATA_DIR"]) in path.parents  # outside the repository
    assert not any(p for p in tmp_path.rglob("MEMORY.md"))
    assert any(isinstance(e, Notice) and "Saved to auto-memory" in e.message for e in events)
    assert oct(path.stat().st_mode & 0o777) == "0o600"

    second = auto_session(tmp_path, server)
    await collect(second, "hi")
    assert "tests run with `pytest -q tests/fast`" in system_text(server.requests[2].body)
    assert (await run_command(second, "/memory")).text.count(str(path)) == 2  # loaded, and where it goes


async def test_auto_memory_off_by_default(tmp_path: Path, serve: Serve) -> None:
    path = memory.auto_memory_path(tmp_path)
    memory.append_note(path, "a fact from before")
    server = serve(ListScript([Reply(text="ok")]))
    session = auto_session(tmp_path, server, auto=False)
    await collect(session, "hi")
    assert "memory" not in tool_names(server.requests[0].body)
    assert "a fact from before" not in system_text(server.requests[0].body)


def test_auto_memory_loaded_bounded(tmp_path: Path) -> None:
    path = memory.auto_memory_path(tmp_path)
    for i in range(400):
        memory.append_note(path, f"fact number {i}")
    loaded = memory.load_auto(tmp_path, 1_000)
    assert loaded is not None and len(loaded.text) < 1_200
    assert "fact number 399" in loaded.text and "fact number 0\n" not in loaded.text
    assert str(path) in loaded.text  # says where the rest is
