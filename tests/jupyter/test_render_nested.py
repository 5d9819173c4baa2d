"""A ``task`` call's child transcript nested in its card: the view model, the static HTML and text of
the saved notebook, and the live cell widget (its prompts answerable), fed with real event objects
wrapped in ``SubagentEvent`` as the task tool forwards them."""

from __future__ import annotations

from html.parser import HTMLParser
from typing import Any

import ipywidgets as w
import pytest

from nbagent.core.events import (
    Event,
    PermissionAsked,
    PermissionReplied,
    SubagentEvent,
    TextDelta,
    ToolCallCompleted,
    ToolCallPending,
    ToolCallRunning,
    TurnFinished,
    TurnStarted,
)
from nbagent.core.messages import Usage
from nbagent.jupyter.render_html import ToolBlock, Transcript, transcript_html, transcript_text
from nbagent.jupyter.widgets import TurnView

TASK_INPUT = {"description": "find the parser", "prompt": "Where is X parsed?", "subagent_type": "explore"}


def sub(
    event: Event, *, agent: str = "explore", call: str = "task1", child: str = "ses_child"
) -> SubagentEvent:
    return SubagentEvent(
        call_id=call, agent=agent, child_session_id=child, event=event.model_dump(mode="json")
    )


def child_run(*, finish: bool = True) -> list[Event]:
    """A parent's task call with its child's turn: text, a grep call, a permission prompt answered."""
    events: list[Event] = [
        ToolCallPending(call_id="task1", tool="task"),
        ToolCallRunning(call_id="task1", tool="task", input=TASK_INPUT),
        sub(TurnStarted(turn_id="ct1", prompt="Where is X parsed?", model="m")),
        sub(TextDelta(message_id="cm1", text="Looking for <the> parser")),
        sub(ToolCallRunning(call_id="g1", tool="grep", input={"pattern": "def parse"})),
        sub(ToolCallCompleted(call_id="g1", tool="grep", input={"pattern": "def parse"}, output="a.py:3")),
        sub(PermissionAsked(request_id="child-p1", call_id="g1", tool="bash", title="Run make", always=[])),
    ]
    if finish:
        events += [
            sub(PermissionReplied(request_id="child-p1", reply="once")),
            sub(TextDelta(message_id="cm2", text="It is parsed in a.py")),
            sub(TurnFinished(turn_id="ct1", reason="stop", steps=2, usage=Usage())),
            ToolCallCompleted(
                call_id="task1",
                tool="task",
                input=TASK_INPUT,
                output="It is parsed in a.py\n\ntask_id: ses_child",
            ),
        ]
    return events


class Details(HTMLParser):
    """The <details> elements of a page: (open, summary text, body text)."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[dict[str, Any]] = []
        self._stack: list[dict[str, Any]] = []
        self._in_summary = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "details":
            item = {
                "open": any(k == "open" for k, _ in attrs),
                "attrs": dict(attrs),
                "summary": "",
                "text": "",
            }
            self._stack.append(item)
            self.found.append(item)
        elif tag == "summary":
            self._in_summary = True

    def handle_endtag(self, tag: str) -> None:
        if tag == "details" and self._stack:
            self._stack.pop()
        elif tag == "summary":
            self._in_summary = False

    def handle_data(self, data: str) -> None:
        for item in self._stack:
            item["text"] += data
        if self._stack and self._in_summary:
            self._stack[-1]["summary"] += data


def nested_details(html: str) -> dict[str, Any]:
    parser = Details()
    parser.feed(html)
    (block,) = [d for d in parser.found if d["attrs"].get("class") == "nbagent-subagent"]
    return block


def test_the_childs_events_nest_in_the_task_card_not_in_the_turn() -> None:
    t = Transcript()
    for event in child_run():
        t.apply(event)
    assert [type(b).__name__ for b in t.blocks] == ["ToolBlock"]  # nothing of the child at the top
    card = t.blocks[0]
    assert isinstance(card, ToolBlock) and card.child is not None
    assert card.child.agent == "explore" and card.child.session_id == "ses_child"
    kinds = [type(b).__name__ for b in card.child.transcript.blocks]
    assert kinds == ["TextBlock", "ToolBlock", "PermissionBlock", "TextBlock"]
    assert t.pending() == [] and not card.child.running


def test_saved_html_folds_the_finished_child_and_names_its_agent() -> None:
    t = Transcript()
    for event in child_run():
        t.apply(event)
    block = nested_details(transcript_html(t))
    assert not block["open"]  # folded when done
    assert block["summary"].startswith("↳ agent explore · find the parser · 2 steps · done")
    assert "Looking for <the> parser" in block["text"]  # the child's text, escaped as text
    assert "grep" in block["text"] and "Run make" in block["text"] and "allowed once" in block["text"]
    text = transcript_text(t)
    assert "  ↳ agent explore · find the parser" in text
    assert "  │ ✓ grep def parse" in text and "  │ It is parsed in a.py" in text


def test_saved_html_keeps_a_running_or_asking_child_open() -> None:
    t = Transcript()
    for event in child_run(finish=False):
        t.apply(event)
    block = nested_details(transcript_html(t))
    assert block["open"] and "waiting for your answer" in block["summary"]
    assert [p.asked.request_id for p in t.pending() if p.asked] == ["child-p1"]


def test_a_grandchild_nests_inside_the_child() -> None:
    t = Transcript()
    t.apply(ToolCallRunning(call_id="task1", tool="task", input=TASK_INPUT))
    inner = SubagentEvent(
        call_id="task2",
        agent="general",
        child_session_id="ses_grandchild",
        event=TextDelta(message_id="gm", text="deep work").model_dump(mode="json"),
    )
    t.apply(sub(ToolCallRunning(call_id="task2", tool="task", input={"description": "dig"})))
    t.apply(sub(inner))
    html = transcript_html(t)
    assert html.count("class='nbagent-subagent'") == 2 and "agent <b>general · dig · running…</b>" in html
    assert "deep work" in html


def widgets_of(widget: w.Widget) -> list[w.Widget]:
    out = [widget]
    for child in getattr(widget, "children", ()):
        out.extend(widgets_of(child))
    return out


@pytest.mark.filterwarnings("ignore:on_submit is deprecated:DeprecationWarning")  # ipywidgets 8
def test_the_cell_widget_nests_the_child_live_and_answers_its_prompt() -> None:
    replies: list[tuple[str, str, str]] = []
    view = TurnView(model="m", on_reply=lambda *a: replies.append(a), on_stop=lambda: None)
    events = child_run(finish=False)
    for event in events:
        view.apply(event)
    view.flush()
    (nested,) = [x for x in widgets_of(view.widget) if isinstance(x, w.Accordion)]
    assert nested.selected_index == 0  # open while the child runs
    assert nested.titles[0].startswith("↳ agent explore · find the parser")
    prompt = view.prompt_for("child-p1")
    assert prompt is not None and prompt.widget in widgets_of(nested)
    assert "agent <b>explore</b> asks" in "".join(
        x.value for x in widgets_of(prompt.widget) if isinstance(x, w.HTML)
    )
    prompt.once.click()
    assert replies == [("child-p1", "once", "")]  # the child's request id, through the turn's callback
    for event in child_run()[len(events) :]:
        view.apply(event)
    view.flush()
    assert view.prompt_for("child-p1") is None  # the buttons gave way to the answer
    assert nested.selected_index is None  # folded once the child is done
    assert "2 steps · done" in nested.titles[0]
    texts = "".join(x.value for x in widgets_of(nested) if isinstance(x, w.HTML))
    assert "It is parsed in a.py" in texts and "allowed once" in texts
    view.close()


def test_the_record_keeps_the_final_text_and_a_bounded_digest() -> None:
    from nbagent.core.scrub import default_scrubber
    from nbagent.jupyter.child_digest import DIGEST_STEPS, ChildDigests
    from nbagent.store.turn_record import TurnNote

    digests = ChildDigests()
    new = [digests.observe(e) for e in child_run() if isinstance(e, SubagentEvent)]
    many = [
        sub(ToolCallRunning(call_id=f"r{i}", tool="read", input={"file_path": f"f{i}.py"}), call="task2")
        for i in range(DIGEST_STEPS + 25)
    ]
    new += [digests.observe(e) for e in many]
    notes = [n for n in new if n is not None]  # one note per task call, listed once
    assert [n.call_id for n in notes] == ["task1", "task2"]
    first, second = notes
    assert first.kind == "subagent" and first.agent == "explore" and first.session == "ses_child"
    assert first.message == "It is parsed in a.py" and first.level == "stop" and first.title == "2 steps"
    assert first.steps == ["● grep def parse", "? permission: Run make", "  → once"]
    assert len(second.steps) == DIGEST_STEPS + 1
    assert second.steps[-1] == "… 25 more steps (the child session has them all)"
    saved = TurnNote.model_validate(default_scrubber().json(first.model_dump()))  # as make_record keeps it
    assert saved == first
