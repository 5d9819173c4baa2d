"""Running a notebook cell's code for ``notebook_run`` while the ``%%agent`` cell is still running.

The kernel is busy with the agent's cell, so a new execute request would queue behind it: the code runs
here instead, in the user's namespace, the way the python tool runs code, and its outputs (streams,
displays and figures, the last expression's value, the error with its traceback) go to ``emit`` as
nbformat outputs, for the front-end to put into the target cell as they come. The cell gets the next
execution count and its source goes into the kernel's history (``In``, ``_i``), as if the user had run
it. A kernel interrupt raises ``KeyboardInterrupt`` in synchronous code; a cell running past its
timeout gets :class:`CellTimeout` (a ``SIGALRM`` in synchronous code, a cancellation in awaited code).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import signal
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

from nbagent.jupyter.cell_history import CellHistory
from nbagent.jupyter.kernel import figure_numbers, interruptible
from nbagent.tools.kernel_exec import CellRun, Emit, format_error, run_compiled, split_last_expression

MAX_STREAM_CHARS = 5_000_000  # per cell, sent to the front-end (a runaway print loop stops there)
FLUSH_SECONDS = 0.1
FLUSH_CHARS = 8192


class CellTimeout(BaseException):
    """The cell ran past its timeout."""


class _Interrupted(Exception):
    """A ``KeyboardInterrupt`` in the cell's code, carried out of the task that runs it: asyncio lets a
    ``KeyboardInterrupt`` raised in a task escape the event loop, which would end the kernel."""

    def __init__(self, interrupt: KeyboardInterrupt) -> None:
        super().__init__("interrupted")
        self.interrupt = interrupt


class _Outputs:
    """The cell's outputs: sent to the front-end as they come, merged and kept for the model."""

    def __init__(self, emit: Emit) -> None:
        self.emit = emit
        self.kept: list[dict[str, Any]] = []
        self.sent_chars = 0
        self.cut = False
        self.buffers: dict[str, list[str]] = {"stdout": [], "stderr": []}
        self.buffered = 0
        self.last_flush = time.monotonic()

    def write(self, name: str, text: str) -> None:
        self.buffers[name].append(text)
        self.buffered += len(text)
        if self.buffered >= FLUSH_CHARS or time.monotonic() - self.last_flush >= FLUSH_SECONDS:
            self.flush()

    def flush(self) -> None:
        self.last_flush = time.monotonic()
        self.buffered = 0
        for name, parts in self.buffers.items():
            if not parts:
                continue
            text = "".join(parts)
            parts.clear()
            room = MAX_STREAM_CHARS - self.sent_chars
            if room <= 0:
                continue
            if len(text) > room:
                text = text[:room] + "\n[nbagent: the rest of this cell's output was not shown]\n"
            self.sent_chars += len(text)
            self.add({"output_type": "stream", "name": name, "text": text})

    def add(self, output: dict[str, Any]) -> None:
        if output.get("output_type") != "stream":
            self.flush()
        last = self.kept[-1] if self.kept else None
        if (
            last is not None
            and output.get("output_type") == "stream"
            and last.get("output_type") == "stream"
            and last.get("name") == output.get("name")
        ):
            last["text"] += output["text"]
        else:
            self.kept.append(dict(output))
        self.emit(output)

    def clear(self) -> None:
        self.flush()
        self.kept.clear()
        self.emit({"output_type": "clear"})


class _Writer(io.TextIOBase):
    def __init__(self, outputs: _Outputs, name: str) -> None:
        self.outputs = outputs
        self.stream_name = name

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        if not isinstance(text, str):
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        self.outputs.write(self.stream_name, text)
        return len(text)

    def flush(self) -> None:
        self.outputs.flush()

    encoding = "utf-8"


def _publisher(shell: Any, outputs: _Outputs) -> Any:
    from IPython.core.displaypub import DisplayPublisher

    kernels = shell.display_pub  # ipykernel's, back in place when the cell ends

    class Publisher(DisplayPublisher):
        def set_parent(self, parent: Any) -> None:
            # ipykernel sets the parent of every shell message it handles meanwhile (a Stop click, a
            # comm reply, on a subshell's thread) on the shell's display publisher: without this
            # method that message would fail, and the click would be lost.
            setter = getattr(kernels, "set_parent", None)
            if callable(setter):
                setter(parent)

        def publish(self, data: Any, metadata: Any = None, *args: Any, **kwargs: Any) -> None:
            if kwargs.get("update"):
                return  # an update of an earlier display: not in this cell
            outputs.add({"output_type": "display_data", "data": dict(data), "metadata": dict(metadata or {})})

        def clear_output(self, wait: bool = False) -> None:
            outputs.clear()

    return Publisher(shell=shell)  # type: ignore[no-untyped-call]


@contextlib.contextmanager
def _guard(deadline: float) -> Iterator[None]:
    """Synchronous code: interruptible, and the deadline raises CellTimeout (in the main thread)."""
    with interruptible():
        if threading.current_thread() is not threading.main_thread():
            yield
            return

        def alarm(_signum: int, _frame: Any) -> None:
            raise CellTimeout()

        previous = signal.signal(signal.SIGALRM, alarm)
        signal.setitimer(signal.ITIMER_REAL, max(0.001, deadline - time.monotonic()))
        try:
            yield
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)


def _show_figures(shell: Any, before: set[int], outputs: _Outputs) -> None:
    """Figures the code made and did not show: displayed (as the inline backend would) and closed."""
    plt = sys.modules.get("matplotlib.pyplot")
    if plt is None:
        return
    for num in sorted(figure_numbers() - before):
        try:
            fig = plt.figure(num)
            data, metadata = shell.display_formatter.format(fig)
            if "image/png" not in data:
                import base64

                buf = io.BytesIO()
                fig.savefig(buf, format="png", bbox_inches="tight")
                data = {**data, "image/png": base64.b64encode(buf.getvalue()).decode("ascii")}
            outputs.add({"output_type": "display_data", "data": dict(data), "metadata": dict(metadata)})
        except Exception:
            continue
        finally:
            with contextlib.suppress(Exception):
                plt.close(num)


def _next_count(shell: Any, raw: str, transformed: str) -> int:
    """The next execution count, taken as IPython takes one for a cell (``In`` stays aligned). The
    kernel's reply to the running ``%%agent`` cell then carries the last count handed out."""
    count = int(shell.execution_count)
    shell.execution_count = count + 1
    shell.history_manager.store_inputs(count, transformed, raw)
    return count


def _error_output(shell: Any, exc: BaseException) -> dict[str, Any]:
    tb = exc.__traceback__
    while tb is not None and "/nbagent/" in tb.tb_frame.f_code.co_filename.replace("\\", "/"):
        tb = tb.tb_next
    sys.last_type, sys.last_value, sys.last_traceback = type(exc), exc, tb
    try:
        lines = shell.InteractiveTB.structured_traceback(type(exc), exc, tb)
    except Exception:
        lines = format_error(exc).splitlines()
    return {
        "output_type": "error",
        "ename": type(exc).__name__,
        "evalue": str(exc),
        "traceback": [str(line) for line in lines],
    }


async def run_cell(
    shell: Any, history: CellHistory, code: str, cell_id: str, emit: Emit, limit: float
) -> CellRun:
    outputs = _Outputs(emit)
    try:
        transformed = shell.transform_cell(code)
    except Exception as exc:
        outputs.add(_error_output(shell, exc))
        return CellRun(None, "error", outputs.kept, format_error(exc))
    count = _next_count(shell, code, transformed)
    history.ran[cell_id] = (count, code)
    deadline = time.monotonic() + limit
    saved = sys.stdout, sys.stderr, shell.display_pub
    sys.stdout, sys.stderr = _Writer(outputs, "stdout"), _Writer(outputs, "stderr")
    shell.display_pub = _publisher(shell, outputs)
    before = figure_numbers()
    status, error = "ok", ""
    try:
        filename = shell.compile.cache(transformed, count, raw_code=code)
        body, expr = split_last_expression(transformed, filename)
        value = await asyncio.wait_for(_evaluate(body, expr, shell.user_ns, deadline), limit)
        _show_figures(shell, before, outputs)
        if value is not None:
            data, metadata = shell.display_formatter.format(value)
            shell.user_ns["_"] = value
            outputs.add(
                {
                    "output_type": "execute_result",
                    "data": data,
                    "metadata": metadata,
                    "execution_count": count,
                }
            )
    except (KeyboardInterrupt, _Interrupted) as exc:
        status, error = "interrupted", "KeyboardInterrupt: the cell was interrupted."
        outputs.add(_error_output(shell, exc.interrupt if isinstance(exc, _Interrupted) else exc))
    except (CellTimeout, TimeoutError):
        status, error = "timeout", f"The cell did not finish within {limit:g} s and was stopped."
        outputs.add({"output_type": "stream", "name": "stderr", "text": f"[nbagent] {error}\n"})
    except Exception as exc:
        status, error = "error", format_error(exc)
        outputs.add(_error_output(shell, exc))
    finally:
        sys.stdout, sys.stderr, shell.display_pub = saved
        outputs.flush()
        _show_figures(shell, before, outputs)
    return CellRun(count, status, outputs.kept, error)  # type: ignore[arg-type]


async def _evaluate(body: Any, expr: Any, namespace: dict[str, Any], deadline: float) -> Any:
    def guard() -> contextlib.AbstractContextManager[None]:
        return _guard(deadline)

    try:
        await run_compiled(body, namespace, guard)
        return await run_compiled(expr, namespace, guard) if expr is not None else None
    except KeyboardInterrupt as exc:  # (this runs in wait_for's own task)
        raise _Interrupted(exc) from None
