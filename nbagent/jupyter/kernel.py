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
from nbagent.tools.kernel_exec import CellRun, Emit

HIDDEN = {"In", "Out", "exit", "quit", "get_ipython", "open"}


_running = threading.Event()  # the main thread runs the user's synchronous code for a tool


@contextlib.contextmanager
def interruptible() -> Iterator[None]:
    """While synchronous code runs, SIGINT raises KeyboardInterrupt (ipykernel turns it into a
    cancellation of the awaited cell otherwise, which cannot stop code that does not yield)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    _running.set()
    try:
        yield
    finally:
        _running.clear()
        signal.signal(signal.SIGINT, previous)


def stop_running_code() -> bool:
    """Called from another thread (a Stop click handled in a kernel subshell, while the main thread is
    held by the user's code a tool runs): interrupt that code as a kernel interrupt would."""
    main = threading.main_thread()
    if not _running.is_set() or threading.current_thread() is main or main.ident is None:
        return False
    signal.pthread_kill(main.ident, signal.SIGINT)
    return True


def figure_numbers() -> set[int]:
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
    for num in sorted(figure_numbers() - before):
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

    def ran_source(self, count: int, cell_id: str) -> str | None:
        from nbagent.jupyter.cell_history import history_for

        return history_for(self.shell).ran_source(count, cell_id)

    async def run_cell(self, code: str, cell_id: str, emit: Emit, limit: float) -> CellRun:
        from nbagent.jupyter.cell_history import history_for
        from nbagent.jupyter.cell_run import run_cell

        return await run_cell(self.shell, history_for(self.shell), code, cell_id, emit, limit)

    def last_error(self) -> str:
        """The last error the user's code raised in this kernel (``sys.last_value``), one line."""
        value = getattr(sys, "last_value", None)
        return f"{type(value).__name__}: {value}"[:300] if value is not None else ""

    async def execute(self, code: str) -> ExecResult:
        from IPython.utils.capture import capture_output

        result = ExecResult()
        try:
            code = self.shell.transform_cell(code)
        except Exception as exc:
            result.error = f"{type(exc).__name__}: {exc}"
            return result
        await asyncio.sleep(0.02)  # let the view show the call as running before the code holds the loop
        before = figure_numbers()
        kernels = self.shell.display_pub
        with capture_output(stdout=True, stderr=True, display=True) as captured:
            # ipykernel sets the parent of each message it handles meanwhile (a Stop click on a subshell)
            # on the shell's display publisher: the capturing one must take it, or the click is lost
            self.shell.display_pub.set_parent = getattr(kernels, "set_parent", lambda _parent: None)
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
