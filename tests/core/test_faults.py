"""Faults meet a clear message and lose nothing, as the user meets them: through a session's events, the
`nbagent` command and the configuration loader. Real SQLite files, a real tmpfs, real processes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from nbagent.core.config import load_config
from nbagent.core.errors import ConfigError
from nbagent.core.events import Notice
from nbagent.providers.scripted import ListScript, Reply
from nbagent.store import SessionStore
from tests.conftest import Serve, collect, make_session
from tests.store.test_store_faults import fill, small_disk

__all__ = ["small_disk"]


def nbagent(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    return subprocess.run(
        [sys.executable, "-m", "nbagent", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_damaged_store_is_said_by_the_cli_and_the_run_goes_on(tmp_path: Path, serve: Serve) -> None:
    data = Path(os.environ["NBAGENT_DATA_DIR"])
    data.mkdir(parents=True, exist_ok=True)
    (data / "nbagent.db").write_bytes(b"not a database at all " * 300)
    server = serve(ListScript([Reply(text="all good")]))
    out = nbagent(
        [
            "run",
            "--model",
            "openai/scripted",
            "--api-base",
            server.openai_base,
            "--api-key",
            "k",
            "--yes",
            "hi",
        ],
        tmp_path,
    )
    assert out.returncode == 0, out.stderr
    assert "Traceback" not in out.stdout + out.stderr
    said = " ".join((out.stdout + out.stderr).split())
    assert "could not be read" in said and "nbagent.db.corrupt-" in said
    assert "all good" in out.stdout
    assert list(data.glob("nbagent.db.corrupt-*"))
    assert "hi" in nbagent(["sessions"], tmp_path).stdout  # the new store holds the new session


async def test_a_full_disk_during_a_turn_is_said_and_the_session_stays_whole(
    tmp_path: Path, serve: Serve, small_disk: Path
) -> None:
    big = os.urandom(20_000).hex()
    server = serve(ListScript([Reply(text="one"), Reply(text=big), Reply(text="three")]))
    session = make_session(tmp_path, server, store=SessionStore(small_disk / "nbagent.db"))
    await collect(session, "first")
    filler = fill(small_disk)
    events = await collect(session, "second")
    warnings = [e.message for e in events if isinstance(e, Notice) and e.level == "warning"]
    assert any("is full" in w and "Free disk space" in w for w in warnings), warnings
    assert events[-1].type == "turn_finished" and events[-1].reason == "stop" and events[-1].text == big
    assert [m.text for m in session.messages] == ["first", "one", "second", big]  # nothing lost in memory
    filler.unlink()
    await collect(session, "third")
    assert session.store is not None
    stored = [m.text for m in session.store.load_session(session.id)[1]]
    assert stored == ["first", "one", "second", big, "third", "three"]


@pytest.mark.parametrize(
    ("content", "said"),
    [
        (b'{"model": "caf\xe9"}', "not valid UTF-8"),
        (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
        (b'{"a":' * 5000 + b"1" + b"}" * 5000, "nested"),
        (b'{"model": ', "not valid JSON"),
    ],
)
def test_a_broken_config_is_a_clear_config_error(tmp_path: Path, content: bytes, said: str) -> None:
    (tmp_path / "nbagent.json").write_bytes(content)
    with pytest.raises(ConfigError) as err:
        load_config(tmp_path)
    assert said in str(err.value) and str(tmp_path / "nbagent.json") in str(err.value)
    assert err.value.hint


LOG = "import logging, nbagent.core; logging.getLogger('nbagent.store.x').warning('the store said hello')"


@pytest.mark.parametrize(("level", "shown"), [(None, False), ("debug", True), ("error", False)])
def test_logging_is_quiet_unless_nbagent_log_asks(level: str | None, shown: bool) -> None:
    env = {k: v for k, v in os.environ.items() if k != "NBAGENT_LOG"}
    if level:
        env["NBAGENT_LOG"] = level
    out = subprocess.run([sys.executable, "-c", LOG], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0
    assert ("the store said hello" in out.stderr) is shown, out.stderr
    if shown:
        assert "nbagent WARNING nbagent.store.x: the store said hello" in out.stderr
