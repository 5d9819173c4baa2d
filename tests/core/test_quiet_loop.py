"""The kernel's event loop stays free while a turn starts and saves; tasks end with the turn; the prompt
is saved before the first model request. Real git repos, SQLite files, HTTP server and processes."""

from __future__ import annotations

import ast
import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncGenerator, Iterator
from pathlib import Path

import pytest

from nbagent.providers.scripted import ListScript, Reply, ScriptedModelServer
from nbagent.store import SessionInfo, SessionStore, UndoLog
from tests.conftest import Serve, collect, make_session

ROOT = Path(__file__).parents[2]


def git_repo_with_untracked(path: Path, count: int) -> Path:
    path.mkdir()
    subprocess.run(["git", "init", "-q", str(path)], check=True)
    block = os.urandom(3000).hex()  # ~6 KB per file: hashing them takes real time
    for i in range(count):
        folder = path / f"d{i // 100}"
        folder.mkdir(exist_ok=True)
        (folder / f"f{i}.txt").write_text(f"{i}\n{block}\n")
    return path


async def test_a_turn_start_on_a_big_dirty_repo_does_not_block_the_event_loop(
    tmp_path: Path, serve: Serve
) -> None:
    repo = git_repo_with_untracked(tmp_path / "repo", 2000)
    # What a turn start costs when run on the event loop: the git status, hashing and storing scan.
    probe = SessionStore(tmp_path / "probe.db")
    probe.ensure_session(SessionInfo(id="ses_probe"))
    started = time.perf_counter()
    UndoLog(probe, "ses_probe", repo).begin_turn("turn_probe", 0)
    scan = time.perf_counter() - started

    server = serve(ListScript([Reply(text="warm"), Reply(text="done")]))
    session = make_session(repo, server, store=SessionStore(tmp_path / "s.db"), provider="native")
    await collect(session, "warm up")  # the provider's one-time client setup is not what is measured
    gaps: list[float] = []
    stop = asyncio.Event()

    async def tick() -> None:
        last = time.perf_counter()
        while not stop.is_set():
            await asyncio.sleep(0.002)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    ticker = asyncio.create_task(tick())
    await asyncio.sleep(0.02)
    turn_started = time.perf_counter()
    events = await collect(session, "hello")
    turn = time.perf_counter() - turn_started
    stop.set()
    await ticker
    longest = max(gaps)
    print(
        f"\nturn-start scan (git status, hashing, storing; 2,000 untracked files): {scan * 1000:.0f} ms;"
        f" whole turn: {turn * 1000:.0f} ms; longest event-loop gap during it: {longest * 1000:.1f} ms"
        f" over {len(gaps)} ticks"
    )
    assert events[-1].type == "turn_finished" and events[-1].text == "done"
    assert session.undo_log is not None and session.undo_log.baseline() is not None  # the scan did run
    # The turn ran two scans (start and end); the loop never stopped for anything near one of them.
    assert longest < scan / 3, (longest, scan)


@pytest.fixture
def lenient_server() -> Iterator[ScriptedModelServer]:
    """For a client that drops the connection mid-stream on purpose (its broken pipe is no error)."""
    server = ScriptedModelServer(ListScript([Reply(text="slow " * 40, delay=0.5)])).start()
    yield server
    server.stop()


async def test_leaving_the_event_stream_early_leaves_no_task_behind(
    tmp_path: Path, lenient_server: ScriptedModelServer
) -> None:
    session = make_session(tmp_path, lenient_server, store=SessionStore(tmp_path / "s.db"))
    before = asyncio.all_tasks()
    stream = session.run("talk")
    assert isinstance(stream, AsyncGenerator)
    async for event in stream:
        if event.type == "text_delta":
            break
    await stream.aclose()  # the caller stops listening mid-turn
    assert not session.busy
    assert asyncio.all_tasks() == before  # the turn and its queue reader have ended, not leaked
    stored = session.store.load_session(session.id)[1] if session.store else []
    assert [m.text for m in stored if m.role == "user"] == ["talk"]


def test_the_loop_does_not_import_the_session() -> None:
    """The seam: loop.py is written against TurnHost (turn_host.py), so loop <-> session is no cycle."""
    tree = ast.parse((ROOT / "nbagent/core/loop.py").read_text())
    imported = {
        node.module if isinstance(node, ast.ImportFrom) else alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    }
    assert "nbagent.core.session" not in imported
    assert "nbagent.core.turn_host" in imported


def test_a_kill_during_the_first_model_request_keeps_the_prompt(
    tmp_path: Path, lenient_server: ScriptedModelServer
) -> None:
    server = lenient_server  # stalls: a chunk every half second
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    args = ["--model", "openai/scripted", "--api-base", server.openai_base, "--api-key", "sk-x", "--yes"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "nbagent", "run", *args, "remember the milk"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while not server.requests and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.02)
    assert server.requests, "nbagent never reached the model"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()

    def cli(*argv: str) -> str:
        out = subprocess.run(
            [sys.executable, "-m", "nbagent", *argv], cwd=tmp_path, env=env, capture_output=True, text=True
        )
        assert out.returncode == 0 and "Traceback" not in out.stderr, out.stderr
        return out.stdout

    listing = cli("sessions")
    assert "remember the milk" in listing
    session_id = listing.split()[0]
    assert "remember the milk" in cli("export", session_id)
