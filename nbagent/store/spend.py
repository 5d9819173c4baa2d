"""The daily spending ledger: tokens and known cost per local date, summed over every session and process.

    ledger = SpendLedger(store)                          # any StoreConnection (the session store)
    ledger.add("2026-11-29", session.id, tokens=1200, cost=0.004)
    ledger.day("2026-11-29")                             # DaySpend(tokens=..., cost=...)

Each ``add`` is one ``BEGIN IMMEDIATE`` transaction that increments the row of (day, session): two
processes adding at once both count. Days are the caller's local dates (``date.today()``).
"""

from __future__ import annotations

import time

from pydantic import BaseModel

from nbagent.store.connection import StoreConnection


class DaySpend(BaseModel):
    """What one day cost across sessions: tokens (input + output) and the cost where it was known."""

    day: str
    tokens: int = 0
    cost: float = 0.0
    sessions: int = 0


class SpendLedger:
    def __init__(self, store: StoreConnection) -> None:
        self.store = store

    def add(self, day: str, session_id: str, *, tokens: int, cost: float) -> None:
        """Add a session's spend to ``day`` (negative amounts are ignored)."""
        tokens, cost = max(tokens, 0), max(cost, 0.0)
        if not tokens and not cost:
            return
        with self.store.transaction() as conn:
            conn.execute(
                "INSERT INTO spend_days (day, session_id, tokens, cost, updated) VALUES (?, ?, ?, ?, ?)"
                " ON CONFLICT (day, session_id) DO UPDATE SET tokens = tokens + excluded.tokens,"
                " cost = cost + excluded.cost, updated = excluded.updated",
                (day, session_id, tokens, cost, time.time()),
            )

    def day(self, day: str) -> DaySpend:
        """The total of ``day`` over all sessions."""
        with self.store.reading() as conn:
            row = conn.execute(
                "SELECT COALESCE(SUM(tokens), 0), COALESCE(SUM(cost), 0.0), COUNT(*) FROM spend_days"
                " WHERE day = ?",
                (day,),
            ).fetchone()
        return DaySpend(day=day, tokens=int(row[0]), cost=float(row[1]), sessions=int(row[2]))
