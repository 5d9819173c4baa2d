"""Spending budgets (``Config.budget``): a warning when one is near, a clean stop before the next model step
when one is reached.

The loop asks before each model step and once when the turn ends::

    if not await spend.before_step(session, emit):   # a BudgetStatus(level="stop") was emitted
        break
    ...
    await spend.after_turn(session, emit)

Session budgets count the session's usage (``session.usage``, kept across resumes). Daily budgets count
the ledger of the session store (:mod:`nbagent.store.spend`): each check adds what the session spent
since the last one to today's row (local date), so sessions in other processes add up. A cost budget
counts the steps whose price is known; for a model without a known price it says once that the cost
cannot be checked, and the token budgets still hold.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

from nbagent.core.errors import NbagentError
from nbagent.core.events import BudgetStatus, Notice
from nbagent.core.messages import Usage

if TYPE_CHECKING:
    from nbagent.core.config import BudgetConfig, Config
    from nbagent.core.events import Event
    from nbagent.store.spend import SpendLedger

BudgetName = Literal["session_cost", "session_tokens", "daily_cost", "daily_tokens"]
BUDGETS: tuple[BudgetName, ...] = ("session_cost", "session_tokens", "daily_cost", "daily_tokens")
_WHAT: dict[BudgetName, str] = {
    "session_cost": "session cost budget",
    "session_tokens": "session token budget",
    "daily_cost": "daily cost budget",
    "daily_tokens": "daily token budget",
}


class Spender(Protocol):
    """What the budget check reads of a session."""

    id: str
    model: str
    config: Config
    usage: Usage


def tokens_of(usage: Usage) -> int:
    """What a token budget counts: input (cache reads and writes included) plus output."""
    return usage.input_tokens + usage.output_tokens


def price_known(model: str) -> bool:
    from nbagent.providers import models

    return models.cost(model, Usage(input_tokens=1000, output_tokens=1000)) is not None


@dataclass(frozen=True)
class Reading:
    """One budget against what was spent."""

    budget: BudgetName
    spent: float
    limit: float

    @property
    def share(self) -> float:
        return self.spent / self.limit


def _amount(budget: BudgetName, value: float) -> str:
    return f"${value:,.2f}" if budget.endswith("cost") else f"{int(value):,} tokens"


def _raised(budget: BudgetName, limit: float) -> str:
    """A suggested new limit (twice the current one), as JSON."""
    value = limit * 2
    return f"{value:g}" if budget.endswith("cost") else str(int(value))


def raise_hint(budget: BudgetName, limit: float) -> str:
    return f'raise it in nbagent.json: "budget": {{"{budget}": {_raised(budget, limit)}}}'


def stop_message(reading: Reading) -> str:
    b = reading.budget
    when = "today" if b.startswith("daily") else "in this session"
    later = "wait for tomorrow" if b.startswith("daily") else "start a new session (/new)"
    return (
        f"Stopped: the {_WHAT[b]} is reached ({_amount(b, reading.spent)} spent {when}, limit"
        f" {_amount(b, reading.limit)}). The turn ends before the next model step; the session is saved."
        f" To go on, {raise_hint(b, reading.limit)}, or {later}."
    )


def warning_message(reading: Reading) -> str:
    b = reading.budget
    when = "today" if b.startswith("daily") else "in this session"
    if reading.spent >= reading.limit:
        return (
            f"The {_WHAT[b]} is reached ({_amount(b, reading.spent)} spent {when}, limit"
            f" {_amount(b, reading.limit)}): the next prompt stops before the model is called."
            f" To go on, {raise_hint(b, reading.limit)}."
        )
    return (
        f"{100 * reading.share:.0f}% of the {_WHAT[b]} used ({_amount(b, reading.spent)} of"
        f" {_amount(b, reading.limit)} {when}). At the limit the agent stops before its next step;"
        f" to allow more, {raise_hint(b, reading.limit)}."
    )


def _ledger_path(session: Spender) -> Path:
    from nbagent.core.private import data_dir
    from nbagent.store.connection import DB_NAME

    store = getattr(session, "store", None)
    if store is not None:
        return Path(store.path)
    return Path(session.config.store).expanduser() if session.config.store else data_dir() / DB_NAME


class SpendGuard:
    """The budgets of one session: what it has added to the daily ledger, what it has warned about."""

    def __init__(self, session: Spender, *, today: Callable[[], date] = date.today) -> None:
        self.today = today
        self._recorded = session.usage.model_copy()  # what earlier processes already counted
        self._warned: set[tuple[BudgetName, str]] = set()
        self._unpriced: set[str] = set()
        self._ledger: SpendLedger | None = None
        self._ledger_failed = False

    # -- the ledger --------------------------------------------------------------------------------

    def _open_ledger(self, session: Spender) -> SpendLedger | None:
        if self._ledger is None:
            from nbagent.store.spend import SpendLedger

            store = getattr(session, "store", None)
            if store is None:
                if not _daily(session.config.budget):
                    return None  # an in-memory session without a daily budget: nothing to add up
                from nbagent.store.connection import StoreConnection

                store = StoreConnection(_ledger_path(session))
                weakref.finalize(self, store.close)
            self._ledger = SpendLedger(store)
        return self._ledger

    def counted_elsewhere(self, usage: Usage) -> None:
        """``usage`` joins the session's totals but is in the ledger already (a child session's, which
        records its own spend): it is not added to the day a second time."""
        self._recorded = self._recorded + usage

    def _settle(self, session: Spender) -> None:
        """Add the session's spend since the last call to today's ledger row."""
        now, before = session.usage, self._recorded
        tokens = tokens_of(now) - tokens_of(before)
        cost = (now.cost or 0.0) - (before.cost or 0.0)
        if tokens < 0 or cost < -1e-12:  # the usage was reset (a new session in the same object)
            tokens, cost = max(tokens_of(now), 0), now.cost or 0.0
        ledger = self._open_ledger(session)
        if ledger is not None:
            ledger.add(self.today().isoformat(), session.id, tokens=tokens, cost=cost)
        self._recorded = now.model_copy()

    def readings(self, session: Spender) -> list[Reading]:
        """Every configured budget against what was spent (records the session's new spend first)."""
        budget = session.config.budget
        self._settle(session)
        out: list[Reading] = []
        if budget.session_cost is not None:
            out.append(Reading("session_cost", session.usage.cost or 0.0, budget.session_cost))
        if budget.session_tokens is not None:
            out.append(Reading("session_tokens", tokens_of(session.usage), budget.session_tokens))
        if _daily(budget):
            ledger = self._open_ledger(session)
            day = ledger.day(self.today().isoformat()) if ledger is not None else None
            if day is not None and budget.daily_cost is not None:
                out.append(Reading("daily_cost", day.cost, budget.daily_cost))
            if day is not None and budget.daily_tokens is not None:
                out.append(Reading("daily_tokens", day.tokens, budget.daily_tokens))
        return out

    # -- the checks --------------------------------------------------------------------------------

    def check(self, session: Spender, *, before_step: bool) -> tuple[list[Event], bool]:
        """The events to show and whether the next model step may run."""
        budget = session.config.budget
        events: list[Event] = []
        if _cost_budget(budget) and session.model not in self._unpriced and not price_known(session.model):
            self._unpriced.add(session.model)
            events.append(
                Notice(
                    session_id=session.id,
                    level="warning",
                    message=f"The cost budget cannot be checked for {session.model}: its price is not known."
                    " Its steps count toward the token budgets only"
                    ' (set one, e.g. "budget": {"daily_tokens": 2000000}).',
                )
            )
        try:
            readings = self.readings(session)
        except NbagentError as exc:  # the store cannot be written (a full disk): say it once, go on
            if not self._ledger_failed:
                self._ledger_failed = True
                events.append(
                    Notice(
                        session_id=session.id,
                        level="warning",
                        message=f"The daily budget cannot be counted: {exc} {exc.hint}".strip(),
                    )
                )
            return events, True
        day = self.today().isoformat()
        if before_step:
            for r in readings:
                if r.spent >= r.limit:
                    self._warned.add((r.budget, day if r.budget.startswith("daily") else ""))
                    events.append(self._status(session, r, "stop"))
                    return events, False
        for r in readings:
            key = (r.budget, day if r.budget.startswith("daily") else "")
            if r.spent >= budget.warn_at * r.limit and key not in self._warned:
                self._warned.add(key)
                events.append(self._status(session, r, "warning"))
        return events, True

    @staticmethod
    def _status(session: Spender, r: Reading, level: Literal["warning", "stop"]) -> BudgetStatus:
        message = stop_message(r) if level == "stop" else warning_message(r)
        return BudgetStatus(
            session_id=session.id, level=level, budget=r.budget, spent=r.spent, limit=r.limit, message=message
        )


def _daily(budget: BudgetConfig) -> bool:
    return budget.daily_cost is not None or budget.daily_tokens is not None


def _cost_budget(budget: BudgetConfig) -> bool:
    return budget.session_cost is not None or budget.daily_cost is not None


_GUARDS: weakref.WeakKeyDictionary[Any, SpendGuard] = weakref.WeakKeyDictionary()


def guard_of(session: Spender) -> SpendGuard:
    """The session's guard (made on first use: what the session had spent then is already counted)."""
    guard = _GUARDS.get(session)
    if guard is None:
        guard = _GUARDS[session] = SpendGuard(session)
    return guard


def _needed(session: Spender) -> bool:
    budget = session.config.budget
    return any(getattr(budget, b) is not None for b in BUDGETS) or getattr(session, "store", None) is not None


async def before_step(session: Spender, emit: Callable[[Event], None]) -> bool:
    """Before a model step: False (after a ``BudgetStatus(level="stop")``) when a budget is reached."""
    if not _needed(session):
        return True
    events, go_on = await asyncio.to_thread(guard_of(session).check, session, before_step=True)
    for event in events:
        emit(event)
    return go_on


async def after_turn(session: Spender, emit: Callable[[Event], None]) -> None:
    """When the turn ends: count its last step in the ledger, warn of a budget it brought near."""
    if not _needed(session):
        return
    events, _ = await asyncio.to_thread(guard_of(session).check, session, before_step=False)
    for event in events:
        emit(event)
