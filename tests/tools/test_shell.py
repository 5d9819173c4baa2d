"""bash, bash_output and kill_shell with real processes: exit codes, timeouts, cancellation, background shells."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import stat
import time
from pathlib import Path
from typing import Any

import pytest

from nbagent.core.events import Event, ToolCallOutput
from nbagent.tools.base import (
    PermissionQuery,
    PermissionRejected,
    Tool,
    ToolContext,
    ToolFailure,
    ToolResult,
    default_output_dir,
)
from nbagent.tools.shell import (
    BashOutputTool,
    BashTool,
    KillShellTool,
    ShellRegistry,
    close_shells,
)
from nbagent.tools.shell_env import ShellOptions
from nbagent.tools.spill import KEEP_CHARS
from tests.conftest import small_tmpfs


def alive(pid: int) -> bool:
    """A process that exists and is not a zombie (this container's init does not reap orphans)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat[stat.rfind(")") + 2] != "Z"


async def gone(*pids: int, within: float = 5.0) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if not any(alive(pid) for pid in pids):
            return True
        await asyncio.sleep(0.05)
    return False


def read(path: Path) -> str:
    return path.read_text()


def pids_in(text: str) -> dict[str, int]:
    return {name: int(pid) for name, pid in re.findall(r"(\w+)=(\d+)", text)}


class Harness:
    def __init__(self, root: Path, output_dir: Path) -> None:
        self.events: list[Event] = []
        self.asks: list[PermissionQuery] = []
        self.refuse = False
        self.ctx = ToolContext(
            root=root, call_id="call_7", emit=self.events.append, ask=self._ask, output_dir=output_dir
        )

    async def _ask(self, query: PermissionQuery) -> None:
        self.asks.append(query)
        if self.refuse:
            raise PermissionRejected("The user refused bash.", "no")

    async def run(self, tool: Tool[Any], **args: Any) -> ToolResult:
        return await tool.run(tool.parse(args), self.ctx)

    async def bash(self, command: str, **args: Any) -> ToolResult:
        return await self.run(BashTool(), command=command, **args)

    def live(self) -> str:
        return "".join(e.chunk for e in self.events if isinstance(e, ToolCallOutput))


@pytest.fixture
async def h(tmp_path: Path) -> Any:
    root = tmp_path / "project"
    root.mkdir()
    harness = Harness(root, tmp_path / "out")
    yield harness
    await close_shells(harness.ctx.state)


# ---------------------------------------------------------------------------------------------- foreground


async def test_exit_codes_merged_streams_and_cwd(h: Harness) -> None:
    result = await h.bash("echo out; echo err >&2; pwd")
    assert result.output == f"out\nerr\n{h.ctx.root}\nExit code 0."
    assert result.metadata["exit_code"] == 0

    result = await h.bash("echo failing; exit 3", description="Fail on purpose")
    assert result.output.endswith("failing\nExit code 3.")
    assert result.metadata["exit_code"] == 3
    assert result.title == "Fail on purpose"

    result = await h.bash("true")
    assert result.output == "(no output)\nExit code 0."

    result = await h.bash("kill -TERM $$")
    assert result.output.endswith("Killed by SIGTERM.")

    # stdin is /dev/null: a command that reads it ends at once
    result = await h.bash("cat; echo after")
    assert result.output.startswith("after")


async def test_missing_working_folder_is_reported(tmp_path: Path) -> None:
    ctx = ToolContext(root=tmp_path / "gone")
    tool = BashTool()
    with pytest.raises(ToolFailure, match="Could not start bash in"):
        await tool.run(tool.parse({"command": "true"}), ctx)


async def test_asks_permission_first_and_refusal_runs_nothing(h: Harness) -> None:
    await h.bash("echo hi", description="Say hi")
    assert h.asks == [
        PermissionQuery(
            permission="bash",
            patterns=["echo hi"],
            title="Say hi",
            metadata={"cwd": str(h.ctx.root), "background": False},
        )
    ]
    h.refuse = True
    with pytest.raises(PermissionRejected):
        await h.bash("touch made")
    assert not (h.ctx.root / "made").exists()


async def test_timeout_kills_the_whole_process_group(h: Harness) -> None:
    start = time.monotonic()
    result = await h.bash("echo leader=$$; sleep 30 & echo child=$!; sleep 30", timeout=1000)
    assert time.monotonic() - start < 6
    assert result.metadata["timed_out"] is True
    assert "Timed out after 1 s" in result.output
    pids = pids_in(result.output)  # the output so far is included
    assert set(pids) == {"leader", "child"}
    assert await gone(*pids.values())


async def test_timeout_escalates_to_sigkill_when_sigterm_is_ignored(h: Harness) -> None:
    start = time.monotonic()
    result = await h.bash("trap '' TERM; echo leader=$$; sleep 30 & echo child=$!; sleep 30", timeout=500)
    elapsed = time.monotonic() - start
    assert result.metadata["timed_out"] is True
    pids = pids_in(result.output)
    assert set(pids) == {"leader", "child"}
    assert await gone(*pids.values(), within=1.0)
    assert 2.0 <= elapsed < 8  # the SIGTERM grace, then SIGKILL


async def test_cancellation_kills_the_group_and_reraises(h: Harness) -> None:
    task = asyncio.create_task(h.bash("echo leader=$$; sleep 30 & echo child=$!; wait"))
    for _ in range(100):
        if "child=" in h.live():
            break
        await asyncio.sleep(0.05)
    pids = pids_in(h.live())
    assert set(pids) == {"leader", "child"}
    assert all(alive(pid) for pid in pids.values())
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await gone(*pids.values())


async def test_live_output_is_streamed_and_throttled(h: Harness) -> None:
    result = await h.bash("echo one; sleep 0.4; echo two")
    chunks = [e for e in h.events if isinstance(e, ToolCallOutput)]
    assert [c.chunk for c in chunks] == ["one\n", "two\n"]
    assert all(c.call_id == "call_7" for c in chunks)
    assert result.output.startswith("one\ntwo\n")

    h.events.clear()
    start = time.monotonic()
    await h.bash("for i in $(seq 1 200); do echo line $i; sleep 0.004; done")
    elapsed = time.monotonic() - start
    chunks = [e for e in h.events if isinstance(e, ToolCallOutput)]
    assert h.live() == "".join(f"line {i}\n" for i in range(1, 201))  # nothing lost in batching
    assert len(chunks) <= elapsed * 10 + 2  # ~10 events a second at most, not one per line


async def test_large_output_is_bounded_and_saved_whole(h: Harness) -> None:
    # Larger than the result limit, within memory: bound_output saves it.
    result = await h.bash("seq 1 50000")
    assert len(result.output) < 40_000
    saved = Path(re.search(r"saved to (\S+);", result.output).group(1))  # type: ignore[union-attr]
    assert read(saved) == "".join(f"{i}\n" for i in range(1, 50001))
    assert result.output.startswith("1\n2\n3\n")
    assert result.output.endswith("49999\n50000\nExit code 0.")

    # Larger than what is kept in memory: the whole goes to a file as it streams.
    lines = KEEP_CHARS // 10 * 3
    result = await h.bash(f"seq -w 1 {lines}")  # fixed-width lines of 6 digits + newline
    assert len(result.output) < 40_000
    path = Path(result.metadata["output_file"])
    assert re.search(rf"saved to {re.escape(str(path))};", result.output)
    data = read(path)
    assert data.count("\n") == lines
    assert data.endswith(f"{lines}\n")
    assert result.output.startswith("000001\n")
    assert result.output.endswith(f"{lines}\nExit code 0.")


async def test_background_children_do_not_hang_a_foreground_command(h: Harness) -> None:
    start = time.monotonic()
    result = await h.bash("sleep 20 & echo child=$!")
    assert time.monotonic() - start < 5
    assert "still hold its output" in result.output
    child = pids_in(result.output)["child"]
    assert alive(child)  # "&" asked for it to go on; it is not ours to kill
    os.kill(child, signal.SIGKILL)


# ---------------------------------------------------------------------------------------------- background


async def test_background_start_read_and_kill(h: Harness) -> None:
    start = time.monotonic()
    result = await h.bash(
        "echo leader=$$; sleep 60 & echo child=$!; echo ready; sleep 0.3; echo later; sleep 60",
        run_in_background=True,
        description="Long job",
    )
    assert time.monotonic() - start < 2
    assert result.metadata["shell_id"] == "bash_1"
    assert "bash_1" in result.output
    assert isinstance(h.ctx.state["shells"], ShellRegistry)

    seen = ""
    for _ in range(100):
        out = await h.run(BashOutputTool(), shell_id="bash_1")
        assert out.output.startswith("bash_1: running")
        seen += out.output
        if "later" in seen:
            break
        await asyncio.sleep(0.05)
    assert seen.count("ready") == 1  # each read returns only what is new
    assert seen.count("later") == 1
    pids = pids_in(seen)
    assert set(pids) == {"leader", "child"}

    again = await h.run(BashOutputTool(), shell_id="bash_1")
    assert again.output.endswith("(no new output)")

    killed = await h.run(KillShellTool(), shell_id="bash_1")
    assert "Killed bash_1" in killed.output
    assert await gone(*pids.values())
    after = await h.run(BashOutputTool(), shell_id="bash_1")
    assert after.output.startswith("bash_1: killed")


async def test_background_exit_status_filter_and_unknown_id(h: Harness) -> None:
    await h.bash("printf 'a1\\nb2\\na3\\n'; exit 4", run_in_background=True)
    for _ in range(100):
        if h.ctx.state["shells"].get("bash_1").run.proc.returncode is not None:
            break
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.1)
    out = await h.run(BashOutputTool(), shell_id="bash_1", filter="^a")
    assert out.output == "bash_1: exited, exit code 4\na1\na3"
    assert out.metadata["exit_code"] == 4

    with pytest.raises(ToolFailure, match="Invalid filter regex"):
        await h.run(BashOutputTool(), shell_id="bash_1", filter="(")
    with pytest.raises(ToolFailure, match="Known shells: bash_1"):
        await h.run(BashOutputTool(), shell_id="bash_9")
    with pytest.raises(ToolFailure, match="No background shell"):
        await h.run(KillShellTool(), shell_id="bash_9")


async def test_background_output_memory_is_bounded(h: Harness) -> None:
    lines = KEEP_CHARS // 10 * 3  # three times what is kept in memory
    await h.bash(f"seq -w 1 {lines}", run_in_background=True)
    shell = h.ctx.state["shells"].get("bash_1")
    for _ in range(200):
        if shell.pump.done():
            break
        await asyncio.sleep(0.05)
    assert shell.pump.done()
    assert len(shell.log.text()) <= KEEP_CHARS
    out = await h.run(BashOutputTool(), shell_id="bash_1")
    assert len(out.output) < 40_000
    assert shell.log.path is not None
    assert f"the full log is {shell.log.path}" in out.output
    assert read(shell.log.path).count("\n") == lines
    assert out.output.endswith(f"{lines}")


async def test_close_shells_kills_every_background_shell(h: Harness) -> None:
    first = await h.bash("echo leader=$$; sleep 60", run_in_background=True)
    second = await h.bash("echo leader=$$; sleep 60 & echo child=$!; wait", run_in_background=True)
    assert first.metadata["shell_id"] != second.metadata["shell_id"]
    pids: list[int] = []
    for shell_id in ("bash_1", "bash_2"):
        text = ""
        for _ in range(100):
            text += (await h.run(BashOutputTool(), shell_id=shell_id)).output
            if "leader=" in text and (shell_id == "bash_1" or "child=" in text):
                break
            await asyncio.sleep(0.05)
        pids += pids_in(text).values()
    assert len(pids) == 3
    assert all(alive(pid) for pid in pids)
    await close_shells(h.ctx.state)
    assert await gone(*pids)


async def test_background_leftovers_are_killed_after_the_shell_exits(h: Harness) -> None:
    await h.bash("sleep 60 & echo child=$!", run_in_background=True)
    shell = h.ctx.state["shells"].get("bash_1")
    text = ""
    for _ in range(100):
        text += (await h.run(BashOutputTool(), shell_id="bash_1")).output
        if "child=" in text and shell.run.proc.returncode is not None:
            break
        await asyncio.sleep(0.05)
    assert "exited, exit code 0" in text
    child = pids_in(text)["child"]
    assert alive(child)
    killed = await h.run(KillShellTool(), shell_id="bash_1")
    assert "Killed bash_1" in killed.output
    assert await gone(child)


# ---------------------------------------------------------------------------------------------- output cap


def private(path: Path) -> None:
    assert stat.S_IMODE(path.stat().st_mode) == 0o600, oct(path.stat().st_mode)
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700, oct(path.parent.stat().st_mode)


async def test_endless_output_is_capped_and_the_command_stopped(h: Harness) -> None:
    h.ctx.shell = ShellOptions(max_output_bytes=1_000_000)
    start = time.monotonic()
    result = await h.bash("yes")
    assert time.monotonic() - start < 10
    assert "Output exceeded 1 MB; the command was stopped" in result.output
    assert result.metadata["output_capped"] and result.metadata["exit_code"] != 0
    saved = Path(result.metadata["output_file"])
    assert 900_000 <= saved.stat().st_size <= 1_000_000
    private(saved)


async def test_endless_background_output_is_capped_too(h: Harness) -> None:
    h.ctx.shell = ShellOptions(max_output_bytes=1_000_000)
    await h.bash("seq 1 inf", run_in_background=True)
    shell = h.ctx.state["shells"].get("bash_1")
    for _ in range(200):
        if shell.run.proc.returncode is not None and shell.after.done():
            break
        await asyncio.sleep(0.05)
    assert shell.run.proc.returncode is not None  # stopped without anyone killing it
    out = await h.run(BashOutputTool(), shell_id="bash_1")
    assert "Output exceeded 1 MB" in out.output
    assert shell.log.path is not None and shell.log.path.stat().st_size <= 1_000_000
    private(shell.log.path)


async def test_spilled_output_goes_to_a_private_cache_folder(tmp_path: Path) -> None:
    # The default output folder: under NBAGENT_CACHE_DIR (set for tests), 0700, files 0600.
    root = tmp_path / "project"
    root.mkdir()
    h = Harness(root, default_output_dir())
    result = await h.bash(f"seq -w 1 {KEEP_CHARS // 10 * 2}")
    saved = Path(result.metadata["output_file"])
    assert saved.parent == default_output_dir() and str(saved).startswith(os.environ["NBAGENT_CACHE_DIR"])
    private(saved)
    assert stat.S_IMODE(Path(os.environ["NBAGENT_CACHE_DIR"]).stat().st_mode) == 0o700


@pytest.fixture
def full_disk(tmp_path: Path) -> Any:
    """A 64 KB tmpfs: spilling output there runs out of space (root only)."""
    with small_tmpfs(tmp_path / "full", "64k") as mnt:
        yield mnt


async def test_a_full_disk_while_spilling_does_not_stall_the_command(tmp_path: Path, full_disk: Path) -> None:
    root = tmp_path / "project"
    root.mkdir()
    h = Harness(root, full_disk)
    start = time.monotonic()
    result = await h.bash(f"seq -w 1 {KEEP_CHARS // 10 * 3}; echo done", timeout=60_000)
    assert time.monotonic() - start < 20
    assert result.metadata["exit_code"] == 0 and not result.metadata["timed_out"]
    assert "Saving the output failed (No space left on device)" in result.output
    assert "done\nExit code 0." in result.output
