"""nbagent's logging: one ``nbagent`` logger hierarchy, silent unless asked.

Every module logs to ``logging.getLogger(__name__)`` (so under ``nbagent.``). By default the
``nbagent`` logger has only a ``NullHandler``: nothing reaches the terminal or the notebook (what a
user must see is an event: a ``Notice``). An application that configures logging gets the records
as usual (they propagate to the root logger).

``NBAGENT_LOG=debug`` (or ``info``, ``warning``, ``error``) adds a handler writing to stderr at that
level, e.g. ``NBAGENT_LOG=debug nbagent run ...`` or ``%env NBAGENT_LOG=debug`` before ``%load_ext``.
"""

from __future__ import annotations

import logging
import os
import sys

ROOT = "nbagent"
ENV = "NBAGENT_LOG"
LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}
FORMAT = "nbagent %(levelname)s %(name)s: %(message)s"


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """The handler ``NBAGENT_LOG`` adds (told apart from an application's own)."""


def setup_logging(environ: dict[str, str] | None = None) -> logging.Logger:
    """Give the ``nbagent`` logger its NullHandler, and a stderr handler when ``NBAGENT_LOG`` names a
    level. Idempotent: calling it again applies a changed ``NBAGENT_LOG``."""
    env = os.environ if environ is None else environ
    logger = logging.getLogger(ROOT)
    if not any(isinstance(h, logging.NullHandler) for h in logger.handlers):
        logger.addHandler(logging.NullHandler())
    for handler in [h for h in logger.handlers if isinstance(h, _StderrHandler)]:
        logger.removeHandler(handler)
    wanted = env.get(ENV, "").strip().lower()
    level = LEVELS.get(wanted)
    if level is not None:
        handler = _StderrHandler(sys.stderr)
        handler.setFormatter(logging.Formatter(FORMAT))
        handler.setLevel(level)
        logger.addHandler(handler)
        logger.setLevel(level)
    elif wanted:
        print(f"nbagent: {ENV}={wanted!r} is not a level; use one of {', '.join(LEVELS)}.", file=sys.stderr)
    return logger
