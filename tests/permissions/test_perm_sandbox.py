"""The bubblewrap sandbox, with real processes: writes outside the project and network calls fail."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from nbagent.core.config import Config
from nbagent.core.errors import ConfigError
from nbagent.permissions.sandbox import (
    SandboxConfig,
    SandboxUnavailable,
    sandbox_argv,
    sandbox_available,
    sandbox_config,
    wrap_command,
)
from tests.conftest import require


@pytest.fixture(autouse=True)
def _sandbox_here() -> None:
    require(sandbox_available() is None, f"bubblewrap ({sandbox_available()})")


def run(argv: list[str], root: Path, cfg: SandboxConfig, tmp: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(sandbox_argv(argv, root, cfg, tmp), capture_output=True, text=True, timeout=60)


@pytest.fixture
def sbx_tmp(tmp_path: Path) -> Path:
    d = tmp_path / "sbx-tmp"
    d.mkdir()
    return d


def test_write_inside_works_and_outside_fails(project: Path, sbx_tmp: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    proc = run(
        ["bash", "-c", 'echo in > made.txt && echo t > "$TMPDIR/t.txt"'], project, SandboxConfig(), sbx_tmp
    )
    assert proc.returncode == 0, proc.stderr
    assert (project / "made.txt").read_text() == "in\n"
    assert (sbx_tmp / "t.txt").exists()

    proc = run(["bash", "-c", f"echo out > {outside}/escape.txt"], project, SandboxConfig(), sbx_tmp)
    assert proc.returncode != 0
    assert "Read-only file system" in proc.stderr
    assert not (outside / "escape.txt").exists()


def test_extra_writable_path(project: Path, sbx_tmp: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    cache.mkdir()
    proc = run(["bash", "-c", f"echo x > {cache}/c"], project, SandboxConfig(writable=[str(cache)]), sbx_tmp)
    assert proc.returncode == 0, proc.stderr
    assert (cache / "c").exists()


def test_nbagent_config_inside_the_project_is_read_only(project: Path, sbx_tmp: Path) -> None:
    (project / "nbagent.json").write_text("{}")
    proc = run(["bash", "-c", "echo '{\"x\": 1}' > nbagent.json"], project, SandboxConfig(), sbx_tmp)
    assert proc.returncode != 0
    assert (project / "nbagent.json").read_text() == "{}"
    proc = run(["bash", "-c", "echo evil > .git/hooks/pre-commit"], project, SandboxConfig(), sbx_tmp)
    assert proc.returncode != 0


def test_secrets_are_hidden(project: Path, sbx_tmp: Path, home: Path, tmp_path: Path) -> None:
    extra = tmp_path / "token.txt"
    extra.write_text("s3cret")
    proc = run(
        ["bash", "-c", f"ls -A ~/.ssh; cat ~/.aws/credentials; cat {extra}; echo done"],
        project, SandboxConfig(hidden=[str(extra)]), sbx_tmp,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "id_rsa" not in proc.stdout and "[default]" not in proc.stdout and "s3cret" not in proc.stdout
    assert proc.stdout.strip().endswith("done")
    assert (home / ".ssh" / "id_rsa").exists()  # hidden, not touched


@pytest.fixture
def listener() -> Iterator[int]:
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(5)
    stop = threading.Event()

    def serve() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            conn.sendall(b"hello")
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join(2)
    server.close()


CONNECT = (
    "import socket, sys\n"
    "s = socket.create_connection(('127.0.0.1', int(sys.argv[1])), timeout=5)\n"
    "print(s.recv(5).decode())\n"
)


def test_network_is_off_unless_allowed(project: Path, sbx_tmp: Path, listener: int) -> None:
    blocked = run([sys.executable, "-c", CONNECT, str(listener)], project, SandboxConfig(), sbx_tmp)
    assert blocked.returncode != 0
    assert "hello" not in blocked.stdout
    allowed = run(
        [sys.executable, "-c", CONNECT, str(listener)], project, SandboxConfig(network=True), sbx_tmp
    )
    assert allowed.returncode == 0, allowed.stderr
    assert allowed.stdout.strip() == "hello"


def test_wrap_command_follows_the_config(project: Path, sbx_tmp: Path) -> None:
    argv = ["bash", "-c", "true"]
    assert wrap_command(argv, project, SandboxConfig(), sbx_tmp) == (argv, None)
    wrapped, warning = wrap_command(argv, project, SandboxConfig(enabled=True), sbx_tmp)
    assert wrapped[0].endswith("bwrap") and wrapped[-3:] == argv and warning is None


def test_unavailable_sandbox_fails_or_warns(
    project: Path, sbx_tmp: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from nbagent.permissions import sandbox

    sandbox._probe.cache_clear()
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))  # no bwrap on PATH
    try:
        reason = sandbox_available()
        assert reason is not None and "bwrap" in reason
        with pytest.raises(SandboxUnavailable, match="could not start"):
            wrap_command(["ls"], project, SandboxConfig(enabled=True), sbx_tmp)
        argv, warning = wrap_command(["ls"], project, SandboxConfig(enabled=True, on_failure="warn"), sbx_tmp)
        assert argv == ["ls"] and warning is not None and "without it" in warning
    finally:
        sandbox._probe.cache_clear()


def test_sandbox_config_errors_name_file_and_key(project: Path) -> None:
    from nbagent.core.config import load_config

    (project / "nbagent.json").write_text(json.dumps({"sandbox": {"enabled": True, "on_failure": "explode"}}))
    with pytest.raises(ConfigError) as exc:
        sandbox_config(project, load_config(project))
    assert "nbagent.json" in str(exc.value) and "sandbox.on_failure" in str(exc.value)
    assert sandbox_config(project, Config.model_validate({"sandbox": {"enabled": True}})).enabled
