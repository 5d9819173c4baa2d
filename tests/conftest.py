from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any, Protocol

import pytest

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from nbagent.core.config import Config, RetryConfig
from nbagent.core.events import Event
from nbagent.core.session import Session
from nbagent.providers.litellm_provider import close_clients
from nbagent.providers.scripted import Script, ScriptedModelServer


class Serve(Protocol):
    """The ``serve`` fixture: start a scripted model server for this test."""

    def __call__(self, script: Script, *, exact: bool = True) -> ScriptedModelServer: ...


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """No test reads or writes the real user's configuration or data: nbagent's own, nor the Claude Code
    (``~/.claude.json``) and OpenCode (``~/.config/opencode``) files whose MCP servers nbagent imports.
    Nothing else in the suite reads XDG_CONFIG_HOME (nbagent's own folder is NBAGENT_CONFIG_DIR; the e2e
    Jupyter server gets explicit JUPYTER_* folders); kernels and subprocesses inherit all of this."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("NBAGENT_CONFIG_DIR", str(home / "config"))
    monkeypatch.setenv("NBAGENT_DATA_DIR", str(home / "data"))
    monkeypatch.setenv("NBAGENT_CACHE_DIR", str(home / "cache"))
    monkeypatch.setenv("CLAUDE_CONFIG_DIR", str(home / "claude"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / "xdg-config"))
    monkeypatch.delenv("OPENCODE_CONFIG", raising=False)


_OPEN_SESSIONS: list[Session] = []


def require(available: bool, what: str) -> None:
    """A test needs something scripts/bootstrap installs: in CI its absence fails, locally it skips."""
    if not available:
        if os.environ.get("CI"):
            pytest.fail(f"{what} is missing; scripts/bootstrap installs it")
        pytest.skip(f"{what} is missing (run scripts/bootstrap)")


@pytest.fixture(autouse=True)
async def _close_clients() -> AsyncIterator[None]:
    """Close the sessions a test made (their HTTP clients, background shells) and litellm's cached
    clients before the test's event loop ends, so nothing is left for the garbage collector."""
    yield
    while _OPEN_SESSIONS:
        await _OPEN_SESSIONS.pop().close()
    await close_clients()


@contextlib.contextmanager
def small_tmpfs(mnt: Path, size: str) -> Iterator[Path]:
    """A tmpfs of ``size`` (``2m``, ``64k``) mounted at ``mnt``, for running out of disk (root only)."""
    mnt.mkdir()
    if os.getuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a small tmpfs needs root")
    proc = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mnt)], capture_output=True
    )
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.decode().strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


@pytest.fixture
def serve() -> Iterator[Serve]:
    """Start scripted model servers; at teardown, fail the test if a scripted reply raised (the
    exception itself is re-raised) or if a conversation was not consumed exactly: a request past the
    script's last reply, or replies never requested. ``exact=False`` is for a test that cannot know how
    many requests it makes (a turn interrupted part-way); exceptions fail it all the same."""
    with checked_servers() as servers:

        def start(script: Script, *, exact: bool = True) -> ScriptedModelServer:
            server = ScriptedModelServer(script, exact=exact).start()
            servers.append(server)
            return server

        yield start


@contextlib.contextmanager
def checked_servers() -> Iterator[list[ScriptedModelServer]]:
    """The scripted servers a fixture starts (it appends them): at the end all are stopped, then each is
    checked (a scripted reply that raised, a conversation not consumed exactly fail the test)."""
    servers: list[ScriptedModelServer] = []
    yield servers
    for server in servers:
        server.stop()
    for server in servers:
        server.check()


def make_session(root: Path, server: ScriptedModelServer, protocol: str = "openai", **kwargs: Any) -> Session:
    """A session whose model is the scripted server, reached over HTTP through litellm."""
    model = "openai/scripted" if protocol == "openai" else "anthropic/claude-sonnet-4-5"
    base = server.openai_base if protocol == "openai" else server.anthropic_base
    config_fields: dict[str, Any] = {"model": model, "api_base": base, "retry": RetryConfig(base_delay=0.0)}
    for key in ("max_steps", "retry", "models", "context", "provider"):
        if key in kwargs and (key != "provider" or isinstance(kwargs[key], str)):
            config_fields[key] = kwargs.pop(key)
    kwargs.setdefault("headless", "allow")
    session = Session(root, Config(**config_fields), api_key="test-key", **kwargs)
    _OPEN_SESSIONS.append(session)
    return session


async def collect(session: Session, prompt: str) -> list[Event]:
    return [event async for event in session.run(prompt)]
