"""What goes into each request: memory files, the token budget, pruning and compaction."""
