"""What ran in this kernel, per notebook cell: so ``read`` can say which cells were edited since they ran.

Registered at ``%load_ext nbagent`` (IPython's ``pre_run_cell`` event carries the cell id JupyterLab,
Notebook 7, VS Code and ``nbagent execute`` send); ``notebook_run`` adds the cells it runs. Imports
nothing: loading the extension stays light.
"""

from __future__ import annotations

from typing import Any


class CellHistory:
    """What ran in this kernel, per cell id: ``(execution count, raw source)``."""

    def __init__(self, shell: Any) -> None:
        self.shell = shell
        self.ran: dict[str, tuple[int, str]] = {}

    def pre_run_cell(self, info: Any) -> None:
        cell_id = getattr(info, "cell_id", None)
        history = getattr(self.shell, "history_manager", None)
        if cell_id and history is not None and getattr(info, "store_history", False):
            # the cell's source goes into the history next, at the index that is its execution count
            count = len(history.input_hist_raw)
            self.ran[str(cell_id)] = (count, str(getattr(info, "raw_cell", "")))

    def ran_source(self, count: int, cell_id: str) -> str | None:
        known = self.ran.get(cell_id)
        if known is not None and known[0] == count:
            return known[1]
        if known is not None or any(n == count for n, _ in self.ran.values()):
            return None  # this kernel ran it as another count, or gave this count to another cell
        raw = getattr(getattr(self.shell, "history_manager", None), "input_hist_raw", None) or []
        if 0 < count < len(raw):
            return str(raw[count])
        return None


_histories: dict[int, CellHistory] = {}


def history_for(shell: Any) -> CellHistory:
    """The history of this shell (its ``pre_run_cell`` listener registered once)."""
    history = _histories.get(id(shell))
    if history is None:
        history = _histories[id(shell)] = CellHistory(shell)
        events = getattr(shell, "events", None)
        if events is not None:
            events.register("pre_run_cell", history.pre_run_cell)
    return history
