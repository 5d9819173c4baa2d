"""The daily spending ledger: per local date, summed over sessions; concurrent processes all count; a store
of the first schema version gains the ledger when opened."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

from nbagent.store.db import SessionInfo, SessionStore
from nbagent.store.migrations import MIGRATIONS, SCHEMA_VERSION, statements
from nbagent.store.spend import SpendLedger

REPO = Path(__file__).resolve().parents[2]
ADDER = """
import sys
from pathlib import Path
from nbagent.store.db import SessionStore
from nbagent.store.spend import SpendLedger

store = SessionStore(Path(sys.argv[1]))
ledger = SpendLedger(store)
for _ in range(int(sys.argv[3])):
    ledger.add("2026-11-29", sys.argv[2], tokens=7, cost=0.25)
store.close()
"""


def test_days_and_sessions_add_up(tmp_path: Path) -> None:
    with SessionStore(tmp_path / "s.db") as store:
        ledger = SpendLedger(store)
        ledger.add("2026-11-28", "ses_a", tokens=100, cost=1.5)
        ledger.add("2026-11-29", "ses_a", tokens=10, cost=0.5)
        ledger.add("2026-11-29", "ses_a", tokens=5, cost=0.0)
        ledger.add("2026-11-29", "ses_b", tokens=1, cost=0.25)
        ledger.add("2026-11-29", "ses_c", tokens=0, cost=0.0)  # nothing spent: no row
        day = ledger.day("2026-11-29")
        assert (day.tokens, day.cost, day.sessions) == (16, 0.75, 2)
        assert ledger.day("2026-11-28").tokens == 100
        assert ledger.day("2026-11-30").model_dump() == {
            "day": "2026-11-30",
            "tokens": 0,
            "cost": 0.0,
            "sessions": 0,
        }
    with SessionStore(tmp_path / "s.db") as again:  # durable
        assert SpendLedger(again).day("2026-11-29").tokens == 16


def test_concurrent_processes_all_count(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    SessionStore(db).close()
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    procs = [
        subprocess.Popen([sys.executable, "-c", ADDER, str(db), session, "150"], cwd=REPO, env=env)
        for session in ("ses_a", "ses_b", "ses_a")
    ]
    assert [p.wait(timeout=120) for p in procs] == [0, 0, 0]
    with SessionStore(db) as store:
        day = SpendLedger(store).day("2026-11-29")
    assert day.tokens == 3 * 150 * 7 and abs(day.cost - 3 * 150 * 0.25) < 1e-9 and day.sessions == 2


def test_a_first_version_store_gains_the_ledger_and_keeps_its_sessions(tmp_path: Path) -> None:
    db = tmp_path / "old.db"
    raw = sqlite3.connect(db)
    for statement in statements(MIGRATIONS[0]):
        raw.execute(statement)
    raw.execute("PRAGMA user_version = 1")
    raw.commit()
    raw.close()
    assert SCHEMA_VERSION >= 2
    with SessionStore(db) as store:
        store.create_session(SessionInfo(id="ses_old"))
        SpendLedger(store).add("2026-11-29", "ses_old", tokens=3, cost=0.0)
        assert SpendLedger(store).day("2026-11-29").tokens == 3
    raw = sqlite3.connect(db)
    assert raw.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    raw.close()
