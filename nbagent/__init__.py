"""nbagent: a coding agent that lives inside Jupyter.

Importing this package is cheap: litellm, rich and the Jupyter pieces load on first use.
"""

from __future__ import annotations

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing alone costs ~10 ms
if TYPE_CHECKING:
    from typing import Any

__version__ = "0.1.0"

__all__ = ["__version__", "load_ipython_extension", "unload_ipython_extension"]


def load_ipython_extension(shell: Any) -> None:
    """``%load_ext nbagent``: registers ``%%agent`` and ``%agent`` (nothing heavy is imported)."""
    from nbagent.jupyter import load_ipython_extension as load

    load(shell)


def unload_ipython_extension(shell: Any) -> None:
    from nbagent.jupyter import unload_ipython_extension as unload

    unload(shell)
