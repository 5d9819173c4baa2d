"""Secrets at rest, end to end: a real session (scripted model over HTTP, real shell commands) whose
model reads ``.env`` and prints API keys leaves no known secret in what the model is sent, in any
file of the store, in ``nbagent export`` (markdown and JSON), or in the saved notebook."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from nbagent.core.config import load_config
from nbagent.core.events import Event, ToolCallCompleted
from nbagent.core.session import Session
from nbagent.jupyter.render_html import Transcript, transcript_html, transcript_text
from nbagent.providers.scripted import ListScript, Reply, ToolCallSpec
from nbagent.store import SessionStore, data_dir
from nbagent.store.notebook import TURN_MIME, make_record, record_json, write_metadata
from tests.conftest import _OPEN_SESSIONS, Serve

ENV_KEY = "qz-9f8e7d6c5b4a39281706"  # an API key in the environment (no known token shape)
API_KEY = "session-api-key-7731"  # given with --api-key
DOTENV_PASSWORD = "dotenv-s3cret-pass"
URL_PASSWORD = "url-pass-4477"
PIN = "4821"
SECRETS = (ENV_KEY, API_KEY, DOTENV_PASSWORD, URL_PASSWORD)


def call(name: str, **args: object) -> ToolCallSpec:
    return ToolCallSpec(name, dict(args))


def project_with_secrets(root: Path) -> None:
    root.mkdir()
    (root / ".env").write_text(
        f'DB_PASSWORD="{DOTENV_PASSWORD}"\nPIN={PIN}\n'
        f"DATABASE_URL=postgres://app:{URL_PASSWORD}@db.local/app\nGREETING=hello\n"
    )
    (root / "notes.txt").write_text(f"the key is {ENV_KEY} and the session's is {API_KEY}\n")
    rules = {"cat .env": "allow", "cat notes.txt": "allow", "echo *": "allow", "env": "allow"}
    (root / "nbagent.json").write_text(json.dumps({"permission": {"bash": rules, "read": {".env": "allow"}}}))


def files_holding(folder: Path, secrets: tuple[str, ...]) -> list[str]:
    hits = []
    for path in folder.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            hits += [f"{path.name}: {s}" for s in secrets if s.encode() in data]
    return hits


async def test_no_known_secret_reaches_the_disk(
    tmp_path: Path, serve: Serve, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EXAMPLE_API_KEY", ENV_KEY)
    root = tmp_path / "project"
    project_with_secrets(root)
    server = serve(
        ListScript(
            [
                Reply(tool_calls=[call("bash", command="cat .env", description="read the settings")]),
                Reply(
                    tool_calls=[call("bash", command="echo $EXAMPLE_API_KEY", description="print the key")]
                ),
                Reply(tool_calls=[call("read", file_path=".env"), call("bash", command="cat notes.txt")]),
                Reply(tool_calls=[call("bash", command="env", description="dump the environment")]),
                Reply(text="Done."),
            ]
        )
    )
    config = load_config(root, {"model": "openai/scripted", "api_base": server.openai_base})
    session = Session(root, config, api_key=API_KEY, headless="allow", store=SessionStore())
    _OPEN_SESSIONS.append(session)
    events: list[Event] = [e async for e in session.run("look at the settings")]

    done = [e for e in events if isinstance(e, ToolCallCompleted)]
    assert [e.tool for e in done] == ["bash", "bash", "read", "bash", "bash"], events
    cat_env = done[0].output
    assert 'DB_PASSWORD="[redacted]"' in cat_env and "GREETING=hello" in cat_env  # scrubbed, not emptied
    assert "postgres://app:[redacted]@db.local/app" in cat_env and PIN not in cat_env
    assert "the key is [redacted]" in done[3].output

    # The model never saw a known secret (the key only travels in the request's header).
    sent = json.dumps([r.body for r in server.requests])
    assert "GREETING=hello" in sent
    assert [s for s in SECRETS if s in sent] == []

    # Nothing in the store's folder (database, -wal, -shm) holds one; all of it is private.
    store = data_dir()
    assert files_holding(store, SECRETS) == []
    assert stat.S_IMODE(store.stat().st_mode) == 0o700
    assert {stat.S_IMODE(p.stat().st_mode) for p in store.iterdir()} == {0o600}

    # The exports, through the real command line.
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    for extra in ([], ["--json"]):
        out = subprocess.run(
            [sys.executable, "-m", "nbagent", "export", session.id, *extra],
            cwd=root,
            capture_output=True,
            text=True,
            env=env,
            check=True,
        ).stdout
        assert "DB_PASSWORD=" in out and "[redacted]" in out
        assert [s for s in SECRETS if s in out] == []

    # The saved notebook: the turn's record and transcripts, and the metadata.
    transcript = Transcript(model=session.model)
    for event in events:
        transcript.apply(event)
    scrubber = session.scrubber
    record = make_record(
        session_id=session.id,
        turn_id="turn_1",
        prompt="look at the settings",
        model=session.model,
        messages=session.messages,
        replies=[],
        usage=session.usage,
        reason="stop",
        started=0.0,
        root=root,
        scrubber=scrubber,
    )
    bundle = {
        "text/html": scrubber.text(transcript_html(transcript)),
        "text/plain": scrubber.text(transcript_text(transcript)),
        TURN_MIME: scrubber.json(record_json(record)),
    }
    output = {"output_type": "display_data", "data": bundle, "metadata": {}}
    cell = {"cell_type": "code", "id": "c1", "metadata": {}, "source": "%%agent\nlook", "outputs": [output]}
    notebook = json.loads(json.dumps({"cells": [cell], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))

    class Node(dict):  # type: ignore[type-arg]
        metadata = notebook["metadata"]

    write_metadata(Node(notebook))
    saved = root / "analysis.ipynb"
    saved.write_text(json.dumps(notebook))
    assert "DB_PASSWORD=" in saved.read_text() and "[redacted]" in saved.read_text()
    hits = files_holding(root, SECRETS)
    assert hits and all(hit.startswith((".env:", "notes.txt:")) for hit in hits), hits  # the sources only
