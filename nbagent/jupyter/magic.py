"""``%load_ext nbagent``: the ``%%agent`` cell magic and the ``%agent /command`` line magic.

Kept light: nothing heavy is imported until the first turn (see ``agent.py``). A ``%%agent`` cell
shows a first line at once, before the agent loads (about half a second on a kernel's first turn), and
the turn's view replaces it.

How the cell stays busy while widget clicks still arrive: an input transformer rewrites a cell that
starts with ``%%agent`` into ``await <run_cell>(line, body)``. IPython sees a top-level ``await`` and
ipykernel runs the cell as a coroutine on its own event loop; ipykernel >= 7.4 dispatches comm
messages (button clicks) while such a cell awaits. On an older kernel (or with autoawait off) the
transformer emits a call that starts the turn as a background task and says so in the output.
"""

from __future__ import annotations

import os
import sys
from typing import Any

MAGIC = "%%agent"
MIN_IPYKERNEL = (7, 4)
STARTING = "nbagent: starting…"
_state: dict[str, Any] = {"cell_id": None, "raw_cell": None, "previous_tb": None}


class CellStopped(Exception):
    """A turn stopped by a kernel interrupt, which the cell's transcript already says once.

    The cell still fails, so Run All stops at it (the execute reply says "error"), but IPython shows no
    error output for it: :func:`register` installs a custom exception handler that prints nothing.
    """


def _quiet(shell: Any, etype: type, value: BaseException, tb: Any, tb_offset: int | None = None) -> list[str]:
    shell._last_traceback = [str(value)]  # what the execute reply carries (nbclient shows it)
    return []


def _install_quiet_stop(shell: Any) -> None:
    current = tuple(getattr(shell, "custom_exceptions", ()) or ())
    if CellStopped in current:
        return
    previous = shell.CustomTB if current else None
    _state["previous_tb"] = (current, previous)

    def handler(shell: Any, etype: type, value: BaseException, tb: Any, tb_offset: int | None = None) -> Any:
        if isinstance(value, CellStopped) or previous is None:
            return _quiet(shell, etype, value, tb, tb_offset)
        return previous(etype, value, tb, tb_offset=tb_offset)  # another extension's handler

    shell.set_custom_exc((*current, CellStopped), handler)


def _uninstall_quiet_stop(shell: Any) -> None:
    if CellStopped not in tuple(getattr(shell, "custom_exceptions", ()) or ()):
        return
    current, previous = _state.get("previous_tb") or ((), None)
    if previous is None:
        shell.set_custom_exc((), None)
    else:
        shell.custom_exceptions, shell.CustomTB = current, previous
    _state["previous_tb"] = None


def _first_output() -> Any:
    """A display shown at once in the running cell (the turn's view replaces it); None outside IPython."""
    try:
        from IPython import display as ipython_display
    except ImportError:
        return None
    show: Any = ipython_display.display
    return show({"text/plain": STARTING}, raw=True, display_id=True)


def clear_first_output(handle: Any) -> None:
    """Remove the first line when the turn did not start (the cell shows the error instead)."""
    if handle is None:
        return
    from IPython import display as ipython_display

    clear: Any = ipython_display.clear_output
    clear()


def _version(text: str) -> tuple[int, ...]:
    out = []
    for piece in text.split(".")[:3]:
        digits = "".join(ch for ch in piece if ch.isdigit())
        out.append(int(digits) if digits else 0)
    return tuple(out)


def can_await(shell: Any) -> bool:
    """True when a top-level await runs on the kernel's loop while comm messages are still handled."""
    if os.environ.get("NBAGENT_BACKGROUND") == "1":
        return False
    if not getattr(shell, "autoawait", False):
        return False
    try:
        from IPython.core.interactiveshell import _asyncio_runner  # type: ignore[attr-defined]
    except ImportError:
        return False
    if getattr(shell, "loop_runner", None) is not _asyncio_runner:
        return False
    kernel_module = sys.modules.get("ipykernel")
    if kernel_module is None or "ipykernel.kernelapp" not in sys.modules:
        return True  # a terminal IPython: no comms to dispatch
    return _version(getattr(kernel_module, "__version__", "0")) >= MIN_IPYKERNEL


def _shell() -> Any:
    try:
        from IPython import get_ipython
    except ImportError:
        return None
    return get_ipython()


def transform_agent_cell(lines: list[str]) -> list[str]:
    """IPython cleanup transformer: a ``%%agent`` cell (or a cell that is one ``%agent /command``
    line) becomes one awaited call."""
    if not lines:
        return lines
    target = "__import__('nbagent.jupyter.magic', fromlist=['run_cell'])"
    if lines[0].startswith("%agent ") and not any(ln.strip() for ln in lines[1:]):
        shell = _shell()
        if shell is not None and can_await(shell):
            return [f"await {target}.run_line({lines[0][len('%agent ') :].strip()!r})\n"]
        return lines
    if not lines[0].startswith(MAGIC):
        return lines
    first = lines[0].rstrip("\r\n")
    rest = first[len(MAGIC) :]
    if rest and not rest[0].isspace():
        return lines  # %%agentsomething: not ours
    shell = _shell()
    body = "".join(lines[1:])
    if shell is not None and can_await(shell):
        return [f"await {target}.run_cell({rest.strip()!r}, {body!r})\n"]
    return [f"{target}.run_cell_background({rest.strip()!r}, {body!r})\n"]


async def run_cell(line: str, body: str) -> None:
    """The body of an awaited ``%%agent`` cell."""
    handle = _first_output()
    try:
        from nbagent.jupyter.agent import current_agent

        agent = current_agent()
    except Exception:
        clear_first_output(handle)
        raise
    await agent.run_cell(line, body, cell_id=_state["cell_id"], handle=handle)


async def run_line(line: str) -> None:
    """A cell that is one ``%agent /command`` line."""
    from nbagent.jupyter.agent import current_agent

    await current_agent().run_command(line, cell_id=_state["cell_id"])


def run_cell_background(line: str, body: str) -> None:
    """``%%agent`` where the kernel cannot await it: the turn runs as a background task."""
    handle = _first_output()
    try:
        from nbagent.jupyter.agent import current_agent

        current_agent().run_cell_background(line, body, cell_id=_state["cell_id"], handle=handle)
    except Exception:
        clear_first_output(handle)
        raise


def _pre_run_cell(info: Any) -> None:
    _state["cell_id"] = getattr(info, "cell_id", None)
    _state["raw_cell"] = getattr(info, "raw_cell", None)


def _line_magic(line: str) -> None:
    from nbagent.jupyter.agent import current_agent

    current_agent().command(line)


def _cell_magic(line: str, cell: str) -> None:
    # Reached only when the transformer did not run (e.g. run_cell_magic called by hand).
    run_cell_background(line, cell)


def register(shell: Any) -> None:
    cleanup = shell.input_transformers_cleanup
    if transform_agent_cell not in cleanup:
        cleanup.append(transform_agent_cell)
    shell.register_magic_function(_line_magic, "line", "agent")
    shell.register_magic_function(_cell_magic, "cell", "agent")
    callbacks = shell.events.callbacks.get("pre_run_cell", [])
    if _pre_run_cell not in callbacks:
        shell.events.register("pre_run_cell", _pre_run_cell)
    _install_quiet_stop(shell)


def unregister(shell: Any) -> None:
    cleanup = shell.input_transformers_cleanup
    if transform_agent_cell in cleanup:
        cleanup.remove(transform_agent_cell)
    if _pre_run_cell in shell.events.callbacks.get("pre_run_cell", []):
        shell.events.unregister("pre_run_cell", _pre_run_cell)
    _uninstall_quiet_stop(shell)
