"""``todowrite``: the model's plan for the session, shown to the user as it changes."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from nbagent.core.events import TodoItem, TodoUpdated
from nbagent.tools.base import Tool, ToolContext, ToolResult

STATE_KEY = "todos"
MARKS = {"pending": "[ ]", "in_progress": "[>]", "completed": "[x]", "cancelled": "[-]"}
MAX_TODOS = 100
MAX_CONTENT_CHARS = 500


class TodoWriteParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    todos: list[TodoItem] = Field(description="The whole updated list.", max_length=MAX_TODOS)


def render_todos(todos: list[TodoItem]) -> str:
    lines = []
    for item in todos:
        priority = f" ({item.priority})" if item.priority != "medium" else ""
        lines.append(f"{MARKS[item.status]} {item.id}. {item.content}{priority}")
    return "\n".join(lines)


class TodoWriteTool(Tool[TodoWriteParams]):
    name = "todowrite"
    params = TodoWriteParams
    read_only = False  # it changes session state, but needs no permission

    async def run(self, args: TodoWriteParams, ctx: ToolContext) -> ToolResult:
        todos: list[TodoItem] = []
        used = {item.id for item in args.todos if item.id}
        counter = 0
        for item in args.todos:
            todo_id = item.id
            if not todo_id:
                counter += 1
                while str(counter) in used:
                    counter += 1
                todo_id = str(counter)
                used.add(todo_id)
            content = " ".join(item.content.split())[:MAX_CONTENT_CHARS]
            todos.append(item.model_copy(update={"id": todo_id, "content": content}))
        ctx.state[STATE_KEY] = todos
        ctx.emit(TodoUpdated(session_id=ctx.session_id, todos=[t.model_copy() for t in todos]))

        if not todos:
            return ToolResult(output="Todo list cleared.", title="0 todos", metadata={"todos": 0})
        done = sum(t.status == "completed" for t in todos)
        active = [t for t in todos if t.status == "in_progress"]
        out = render_todos(todos) + f"\n{done}/{len(todos)} completed."
        if len(active) > 1:
            ids = ", ".join(t.id for t in active)
            out += f"\nWarning: {len(active)} items are in_progress ({ids}); keep exactly one in_progress."
        return ToolResult(
            output=out,
            title=f"{done}/{len(todos)} todos done",
            metadata={"todos": len(todos), "completed": done},
        )
