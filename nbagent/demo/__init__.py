"""The demo: a sample repo and a scripted model that adds a --json flag to it."""
