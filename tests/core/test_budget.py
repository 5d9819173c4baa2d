"""Budgets against the scripted model server: the stop comes before the model step after the one that
crossed the budget, for session tokens, session cost (a priced model) and daily tokens across two
sessions in two processes; a warning comes once when a budget is near; a cost budget on a model without
a price says it cannot be checked and the token budgets still hold.

Per-step usage is what the scripted server reports; it depends only on the length of each request, so a
dry run of the same task in a folder whose path has the same length gives the usage of every step.
"""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import date
from pathlib import Path
from typing import Any

from nbagent.core.config import BudgetConfig, Config, RetryConfig
from nbagent.core.events import BudgetStatus, Event, Notice, StepStarted, TurnFinished, UsageUpdated
from nbagent.core.messages import Usage
from nbagent.core.session import Session
from nbagent.providers.scripted import ListScript, Reply, ToolCallSpec
from nbagent.providers.scripted.server import ScriptedModelServer
from nbagent.store.db import SessionStore
from nbagent.store.spend import SpendLedger
from tests.conftest import _OPEN_SESSIONS, Serve, collect

REPO = Path(__file__).resolve().parents[2]
WORKER = Path(__file__).with_name("budget_worker.py")
STEPS = 5


def task(steps: int = STEPS) -> ListScript:
    """``steps`` model steps: each but the last writes a file, the last answers."""
    replies = [
        Reply(
            text=f"Writing part {i}.",
            tool_calls=[ToolCallSpec("write", {"file_path": f"part{i}.txt", "content": f"{i}\n" * 50})],
        )
        for i in range(1, steps)
    ]
    return ListScript([*replies, Reply(text="All parts written.")])


def new_session(
    root: Path,
    server: ScriptedModelServer,
    protocol: str = "openai",
    budget: BudgetConfig | None = None,
    store: SessionStore | None = None,
) -> Session:
    root.mkdir(exist_ok=True)
    model = "openai/scripted" if protocol == "openai" else "anthropic/claude-sonnet-4-5"
    base = server.openai_base if protocol == "openai" else server.anthropic_base
    config = Config(
        model=model, api_base=base, retry=RetryConfig(base_delay=0.0), budget=budget or BudgetConfig()
    )
    session = Session(root, config, api_key="test-key", headless="allow", store=store)
    _OPEN_SESSIONS.append(session)
    return session


async def step_totals(root: Path, serve: Serve, protocol: str = "openai") -> list[Usage]:
    """The session's usage after each step of ``task()``, from a dry run without budgets."""
    session = new_session(root, serve(task()), protocol)
    events = await collect(session, "write the parts")
    totals = [e.total for e in events if isinstance(e, UsageUpdated)]
    assert len(totals) == STEPS
    return totals


def tokens(usage: Usage) -> int:
    return usage.input_tokens + usage.output_tokens


def budget_events(events: list[Event]) -> list[BudgetStatus]:
    return [e for e in events if isinstance(e, BudgetStatus)]


def steps_before(events: list[Event], event: Event) -> int:
    """How many model steps had started when ``event`` came."""
    return sum(isinstance(e, StepStarted) for e in events[: events.index(event)])


async def test_session_token_budget_stops_before_the_step_after_the_crossing(
    tmp_path: Path, serve: Serve
) -> None:
    totals = await step_totals(tmp_path / "dry", serve)
    limit = tokens(totals[1]) + 1  # crossed by step 3
    store = SessionStore(tmp_path / "store.db")
    server = serve(task(), exact=False)
    root = tmp_path / "run"
    session = new_session(root, server, budget=BudgetConfig(session_tokens=limit), store=store)

    events = await collect(session, "write the parts")

    assert len(server.requests) == 3  # no fourth request reached the model
    finished = events[-1]
    assert isinstance(finished, TurnFinished) and finished.steps == 3 and finished.reason == "stop"
    warning, stop = budget_events(events)
    assert (warning.level, warning.budget) == ("warning", "session_tokens")
    assert steps_before(events, warning) == 2  # after step 2 (>= 80%), before step 3
    assert (stop.level, stop.budget, stop.limit) == ("stop", "session_tokens", limit)
    assert stop.spent == tokens(totals[2]) == tokens(session.usage)
    assert steps_before(events, stop) == 3
    assert "session token budget" in stop.message and f"{tokens(totals[2]):,} tokens" in stop.message
    assert f'"budget": {{"session_tokens": {2 * limit}}}' in stop.message
    # Whole steps only: three files, every call answered, the history saved as it is in memory.
    assert sorted(p.name for p in root.glob("part*.txt")) == ["part1.txt", "part2.txt", "part3.txt"]
    assert all(p.finished for m in session.messages for p in m.tool_parts())
    _, saved = store.load_session(session.id)
    assert [m.id for m in saved] == [m.id for m in session.messages]

    # The next prompt stops before its first model step; the warning is not repeated.
    again = await collect(session, "go on")
    assert len(server.requests) == 3
    assert [e.level for e in budget_events(again)] == ["stop"]
    last = again[-1]
    assert isinstance(last, TurnFinished) and last.steps == 0
    store.close()


async def test_session_cost_budget_on_a_priced_model(tmp_path: Path, serve: Serve) -> None:
    totals = await step_totals(tmp_path / "dry", serve, "anthropic")
    costs = [t.cost for t in totals]
    assert all(c is not None and c > 0 for c in costs)  # claude-sonnet-4-5 has a price
    c2, c3 = float(costs[1] or 0), float(costs[2] or 0)
    limit = (c2 + c3) / 2  # crossed by step 3; 80% of it is below step 2's cost only if c2 < 0.8 limit
    server = serve(task(), exact=False)
    session = new_session(tmp_path / "run", server, "anthropic", BudgetConfig(session_cost=limit, warn_at=1))

    events = await collect(session, "write the parts")

    assert len(server.requests) == 3
    assert not [e for e in events if isinstance(e, Notice) and "cannot be checked" in e.message]
    (stop,) = budget_events(events)  # warn_at=1: no warning before the stop
    assert (stop.level, stop.budget) == ("stop", "session_cost")
    assert abs(stop.spent - c3) < 1e-9 and stop.spent >= limit
    assert steps_before(events, stop) == 3
    assert f"${c3:,.2f} spent in this session" in stop.message and '"session_cost":' in stop.message


async def test_a_cost_budget_without_a_price_says_so_once_and_tokens_still_count(
    tmp_path: Path, serve: Serve
) -> None:
    totals = await step_totals(tmp_path / "dry", serve)
    server = serve(task(), exact=False)
    budget = BudgetConfig(session_cost=0.000001, session_tokens=tokens(totals[3]))  # crossed by step 4
    session = new_session(tmp_path / "run", server, budget=budget)

    events = await collect(session, "write the parts")
    again = await collect(session, "go on")

    unpriced = [e for e in events + again if isinstance(e, Notice) and "cannot be checked" in e.message]
    assert len(unpriced) == 1 and "openai/scripted" in unpriced[0].message
    assert events.index(unpriced[0]) < next(i for i, e in enumerate(events) if isinstance(e, StepStarted))
    assert len(server.requests) == 4  # the cost budget never stops it; the token budget does, after step 4
    stop = budget_events(events)[-1]
    assert (stop.level, stop.budget, stop.spent) == ("stop", "session_tokens", tokens(totals[3]))


async def test_daily_token_budget_adds_up_sessions_of_two_processes(tmp_path: Path, serve: Serve) -> None:
    totals = await step_totals(tmp_path / "dry", serve)
    # The first session, in another process, spends P tokens in a two-step task.
    first = serve(task(2))
    (tmp_path / "one").mkdir()
    out = subprocess.run(
        [sys.executable, str(WORKER), str(tmp_path / "one"), first.openai_base, "write the parts"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        check=False,
    )
    assert out.returncode == 0, out.stderr
    spent_before = int(out.stdout.strip().splitlines()[-1])
    assert spent_before > 0
    store = SessionStore()  # the default store, shared with the worker (NBAGENT_DATA_DIR)
    ledger = SpendLedger(store)
    assert ledger.day(date.today().isoformat()).tokens == spent_before

    limit = spent_before + tokens(totals[1]) + 1  # today's total crosses it in this session's step 3
    server = serve(task(), exact=False)
    session = new_session(tmp_path / "run", server, budget=BudgetConfig(daily_tokens=limit), store=store)
    events = await collect(session, "write the parts")

    assert len(server.requests) == 3
    stop = budget_events(events)[-1]
    assert (stop.level, stop.budget) == ("stop", "daily_tokens")
    assert stop.spent == spent_before + tokens(totals[2])
    assert steps_before(events, stop) == 3
    assert "daily token budget" in stop.message and "spent today" in stop.message
    today = ledger.day(date.today().isoformat())
    assert (today.tokens, today.sessions) == (spent_before + tokens(totals[2]), 2)
    store.close()


async def test_daily_budget_of_an_unstored_session_uses_the_default_ledger(
    tmp_path: Path, serve: Serve
) -> None:
    day = date.today().isoformat()
    with SessionStore() as store:
        SpendLedger(store).add(day, "ses_elsewhere", tokens=10_000_000, cost=0.0)
    server = serve(task(), exact=False)
    session = new_session(tmp_path / "run", server, budget=BudgetConfig(daily_tokens=5_000_000))
    events: list[Any] = await collect(session, "write the parts")
    assert len(server.requests) == 0
    (stop,) = budget_events(events)
    assert stop.budget == "daily_tokens" and stop.spent == 10_000_000
