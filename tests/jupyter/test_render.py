"""The transcript view model and its HTML/text renderings, fed with real event objects."""

from __future__ import annotations

from nbagent.core.events import (
    DiffProduced,
    PermissionAsked,
    PermissionReplied,
    Retrying,
    TextDelta,
    TodoItem,
    TodoUpdated,
    ToolCallCompleted,
    ToolCallOutput,
    ToolCallPending,
    ToolCallRunning,
    TurnFinished,
    UsageUpdated,
)
from nbagent.core.messages import Usage
from nbagent.jupyter.render_html import (
    PermissionBlock,
    TextBlock,
    ToolBlock,
    Transcript,
    transcript_html,
    transcript_text,
)


def test_text_streams_into_one_block_and_escapes_html() -> None:
    t = Transcript()
    for piece in ["Hello **wor", "ld** <script>alert(1)</script>"]:
        t.apply(TextDelta(message_id="m1", text=piece))
    assert len(t.blocks) == 1 and isinstance(t.blocks[0], TextBlock)
    html = transcript_html(t)
    assert "<strong>world</strong>" in html
    assert "<script>" not in html and "&lt;script&gt;" in html


def test_tool_card_lifecycle_with_live_output_and_diff() -> None:
    t = Transcript()
    t.apply(ToolCallPending(call_id="c1", tool="bash"))
    t.apply(ToolCallRunning(call_id="c1", tool="bash", input={"command": "make test"}))
    t.apply(ToolCallOutput(call_id="c1", chunk="x" * 10_000))
    tool = t.tools["c1"]
    assert tool.status == "running" and len(tool.live) == 4_000
    diff = "--- a/f\n+++ b/f\n@@ -1 +1 @@\n-old\n+new\n" + "".join(f"+l{i}\n" for i in range(200))
    t.apply(DiffProduced(call_id="c1", path="f", diff=diff, additions=201, deletions=1))
    t.apply(
        ToolCallCompleted(call_id="c1", tool="bash", input={"command": "make test"}, output="ok\n" * 5000)
    )
    assert tool.status == "completed" and tool.live == ""
    html = transcript_html(t)
    assert "rgba(46,160,67" in html and "rgba(248,81,73" in html  # coloured
    assert "more lines</summary>" in html  # folded
    assert "not kept in the notebook" in html  # bounded in the saved output
    assert "characters omitted" in html
    assert "✓ bash make test" in transcript_text(t)


def test_permission_sits_below_its_call_and_shows_the_answer() -> None:
    t = Transcript()
    t.apply(ToolCallPending(call_id="c1", tool="edit"))
    t.apply(ToolCallPending(call_id="c2", tool="bash"))
    t.apply(
        PermissionAsked(
            request_id="p1",
            call_id="c1",
            tool="edit",
            title="Edit a.py",
            reason="edit: ask",
            always=["edit: a.py"],
        )
    )
    assert [type(b).__name__ for b in t.blocks] == ["ToolBlock", "PermissionBlock", "ToolBlock"]
    t.apply(PermissionReplied(request_id="p1", reply="always"))
    block = t.blocks[1]
    assert isinstance(block, PermissionBlock) and block.replied is not None
    html = transcript_html(t)
    assert "always allowed" in html and "edit: a.py" in html
    assert "? permission: Edit a.py → always" in transcript_text(t)


def test_todos_update_in_place_and_todowrite_cards_hide() -> None:
    t = Transcript()
    for done in range(3):
        t.apply(ToolCallPending(call_id=f"t{done}", tool="todowrite"))
        todos = [
            TodoItem(content=f"step {i}", status="completed" if i < done else "pending") for i in range(2)
        ]
        t.apply(TodoUpdated(todos=todos))
        t.apply(ToolCallCompleted(call_id=f"t{done}", tool="todowrite", input={}, output="ok"))
    todo_blocks = [b for b in t.blocks if type(b).__name__ == "TodoBlock"]
    assert len(todo_blocks) == 1
    text = transcript_text(t)
    assert text.count("Plan:") == 1 and "☑ step 1" in text and "todowrite" not in text


def test_retry_discards_the_partial_message() -> None:
    t = Transcript()
    t.apply(TextDelta(message_id="m1", text="partial"))
    t.apply(ToolCallPending(call_id="c9", tool="read"))
    t.apply(Retrying(attempt=1, max_attempts=3, wait=0.5, reason="overloaded", discard_message_id="m1"))
    assert not any(isinstance(b, TextBlock | ToolBlock) for b in t.blocks)
    assert "Retry 1/2" in transcript_text(t)


def test_footer_shows_model_tokens_cost_context() -> None:
    t = Transcript(model="openai/x")
    total = Usage(input_tokens=12_000, output_tokens=300, cost=0.0123)
    t.apply(
        UsageUpdated(
            step=2, model="openai/x", usage=total, total=total, context_tokens=8000, context_limit=32000
        )
    )
    t.apply(TurnFinished(turn_id="t", reason="stop", steps=2, usage=total))
    text = transcript_text(t)
    assert "openai/x · 12.0k in · 300 out · $0.0123 · context 8,000/32.0k (25%) · 2 steps · stop" in text
