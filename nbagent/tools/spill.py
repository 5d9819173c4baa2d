"""Where nbagent spills what does not fit in memory or in a result: private to the user, and capped.

Everything lives under ``$NBAGENT_CACHE_DIR`` or the platform's user cache folder
(``~/.cache/nbagent``): folders 0700, files 0600 (``tempfile.mkstemp`` makes them so).
``OutputLog`` keeps a command's output: in memory up to ``keep`` characters, past that the whole in a
file, and never more than ``max_bytes`` in all: at the cap it stops saving and calls ``on_limit``
(the shell tool stops the command). A write that fails (disk full) stops the saving, not the command.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from nbagent.core.private import cache_dir
from nbagent.core.private import private_dir as core_private_dir

KEEP_CHARS = 1_000_000  # output kept in memory; beyond it, the whole goes to a file
HEAD_CHARS = 15_000


def private_dir(path: Path) -> Path:
    """``path`` created if needed, and every folder from the cache folder down to it, mode 0700."""
    base = cache_dir()
    for folder in reversed([path, *path.parents]):
        if folder == base or base in folder.parents:
            core_private_dir(folder)
    return core_private_dir(path)


class OutputLog:
    """A process's output: in memory up to ``keep`` characters; past that, the whole in a file
    and only the first ``HEAD_CHARS`` and the last ``keep`` characters in memory."""

    def __init__(
        self,
        output_dir: Path,
        label: str,
        keep: int = KEEP_CHARS,
        max_bytes: int | None = None,
        on_limit: Callable[[], None] | None = None,
    ) -> None:
        self.output_dir = output_dir
        self.label = label
        self.keep = keep
        self.max_bytes = max_bytes
        self.on_limit = on_limit
        self.head = ""
        self.total = 0  # characters ever written
        self.bytes = 0  # bytes ever written (UTF-8)
        self.lines = 0
        self.path: Path | None = None
        self.limited = False  # the cap was reached: nothing more is saved
        self.save_error: str | None = None  # saving to the file failed (disk full, ...)
        self._chunks: list[str] = []
        self._held = 0
        self._fh: BinaryIO | None = None

    def write(self, text: str) -> None:
        if not text or self.limited:
            return
        data = text.encode("utf-8", "replace")
        if self.max_bytes is not None and self.bytes + len(data) >= self.max_bytes:
            data = data[: max(0, self.max_bytes - self.bytes)]
            text = data.decode("utf-8", "ignore")
            self.limited = True
        if len(self.head) < HEAD_CHARS:
            self.head += text[: HEAD_CHARS - len(self.head)]
        self.total += len(text)
        self.bytes += len(data)
        self.lines += text.count("\n")
        self._chunks.append(text)
        self._held += len(text)
        if self._fh is not None:
            self._save(data)
        elif (self.total > self.keep or self.limited) and self.path is None and self.save_error is None:
            self._spill()
        if self._held > 2 * self.keep:
            kept = "".join(self._chunks)[-self.keep :]
            self._chunks, self._held = [kept], len(kept)
        if self.limited and self.on_limit is not None:
            self.on_limit()

    def _save(self, data: bytes) -> None:
        assert self._fh is not None
        try:
            self._fh.write(data)
            self._fh.flush()
        except OSError as exc:
            self.save_error = exc.strerror or str(exc)
            self._drop_file()

    def _drop_file(self) -> None:
        if self._fh is not None:
            with contextlib.suppress(OSError):
                self._fh.close()
            self._fh = None

    def _spill(self) -> None:
        # Called the first time ``total`` passes ``keep``: nothing has been dropped from memory yet.
        try:
            private_dir(self.output_dir)
            fd, name = tempfile.mkstemp(prefix=f"{self.label}-", suffix=".txt", dir=self.output_dir)
        except OSError as exc:
            self.save_error = exc.strerror or str(exc)
            return
        self.path = Path(name)
        self._fh = os.fdopen(fd, "wb")
        self._save("".join(self._chunks).encode("utf-8", "replace"))

    def text(self) -> str:
        """The last ``keep`` characters (all of it while nothing spilled)."""
        joined = "".join(self._chunks)
        if len(joined) > self.keep:
            joined = joined[-self.keep :]
        self._chunks, self._held = [joined], len(joined)
        return joined

    def since(self, offset: int) -> tuple[str, int]:
        """Output written after character ``offset``, and how much of it is no longer in memory."""
        wanted = self.total - offset
        if wanted <= 0:
            return "", 0
        held = self.text()
        if wanted <= len(held):
            return held[len(held) - wanted :], 0
        return held, wanted - len(held)

    def notes(self) -> str:
        """What the model must know about how the output was kept ("" when all is well)."""
        out = []
        if self.limited and self.max_bytes is not None:
            mb = self.max_bytes / 1e6
            out.append(
                f"Output exceeded {mb:g} MB; the command was stopped (its whole process group killed) and"
                " only that much was kept. Send large output to a file, or narrow it (head, grep, tail)."
            )
        if self.save_error is not None:
            out.append(
                f"Saving the output failed ({self.save_error}); only its first and last parts are shown,"
                " the rest is lost. Free disk space or send the output to a file."
            )
        return "\n".join(out)

    def close(self) -> None:
        self._drop_file()
