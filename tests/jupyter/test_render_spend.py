"""Live cost, budget and model-switch events in the cell transcript (widget, static HTML and text) and in
the notebook's turn record."""

from __future__ import annotations

from pathlib import Path

from nbagent.core.config import BudgetConfig, Config
from nbagent.core.events import (
    BudgetStatus,
    ModelSwitched,
    TurnFinished,
    TurnStarted,
    UsageUpdated,
)
from nbagent.core.messages import Usage
from nbagent.core.session import Session
from nbagent.jupyter.recorder import TurnRecorder
from nbagent.jupyter.render_html import footer_text, transcript_html, transcript_text
from nbagent.jupyter.transcript import Transcript
from nbagent.jupyter.widgets import TurnView

STOP = (
    "Stopped: the session cost budget is reached ($2.10 spent in this session, limit $2.00)."
    ' To go on, raise it in nbagent.json: "budget": {"session_cost": 4}, or start a new session (/new).'
)


def step(
    n: int, cost: float, before: Usage, model: str = "anthropic/claude-sonnet-4-5"
) -> tuple[UsageUpdated, Usage]:
    usage = Usage(input_tokens=1000, output_tokens=100, cost=cost)
    total = before + usage
    return UsageUpdated(step=n, model=model, usage=usage, total=total), total


def events_of_a_stopped_turn(earlier: Usage) -> list[object]:
    first, total = step(1, 0.5, earlier)
    second, total = step(2, 0.6, total, "openai/gpt-5")
    return [
        TurnStarted(turn_id="t1", prompt="go", model="anthropic/claude-sonnet-4-5"),
        first,
        ModelSwitched(
            from_model="anthropic/claude-sonnet-4-5",
            to_model="openai/gpt-5",
            reason="failover",
            message="anthropic/claude-sonnet-4-5: usage limit hit; continuing on openai/gpt-5",
        ),
        second,
        BudgetStatus(level="stop", budget="session_cost", spent=2.1, limit=2.0, message=STOP),
        TurnFinished(
            turn_id="t1", reason="stop", steps=2, usage=Usage(input_tokens=2000, output_tokens=200, cost=1.1)
        ),
    ]


def test_footer_cost_is_live_per_step_with_the_session_total() -> None:
    t = Transcript(model="anthropic/claude-sonnet-4-5")
    earlier = Usage(input_tokens=5000, output_tokens=500, cost=1.0)  # earlier turns of the session
    events = events_of_a_stopped_turn(earlier)
    t.apply(events[0])  # type: ignore[arg-type]
    t.apply(events[1])  # type: ignore[arg-type]
    text = footer_text(t.footer)
    assert "1,000 in · 100 out · $0.5000 · session $1.5000" in text and "running…" in text
    for event in events[2:]:
        t.apply(event)  # type: ignore[arg-type]
    text = footer_text(t.footer)
    assert text.startswith("openai/gpt-5 · 2,000 in · 200 out · $1.1000 · session $2.1000")
    assert text.endswith("stopped: session cost budget reached")


def test_switch_and_budget_stop_show_in_html_and_text() -> None:
    t = Transcript()
    for event in events_of_a_stopped_turn(Usage()):
        t.apply(event)  # type: ignore[arg-type]
    text = transcript_text(t)
    assert "! anthropic/claude-sonnet-4-5: usage limit hit; continuing on openai/gpt-5" in text
    assert "■ Stopped: the session cost budget is reached" in text and '"budget": {"session_cost": 4}' in text
    html = transcript_html(t)
    assert "continuing on openai/gpt-5" in html
    assert "#c62828" in html and "&quot;budget&quot;: {&quot;session_cost&quot;: 4}" in html


def test_a_budget_warning_and_a_user_switch_are_notices() -> None:
    t = Transcript()
    t.apply(
        BudgetStatus(
            level="warning",
            budget="daily_tokens",
            spent=85,
            limit=100,
            message="85% of the daily token budget used",
        )
    )
    t.apply(
        ModelSwitched(
            from_model="a/x",
            to_model="b/y",
            reason="user",
            message="Now on b/y; the prompt cache starts over.",
        )
    )
    assert transcript_text(t).splitlines()[:2] == [
        "! 85% of the daily token budget used",
        "Now on b/y; the prompt cache starts over.",
    ]
    assert t.footer.model == "b/y" and not t.footer.budget


def test_the_cell_widget_footer_updates_after_each_step() -> None:
    view = TurnView(model="anthropic/claude-sonnet-4-5", on_reply=lambda *_: None, on_stop=lambda: None)
    events = events_of_a_stopped_turn(Usage())
    view.apply(events[0])  # type: ignore[arg-type]
    view.apply(events[1])  # type: ignore[arg-type]
    assert "$0.5000" in view.footer.value
    view.apply(events[2])  # type: ignore[arg-type]
    view.apply(events[3])  # type: ignore[arg-type]
    assert "$1.1000" in view.footer.value and "openai/gpt-5" in view.footer.value
    view.apply(events[4])  # type: ignore[arg-type]
    assert any("Stopped: the session cost budget" in h.value for h in view._html.values())
    view.close()


def test_the_turn_record_keeps_switches_and_budget_notes(tmp_path: Path) -> None:
    config = Config(model="anthropic/claude-sonnet-4-5", budget=BudgetConfig(session_cost=2))
    session = Session(tmp_path, config, api_key="k", tools=[])
    recorder = TurnRecorder(session, "go")
    for event in events_of_a_stopped_turn(Usage()):
        recorder.observe(event)  # type: ignore[arg-type]
    record = recorder.record("stop")
    notes = [(n.level, n.message) for n in record.notes if n.kind == "notice"]
    assert ("warning", "anthropic/claude-sonnet-4-5: usage limit hit; continuing on openai/gpt-5") in notes
    assert ("warning", STOP) in notes
