"""The store under real processes: SIGKILL mid-run at random moments, and concurrent writers."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO

from nbagent.core.messages import ToolCompleted
from nbagent.store.db import SessionStore
from tests.store.store_writer import KEEP_RECENT, PRUNED, payload

REPO = Path(__file__).resolve().parents[2]
WRITER = Path(__file__).with_name("store_writer.py")


def writer(db: Path, session_id: str, steps: int, *extra: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen(
        [sys.executable, str(WRITER), str(db), session_id, str(steps), *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
        env=env,
    )


def pump(stream: IO[str], lines: list[str], first: threading.Event) -> None:
    for line in stream:
        lines.append(line)
        first.set()


def check_session(store: SessionStore, session_id: str, size: int) -> int:
    """Every stored step is whole and exact; returns the number of steps."""
    _, messages = store.load_session(session_id)
    assert len(messages) % 2 == 0, "a step was stored half-way"
    steps = len(messages) // 2
    for i in range(steps):
        user, assistant = messages[2 * i], messages[2 * i + 1]
        assert (user.id, user.text) == (f"u{i}", f"step {i}")
        assert (assistant.id, assistant.text) == (f"a{i}", f"answer {i}")
        state = assistant.tool_parts()[0].state
        assert isinstance(state, ToolCompleted)
        # The live history may be pruned; the store keeps every full output.
        assert state.output in (payload(i, size), PRUNED)
        if i < steps - KEEP_RECENT - 1:
            assert state.output == PRUNED
        assert store.get_tool_output(f"c{i}", session_id) == payload(i, size)
    return steps


def test_sigkill_at_random_moments_loses_at_most_the_step_in_flight(tmp_path: Path) -> None:
    db = tmp_path / "store.db"
    rng = random.Random(4)
    size = 3000
    for _ in range(6):
        proc = writer(db, "ses_kill", 100_000, "--payload", str(size))
        assert proc.stdout is not None
        lines: list[str] = []
        first = threading.Event()
        reader = threading.Thread(target=pump, args=(proc.stdout, lines, first), daemon=True)
        reader.start()
        assert first.wait(30), proc.stderr.read() if proc.stderr else ""
        time.sleep(rng.uniform(0.0, 0.4))
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        reader.join(10)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()
        assert proc.returncode == -signal.SIGKILL
        last = int(lines[-1].split()[1])

        store = SessionStore(db)
        try:
            assert store.integrity_check() == "ok"
            steps = check_session(store, "ses_kill", size)
            # Everything reported committed is there; at most the step in flight is extra.
            assert steps in (last + 1, last + 2)
            assert store.get_session("ses_kill").usage.input_tokens == steps
        finally:
            store.close()
    assert steps > 20  # the runs really did continue one session


def test_concurrent_writers_never_see_database_locked(tmp_path: Path) -> None:
    db = tmp_path / "shared.db"  # fresh: the writers also race to create and migrate it
    start_at = f"{time.time() + 2.0:.3f}"
    procs = {f"ses_w{n}": writer(db, f"ses_w{n}", 100, "--start-at", start_at) for n in range(4)}
    for session_id, proc in procs.items():
        out, err = proc.communicate(timeout=240)
        assert proc.returncode == 0, f"{session_id} failed:\n{err}"
        assert "locked" not in err
        assert out.count("committed") == 100
    with SessionStore(db) as store:
        assert store.integrity_check() == "ok"
        for session_id in procs:
            assert check_session(store, session_id, 2000) == 100
        assert {s.id for s in store.list_sessions(limit=10)} == set(procs)
