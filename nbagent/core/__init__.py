"""The Jupyter-free agent core: messages, events, the loop and the session."""

from nbagent.core.log import setup_logging

setup_logging()  # the "nbagent" logger: silent unless NBAGENT_LOG asks (see nbagent.core.log)
