"""Finds and kills the processes nbagent's commands started, by the marker in their environment.

Every command runs with ``NBAGENT_CMD_ID=<owner>-<n>`` in its environment (``:``-joined after the
ids of enclosing nbagent commands). Descendants inherit it through ``&``, ``nohup``, ``setsid`` and
double forks, so a scan of ``/proc/*/environ`` finds them wherever they went.

Run as a script it is the watchdog: ``python -I -S proc_watchdog.py OWNER`` with stdin a pipe whose
write end only nbagent holds. When nbagent ends, however it ends (SIGKILL included), the pipe
reaches end-of-file and the watchdog kills every process marked with one of OWNER's commands.

Standard library only: the watchdog starts in milliseconds and imports nothing of nbagent.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from collections.abc import Callable, Iterable

MARKER = "NBAGENT_CMD_ID"
_PREFIX = MARKER.encode() + b"="


def _alive(pid: int) -> bool:
    """Exists and is not a zombie (exited, waiting to be reaped)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read()
    except OSError:
        return False
    return stat[stat.rfind(b")") + 2 : stat.rfind(b")") + 3] != b"Z"


def _command_ids(pid: int) -> list[str]:
    try:
        with open(f"/proc/{pid}/environ", "rb") as fh:
            environ = fh.read()
    except OSError:  # gone, or not ours to read
        return []
    for entry in environ.split(b"\0"):
        if entry.startswith(_PREFIX):
            return entry[len(_PREFIX) :].decode("ascii", "replace").split(":")
    return []


def marked_pids(match: Callable[[str], bool]) -> list[int]:
    """Live processes (not this one) whose environment carries a command id that ``match`` accepts."""
    if not os.path.isdir("/proc"):
        return []
    me = os.getpid()
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == me:
            continue
        pid = int(name)
        if any(match(cid) for cid in _command_ids(pid)) and _alive(pid):
            found.append(pid)
    return found


def signal_all(pids: Iterable[int], sig: int) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)


def kill_marked_now(match: Callable[[str], bool], grace: float = 1.0, rounds: int = 5) -> list[int]:
    """SIGTERM the marked processes, SIGKILL what is left after ``grace`` seconds; rescans, so
    processes forked meanwhile go too. Returns the pids signalled. Blocking: call it in a thread."""
    signalled: list[int] = []
    pids = marked_pids(match)
    if not pids:
        return signalled
    signal_all(pids, signal.SIGTERM)
    signalled += pids
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and marked_pids(match):
        time.sleep(0.05)
    for _ in range(rounds):
        pids = marked_pids(match)
        if not pids:
            break
        signal_all(pids, signal.SIGKILL)
        signalled += pids
        time.sleep(0.02)
    return signalled


def _watch(owner: str) -> None:
    for sig in (signal.SIGINT, signal.SIGHUP, signal.SIGTERM, signal.SIGQUIT):
        signal.signal(sig, signal.SIG_IGN)
    while True:
        try:
            if not os.read(0, 4096):
                break
        except InterruptedError:
            continue
        except OSError:
            break
    kill_marked_now(lambda cid: cid.startswith(owner + "-"), grace=0.5)


if __name__ == "__main__":
    _watch(sys.argv[1])
