"""todowrite: replaces the session's list, tells the front-end, renders compactly."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from nbagent.core.events import Event, TodoItem, TodoUpdated
from nbagent.tools.base import PermissionQuery, ToolContext
from nbagent.tools.todo import TodoWriteTool


async def test_todowrite_replaces_state_emits_and_renders(tmp_path: Path) -> None:
    events: list[Event] = []
    asks: list[PermissionQuery] = []

    async def ask(query: PermissionQuery) -> None:
        asks.append(query)

    ctx = ToolContext(root=tmp_path, emit=events.append, ask=ask, session_id="s1")
    tool = TodoWriteTool()
    result = await tool.run(
        tool.parse(
            {
                "todos": [
                    {"content": "Read the failing test", "status": "completed", "priority": "high"},
                    {"content": "Fix  the\nparser", "status": "in_progress", "id": "fix"},
                    {"content": "Run the suite", "priority": "low"},
                    {"content": "Write docs", "status": "cancelled"},
                ]
            }
        ),
        ctx,
    )
    assert result.output == (
        "[x] 1. Read the failing test (high)\n"
        "[>] fix. Fix the parser\n"
        "[ ] 2. Run the suite (low)\n"
        "[-] 3. Write docs\n"
        "1/4 completed."
    )
    todos = ctx.state["todos"]
    assert [t.id for t in todos] == ["1", "fix", "2", "3"]
    assert todos[1] == TodoItem(content="Fix the parser", status="in_progress", priority="medium", id="fix")
    assert len(events) == 1
    assert isinstance(events[0], TodoUpdated)
    assert events[0].todos == todos
    assert events[0].session_id == "s1"
    assert asks == []  # no permission needed

    # the whole list is replaced, not merged; two in progress is flagged
    result = await tool.run(
        tool.parse(
            {"todos": [{"content": "a", "status": "in_progress"}, {"content": "b", "status": "in_progress"}]}
        ),
        ctx,
    )
    assert [t.content for t in ctx.state["todos"]] == ["a", "b"]
    assert "Warning: 2 items are in_progress (1, 2)" in result.output
    assert len(events) == 2

    result = await tool.run(tool.parse({"todos": []}), ctx)
    assert result.output == "Todo list cleared."
    assert ctx.state["todos"] == []
    assert isinstance(events[-1], TodoUpdated) and events[-1].todos == []


def test_todowrite_rejects_bad_items() -> None:
    tool = TodoWriteTool()
    with pytest.raises(ValidationError):
        tool.parse({"todos": [{"content": "x", "status": "done"}]})
    with pytest.raises(ValidationError):
        tool.parse({"todos": [], "extra": 1})
