"""The kernel adapter: the :class:`~nbagent.tools.kernel.Namespace` the python and inspect tools act on.

Code runs in the IPython user namespace, after IPython's input transformations (magics, ``!cmd``);
stdout, stderr and rich displays are captured rather than printed into the cell; matplotlib figures
the code creates come back as PNG images (and are closed, so they are not shown twice). A kernel
interrupt stops synchronous user code with ``KeyboardInterrupt``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import io
import signal
import sys
import threading
from collections.abc import Iterator
from typing import Any

from nbagent.tools.kernel import ExecResult, execute_into

HIDDEN = {"In", "Out", "exit", "quit", "get_ipython", "open"}


@contextlib.contextmanager
def interruptible() -> Iterator[None]:
    """While synchronous code runs, SIGINT raises KeyboardInterrupt (ipykernel turns it into a
    cancellation of the awaited cell otherwise, which cannot stop code that does not yield)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _fignums() -> set[int]:
    plt = sys.modules.get("matplotlib.pyplot")
    if plt is None:
        return set()
    try:
        return set(plt.get_fignums())
    except Exception:
        return set()


def _new_figures(before: set[int]) -> list[bytes]:
    plt = sys.modules.get("matplotlib.pyplot")
    if plt is None:
        return []
    images = []
    for num in sorted(_fignums() - before):
        try:
            fig = plt.figure(num)
            buf = io.BytesIO()
            fig.savefig(buf, format="png", dpi=72, bbox_inches="tight")
            images.append(buf.getvalue())
        except Exception:
            continue
        finally:
            with contextlib.suppress(Exception):
                plt.close(num)
    return images


class IPythonNamespace:
    def __init__(self, shell: Any) -> None:
        self.shell = shell

    def variables(self) -> dict[str, Any]:
        return self.shell.user_ns  # type: ignore[no-any-return]

    def hidden(self) -> set[str]:
        return set(getattr(self.shell, "user_ns_hidden", {})) | HIDDEN

    async def execute(self, code: str) -> ExecResult:
        from IPython.utils.capture import capture_output

        result = ExecResult()
        try:
            code = self.shell.transform_cell(code)
        except Exception as exc:
            result.error = f"{type(exc).__name__}: {exc}"
            return result
        await asyncio.sleep(0.02)  # let the view show the call as running before the code holds the loop
        before = _fignums()
        with capture_output(stdout=True, stderr=True, display=True) as captured:
            await execute_into(code, self.shell.user_ns, result, guard=interruptible)
        result.stdout, result.stderr = captured.stdout, captured.stderr
        for output in captured.outputs:
            data = dict(getattr(output, "data", {}) or {})
            image = next((m for m in ("image/png", "image/jpeg") if m in data), None)
            if image is not None:
                with contextlib.suppress(Exception):
                    result.images.append((image, base64.b64decode(data[image])))
                    continue
            result.displays.append(data)
        result.images.extend(("image/png", png) for png in _new_figures(before))
        return result
