"""Every process a command starts is tracked, and none outlives what owns it.

    cmd_id = new_command_id()
    env = marked_env(env, cmd_id)           # NBAGENT_CMD_ID: inherited by every descendant
    ...spawn with env...
    await kill_marked({cmd_id})             # at a timeout, a cancel, kill_shell, session end

What is guaranteed (Linux, where ``/proc`` exists):

- A command's process group is signalled first (``shell_process.terminate_group``); then every live
  process whose environment carries the command's id: children in other groups or sessions
  (``setsid``, ``nohup``), daemons that double-forked, grandchildren reparented to init.
- A foreground command that exits normally may leave ``&`` children running (it asked for it); they
  are killed at session end with everything else the session's commands started.
- nbagent killed outright (SIGKILL, a crash) leaves nothing running: a watchdog process, started
  with the first command and holding the read end of a pipe only nbagent writes to, sees the pipe
  close and kills every process marked by this nbagent's commands (within about a second).
- Not covered: a process that starts with a cleared environment (``env -i``, ``sudo``, ``ssh``) or
  is started by a service manager (systemd, docker); and a watchdog killed by hand. No cgroup is
  used (most containers do not delegate one); the sandbox's ``--die-with-parent`` and PID namespace
  add a second wall for sandboxed commands.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Collection, Mapping

from nbagent.tools import proc_watchdog
from nbagent.tools.proc_watchdog import MARKER, kill_marked_now, marked_pids

OWNER = uuid.uuid4().hex[:16]  # this nbagent process: the watchdog kills what carries it
_counter = itertools.count(1)
_watchdog: subprocess.Popen[bytes] | None = None
_watchdog_pipe: int | None = None  # write end; closes (EOF for the watchdog) when this process dies
_watchdog_lock = threading.Lock()

__all__ = [
    "MARKER",
    "OWNER",
    "ensure_watchdog",
    "kill_marked",
    "marked_env",
    "marked_pids",
    "new_command_id",
    "tracked_pids",
]


def new_command_id() -> str:
    return f"{OWNER}-{next(_counter)}"


def marked_env(env: Mapping[str, str], cmd_id: str) -> dict[str, str]:
    """``env`` with ``cmd_id`` added to the marker (after the ids of enclosing nbagent commands)."""
    out = dict(env)
    outer = out.get(MARKER, "")
    out[MARKER] = f"{outer}:{cmd_id}" if outer else cmd_id
    return out


def tracked_pids(ids: Collection[str]) -> list[int]:
    """Live processes started by one of the commands ``ids`` (blocking /proc scan)."""
    wanted = set(ids)
    return marked_pids(wanted.__contains__) if wanted else []


async def kill_marked(ids: Collection[str], grace: float = 1.0) -> list[int]:
    """Kill every live process started by one of the commands ``ids`` (off the event loop)."""
    wanted = set(ids)
    if not wanted:
        return []
    return await asyncio.to_thread(kill_marked_now, wanted.__contains__, grace)


def ensure_watchdog() -> None:
    """Start this process's watchdog once (see the module docstring); never raises."""
    global _watchdog, _watchdog_pipe
    with _watchdog_lock:
        if _watchdog is not None and _watchdog.poll() is None:
            return
        if not os.path.isdir("/proc"):
            return
        read_fd, write_fd = os.pipe()  # both close-on-exec: no command inherits the write end
        env = {k: v for k, v in os.environ.items() if k != MARKER}
        try:
            _watchdog = subprocess.Popen(
                [sys.executable, "-I", "-S", proc_watchdog.__file__, OWNER],
                stdin=read_fd,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,  # a Ctrl-C or a hang-up of the terminal does not reach it
                env=env,
            )
        except OSError:
            os.close(write_fd)
            return
        finally:
            os.close(read_fd)
        if _watchdog_pipe is not None:
            os.close(_watchdog_pipe)
        _watchdog_pipe = write_fd
