"""nbagent: a coding agent that lives inside Jupyter.

Importing this package is cheap: litellm, rich and the Jupyter pieces load on first use.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
