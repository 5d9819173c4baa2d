"""Extensions: shell-command hooks (and, later, plugins, MCP and custom agents)."""
