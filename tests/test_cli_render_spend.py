"""The terminal renderer: cost after every step, model switches and budget statuses."""

from __future__ import annotations

from rich.console import Console

from nbagent.cli_render import Renderer
from nbagent.core.events import BudgetStatus, ModelSwitched, TurnFinished, UsageUpdated
from nbagent.core.messages import Usage


def rendered(events: list[object]) -> str:
    console = Console(record=True, width=200, color_system=None)
    renderer = Renderer("anthropic/claude-sonnet-4-5", console)
    for event in events:
        renderer.render(event)  # type: ignore[arg-type]
    return console.export_text()


def test_cost_shows_after_each_step_and_the_switch_and_stop_are_said() -> None:
    one = Usage(input_tokens=1200, output_tokens=80, cost=0.005)
    two = Usage(input_tokens=1500, output_tokens=40, cost=0.007)
    earlier = Usage(input_tokens=9000, output_tokens=900, cost=0.1)
    out = rendered(
        [
            UsageUpdated(step=1, model="anthropic/claude-sonnet-4-5", usage=one, total=earlier + one),
            ModelSwitched(
                from_model="anthropic/claude-sonnet-4-5",
                to_model="openai/gpt-5",
                reason="failover",
                message="anthropic/claude-sonnet-4-5: usage limit hit; continuing on openai/gpt-5",
            ),
            UsageUpdated(step=2, model="openai/gpt-5", usage=two, total=earlier + one + two),
            BudgetStatus(
                level="warning",
                budget="daily_cost",
                spent=8.5,
                limit=10,
                message="85% of the daily cost budget",
            ),
            BudgetStatus(
                level="stop", budget="daily_cost", spent=10.2, limit=10, message="Stopped: daily cost"
            ),
            TurnFinished(turn_id="t", reason="stop", steps=2, usage=one + two),
        ]
    )
    lines = out.splitlines()
    assert "$0.0050 so far (step 1: 1,200 in · 80 out · $0.0050)" in lines[0]
    assert lines[1] == "⇄ anthropic/claude-sonnet-4-5: usage limit hit; continuing on openai/gpt-5"
    assert "$0.0120 so far (step 2: 1,500 in · 40 out · $0.0070)" in lines[2]
    assert lines[3] == "! 85% of the daily cost budget" and lines[4] == "■ Stopped: daily cost"
    assert lines[5].startswith("── openai/gpt-5 · 2 steps · 2,700 in · 120 out · $0.0120 · session $0.1120")
    assert lines[5].endswith("stopped: daily cost budget")


def test_without_a_price_the_tokens_so_far_show() -> None:
    usage = Usage(input_tokens=300, output_tokens=20)
    out = rendered([UsageUpdated(step=1, model="openai/local", usage=usage, total=usage)])
    assert "320 tokens so far (step 1: 300 in · 20 out · cost unknown)" in out
