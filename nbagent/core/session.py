"""A session: the history, the model, the tools and the permission broker; runs turns as event streams.

session = Session(root, config)
async for event in session.run("fix the failing test"):
    ...
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import platform
import time
from collections.abc import AsyncIterator, Iterator
from datetime import date
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, get_args

from nbagent.core.config import Config, Mode
from nbagent.core.context import memory
from nbagent.core.context.budget import Estimator, Limits, estimate_chars, model_limits
from nbagent.core.errors import ConfigError, NbagentError
from nbagent.core.events import Event, Notice, TurnFinished
from nbagent.core.loop import TurnRunner, close_dangling
from nbagent.core.mcp_session import attach_mcp, mcp_turn  # issue 14 (M1)
from nbagent.core.messages import Message, Usage, new_id
from nbagent.core.permission import HeadlessPolicy, PermissionBroker, PermissionPolicy, ReplyKind
from nbagent.core.plugin_wiring import (  # issue 14 (M3)
    attach_cc_hooks,
    extension_tools,
    session_plugins,
    trust_sources,
)
from nbagent.core.private import cache_dir
from nbagent.core.scrub import Scrubber
from nbagent.core.session_context import SessionContext
from nbagent.core.session_models import SessionModels, make_provider, uses_native
from nbagent.core.session_undo import SessionUndo
from nbagent.ext.hooks import HookOutcome, HookRunner
from nbagent.ext.trust import ProjectTrust
from nbagent.permissions.sandbox import SandboxUnavailable, sandbox_config, wrap_command
from nbagent.permissions.sandbox_guard import STATE_KEY as GUARD_KEY
from nbagent.permissions.sandbox_guard import ProtectedGuard, guard_of
from nbagent.providers.base import Provider
from nbagent.tools.base import (
    FileTracker,
    PermissionQuery,
    Tool,
    ToolContext,
    ToolFailure,
)
from nbagent.tools.shell_env import ShellOptions
from nbagent.tools.spill import private_dir

if TYPE_CHECKING:
    from nbagent.store import SessionStore, UndoLog

__all__ = ["Session", "base_system_prompt", "make_provider", "uses_native"]  # the last two: session_models

PROMPTS = Path(__file__).parent / "prompts"


@cache
def base_system_prompt() -> str:
    return (PROMPTS / "system.md").read_text(encoding="utf-8").strip()


def _git_repo(root: Path) -> bool:
    from nbagent.store.safe_git import run_git  # never a program the repository controls

    out = run_git(root, "rev-parse", "--is-inside-work-tree", timeout=5)
    return out is not None and out.stdout.strip() == b"true"


class Session(SessionModels, SessionContext, SessionUndo):
    def __init__(
        self,
        root: Path,
        config: Config,
        *,
        provider: Provider | None = None,
        tools: list[Tool[Any]] | None = None,
        policy: PermissionPolicy | None = None,
        api_key: str | None = None,
        headless: HeadlessPolicy | None = None,
        session_id: str | None = None,
        messages: list[Message] | None = None,
        store: SessionStore | None = None,
        trust_project: bool = False,
        parent_id: str | None = None,
        agent: str | None = None,
    ) -> None:
        from nbagent.core.agent_setup import AgentSetup, make_policy, prepare

        if tools is None:
            from nbagent.tools import default_tools

            tools = default_tools()
        # The primary agent (--agent), skills and auto-memory, fixed for the session; a child's tools and
        # prompt come from its parent (core/subagents.py).
        self.setup = (
            prepare(root.resolve(), config, tools, agent)
            if parent_id is None
            else AgentSetup(config, tools, child=True)
        )
        config, tools = self.setup.config, self.setup.tools
        if not config.model:
            raise ConfigError(
                "No model configured.",
                'Pass --model provider/name (e.g. anthropic/claude-sonnet-4-5 or openai/gpt-4.1), set "model" in'
                " nbagent.json, or try `nbagent demo` with the built-in scripted model.",
            )
        self.root = root.resolve()
        self.config = config
        self.id = session_id or new_id("ses")
        self.model: str = config.model
        self.api_key = api_key  # never persisted
        # Knows the secrets of the environment, the config, the project's .env files and api_key: tool
        # outputs pass through it before they enter the history, records and exports after.
        self._scrubber = Scrubber.for_project(self.root, config, api_key)
        self.messages: list[Message] = list(messages or [])
        self.usage = Usage()
        self._init_models(provider)  # may start on a fallback model while the configured one rests
        if tools is None:
            from nbagent.tools import default_tools

            tools = default_tools()
        self.tools: list[Tool[Any]] = tools
        self.tools_by_name = {t.name: t for t in tools}
        self._tool_schemas = [t.schema() for t in tools]
        self.files = FileTracker()
        self.tool_state: dict[str, Any] = {"skills": self.setup.skills}  # the skill tool's (SKILLS_KEY)
        from nbagent.core.subagents import Subagents  # children: the task tool's runner

        self.subagents = Subagents(self, agents=self.setup.agents if parent_id is None else None)
        if parent_id is None:  # a child's tools are chosen by its parent (core/subagents.py)
            self.tools = self.subagents.install(self.tools)
            self.tools_by_name = {t.name: t for t in self.tools}
            self._tool_schemas = [t.schema() for t in self.tools]
        # Validated now, so a broken config fails before any work starts.
        self.policy: PermissionPolicy = policy or make_policy(self.setup, self.root)
        self.hooks = HookRunner(config, self.root, self.id)
        # Project hooks run once the folder is trusted (asked when the first would run); trust_project:
        # trusted for this session (--trust-project), never saved.
        cc_notes = attach_cc_hooks(self.hooks, self.setup.cc_plugins, self.root)  # issue 14 (M3)
        self.project_trust = ProjectTrust(  # issue 14 (M3): trust covers .nbagent/tools/*.py too
            self.root,
            trust_sources(self.root, self.hooks.project_sources, self.setup.cc_plugins),
            forced=trust_project,
        )
        # issue 14 (M3): installed plugins, custom tools (core/plugin_wiring.py)
        self.plugins = session_plugins(config, self.setup, self.root)
        if parent_id is None:
            extra, notices = extension_tools(
                self.root, config, self.setup, self.project_trust, self.plugins, set(self.tools_by_name)
            )
            self.tools = [*self.tools, *extra]
            self.tools_by_name = {t.name: t for t in self.tools}
            self._tool_schemas = [t.schema() for t in self.tools]
            self.setup.warnings += [*cc_notes, *notices, *self.plugins.take_notices()]
        self.sandbox = sandbox_config(self.root, config)
        self._sandbox_warned = False
        self.hooks_started = False
        self.started = time.time()
        self.memory_files = memory.discover(self.root)
        if self.setup.auto_memory is not None:
            self.memory_files.append(self.setup.auto_memory)
        self.nested_memory = memory.NestedMemory(self.root)
        self._system_prompt = self._build_system_prompt()
        self._fixed = len(self._system_prompt) + estimate_chars(self._tool_schemas)
        self._emit_target: list[asyncio.Queue[Event]] = []
        self.broker = PermissionBroker(self.policy, self._emit, session_id=self.id, headless=headless)
        self._task: asyncio.Task[None] | None = None
        # Context management: the live window is [summary] + messages[compacted_until:].
        self.summary: str | None = None
        self.compacted_until = 0
        self.limits: Limits = model_limits(self.model, config)
        self.estimator = Estimator()
        self._wire: dict[str, tuple[int, list[dict[str, Any]], int]] = {}  # id -> (version, wire, chars)
        # The wire form of the settled live history (all but the last messages), extended as it grows.
        self._prefix: list[dict[str, Any]] = []
        self._prefix_chars = 0
        self._prefix_n = 0
        self._prefix_start = -1  # compacted_until the prefix was built for; -1: invalid
        self._saved_clean = 0  # messages[:n] are unchanged since the last save
        self._last_request_at = 0.0
        # Durability: the store (None keeps the session in memory only) and the undo log.
        self.store = store
        self.undo_log: UndoLog | None = None
        self.title = ""
        self._notices: list[str] = []
        if store is not None:
            from nbagent.store import SessionInfo, UndoLog

            # A damaged store moved aside: the first turn says so (the CLI and the notebook show it).
            self._notices, store.notices = list(store.notices), []
            store.ensure_session(
                SessionInfo(id=self.id, parent_id=parent_id, project=self.root, model=self.chain.primary)
            )
            self.undo_log = UndoLog(store, self.id, self.root)
        self._notices += self.setup.warnings  # problems in agent and skill definitions, said once
        self.mcp = attach_mcp(self)  # issue 14 (M1): MCP servers, started at the first turn

    @classmethod
    def resume(
        cls, root: Path, config: Config, store: SessionStore, session_id: str, **kwargs: Any
    ) -> Session:
        """A session continued from the store: its history, compaction summary and todos."""
        info, messages = store.load_session(store.resolve_id(session_id))
        for message in messages:
            close_dangling(message, "Interrupted: the session ended before the tool finished.")
        if config.model is None and info.model:
            config = config.model_copy(update={"model": info.model})
        session = cls(root, config, session_id=info.id, messages=messages, store=store, **kwargs)
        if info.model and config.model != info.model:  # --model (or the project's model) switches it
            session.resumed_on_another_model(info.model)
        session.usage = info.usage
        session.title = info.title
        summaries = store.summaries(info.id)
        if summaries:
            last = summaries[-1]
            ids = [m.id for m in messages]
            session.summary = last.summary
            if last.covers_until_message_id in ids:
                session.compacted_until = ids.index(last.covers_until_message_id) + 1
        todos = store.load_todos(info.id)
        if todos:
            session.tool_state["todos"] = todos
        return session

    # -- prompt -------------------------------------------------------------------------------

    def _build_system_prompt(self) -> str:
        """Built once per session so the request prefix stays byte-identical across steps."""
        env = "\n".join(
            [
                "# Environment",
                f"- Project root (working directory): {self.root}",
                f"- Git repository: {'yes' if _git_repo(self.root) else 'no'}",
                f"- Platform: {platform.system()} {platform.release()}",
                f"- Date at session start: {date.today().isoformat()}",
            ]
        )
        sections = [base_system_prompt(), *self.setup.sections, memory.render(self.memory_files), env]
        return "\n\n".join(s for s in sections if s)

    @property
    def system_prompt(self) -> str:
        return self._system_prompt

    @property
    def tool_schemas(self) -> list[dict[str, Any]]:
        return self._tool_schemas

    @property
    def context_limit(self) -> int:
        return self.limits.context

    # -- secrets --------------------------------------------------------------------------------

    @property
    def scrubber(self) -> Scrubber:
        """This session's scrubber, rebuilt when a ``.env`` file or the environment changed."""
        self._scrubber = self._scrubber.refreshed()
        return self._scrubber

    def scrub(self, text: str) -> str:
        """``text`` without the secrets this session knows of (and the shapes of others)."""
        return self.scrubber.text(text)

    # -- history --------------------------------------------------------------------------------

    def append(self, message: Message) -> None:
        self.messages.append(message)

    def save(self) -> None:
        """Persist the history in one transaction (a no-op without a store). On failure (a full disk:
        ``StoreError``) the transaction is rolled back; the history in memory is untouched and the
        next save writes all that is missing."""
        if self.store is None:
            return
        messages = list(self.messages)
        if not self.title:
            first = next((m.text for m in messages if m.role == "user" and not m.synthetic), "")
            self.title = " ".join(first.split())[:80]
        self.store.save_step(
            self.id,
            messages,
            usage=self.usage,
            todos=self.tool_state.get("todos"),
            title=self.title,
            settled=min(self._saved_clean, len(messages)),
        )
        self._saved_clean = len(messages)

    async def persist(self) -> None:
        """``save`` in a worker thread: SQLite's writes never block the event loop."""
        if self.store is not None:
            await asyncio.to_thread(self.save)

    def add_notice(self, text: str) -> None:
        """A warning for the user, shown at the start of the next turn."""
        self._notices.append(text)

    def take_notices(self) -> list[str]:
        notices, self._notices = self._notices, []
        return notices

    async def refresh_tools(self) -> None:
        await self.mcp.sync(self)  # issue 14: an MCP server's tools changed (list_changed)

    def display_path(self, path: Path) -> str:
        try:
            return str(path.relative_to(self.root))
        except ValueError:
            return str(path)

    # -- tools ------------------------------------------------------------------------------------

    def tool_context(
        self, call_id: str, hook_decision: str | None = None, hook_reason: str = ""
    ) -> ToolContext:
        """The context a tool call runs in; a PreToolUse hook's decision (allow/ask) applies to it."""

        async def ask(query: PermissionQuery) -> None:
            if hook_decision == "allow":
                return
            force = (hook_reason or "a PreToolUse hook asks to confirm") if hook_decision == "ask" else ""
            await self.broker.check(query, call_id, force_ask=force)

        def after_command() -> list[str]:
            guard = self.tool_state.get(GUARD_KEY)
            notes = guard.end() if isinstance(guard, ProtectedGuard) else []
            for note in notes:
                self._emit(Notice(session_id=self.id, level="warning", message=note))
            return notes

        return ToolContext(
            root=self.root,
            session_id=self.id,
            call_id=call_id,
            files=self.files,
            emit=self._emit,
            ask=ask,
            screen=lambda query: self.policy.evaluate(query).action,
            state=self.tool_state,
            before_change=self._record_before,
            wrap_argv=self._wrap_argv,
            shell=ShellOptions(
                pass_env=tuple(self.config.shell.pass_env),
                hidden_values=tuple(k for k in (self.api_key, *self.model_keys()) if k),
                max_output_bytes=int(self.config.shell.max_output_mb * 1_000_000),
                after_command=after_command,
            ),
        )

    def _wrap_argv(self, argv: list[str]) -> list[str]:
        """A command wrapped in the sandbox (when enabled); its TMPDIR is private to this session, and
        the guard notes which protected project paths exist before it runs (sandbox_guard)."""
        tmp = cache_dir() / "sandbox-tmp" / self.id
        if self.sandbox.enabled:
            private_dir(tmp)
        try:
            wrapped, warning = wrap_command(argv, self.root, self.sandbox, tmp)
        except SandboxUnavailable as exc:
            raise ToolFailure(f"{exc} {exc.hint}".strip()) from None
        if warning and not self._sandbox_warned:
            self._sandbox_warned = True
            self._emit(Notice(session_id=self.id, level="warning", message=warning))
        if wrapped is not argv:
            guard_of(
                self.tool_state, self.root, lambda: private_dir(cache_dir() / "quarantine" / self.id)
            ).begin()
        return wrapped

    # -- hooks --------------------------------------------------------------------------------

    async def run_hook(
        self, event: str, payload: dict[str, Any], tool_name: str | None = None
    ) -> HookOutcome:
        """Run the configured hooks for ``event``; their messages and errors become notices."""
        outcome = await self.hooks.run(event, payload, tool_name, trust=self._trust_project)
        for line in outcome.messages:
            self._emit(Notice(session_id=self.id, message=line))
        for line in outcome.errors:
            self._emit(Notice(session_id=self.id, level="warning", message=f"{event} hook: {line}"))
        return outcome

    async def _trust_project(self) -> bool:
        """Whether the project's hooks may run: asked once per session, inside a turn (where a front-end
        can show the question); outside one they are skipped until then."""

        def notice(message: str) -> None:
            self._emit(Notice(session_id=self.id, level="warning", message=message))

        return await self.project_trust.resolve(
            self.broker.ask_person, notice, can_ask=bool(self._emit_target)
        )

    def describe_permissions(self, mode: str | None = None) -> str:
        """``/permissions [mode]``: the mode, where rules come from, and a mode switch."""
        modes: tuple[Mode, ...] = get_args(Mode)
        if mode:
            if mode not in modes:
                return f"Unknown mode `{mode}`; one of {', '.join(modes)}."
            self.policy.mode = modes[modes.index(mode)]
        lines = [
            f"Permission mode: **{self.policy.mode}** (modes: {', '.join(modes)})",
            f"Project rules: `{self.root / 'nbagent.json'}`; saved approvals: `{self.root / '.nbagent/permissions.local.json'}`",
        ]
        lines += [
            f"- `{key}`: `{json.dumps(value)}`" for key, value in (self.config.permission or {}).items()
        ]
        return "\n".join(lines)

    def nested_memory_note(self, path: Path) -> str:
        """Instructions from memory files under ``path``'s folders, the first time they are reached."""
        found = self.nested_memory.on_read(path)
        if not found:
            return ""
        return "\n\n<system-reminder>\n" + memory.render(found) + "\n</system-reminder>"

    # -- turns --------------------------------------------------------------------------------

    def _emit(self, event: Event) -> None:
        self.plugins.on_event(event)  # issue 14 (M3): plugins observe every event
        for queue in self._emit_target:
            queue.put_nowait(event)

    @contextlib.contextmanager
    def event_target(self, queue: asyncio.Queue[Event]) -> Iterator[None]:
        """Outside a turn, the session's events (the broker's questions) also reach ``queue`` while the
        block runs: the kernel's MCP server shows a served call's prompt in its own view."""
        self._emit_target.append(queue)
        try:
            yield
        finally:
            with contextlib.suppress(ValueError):  # a turn that started meanwhile has its own targets
                self._emit_target.remove(queue)

    @property
    def busy(self) -> bool:
        return self._task is not None and not self._task.done()

    async def run(self, prompt: str) -> AsyncIterator[Event]:
        """Run one turn; yields its events and ends with ``TurnFinished``."""
        if self.busy:
            raise NbagentError("A turn is already running in this session.", "Wait for it or stop it first.")
        queue: asyncio.Queue[Event] = asyncio.Queue()
        self._emit_target = [queue]
        finished = self.subagents.take_reminders()  # background children that ended between turns
        if finished:
            from nbagent.core.messages import user_message

            self.append(user_message(finished, synthetic=True))
        runner = TurnRunner(self, self._emit)
        turn = mcp_turn(self, runner, prompt)  # issue 14 (M1): MCP servers, then run_turn
        task = asyncio.create_task(turn, name=f"nbagent-turn-{runner.turn_id}")
        self._task = task
        getter: asyncio.Task[Event] | None = None
        try:
            while True:
                getter = asyncio.create_task(queue.get())
                done, _ = await asyncio.wait({getter, task}, return_when=asyncio.FIRST_COMPLETED)
                if getter in done:
                    event = getter.result()
                    getter = None
                    yield event
                    if isinstance(event, TurnFinished):
                        break
                    continue
                getter.cancel()  # before anything else runs: the events it did not take stay queued
                while not queue.empty():
                    event = queue.get_nowait()
                    yield event
                task.result()  # re-raise a crash of the loop itself
                break
        finally:
            # Every task ends before the turn does: the queue reader, and the turn itself when the
            # caller stopped listening (cancelled, or closed the event stream).
            if getter is not None:
                getter.cancel()
                await asyncio.gather(getter, return_exceptions=True)
            if not task.done():
                task.cancel()
                self.broker.cancel_all()
            await asyncio.gather(task, return_exceptions=True)
            self._emit_target = []
            self._task = None

    def cancel(self) -> None:
        """Stop the running turn: tools are stopped, dangling calls closed, the session saved; the
        session's subagents (background ones too) are stopped."""
        self.subagents.cancel_all()
        if self._task is not None and not self._task.done():
            self.broker.cancel_all()
            self._task.cancel()

    def reply(self, request_id: str, kind: ReplyKind, feedback: str = "") -> None:
        """Answer a ``PermissionAsked`` event (a subagent's too: it is routed to the child that asked)."""
        if not self.subagents.reply(request_id, kind, feedback):
            self.broker.reply(request_id, kind, feedback)

    async def close(self) -> None:
        """End the session: stop a running turn (and wait for it), kill background shells and every
        process a command left behind, close the provider."""
        from nbagent.tools.shell import close_shells

        task = self._task
        if task is not None and not task.done():
            self.cancel()
            await asyncio.gather(task, return_exceptions=True)
        await self.subagents.close()
        await close_shells(self.tool_state)
        await self.mcp.close()  # issue 14 (M1)
        await self.close_providers()
