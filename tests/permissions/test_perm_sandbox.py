"""The bubblewrap sandbox, with real processes: writes outside the project and network calls fail, no
capabilities (as root and as an unprivileged user), protected project paths, no host Unix sockets."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from nbagent.core.config import Config
from nbagent.core.errors import ConfigError
from nbagent.permissions.sandbox import (
    SandboxConfig,
    SandboxUnavailable,
    sandbox_argv,
    sandbox_available,
    sandbox_config,
    userns_available,
    wrap_command,
)
from tests.conftest import require


@pytest.fixture(autouse=True)
def _sandbox_here() -> None:
    require(sandbox_available() is None, f"bubblewrap ({sandbox_available()})")


# The interpreter sandboxed test commands run: the base one, not the venv's, which may live under /tmp
# (a clone in /tmp), and the sandbox's /tmp is a fresh, empty one. Its standard library is enough.
HOST_PYTHON = getattr(sys, "_base_executable", sys.executable)


def run(argv: list[str], root: Path, cfg: SandboxConfig, tmp: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(sandbox_argv(argv, root, cfg, tmp), capture_output=True, text=True, timeout=60)


@pytest.fixture
def sbx_tmp(tmp_path: Path) -> Path:
    d = tmp_path / "sbx-tmp"
    d.mkdir()
    return d


@pytest.fixture
def outside() -> Iterator[Path]:
    """A folder outside the project and not under /tmp (which the sandbox replaces)."""
    path = Path(tempfile.mkdtemp(dir="/var/tmp" if os.path.isdir("/var/tmp") else None))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_write_inside_works_and_outside_fails(project: Path, sbx_tmp: Path, outside: Path) -> None:
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
    blocked = run([HOST_PYTHON, "-c", CONNECT, str(listener)], project, SandboxConfig(), sbx_tmp)
    assert blocked.returncode != 0
    assert "hello" not in blocked.stdout
    allowed = run([HOST_PYTHON, "-c", CONNECT, str(listener)], project, SandboxConfig(network=True), sbx_tmp)
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


# ---------------------------------------------------------------------------------------------- privileges

ATTACK = r"""
grep CapEff /proc/self/status
echo "uid=$(id -u)"
mount -o remount,rw / 2>/dev/null && echo REMOUNTED
mount -t tmpfs none "$HOME" 2>/dev/null && echo MOUNTED
umount "$HOME/.ssh" 2>/dev/null && echo UNMOUNTED
umount -l "$HOME/.ssh" 2>/dev/null && echo UNMOUNTED
ls -A "$HOME/.ssh"
touch /usr/escape 2>/dev/null && echo WROTE_USR
unshare -Ur true 2>/dev/null && echo NEW_USERNS
echo end
"""


def check_attack(out: str) -> None:
    assert "CapEff:\t0000000000000000" in out, out
    for bad in ("REMOUNTED", "MOUNTED", "UNMOUNTED", "id_rsa", "WROTE_USR", "NEW_USERNS"):
        assert bad not in out, out
    assert out.rstrip().endswith("end"), out


def test_no_capabilities_and_mounts_stay_locked(project: Path, sbx_tmp: Path, home: Path) -> None:
    proc = run(["bash", "-c", ATTACK], project, SandboxConfig(), sbx_tmp)
    check_attack(proc.stdout)
    expected = (65534 if os.getuid() == 0 else os.getuid()) if userns_available() else os.getuid()
    assert f"uid={expected}" in proc.stdout
    assert (home / ".ssh" / "id_rsa").exists()


UNPRIVILEGED = """
import json, subprocess, sys
from pathlib import Path
from nbagent.permissions.sandbox import SandboxConfig, sandbox_argv, sandbox_available
root, tmp, script = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
assert sandbox_available() is None, sandbox_available()
proc = subprocess.run(sandbox_argv(["bash", "-c", script], root, SandboxConfig(), tmp), capture_output=True,
                      text=True, timeout=60)
print(json.dumps({"out": proc.stdout, "err": proc.stderr}))
"""


def test_no_capabilities_as_an_unprivileged_user() -> None:
    """nbagent run by an ordinary user: the same attack fails (as root the test drops to nobody)."""
    prefix: list[str] = []
    if os.getuid() == 0:
        require(shutil.which("setpriv") is not None, "setpriv (util-linux)")
        prefix = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
    base = Path(tempfile.mkdtemp())
    try:
        user_home, root, tmp = base / "home", base / "proj", base / "tmp"
        for d in (user_home / ".ssh", root / ".git" / "hooks", tmp):
            d.mkdir(parents=True)
        (user_home / ".ssh" / "id_rsa").write_text("PRIVATE KEY\n")
        (root / "nbagent.json").write_text("{}")
        if os.getuid() == 0:
            for path in [base, *base.rglob("*")]:
                os.chown(path, 65534, 65534)
        package_root = Path(__file__).resolve().parents[2]
        env = {"PATH": os.environ["PATH"], "HOME": str(user_home), "PYTHONPATH": str(package_root)}
        script = ATTACK + "echo x > nbagent.json 2>/dev/null && echo WROTE_CONFIG\n"
        proc = subprocess.run(
            [*prefix, sys.executable, "-c", UNPRIVILEGED, str(root), str(tmp), script],
            capture_output=True, text=True, timeout=120, env=env, cwd=base,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        result: dict[str, Any] = json.loads(proc.stdout)
        check_attack(result["out"])
        assert "WROTE_CONFIG" not in result["out"] and (root / "nbagent.json").read_text() == "{}"
        assert f"uid={65534 if os.getuid() == 0 else os.getuid()}" in result["out"]
    finally:
        shutil.rmtree(base, ignore_errors=True)


# ---------------------------------------------------------------------------------------------- sockets


@pytest.fixture
def host_sockets() -> Iterator[dict[str, str]]:
    """Listening Unix sockets of the host: in /tmp, in /run, and an abstract one."""
    tag = uuid.uuid4().hex[:12]
    paths = {"tmp": f"/tmp/nbagent-test-{tag}.sock", "abstract": f"\0nbagent-test-{tag}"}
    if os.access("/run", os.W_OK):
        paths["run"] = f"/run/nbagent-test-{tag}.sock"
    servers = []
    for address in paths.values():
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        server.bind(address)
        server.listen(1)
        servers.append(server)
    yield paths
    for server in servers:
        server.close()
    for key in ("tmp", "run"):
        if key in paths:
            Path(paths[key]).unlink(missing_ok=True)


UNIX_CONNECT = (
    "import socket, sys\n"
    "for address in sys.argv[1:]:\n"
    "    s = socket.socket(socket.AF_UNIX)\n"
    "    try:\n"
    "        s.connect(address.replace('@', '\\0', 1))\n"
    "        print('REACHED', repr(address))\n"
    "    except OSError as exc:\n"
    "        print('BLOCKED', repr(address), exc)\n"
)


def test_host_unix_sockets_are_unreachable(
    project: Path, sbx_tmp: Path, host_sockets: dict[str, str]
) -> None:
    addresses = [a.replace("\0", "@") for a in host_sockets.values()]
    direct = subprocess.run([sys.executable, "-c", UNIX_CONNECT, *addresses], capture_output=True, text=True)
    assert direct.stdout.count("REACHED") == len(addresses)  # reachable outside: the test can fail
    proc = run([HOST_PYTHON, "-c", UNIX_CONNECT, *addresses], project, SandboxConfig(), sbx_tmp)
    assert "REACHED" not in proc.stdout and proc.stdout.count("BLOCKED") == len(addresses), proc.stderr
    # With the network on, the host's abstract sockets stay reachable (a documented limit); paths do not.
    proc = run([HOST_PYTHON, "-c", UNIX_CONNECT, *addresses], project, SandboxConfig(network=True), sbx_tmp)
    assert proc.stdout.count("REACHED") == 1 and "REACHED '@nbagent" in proc.stdout


def test_tmp_and_run_are_fresh_and_tmpdir_is_kept(project: Path, sbx_tmp: Path) -> None:
    marker = Path(tempfile.mkstemp(prefix="nbagent-host-")[1])
    try:
        script = f'ls -A /tmp /run; test -e {marker} && echo SEEN; echo hi > /tmp/x && echo "$TMPDIR"'
        proc = run(["bash", "-c", script], project, SandboxConfig(), sbx_tmp)
        assert proc.returncode == 0, proc.stderr
        assert "SEEN" not in proc.stdout and marker.name not in proc.stdout
        assert proc.stdout.strip().endswith(str(sbx_tmp.resolve()))
        assert not Path("/tmp/x").exists() or Path("/tmp/x").read_text() != "hi\n"
    finally:
        marker.unlink()


# ---------------------------------------------------------------------------------------------- protected paths

WRITE_PROTECTED = (
    'echo \'{"permission": {"bash": "allow"}}\' > .nbagent/permissions.local.json',
    'echo \'{"permission": {"bash": "allow"}}\' > nbagent.json',
    "printf '#!/bin/sh\\ntouch pwned\\n' > .git/hooks/pre-commit",
    "printf '[core]\\n\\tfsmonitor = ./evil\\n' >> .git/config",
    "mkdir -p .claude && echo '{\"hooks\": {}}' > .claude/settings.json",
    "mv .git/config .git/config.bak",
    "rm -rf .nbagent",
)


def test_existing_protected_paths_cannot_be_changed_and_env_files_are_hidden(
    project: Path, sbx_tmp: Path
) -> None:
    (project / ".nbagent").mkdir()
    (project / ".nbagent" / "permissions.local.json").write_text("{}")
    (project / "nbagent.json").write_text("{}")
    (project / ".claude").mkdir()
    (project / ".claude" / "settings.json").write_text("{}")
    (project / ".env.local").write_text("LOCAL=secret-local\n")
    (project / "src" / ".env").write_text("SUB=secret-sub\n")
    (project / ".envrc").write_text("export X=secret-rc\n")
    before = {p: p.read_bytes() for p in project.rglob("*") if p.is_file()}
    for command in WRITE_PROTECTED:
        run(["bash", "-c", command], project, SandboxConfig(), sbx_tmp)
    assert {p: p.read_bytes() for p in project.rglob("*") if p.is_file()} == before
    assert not (project / ".git" / "hooks" / "pre-commit").exists()
    proc = run(["bash", "-c", "cat .env .env.local src/.env .envrc; cat .env.example"], project, SandboxConfig(),
               sbx_tmp)  # fmt: skip
    assert "secret" not in proc.stdout and "TOKEN=\n" in proc.stdout  # .env.example stays readable
    proc = run(["bash", "-c", "echo x > .env; echo y > src/.env"], project, SandboxConfig(), sbx_tmp)
    assert (project / ".env").read_text() == "TOKEN=secret\n" and (project / "src" / ".env").read_text() == (
        "SUB=secret-sub\n"
    )


class _Provider:
    async def close(self) -> None:
        return None


async def bash_in_session(root: Path, *commands: str) -> tuple[list[str], Any]:
    """Run commands through the real bash tool of a sandboxed session; returns their outputs."""
    from nbagent.core.session import Session
    from nbagent.tools.shell import BashTool

    config = Config.model_validate({"model": "openai/none", "sandbox": {"enabled": True}})
    session = Session(root, config, provider=_Provider(), headless="allow")  # type: ignore[arg-type]
    outputs = []
    try:
        for i, command in enumerate(commands):
            tool = BashTool()
            result = await tool.run(tool.parse({"command": command}), session.tool_context(f"call_{i}"))
            outputs.append(result.output)
    finally:
        await session.close()
    return outputs, session


async def test_missing_protected_paths_cannot_be_created(project: Path) -> None:
    for name in (".env", ".git/hooks"):
        path = project / name
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    outputs, session = await bash_in_session(project, *WRITE_PROTECTED[:5], "echo K=stolen > .env; cat .env")
    tmpdir = Path(os.environ["NBAGENT_CACHE_DIR"]) / "sandbox-tmp" / session.id  # the session's TMPDIR
    assert oct(tmpdir.stat().st_mode & 0o777) == "0o700"
    assert not (project / ".nbagent" / "permissions.local.json").exists()
    assert not (project / "nbagent.json").exists()
    assert not (project / ".git" / "hooks" / "pre-commit").exists()
    assert (project / ".git" / "config").read_text() == "[core]\n"
    assert not (project / ".claude").exists() and not (project / ".env").exists()
    told = "\n".join(outputs)
    for name in ("nbagent.json", ".claude", ".env"):
        assert f"the command created {name}, which sandboxed commands may not create" in told
    quarantined = Path(os.environ["NBAGENT_CACHE_DIR"]) / "quarantine"
    assert sorted(p.name for p in quarantined.rglob("*") if p.is_file()) == [".env", "nbagent.json",
                                                                               "settings.json"]  # fmt: skip
    assert oct(quarantined.stat().st_mode & 0o777) == "0o700"


async def test_a_new_git_repo_keeps_no_hook_and_no_program_in_its_config(project: Path) -> None:
    require(shutil.which("git") is not None, "git")
    shutil.rmtree(project / ".git")
    script = (
        "git init -q && printf '#!/bin/sh\\ntouch pwned\\n' > .git/hooks/post-checkout"
        " && chmod +x .git/hooks/post-checkout && git config core.fsmonitor ./evil"
    )
    outputs, _ = await bash_in_session(project, script, "git init -q && git config user.name me")
    assert (project / ".git" / "HEAD").exists()  # git init is allowed
    assert not (project / ".git" / "hooks" / "post-checkout").exists()
    assert "the command created .git/config" in outputs[0] and "post-checkout" in outputs[0]
    assert "fsmonitor" not in (project / ".git" / "config").read_text()  # re-created by the second init
    assert "may not create" not in outputs[1]  # a plain config stays


def test_other_sessions_spilled_outputs_are_hidden(
    project: Path, outside: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """nbagent's cache holds every session's unscrubbed spilled outputs: only this session's TMPDIR
    inside it is visible (and writable) to a sandboxed command."""
    cache = outside / "cache"
    (cache / "tool-output" / "ses_other").mkdir(parents=True)
    (cache / "tool-output" / "ses_other" / "bash-1.txt").write_text("OPENAI_API_KEY=sk-other-session\n")
    mine = cache / "sandbox-tmp" / "ses_mine"
    mine.mkdir(parents=True)
    monkeypatch.setenv("NBAGENT_CACHE_DIR", str(cache))
    proc = run(
        ["bash", "-c", f"cat {cache}/tool-output/ses_other/bash-1.txt; echo made > $TMPDIR/x; echo done"],
        project, SandboxConfig(), mine,
    )  # fmt: skip
    assert "sk-other-session" not in proc.stdout + proc.stderr
    assert proc.stdout.strip().endswith("done"), proc.stderr
    assert (mine / "x").read_text() == "made\n"
