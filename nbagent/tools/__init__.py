"""Tools the model can call. One module per family; descriptions live beside them in ``descriptions/``."""

from __future__ import annotations

from typing import Any

from nbagent.tools.base import Tool, ToolContext, ToolFailure, ToolResult

__all__ = ["Tool", "ToolContext", "ToolFailure", "ToolResult", "default_tools"]


def default_tools() -> list[Tool[Any]]:
    """The built-in tool set, in the order the model sees it."""
    from nbagent.tools.files import EditTool, ReadTool, WriteTool
    from nbagent.tools.notebook import NotebookEditTool
    from nbagent.tools.patch import ApplyPatchTool
    from nbagent.tools.search import GlobTool, GrepTool
    from nbagent.tools.shell import BashOutputTool, BashTool, KillShellTool
    from nbagent.tools.todo import TodoWriteTool
    from nbagent.tools.web import WebFetchTool

    return [
        ReadTool(),
        WriteTool(),
        EditTool(),
        ApplyPatchTool(),
        NotebookEditTool(),
        GlobTool(),
        GrepTool(),
        BashTool(),
        BashOutputTool(),
        KillShellTool(),
        WebFetchTool(),
        TodoWriteTool(),
    ]
