"""``%load_ext nbagent``: the ``%%agent`` cell magic and the ``%agent /command`` line magic.

Kept light: nothing heavy is imported until the first turn (see ``agent.py``).

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
_state: dict[str, Any] = {"cell_id": None, "raw_cell": None}


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
    from nbagent.jupyter.agent import current_agent

    await current_agent().run_cell(line, body, cell_id=_state["cell_id"])


async def run_line(line: str) -> None:
    """A cell that is one ``%agent /command`` line."""
    from nbagent.jupyter.agent import current_agent

    await current_agent().run_command(line, cell_id=_state["cell_id"])


def run_cell_background(line: str, body: str) -> None:
    """``%%agent`` where the kernel cannot await it: the turn runs as a background task."""
    from nbagent.jupyter.agent import current_agent

    current_agent().run_cell_background(line, body, cell_id=_state["cell_id"])


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


def unregister(shell: Any) -> None:
    cleanup = shell.input_transformers_cleanup
    if transform_agent_cell in cleanup:
        cleanup.remove(transform_agent_cell)
    if _pre_run_cell in shell.events.callbacks.get("pre_run_cell", []):
        shell.events.unregister("pre_run_cell", _pre_run_cell)
