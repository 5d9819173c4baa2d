"""Subagents: child sessions started by the ``task`` tool (``nbagent.tools.task``).

A child is a real session (stored with its parent's id, resumable with ``task_id``, exportable) with
its own context: its agent's prompt in place of the base system prompt, the project's memory, and only
the prompt it was given. Its tools are its agent's (``task`` only when the agent lists it and the depth
allows); its permissions are its agent's rules AND its parent's, the most restrictive wins. Every event
of the child reaches the parent's front-ends as a ``SubagentEvent``; a child's permission prompt is
answered with the parent's ``reply``. Only the child's final message returns to the parent's model.

Background children run on after the tool returns; their completion reaches the parent's model as a
system reminder before its next request (``take_reminders``) and the user with ``/tasks``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from nbagent.core import spend
from nbagent.core.config import Mode
from nbagent.core.errors import ConfigError, NbagentError
from nbagent.core.events import ErrorEvent, Event, SubagentEvent, TurnFinished, UsageUpdated
from nbagent.core.messages import Usage
from nbagent.core.permission_types import ACTION_RANK, Decision, PermissionPolicy, PermissionQuery, ReplyKind
from nbagent.ext.agents import AgentDef, AgentSet, load_agents
from nbagent.tools.base import Tool, ToolContext, ToolFailure
from nbagent.tools.task import TASK_RUNNER_KEY, TaskOutcome, TaskParams, TaskTool

if TYPE_CHECKING:
    from nbagent.core.session import Session

__all__ = ["Child", "StrictestPolicy", "Subagents"]

Status = Literal["running", "done", "failed", "cancelled"]
MAX_REMINDER_CHARS = 4_000


class StrictestPolicy:
    """A child's policy: its own rules and its parent's, the most restrictive decision wins (a parent's
    deny always applies; the child's read-only mode holds even under a parent in bypass)."""

    def __init__(self, own: PermissionPolicy, parent: PermissionPolicy) -> None:
        self.own = own
        self.parent = parent

    @property
    def mode(self) -> Mode:
        return self.own.mode

    @mode.setter
    def mode(self, value: Mode) -> None:
        self.own.mode = value

    def evaluate(self, query: PermissionQuery) -> Decision:
        mine, theirs = self.own.evaluate(query), self.parent.evaluate(query)
        if ACTION_RANK[theirs.action] > ACTION_RANK[mine.action]:
            return theirs.model_copy(update={"rule": f"parent session: {theirs.rule}"})
        if mine.action == theirs.action == "ask" and theirs.person_only and not mine.person_only:
            return mine.model_copy(update={"person_only": True})
        return mine

    def remember(self, query: PermissionQuery, decision: Decision) -> None:
        self.own.remember(query, decision)
        self.parent.remember(query, decision)


@dataclass
class Child:
    session: Session
    agent: str
    description: str = ""
    status: Status = "running"
    background: bool = False
    result: str = ""
    usage: Usage = field(default_factory=Usage)
    started: float = field(default_factory=time.time)
    ended: float = 0.0
    task: asyncio.Task[TaskOutcome] | None = None


class Subagents:
    """The children of one session, and the ``task`` runner its tool calls (``TaskRunner``)."""

    def __init__(self, session: Session, depth: int = 0, agents: AgentSet | None = None) -> None:
        self.session = session
        self.depth = depth
        self._agents = agents
        self.children: dict[str, Child] = {}
        self._reminders: list[str] = []

    # -- setup ------------------------------------------------------------------------------------

    @property
    def agents(self) -> AgentSet:
        if self._agents is None:
            self._agents = load_agents(self.session.root, self.session.config)
        return self._agents

    @property
    def can_delegate(self) -> bool:
        return self.depth < self.session.config.subagents.max_depth

    def task_tool(self) -> TaskTool | None:
        """The ``task`` tool for this session (its listing fixed now), or None when it may not delegate."""
        if not self.can_delegate:
            return None
        try:
            listing = self.agents.listing()
        except ConfigError as exc:  # a broken agent file: said at the first task call, not at start
            listing = f"(subagents unavailable: {exc})"
        return TaskTool(listing) if listing else None

    def install(self, tools: list[Tool[Any]]) -> list[Tool[Any]]:
        """``tools`` plus ``task`` (when delegation is possible); registers this runner for the tool."""
        self.session.tool_state[TASK_RUNNER_KEY] = self
        primary = getattr(getattr(self.session, "setup", None), "agent", None)  # --agent NAME
        if any(t.name == "task" for t in tools) or (primary is not None and not primary.allows_tool("task")):
            return tools
        tool = self.task_tool()
        return [*tools, tool] if tool is not None else tools

    # -- the task tool ----------------------------------------------------------------------------

    async def run_task(self, args: TaskParams, ctx: ToolContext) -> TaskOutcome:
        try:
            agent = self.agents.subagent(args.subagent_type)
        except ConfigError as exc:
            raise ToolFailure(f"{exc} {exc.hint}".strip()) from None
        child = self._existing(args.task_id, agent) if args.task_id else None
        if child is None:
            child = Child(self._make_child(agent), agent.name, args.description)
            self.children[child.session.id] = child
        elif child.status == "running":
            raise ToolFailure(f"Task {child.session.id} is still running; wait for its result first.")
        child.description = args.description or child.description
        child.status, child.background, child.ended = "running", args.run_in_background, 0.0
        emit = self._forwarder(child, ctx.call_id, ctx.emit)
        if args.run_in_background:
            child.task = asyncio.create_task(
                self._drive(child, args.prompt, emit, ctx.emit), name=f"nbagent-{child.session.id}"
            )
            background = child
            child.task.add_done_callback(lambda _t: self._finished_in_background(background))
            return TaskOutcome(
                output=f"Started {agent.name} in the background.\n\ntask_id: {child.session.id}"
                " (its result arrives as a notice at a later step)",
                title=f"{agent.name}: {args.description} (background)",
                metadata=self._metadata(child),
            )
        return await self._drive(child, args.prompt, emit, ctx.emit)

    async def run_subtask(
        self,
        agent: str,
        prompt: str,
        emit: Callable[[Event], None],
        *,
        description: str = "",
        call_id: str = "",
    ) -> TaskOutcome:
        """Run ``prompt`` as a child of ``agent`` (a custom command's ``subtask``): its events go to
        ``emit`` as ``SubagentEvent``s under ``call_id``; raises ``ToolFailure`` when the child fails."""
        ctx = ToolContext(root=self.session.root, session_id=self.session.id, call_id=call_id, emit=emit)
        return await self.run_task(
            TaskParams(description=description or agent, prompt=prompt, subagent_type=agent), ctx
        )

    def _existing(self, task_id: str, agent: AgentDef) -> Child | None:
        child = self.children.get(task_id)
        if child is not None:
            return child
        store = self.session.store
        if store is None:
            raise ToolFailure(f"No task {task_id} in this session. Start a new task without task_id.")
        try:
            info = store.get_session(store.resolve_id(task_id))
        except NbagentError:
            info = None
        if info is None or info.parent_id != self.session.id:
            raise ToolFailure(f"No task {task_id} belongs to this session. Start a new task without task_id.")
        child = Child(self._make_child(agent, resume=info.id), info.agent or agent.name, status="done")
        self.children[info.id] = child
        return child

    def _make_child(self, agent: AgentDef, resume: str | None = None) -> Session:
        from nbagent.core.context.budget import estimate_chars
        from nbagent.core.session import Session, base_system_prompt
        from nbagent.permissions.policy import RulePolicy

        parent = self.session
        config = parent.config.model_copy(
            update={
                "model": agent.model or parent.model,
                "max_steps": agent.max_steps or parent.config.max_steps,
            }
        )
        own = RulePolicy(
            parent.root,
            config.model_copy(update={"agent": self.agents.permission_section()}),
            agent=agent.name,
            mode=agent.permission_mode or parent.policy.mode,
        )
        tools = [t for t in parent.tools if t.name != "task" and agent.allows_tool(t.name)]
        kwargs: dict[str, Any] = {
            "provider": getattr(parent, "_given_provider", None),
            "tools": tools,
            "policy": StrictestPolicy(own, parent.policy),
            "api_key": parent.api_key,
            "headless": parent.broker.headless,
            "parent_id": parent.id,
            "trust_project": parent.project_trust.forced,
        }
        if resume is not None and parent.store is not None:
            child = Session.resume(parent.root, config, parent.store, resume, **kwargs)
        else:
            child = Session(parent.root, config, store=parent.store, **kwargs)
        runner = Subagents(child, self.depth + 1, self.agents)
        child.subagents = runner
        if agent.tools is not None and agent.allows_tool("task"):  # grandchildren: only when asked for
            child.tools = runner.install(child.tools)
        else:
            child.tool_state[TASK_RUNNER_KEY] = runner
        if agent.prompt:
            child._system_prompt = child._system_prompt.replace(base_system_prompt(), agent.prompt.strip(), 1)
        child.tools_by_name = {t.name: t for t in child.tools}
        child._tool_schemas = [t.schema() for t in child.tools]
        child._fixed = len(child._system_prompt) + estimate_chars(child._tool_schemas)
        if parent.store is not None:
            parent.store.update_session(child.id, agent=agent.name)
        return child

    def _forwarder(
        self, child: Child, call_id: str, emit: Callable[[Event], None]
    ) -> Callable[[Event], None]:
        parent_id = self.session.id

        def forward(event: Event) -> None:
            emit(
                SubagentEvent(
                    session_id=parent_id,
                    call_id=call_id,
                    agent=child.agent,
                    child_session_id=child.session.id,
                    event=event.model_dump(mode="json"),
                )
            )

        return forward

    async def _drive(
        self, child: Child, prompt: str, emit: Callable[[Event], None], parent_emit: Callable[[Event], None]
    ) -> TaskOutcome:
        error = ""
        finished: TurnFinished | None = None
        try:
            async for event in child.session.run(prompt):
                emit(event)
                if isinstance(event, ErrorEvent):
                    error = f"{event.message} {event.hint}".strip()
                elif isinstance(event, TurnFinished):
                    finished = event
        except asyncio.CancelledError:
            child.status, child.ended = "cancelled", time.time()
            raise
        except NbagentError as exc:
            error = f"{exc} {exc.hint}".strip()
        child.ended = time.time()
        usage = finished.usage if finished is not None else Usage()
        child.usage = child.usage + usage
        self._roll_up(child, usage, parent_emit)
        reason = finished.reason if finished is not None else "error"
        task_line = f"task_id: {child.session.id}"
        if reason in ("error", "cancelled"):
            child.status = "failed" if reason == "error" else "cancelled"
            child.result = error or f"the subagent's turn ended ({reason})"
            raise ToolFailure(f"Subagent {child.agent} failed: {child.result}\n\n{task_line}")
        text = finished.text if finished is not None else ""
        child.status, child.result = "done", text
        note = " (stopped at its step limit; continue it with task_id)" if reason == "step_limit" else ""
        return TaskOutcome(
            output=f"{text or '(the subagent gave no final message)'}\n\n{task_line}{note}",
            title=f"{child.agent}: {child.description}",
            metadata={**self._metadata(child), "steps": finished.steps if finished else 0},
        )

    def _roll_up(self, child: Child, usage: Usage, emit: Callable[[Event], None]) -> None:
        """The child's tokens and cost count in the parent's totals (the daily ledger already has them
        from the child: the parent's guard treats them as counted)."""
        parent = self.session
        spend.guard_of(parent).counted_elsewhere(usage)
        parent.usage = parent.usage + usage
        emit(
            UsageUpdated(
                session_id=parent.id,
                step=0,
                model=child.session.model,
                usage=usage,
                total=parent.usage,
                context_tokens=parent.estimate_prompt_tokens(),
                context_limit=parent.context_limit,
            )
        )

    def _metadata(self, child: Child) -> dict[str, Any]:
        return {
            "task_id": child.session.id,
            "agent": child.agent,
            "description": child.description,
            "model": child.session.model,
            "status": child.status,
            "background": child.background,
            "usage": child.usage.model_dump(),
        }

    def _finished_in_background(self, child: Child) -> None:
        task = child.task
        if task is None or task.cancelled():
            child.status = "cancelled"
            return
        exc = task.exception()
        text = str(exc) if exc is not None else task.result().output
        verb = "finished" if exc is None else "failed"
        if len(text) > MAX_REMINDER_CHARS:
            text = (
                text[:MAX_REMINDER_CHARS] + f"\n[... cut; the whole result is in session {child.session.id}]"
            )
        self._reminders.append(
            f"Background task {child.session.id} ({child.agent}: {child.description}) {verb}:\n{text}"
        )
        self.session.add_notice(
            f"Background task {child.agent}: {child.description} {verb} ({child.session.id})."
        )

    # -- for the session ----------------------------------------------------------------------------

    def take_reminders(self) -> str:
        """Completions of background children not yet told to the model, as a system reminder ('' if none)."""
        items, self._reminders = self._reminders, []
        return "".join(f"<system-reminder>\n{item}\n</system-reminder>\n" for item in items).strip()

    def reply(self, request_id: str, kind: ReplyKind, feedback: str = "") -> bool:
        """Route a permission reply to the child (or grandchild) that asked; False when none did."""
        for child in self.children.values():
            if request_id in child.session.broker.pending:
                child.session.broker.reply(request_id, kind, feedback)
                return True
            if child.session.subagents.reply(request_id, kind, feedback):
                return True
        return False

    def cancel_all(self) -> None:
        """Stop every running child (foreground ones also stop with the parent's turn)."""
        for child in self.children.values():
            child.session.cancel()
            if child.task is not None and not child.task.done():
                child.task.cancel()

    async def close(self) -> None:
        self.cancel_all()
        tasks = [c.task for c in self.children.values() if c.task is not None]
        await asyncio.gather(*tasks, return_exceptions=True)
        from nbagent.tools.shell import close_shells

        for child in self.children.values():  # not child.close(): a provider the parent lent stays open
            await child.session.subagents.close()
            await close_shells(child.session.tool_state)
            if getattr(child.session, "_given_provider", None) is None:
                await child.session.close_providers()

    def describe(self) -> str:
        """``/tasks``: the children of this session, running first."""
        if not self.children:
            return "No subagent tasks in this session."
        order = {"running": 0, "failed": 1, "cancelled": 2, "done": 3}
        lines = ["Subagent tasks:"]
        for child in sorted(self.children.values(), key=lambda c: (order[c.status], -c.started)):
            took = (child.ended or time.time()) - child.started
            tokens = child.usage.input_tokens + child.usage.output_tokens
            cost = f", ${child.usage.cost:.4f}" if child.usage.cost else ""
            mode = " background" if child.background else ""
            lines.append(
                f"- `{child.session.id}` {child.agent}{mode}: {child.description or '(no description)'}"
                f" — {child.status}, {took:.0f}s, {tokens} tokens{cost}"
            )
        return "\n".join(lines)
