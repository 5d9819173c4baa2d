"""``memory``: the agent saves a durable fact about this project to its auto-memory (opt-in).

Registered only when ``"memory": {"auto": true}``. The file lives in nbagent's private data folder
(``memory.auto_memory_path``), is loaded at the start of later sessions (bounded), and can be edited by
the user; every write is shown to the user as a notice.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from nbagent.core.events import Notice
from nbagent.ext.notes import append_note, auto_memory_path
from nbagent.tools.base import Tool, ToolContext, ToolFailure, ToolResult


class MemoryParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    fact: str = Field(
        description="One durable fact worth knowing in later sessions: a command that works, a convention,"
        " a pitfall. One line; no secrets, nothing that only matters to this task."
    )


class MemoryTool(Tool[MemoryParams]):
    name = "memory"
    params = MemoryParams
    read_only = False

    async def run(self, args: MemoryParams, ctx: ToolContext) -> ToolResult:
        path = auto_memory_path(ctx.root)
        try:
            note = append_note(path, args.fact)
        except ValueError as exc:
            raise ToolFailure(f"{exc} Save one short line.") from None
        except OSError as exc:
            raise ToolFailure(
                f"The auto-memory file {path} cannot be written: {exc.strerror or exc}"
            ) from None
        ctx.emit(Notice(session_id=ctx.session_id, message=f"Saved to auto-memory ({path}): {note}"))
        return ToolResult(output=f"Saved to {path}.", title="memory", metadata={"path": str(path)})
