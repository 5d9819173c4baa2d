"""Render an event stream in the terminal with rich: streaming text, tool calls, diffs, todos, usage."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape
from rich.text import Text

from nbagent.core.events import (
    EVENT_ADAPTER,
    BudgetStatus,
    DiffProduced,
    ErrorEvent,
    Event,
    ModelSwitched,
    Notice,
    PermissionAsked,
    PermissionReplied,
    ReasoningDelta,
    Retrying,
    SubagentEvent,
    TextDelta,
    TodoUpdated,
    ToolCallCompleted,
    ToolCallError,
    ToolCallOutput,
    ToolCallRunning,
    TurnFinished,
    TurnStarted,
    UsageUpdated,
)
from nbagent.core.messages import Usage

if TYPE_CHECKING:
    from nbagent.core.permission import ReplyKind

TODO_MARKS = {"pending": "☐", "in_progress": "◐", "completed": "☑", "cancelled": "☒"}
MAX_DIFF_LINES = 80
CHILD_TEXT_LINES = 12  # lines of a child agent's text shown per message (its tool calls all show)


def unwrap(event: Event) -> tuple[Event, list[str]]:
    """A child's event out of its ``SubagentEvent`` wrappers, with the agents it came through
    (``[]`` for the turn's own events; ``["general", "explore"]`` for a grandchild's)."""
    agents: list[str] = []
    while isinstance(event, SubagentEvent):
        agents.append(event.agent)
        try:
            event = EVENT_ADAPTER.validate_python(event.event)
        except ValidationError:
            return Notice(message=f"unreadable event from agent {agents[-1]}"), agents
    return event, agents


def permission_request(event: Event) -> tuple[PermissionAsked, str] | None:
    """(the request, the name of the child agent asking or "") when ``event`` asks the user; a
    child's request is answered with the parent session's ``reply`` and the request's own id."""
    inner, agents = unwrap(event)
    return (inner, " › ".join(agents)) if isinstance(inner, PermissionAsked) else None


def summarize_input(tool: str, data: dict[str, Any]) -> str:
    """One line that says what a tool call does."""
    for key in ("command", "file_path", "pattern", "url", "notebook_path", "name", "code", "description"):
        value = data.get(key)
        if isinstance(value, str) and value:
            line = value.strip().splitlines()[0] if value.strip() else value
            return line[:117] + "..." if len(line) > 120 else line
    if tool == "apply_patch":
        files = [
            ln.split(":", 1)[1].strip()
            for ln in str(data.get("patch", "")).splitlines()
            if ln.startswith("*** ") and ":" in ln
        ]
        return ", ".join(files)[:120]
    if tool == "todowrite":
        return f"{len(data.get('todos') or [])} items"
    text = json.dumps(data)
    return text[:117] + "..." if len(text) > 120 else text


def format_usage(usage: Usage) -> str:
    parts = [f"{usage.input_tokens:,} in", f"{usage.output_tokens:,} out"]
    if usage.cache_read_tokens:
        parts.append(f"{usage.cache_read_tokens:,} cached")
    cost = f"${usage.cost:.4f}" if usage.cost is not None else "cost unknown"
    return " · ".join(parts) + f" · {cost}"


def step_line(step: int, usage: Usage, turn: Usage) -> str:
    """After each model step: what the turn has cost so far (the step's tokens beside it)."""
    so_far = (
        f"${turn.cost:.4f}" if turn.cost is not None else f"{turn.input_tokens + turn.output_tokens:,} tokens"
    )
    step_cost = f" · ${usage.cost:.4f}" if usage.cost is not None else " · cost unknown"
    return (
        f"{so_far} so far (step {step}: {usage.input_tokens:,} in · {usage.output_tokens:,} out{step_cost})"
    )


class Renderer:
    def __init__(self, model: str, console: Console | None = None) -> None:
        self.console = console or Console(highlight=False, soft_wrap=True, emoji=False)
        self.model = model
        self._in_text = False
        self._in_reasoning = False
        self._total = Usage()
        self._turn = Usage()
        self._budget_stop = ""
        self._child_text: dict[tuple[str, str], str] = {}  # a child's text, printed when its message ends

    def _end_stream(self) -> None:
        if self._in_text or self._in_reasoning:
            self.console.print()
        self._in_text = self._in_reasoning = False

    def render(self, event: Event) -> None:
        c = self.console
        if isinstance(event, SubagentEvent):
            self._end_stream()
            self._child(event)
            return
        if isinstance(event, TextDelta):
            if not self._in_text:
                self._end_stream()
                self._in_text = True
            c.print(event.text, end="", markup=False)
            return
        if isinstance(event, ReasoningDelta):
            if not self._in_reasoning:
                self._end_stream()
                self._in_reasoning = True
            c.print(Text(event.text, style="dim italic"), end="")
            return
        if isinstance(event, ToolCallOutput):
            return  # live output is shown bounded in the result; keeps the terminal readable
        self._end_stream()
        if isinstance(event, ToolCallRunning):
            c.print(
                f"[bold cyan]●[/] [bold]{escape(event.tool)}[/] {escape(summarize_input(event.tool, event.input))}"
            )
        elif isinstance(event, ToolCallCompleted):
            first = event.title or (event.output.strip().splitlines() or [""])[0]
            lines = event.output.count("\n") + 1 if event.output else 0
            c.print(f"  [green]✓[/] [dim]{escape(first[:100])} ({lines} lines)[/]")
        elif isinstance(event, ToolCallError):
            c.print(f"  [red]✗ {escape(event.error.splitlines()[0][:200] if event.error else 'error')}[/]")
        elif isinstance(event, DiffProduced):
            self._diff(event)
        elif isinstance(event, TodoUpdated):
            c.print("[bold]Plan[/]")
            for item in event.todos:
                style = (
                    "dim strike"
                    if item.status in ("completed", "cancelled")
                    else ("bold" if item.status == "in_progress" else "")
                )
                c.print(f"  {TODO_MARKS[item.status]} ", Text(item.content, style=style))
        elif isinstance(event, PermissionAsked):
            c.print(
                f"[yellow]? permission[/] [bold]{escape(event.title)}[/] [dim]({escape(event.reason)})[/]"
            )
        elif isinstance(event, PermissionReplied):
            if event.by != "user":
                c.print(f"  [dim]→ {escape(event.reply)} ({escape(event.by)})[/]")
        elif isinstance(event, Retrying):
            c.print(
                f"[yellow]↻ retry {event.attempt}/{event.max_attempts - 1} in {event.wait:.1f}s:[/] [dim]{escape(event.reason[:200])}[/]"
            )
        elif isinstance(event, Notice):
            c.print(f"[{'yellow' if event.level == 'warning' else 'blue'}]{escape(event.message)}[/]")
        elif isinstance(event, ErrorEvent):
            c.print(f"[bold red]Error:[/] {escape(event.message)}")
            if event.hint:
                c.print(f"  [yellow]hint:[/] {escape(event.hint)}")
        elif isinstance(event, ModelSwitched):
            self.model = event.to_model
            color = "yellow" if event.reason == "failover" else "blue"
            c.print(f"[{color}]⇄ {escape(event.message)}[/]")
        elif isinstance(event, BudgetStatus):
            if event.level == "stop":
                self._budget_stop = event.budget.replace("_", " ")
                c.print(f"[bold red]■ {escape(event.message)}[/]")
            else:
                c.print(f"[yellow]! {escape(event.message)}[/]")
        elif isinstance(event, UsageUpdated) and not event.step:  # a child's usage, rolled up
            self._total = event.total
            self._turn = self._turn + event.usage
            c.print(f"  [dim]+ subagent {escape(event.model)}: {format_usage(event.usage)}[/]")
        elif isinstance(event, UsageUpdated):
            self._total = event.total
            self._turn = self._turn + event.usage
            c.print(f"  [dim]{escape(step_line(event.step, event.usage, self._turn))}[/]")
        elif isinstance(event, TurnFinished):
            reason = f"stopped: {self._budget_stop} budget" if self._budget_stop else event.reason
            session = (
                f" · session ${self._total.cost:.4f}"
                if self._total.cost is not None
                and f"{self._total.cost:.4f}" != f"{event.usage.cost or 0:.4f}"
                else ""
            )
            c.print(
                f"[dim]── {escape(self.model)} · {event.steps} steps · {format_usage(event.usage)}{session}"
                f" · {escape(reason)}[/]"
            )
            self._turn, self._budget_stop = Usage(), ""

    def _child(self, wrapped: SubagentEvent) -> None:
        """A child agent's event, one line indented under its ``task`` call (``│`` per level)."""
        event, agents = unwrap(wrapped)
        pad = "  " + "│ " * len(agents)
        name = escape(" › ".join(agents))
        key = (wrapped.child_session_id, getattr(event, "message_id", ""))
        if isinstance(event, TextDelta):
            self._child_text[key] = self._child_text.get(key, "") + event.text
            return
        if isinstance(event, ReasoningDelta | ToolCallOutput):
            return
        for (session, _m), text in list(self._child_text.items()):  # the child's text so far, then this
            if session == wrapped.child_session_id:
                del self._child_text[(session, _m)]
                lines = text.strip().splitlines()
                for line in lines[:CHILD_TEXT_LINES]:
                    self.console.print(f"{pad}[dim]{escape(line)}[/]")
                if len(lines) > CHILD_TEXT_LINES:
                    self.console.print(f"{pad}[dim]… {len(lines) - CHILD_TEXT_LINES} more lines[/]")
        c = self.console
        if isinstance(event, TurnStarted):
            c.print(f"{pad[:-2]}[magenta]↳ agent {name}[/] [dim]started[/]")
        elif isinstance(event, ToolCallRunning):
            c.print(
                f"{pad}[cyan]●[/] {escape(event.tool)} {escape(summarize_input(event.tool, event.input))}"
            )
        elif isinstance(event, ToolCallCompleted):
            first = event.title or (event.output.strip().splitlines() or [""])[0]
            c.print(f"{pad}  [green]✓[/] [dim]{escape(first[:100])}[/]")
        elif isinstance(event, ToolCallError):
            c.print(f"{pad}  [red]✗ {escape((event.error.splitlines() or ['error'])[0][:200])}[/]")
        elif isinstance(event, DiffProduced):
            c.print(
                f"{pad}  [bold]{escape(event.path)}[/] [green]+{event.additions}[/] [red]-{event.deletions}[/]"
            )
        elif isinstance(event, PermissionAsked):
            c.print(
                f"{pad}[yellow]? permission ({name})[/] [bold]{escape(event.title)}[/] [dim]({escape(event.reason)})[/]"
            )
        elif isinstance(event, PermissionReplied):
            c.print(
                f"{pad}[dim]→ {escape(event.reply)}{f' ({escape(event.by)})' if event.by != 'user' else ''}[/]"
            )
        elif isinstance(event, Notice | ErrorEvent | Retrying | BudgetStatus | ModelSwitched):
            message = getattr(event, "message", "") or getattr(event, "reason", "")
            color = "red" if isinstance(event, ErrorEvent) else "yellow"
            c.print(f"{pad}[{color}]{escape(str(message)[:300])}[/]")
        elif isinstance(event, TurnFinished):
            c.print(
                f"{pad[:-2]}[magenta]└ agent {name}[/] [dim]{escape(event.reason)} · {event.steps} steps · "
                f"{format_usage(event.usage)}[/]"
            )

    def _diff(self, event: DiffProduced) -> None:
        from rich.syntax import Syntax  # pygments: only once a diff shows

        lines = event.diff.splitlines()
        shown = "\n".join(lines[:MAX_DIFF_LINES])
        self.console.print(
            f"  [bold]{escape(event.path)}[/] [green]+{event.additions}[/] [red]-{event.deletions}[/]"
        )
        self.console.print(Syntax(shown, "diff", theme="ansi_dark", background_color="default"))
        if len(lines) > MAX_DIFF_LINES:
            self.console.print(f"  [dim]… {len(lines) - MAX_DIFF_LINES} more diff lines[/]")

    def show_permission_prompt(self, event: PermissionAsked, agent: str = "") -> None:
        """The question under a ``PermissionAsked`` event (``agent``: the child agent asking, named in
        it); the answer is read by the caller."""
        rules = f" ({', '.join(event.always)})" if event.always else ""
        who = f"agent {agent} asks: " if agent else ""
        question = f"  {who}Allow? [y]es once / [a]lways{rules} / [n]o (or type feedback): "
        self.console.print(escape(question), end="")

    @staticmethod
    def parse_permission_answer(answer: str) -> tuple[ReplyKind, str] | None:
        """(reply, feedback) for a typed answer: empty or y = once, a = always, n = no, other text = no
        with that text as feedback for the model."""
        text = answer.strip()
        low = text.lower()
        if low in ("y", "yes", ""):
            return "once", ""
        if low in ("a", "always"):
            return "always", ""
        if low in ("n", "no"):
            return "reject", ""
        return "reject", text
