"""Nothing a command starts outlives it: nohup, setsid and double-forked daemons are found by the marker
in their environment and killed at the timeout, at kill_shell, at session end, and when nbagent itself
is SIGKILLed (the watchdog). Real processes; liveness read from /proc (zombies do not count)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from nbagent.tools.proc_track import MARKER, tracked_pids
from nbagent.tools.shell import BashOutputTool, KillShellTool, close_shells
from tests.tools.test_shell import Harness, alive, gone, h, pids_in

__all__ = ["h"]  # the fixture, shared with test_shell

pytestmark = pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="needs /proc")

DAEMON = textwrap.dedent(
    """
    import os, sys, time
    if os.fork():
        os._exit(0)
    os.setsid()
    if os.fork():
        os._exit(0)
    print(f"daemon={os.getpid()}", flush=True)
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    time.sleep(300)
    """
)

# Three ways out of the command's process group and session; each prints its pid.
ESCAPES = (
    "nohup sh -c 'echo nohup=$$; exec sleep 300' 2>/dev/null &"
    " setsid sh -c 'echo setsid=$$; exec sleep 301' &"
    f" {sys.executable} -c '{DAEMON}';"
    " for i in $(seq 50); do [ -s /dev/null ] || true; sleep 0.02; done;"  # let them print
)
NAMES = {"nohup", "setsid", "daemon"}


def escaped(text: str) -> dict[str, int]:
    pids = {k: v for k, v in pids_in(text).items() if k in NAMES}
    assert set(pids) == NAMES, text
    return pids


async def test_timeout_kills_nohup_setsid_and_daemons(h: Harness) -> None:
    result = await h.bash(ESCAPES + " echo ready; sleep 60", timeout=2500)
    assert result.metadata["timed_out"] is True
    pids = escaped(result.output)
    assert await gone(*pids.values()), {k: alive(v) for k, v in pids.items()}


async def test_what_a_command_left_running_dies_at_session_end(h: Harness) -> None:
    result = await h.bash(ESCAPES + " echo started")
    assert result.metadata["exit_code"] == 0
    pids = escaped(result.output)
    assert all(alive(pid) for pid in pids.values())  # "&" asked them to go on: until the session ends
    await close_shells(h.ctx.state)
    assert await gone(*pids.values()), {k: alive(v) for k, v in pids.items()}


async def test_kill_shell_kills_what_the_background_shell_started(h: Harness) -> None:
    await h.bash(ESCAPES + " echo ready; sleep 300", run_in_background=True)
    text = ""
    for _ in range(100):
        text += (await h.run(BashOutputTool(), shell_id="bash_1")).output
        if set(pids_in(text)) >= NAMES:
            break
        await asyncio.sleep(0.05)
    pids = escaped(text)
    assert all(alive(pid) for pid in pids.values())
    await h.run(KillShellTool(), shell_id="bash_1")
    assert await gone(*pids.values()), {k: alive(v) for k, v in pids.items()}


async def test_commands_carry_a_marker_that_nests(h: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(MARKER, "outer-1")  # nbagent run by another nbagent's command
    result = await h.bash(f"echo marker=${MARKER}")
    marker = result.output.splitlines()[0].removeprefix("marker=")
    outer, ours = marker.split(":")
    assert outer == "outer-1" and ours != outer
    assert tracked_pids({ours}) == []  # the command has ended: nothing of it is left


SCRIPT = """
import asyncio, sys
from pathlib import Path
from nbagent.tools.base import ToolContext
from nbagent.tools.shell import BashTool

async def main() -> None:
    ctx = ToolContext(root=Path(sys.argv[1]), output_dir=Path(sys.argv[1]) / "out")
    tool = BashTool()
    result = await tool.run(tool.parse({"command": sys.argv[2], "timeout": 600000}), ctx)
    print(result.output, flush=True)
    print("STARTED", flush=True)
    await asyncio.sleep(600)

asyncio.run(main())
"""


def test_a_sigkilled_nbagent_leaves_no_command_running(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", SCRIPT, str(tmp_path), ESCAPES + " echo started"],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).parents[2],
    )
    assert proc.stdout is not None
    output = ""
    deadline = time.monotonic() + 30
    while "STARTED" not in output and time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        output += line
    pids = escaped(output)
    assert all(alive(pid) for pid in pids.values())
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(alive(pid) for pid in pids.values()):
        time.sleep(0.05)
    left = {k: v for k, v in pids.items() if alive(v)}
    for pid in left.values():
        os.kill(pid, signal.SIGKILL)
    assert not left, f"still running after nbagent was killed: {left}"
