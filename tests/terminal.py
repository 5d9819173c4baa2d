"""A real terminal for tests: a process on a pseudo-terminal, driven by what it prints and what we type."""

from __future__ import annotations

import os
import pty
import re
import select
import signal
import sys
import time
from pathlib import Path

ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07]*\x07|\x1b[=>()][0-9A-Za-z]?|[\x01\x02]")
CTRL_C, CTRL_D = "\x03", "\x04"


class Terminal:
    """``python -m nbagent ARGS`` on a pty (its controlling terminal: Ctrl-C is a real SIGINT)."""

    def __init__(self, args: list[str], cwd: Path, env: dict[str, str]) -> None:
        argv = [sys.executable, "-m", "nbagent", *args]
        full = {**env, "TERM": "xterm", "COLUMNS": "200", "LINES": "50", "PYTHONUNBUFFERED": "1"}
        pid, fd = pty.fork()
        if pid == 0:  # the child: the pty is its stdin, stdout, stderr and controlling terminal
            try:
                os.chdir(cwd)
                os.execve(argv[0], argv, full)
            finally:
                os._exit(127)
        self.pid, self.fd = pid, fd
        self.screen = ""  # everything printed so far, escape sequences removed
        self._seen = 0
        self.returncode: int | None = None

    def _read(self, timeout: float) -> bool:
        ready, _, _ = select.select([self.fd], [], [], timeout)
        if not ready:
            return False
        try:
            data = os.read(self.fd, 65536)
        except OSError:  # EIO: the child closed the terminal
            return False
        if not data:
            return False
        self.screen += ANSI.sub("", data.decode("utf-8", "replace")).replace("\r\n", "\n")
        return True

    def expect(self, text: str, timeout: float = 60) -> str:
        """Wait until ``text`` is printed (after what earlier expects consumed); returns the output up to
        and including it."""
        deadline = time.monotonic() + timeout
        while True:
            at = self.screen.find(text, self._seen)
            if at >= 0:
                out = self.screen[self._seen : at + len(text)]
                self._seen = at + len(text)
                return out
            left = deadline - time.monotonic()
            if left <= 0 or (not self._read(min(left, 0.5)) and self._exited()):
                raise AssertionError(f"{text!r} not printed; the terminal shows:\n{self.screen[-3000:]}")

    def send(self, text: str) -> None:
        os.write(self.fd, text.encode())

    def key_at_prompt(self, key: str) -> None:
        """Press a control key (Ctrl-C, Ctrl-D) at a prompt just shown. CPython's readline notices a
        signal only once it waits for input: a key sent the instant the prompt shows can be missed."""
        time.sleep(0.3)
        self.send(key)

    def line(self, text: str) -> None:
        self.send(text + "\r")

    def _exited(self) -> bool:
        if self.returncode is not None:
            return True
        pid, status = os.waitpid(self.pid, os.WNOHANG)
        if pid == 0:
            return False
        self.returncode = os.waitstatus_to_exitcode(status)
        return True

    def wait(self, timeout: float = 30) -> int:
        deadline = time.monotonic() + timeout
        while not self._exited():
            if time.monotonic() > deadline:
                raise AssertionError(f"still running; the terminal shows:\n{self.screen[-3000:]}")
            self._read(0.1)
        while self._read(0.05):
            pass
        assert self.returncode is not None
        return self.returncode

    def close(self) -> None:
        if not self._exited():
            os.kill(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)
        os.close(self.fd)
