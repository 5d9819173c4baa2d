"""nbagent in Jupyter: the %%agent magic, the cell widget, the kernel tools' adapter, `nbagent execute`.

``%load_ext nbagent`` registers the magics only; the agent loads on the first turn.
"""

from __future__ import annotations

from typing import Any


def load_ipython_extension(shell: Any) -> None:
    from nbagent.jupyter import bridge, cell_history, magic

    magic.register(shell)
    cell_history.history_for(shell)  # which source each cell ran with: read marks the cells edited since
    bridge.register(shell)  # the sidebar's comm target, ready before the first cell turn


def unload_ipython_extension(shell: Any) -> None:
    from nbagent.jupyter import bridge, magic

    magic.unregister(shell)
    bridge.unregister(shell)
