"""nbagent in Jupyter: the %%agent magic, the cell widget, the kernel tools' adapter, `nbagent execute`.

``%load_ext nbagent`` registers the magics only; the agent loads on the first turn.
"""

from __future__ import annotations

from typing import Any


def load_ipython_extension(shell: Any) -> None:
    from nbagent.jupyter.magic import register

    register(shell)


def unload_ipython_extension(shell: Any) -> None:
    from nbagent.jupyter.magic import unregister

    unregister(shell)
