"""A turn as blocks folded from its events: the view model every rendering of a turn shares.

:class:`Transcript` holds only what the events said (no agent state); the cell widget, the static
output bundle (HTML and text, :mod:`nbagent.jupyter.render_html`) render its blocks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from nbagent.core.events import (
    EVENT_ADAPTER,
    BudgetStatus,
    Compacted,
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
    TodoItem,
    TodoUpdated,
    ToolCallCompleted,
    ToolCallError,
    ToolCallOutput,
    ToolCallPending,
    ToolCallRunning,
    TurnFinished,
    TurnStarted,
    UsageUpdated,
)
from nbagent.core.messages import Attachment, Usage

LIVE_TAIL_CHARS = 4_000  # live output of a running tool, kept as a tail


@dataclass(eq=False)
class Block:
    key: str
    version: int = 0

    def touch(self) -> None:
        self.version += 1


@dataclass(eq=False)
class TextBlock(Block):
    message_id: str = ""
    text: str = ""
    reasoning: bool = False


@dataclass(eq=False)
class ToolBlock(Block):
    call_id: str = ""
    tool: str = ""
    status: str = "pending"
    input: dict[str, Any] = field(default_factory=dict)
    title: str = ""
    live: str = ""
    output: str = ""
    error: str = ""
    diffs: list[DiffProduced] = field(default_factory=list)
    attachments: list[Attachment] = field(default_factory=list)
    shown_in_permission: bool = False  # its code is shown in full by the permission prompt below it
    child: ChildRun | None = None  # a ``task`` call's child agent, its transcript nested in the card


@dataclass(eq=False)
class ChildRun:
    """A child agent's run under a ``task`` call: its name, its session and its own transcript."""

    agent: str
    session_id: str
    transcript: Transcript

    @property
    def running(self) -> bool:
        return self.transcript.footer.running

    def pending(self) -> list[PermissionBlock]:
        """The child's (and its children's) permission prompts still waiting for an answer."""
        return self.transcript.pending()


@dataclass(eq=False)
class PermissionBlock(Block):
    asked: PermissionAsked | None = None
    replied: PermissionReplied | None = None


@dataclass(eq=False)
class TodoBlock(Block):
    todos: list[TodoItem] = field(default_factory=list)


@dataclass(eq=False)
class NoticeBlock(Block):
    level: str = "info"  # info, warning, error, stop (a budget reached)
    message: str = ""
    hint: str = ""
    detail: str = ""  # preformatted text, folded


@dataclass
class Footer:
    model: str = ""
    total: Usage = field(default_factory=Usage)  # the session's, as of the last step
    turn: Usage | None = None  # this turn's steps (None until the first step's usage)
    budget: str = ""  # the budget that stopped the turn
    context_tokens: int = 0
    context_limit: int = 0
    steps: int = 0
    reason: str = ""
    running: bool = True


class Transcript:
    """The blocks of one turn, folded from its events."""

    def __init__(self, model: str = "") -> None:
        self.blocks: list[Block] = []
        self.footer = Footer(model=model)
        self.tools: dict[str, ToolBlock] = {}
        self.permissions: dict[str, PermissionBlock] = {}
        self.todo: TodoBlock | None = None
        self.turn_id = ""
        self.compaction: str | None = None
        self._counter = 0
        self.removed: list[Block] = []

    def _add(self, block: Block) -> Block:
        self.blocks.append(block)
        return block

    def _key(self, prefix: str) -> str:
        self._counter += 1
        return f"{prefix}{self._counter}"

    def apply(self, event: Event) -> list[Block]:
        """Fold one event in; returns the blocks it changed (new ones included)."""
        changed = self._apply(event)
        for block in changed:
            block.touch()
        return changed

    def _apply(self, event: Event) -> list[Block]:
        if isinstance(event, SubagentEvent):
            return self._child_event(event)
        if isinstance(event, TextDelta | ReasoningDelta):
            reasoning = isinstance(event, ReasoningDelta)
            last = self.blocks[-1] if self.blocks else None
            if (
                isinstance(last, TextBlock)
                and last.message_id == event.message_id
                and last.reasoning == reasoning
            ):
                last.text += event.text
                return [last]
            block = TextBlock(
                self._key("r" if reasoning else "t"),
                message_id=event.message_id,
                text=event.text,
                reasoning=reasoning,
            )
            return [self._add(block)]
        if isinstance(event, ToolCallPending | ToolCallRunning):
            tool = self.tools.get(event.call_id)
            if tool is None:
                tool = ToolBlock(self._key("c"), call_id=event.call_id, tool=event.tool)
                self.tools[event.call_id] = tool
                self._add(tool)
            if isinstance(event, ToolCallRunning):
                tool.status, tool.input, tool.title = "running", event.input, event.title
            return [tool]
        if isinstance(event, ToolCallOutput):
            tool = self.tools.get(event.call_id)
            if tool is None:
                return []
            tool.live = (tool.live + event.chunk)[-LIVE_TAIL_CHARS:]
            return [tool]
        if isinstance(event, ToolCallCompleted | ToolCallError):
            tool = self.tools.get(event.call_id)
            if tool is None:
                tool = ToolBlock(self._key("c"), call_id=event.call_id, tool=event.tool)
                self.tools[event.call_id] = tool
                self._add(tool)
            tool.input = event.input or tool.input
            tool.live = ""
            if tool.child is not None:  # the child's transcript folds once its task ends
                tool.child.transcript.footer.running = False
            if isinstance(event, ToolCallCompleted):
                tool.status, tool.output, tool.title = "completed", event.output, event.title
                tool.attachments = list(event.attachments)
            else:
                tool.status, tool.error = "error", event.error
            return [tool]
        if isinstance(event, DiffProduced):
            tool = self.tools.get(event.call_id)
            if tool is None:
                return []
            tool.diffs.append(event)
            return [tool]
        if isinstance(event, PermissionAsked):
            prompt = PermissionBlock(self._key("p"), asked=event)
            self.permissions[event.request_id] = prompt
            owner = self.tools.get(event.call_id or "")
            if owner is not None and owner in self.blocks:  # right below the call it is about
                at = self.blocks.index(owner) + 1
                while at < len(self.blocks) and isinstance(self.blocks[at], PermissionBlock):
                    at += 1
                self.blocks.insert(at, prompt)
                if isinstance(event.details.get("code"), str) and not owner.shown_in_permission:
                    owner.shown_in_permission = True  # the code is shown once, in the prompt
                    return [prompt, owner]
                return [prompt]
            return [self._add(prompt)]
        if isinstance(event, PermissionReplied):
            perm = self.permissions.get(event.request_id)
            if perm is None:  # a child's request, answered by the parent
                return [t for t in self.tools.values() if t.child and t.child.transcript.apply(event)]
            perm.replied = event
            return [perm]
        if isinstance(event, TodoUpdated):
            if self.todo is None:
                self.todo = TodoBlock(self._key("todo"))
                self._add(self.todo)
            self.todo.todos = list(event.todos)
            return [self.todo]
        if isinstance(event, Notice):
            return [self._add(NoticeBlock(self._key("n"), level=event.level, message=event.message))]
        if isinstance(event, ModelSwitched):
            self.footer.model = event.to_model
            level = "warning" if event.reason == "failover" else "info"
            return [self._add(NoticeBlock(self._key("n"), level=level, message=event.message))]
        if isinstance(event, BudgetStatus):
            if event.level == "stop":
                self.footer.budget = event.budget
            level = "stop" if event.level == "stop" else "warning"
            return [self._add(NoticeBlock(self._key("b"), level=level, message=event.message))]
        if isinstance(event, ErrorEvent):
            return [
                self._add(NoticeBlock(self._key("e"), level="error", message=event.message, hint=event.hint))
            ]
        if isinstance(event, Retrying):
            gone = [
                b
                for b in self.blocks
                if (isinstance(b, TextBlock) and b.message_id == event.discard_message_id)
                or (isinstance(b, ToolBlock) and b.status == "pending")
            ]
            for b in gone:
                self.blocks.remove(b)
                if isinstance(b, ToolBlock):
                    self.tools.pop(b.call_id, None)
            self.removed.extend(gone)
            note = NoticeBlock(
                self._key("n"),
                level="warning",
                message=f"Retry {event.attempt}/{event.max_attempts - 1} in {event.wait:.1f}s: {event.reason[:300]}",
            )
            return [self._add(note)]
        if isinstance(event, Compacted):
            self.compaction = event.summary
            note = NoticeBlock(
                self._key("n"),
                message=f"Context compacted ({event.tokens_before:,} → {event.tokens_after:,} tokens).",
                detail=event.summary,
            )
            return [self._add(note)]
        if isinstance(event, TurnStarted):
            self.turn_id = event.turn_id
            self.footer.model = event.model
            return []
        if isinstance(event, UsageUpdated):
            self.footer.turn = (self.footer.turn or Usage()) + event.usage
            self.footer.total = event.total
            self.footer.context_tokens = event.context_tokens
            self.footer.context_limit = event.context_limit
            if event.step:  # step 0: a child's usage rolled up (its model, not this turn's step)
                self.footer.model = event.model
                self.footer.steps = event.step
            return []
        if isinstance(event, TurnFinished):
            if self.footer.turn is not None or event.steps:
                self.footer.turn = event.usage
            self.footer.steps = event.steps
            self.footer.reason = event.reason
            self.footer.running = False
            return []
        return []

    def _child_event(self, event: SubagentEvent) -> list[Block]:
        """A child's event, folded into the transcript nested in its ``task`` card."""
        try:
            inner = EVENT_ADAPTER.validate_python(event.event)
        except ValidationError:
            return []
        tool = self.tools.get(event.call_id)
        if tool is None:
            tool = ToolBlock(self._key("c"), call_id=event.call_id, tool="task")
            self.tools[event.call_id] = tool
            self._add(tool)
        if tool.child is None or tool.child.session_id != event.child_session_id:
            tool.child = ChildRun(event.agent, event.child_session_id, Transcript(model=self.footer.model))
        tool.child.transcript.apply(inner)
        return [tool]

    def pending(self) -> list[PermissionBlock]:
        """Permission prompts not answered yet, the nested children's included."""
        out: list[PermissionBlock] = []
        for block in self.blocks:
            if isinstance(block, PermissionBlock) and block.replied is None:
                out.append(block)
            elif isinstance(block, ToolBlock) and block.child is not None:
                out.extend(block.child.pending())
        return out

    def add_notice(self, message: str, level: str = "info", detail: str = "") -> NoticeBlock:
        block = NoticeBlock(self._key("n"), level=level, message=message, detail=detail)
        block.touch()
        self.blocks.append(block)
        return block
