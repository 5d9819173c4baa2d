"""Sessions that survive: the store behind `nbagent run`, resume after SIGKILL, concurrent runs, undo/redo."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

from nbagent.core.config import Config
from nbagent.core.events import Notice
from nbagent.core.messages import user_message
from nbagent.providers.scripted import ListScript, Reply, ToolCallSpec
from nbagent.store import SessionStore
from tests.conftest import Serve, collect, make_session

NBAGENT = [sys.executable, "-m", "nbagent"]


def cli(args: list[str], cwd: Path, server_base: str) -> list[str]:
    return [
        *NBAGENT,
        "run",
        "-m",
        "openai/scripted",
        "--api-base",
        server_base,
        "--api-key",
        "k",
        "--yes",
        "--output-format",
        "stream-json",
        *args,
    ]


def test_sigkill_mid_turn_then_continue(tmp_path: Path, serve: Serve) -> None:
    marker = tmp_path / "started"
    server = serve(
        ListScript(
            [
                Reply(
                    text="First I note the plan.",
                    tool_calls=[ToolCallSpec("write", {"file_path": "plan.txt", "content": "plan\n"})],
                ),
                Reply(tool_calls=[ToolCallSpec("bash", {"command": f"touch {marker}; sleep 60"})]),
                Reply(text="Resumed and finished."),
            ]
        )
    )
    proc = subprocess.Popen(
        cli(["make a plan"], tmp_path, server.openai_base), cwd=tmp_path, stdout=subprocess.PIPE, text=True
    )
    deadline = time.time() + 60
    while not marker.exists() and time.time() < deadline:
        time.sleep(0.05)
    assert marker.exists()
    proc.send_signal(signal.SIGKILL)
    proc.communicate()

    store = SessionStore()
    assert store.integrity_check() == "ok"
    (info,) = store.list_sessions(tmp_path)
    _, messages = store.load_session(info.id)
    assert messages[0].text == "make a plan"
    assert messages[1].tool_parts()[0].state.status == "completed"  # the step before the kill is kept

    out = subprocess.run(
        [*cli(["--continue", "go on"], tmp_path, server.openai_base)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    events = [json.loads(line) for line in out.stdout.splitlines()]
    assert events[-1]["text"] == "Resumed and finished."
    sent = json.dumps(server.requests[-1].body["messages"])
    assert "make a plan" in sent and "First I note the plan." in sent and "go on" in sent
    # The step in flight when the process died is the only thing lost.
    tool_results = [m for m in server.requests[-1].body["messages"] if m["role"] == "tool"]
    assert len(tool_results) == 1

    listing = subprocess.run([*NBAGENT, "sessions"], cwd=tmp_path, capture_output=True, text=True, check=True)
    assert info.id in listing.stdout and "make a plan" in listing.stdout
    export = subprocess.run(
        [*NBAGENT, "export", info.id[:12]], cwd=tmp_path, capture_output=True, text=True, check=True
    )
    assert "make a plan" in export.stdout and "Resumed and finished." in export.stdout


def test_concurrent_runs_share_one_store(tmp_path: Path, serve: Serve) -> None:
    steps = [Reply(tool_calls=[ToolCallSpec("bash", {"command": f"echo {i}"})]) for i in range(15)] + [
        Reply(text="done")
    ]
    servers = [serve(ListScript(list(steps))) for _ in range(3)]
    dirs = []
    procs = []
    for i, server in enumerate(servers):
        d = tmp_path / f"p{i}"
        d.mkdir()
        dirs.append(d)
        procs.append(
            subprocess.Popen(
                cli(["count"], d, server.openai_base),
                cwd=d,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    for proc in procs:
        _, err = proc.communicate(timeout=180)
        assert proc.returncode == 0, err
        assert "locked" not in err
    store = SessionStore()
    for d in dirs:
        (info,) = store.list_sessions(d)
        assert len(store.load_session(info.id)[1]) == 17


async def test_undo_and_redo_a_turn(tmp_path: Path, serve: Serve) -> None:
    (tmp_path / "keep.txt").write_text("original\n")
    server = serve(
        ListScript(
            [
                Reply(tool_calls=[ToolCallSpec("read", {"file_path": "keep.txt"})]),
                Reply(
                    tool_calls=[
                        ToolCallSpec(
                            "edit",
                            {"file_path": "keep.txt", "old_string": "original", "new_string": "changed"},
                        ),
                        ToolCallSpec("write", {"file_path": "new.txt", "content": "new\n"}),
                    ]
                ),
                Reply(text="edited"),
            ]
        )
    )
    store = SessionStore(tmp_path / "store.db")
    session = make_session(tmp_path, server, store=store)
    await collect(session, "edit things")
    assert (tmp_path / "keep.txt").read_text() == "changed\n" and (tmp_path / "new.txt").exists()
    result = session.undo()
    assert result is not None
    assert (tmp_path / "keep.txt").read_text() == "original\n" and not (tmp_path / "new.txt").exists()
    assert session.messages == []
    assert store.load_session(session.id)[1] == []
    assert session.redo() is not None
    assert (tmp_path / "keep.txt").read_text() == "changed\n" and (
        tmp_path / "new.txt"
    ).read_text() == "new\n"
    assert len(session.messages) == 4


async def test_shell_changes_are_reported_not_reverted(tmp_path: Path, serve: Serve) -> None:
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    (tmp_path / "tracked.txt").write_text("v1\n")
    subprocess.run(["git", "-C", str(tmp_path), "add", "."], check=True)
    subprocess.run(
        ["git", "-C", str(tmp_path), "-c", "user.name=t", "-c", "user.email=t@e", "commit", "-qm", "init"],
        check=True,
    )
    server = serve(
        ListScript(
            [Reply(tool_calls=[ToolCallSpec("bash", {"command": "echo v2 > tracked.txt"})]), Reply(text="ok")]
        )
    )
    session = make_session(tmp_path, server, store=SessionStore(tmp_path.parent / "s.db"))
    events = await collect(session, "change it with the shell")
    notes = [e.message for e in events if isinstance(e, Notice)]
    assert any("tracked.txt" in n and "Shell commands changed" in n for n in notes)
    assert (tmp_path / "tracked.txt").read_text() == "v2\n"
    assert session.revert_shell_changes([tmp_path / "tracked.txt"]) == [tmp_path / "tracked.txt"]
    assert (tmp_path / "tracked.txt").read_text() == "v1\n"


def test_resume_keeps_the_compaction_summary(tmp_path: Path, serve: Serve) -> None:
    store = SessionStore(tmp_path / "s.db")
    server = serve(ListScript([]))
    session = make_session(tmp_path, server, store=store)
    session.messages.append(user_message("old goal"))
    session.save()
    store.add_summary(session.id, "## Goal\nold goal", covers_until=session.messages[0].id)
    resumed = type(session).resume(tmp_path, Config(model="openai/scripted"), store, session.id[:10])
    assert resumed.summary == "## Goal\nold goal" and resumed.compacted_until == 1
