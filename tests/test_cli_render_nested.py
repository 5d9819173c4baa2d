"""The terminal rendering of a ``task`` call's child agent: its lines indented under the call, its
permission prompt named after it and answered with the child's own request id."""

from __future__ import annotations

import io

from rich.console import Console

from nbagent.cli_render import Renderer, permission_request
from nbagent.core.events import (
    Event,
    PermissionAsked,
    SubagentEvent,
    TextDelta,
    ToolCallCompleted,
    ToolCallRunning,
    TurnFinished,
    TurnStarted,
)
from nbagent.core.messages import Usage


def sub(event: Event, agent: str = "explore", child: str = "ses_child") -> SubagentEvent:
    return SubagentEvent(
        call_id="task1", agent=agent, child_session_id=child, event=event.model_dump(mode="json")
    )


def rendered(events: list[Event]) -> str:
    out = io.StringIO()
    renderer = Renderer("m", Console(file=out, width=120, highlight=False, color_system=None))
    for event in events:
        renderer.render(event)
    return out.getvalue()


def test_child_lines_are_indented_under_the_task_call() -> None:
    text = rendered(
        [
            TextDelta(message_id="m1", text="Delegating."),
            ToolCallRunning(call_id="task1", tool="task", input={"description": "find the parser"}),
            sub(TurnStarted(turn_id="ct", prompt="Where?", model="m")),
            sub(TextDelta(message_id="cm1", text="Looking for ")),
            sub(TextDelta(message_id="cm1", text="it\nsecond line")),
            sub(ToolCallRunning(call_id="g1", tool="grep", input={"pattern": "def parse"})),
            sub(ToolCallCompleted(call_id="g1", tool="grep", input={}, output="a.py:3")),
            sub(TurnFinished(turn_id="ct", reason="stop", steps=2, usage=Usage(input_tokens=10))),
            ToolCallCompleted(
                call_id="task1", tool="task", input={}, output="In a.py", title="find the parser"
            ),
        ]
    )
    lines = text.splitlines()
    assert lines[0] == "Delegating." and lines[1].startswith("● task find the parser")
    assert "  ↳ agent explore started" in lines
    assert "  │ Looking for it" in lines and "  │ second line" in lines  # text whole, not per delta
    assert "  │ ● grep def parse" in lines and "  │   ✓ a.py:3" in lines
    assert any(ln.startswith("  └ agent explore stop · 2 steps · 10 in") for ln in lines)


def test_a_grandchild_is_indented_one_level_deeper() -> None:
    grandchild = SubagentEvent(
        call_id="task2",
        agent="general",
        child_session_id="ses_g",
        event=ToolCallRunning(call_id="r1", tool="read", input={"file_path": "a.py"}).model_dump(mode="json"),
    )
    assert "  │ │ ● read a.py" in rendered([sub(grandchild)]).splitlines()


def test_a_childs_prompt_is_named_after_it_and_keeps_its_request_id() -> None:
    asked = PermissionAsked(request_id="child-p1", tool="bash", title="Run make", reason="bash: ask")
    found = permission_request(sub(asked))
    assert found is not None and found[0].request_id == "child-p1" and found[1] == "explore"
    assert permission_request(asked) == (asked, "")
    assert permission_request(sub(TextDelta(message_id="x", text="hi"))) is None
    text = rendered([sub(asked)])
    assert "? permission (explore) Run make (bash: ask)" in text
    out = io.StringIO()
    Renderer("m", Console(file=out, color_system=None)).show_permission_prompt(found[0], found[1])
    assert out.getvalue().startswith("  agent explore asks: Allow?")
