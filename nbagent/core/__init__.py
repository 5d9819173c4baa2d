"""The Jupyter-free agent core: messages, events, the loop and the session."""
