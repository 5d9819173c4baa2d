"""A session: the history, the model, the tools and the permission broker; runs turns as event streams.

session = Session(root, config)
async for event in session.run("fix the failing test"):
    ...
"""

from __future__ import annotations

import asyncio
import platform
import subprocess
import time
from collections.abc import AsyncIterator
from datetime import date
from functools import cache
from pathlib import Path
from typing import Any

from nbagent.core.config import Config
from nbagent.core.errors import ConfigError, NbagentError
from nbagent.core.events import Event, TurnFinished
from nbagent.core.loop import TurnRunner
from nbagent.core.messages import Message, Usage, new_id
from nbagent.core.permission import AllowAll, HeadlessPolicy, PermissionBroker, PermissionPolicy, ReplyKind
from nbagent.providers.base import ModelRequest, Provider
from nbagent.providers.wire import to_openai
from nbagent.tools.base import FileTracker, PermissionQuery, Tool, ToolContext

PROMPTS = Path(__file__).parent / "prompts"
DEFAULT_CONTEXT_LIMIT = 32_000


@cache
def base_system_prompt() -> str:
    return (PROMPTS / "system.md").read_text(encoding="utf-8").strip()


def _git_repo(root: Path) -> bool:
    try:
        out = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--is-inside-work-tree"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return out.stdout.strip() == "true"


class Session:
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
    ) -> None:
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
        self.messages: list[Message] = list(messages or [])
        self.usage = Usage()
        if provider is None:
            from nbagent.providers.litellm_provider import LiteLLMProvider

            provider = LiteLLMProvider()
        self.provider = provider
        if tools is None:
            from nbagent.tools import default_tools

            tools = default_tools()
        self.tools: list[Tool[Any]] = tools
        self.tools_by_name = {t.name: t for t in tools}
        self._tool_schemas = [t.schema() for t in tools]
        self.files = FileTracker()
        self.tool_state: dict[str, Any] = {}
        self.started = time.time()
        self._system_prompt = self._build_system_prompt()
        self._emit_target: list[asyncio.Queue[Event]] = []
        self.broker = PermissionBroker(
            policy or AllowAll(), self._emit, session_id=self.id, headless=headless
        )
        self._task: asyncio.Task[None] | None = None

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
        return f"{base_system_prompt()}\n\n{env}"

    @property
    def system_prompt(self) -> str:
        return self._system_prompt

    @property
    def tool_schemas(self) -> list[dict[str, Any]]:
        return self._tool_schemas

    @property
    def context_limit(self) -> int:
        limits = self.config.models.get(self.model)
        if limits and limits.context:
            return limits.context
        return DEFAULT_CONTEXT_LIMIT

    def build_request(self) -> ModelRequest:
        messages = [{"role": "system", "content": self._system_prompt}, *to_openai(self.messages)]
        return ModelRequest(
            model=self.model,
            messages=messages,
            tools=self._tool_schemas,
            api_base=self.config.api_base,
            api_key=self.api_key,
        )

    # -- history --------------------------------------------------------------------------------

    def append(self, message: Message) -> None:
        self.messages.append(message)

    def save(self) -> None:
        """Persist the session (the store arrives with the context issue; in memory until then)."""
        return None

    # -- tools ------------------------------------------------------------------------------------

    def tool_context(self, call_id: str) -> ToolContext:
        async def ask(query: PermissionQuery) -> None:
            await self.broker.check(query, call_id)

        return ToolContext(
            root=self.root,
            session_id=self.id,
            call_id=call_id,
            files=self.files,
            emit=self._emit,
            ask=ask,
            state=self.tool_state,
        )

    # -- turns --------------------------------------------------------------------------------

    def _emit(self, event: Event) -> None:
        for queue in self._emit_target:
            queue.put_nowait(event)

    @property
    def busy(self) -> bool:
        return self._task is not None and not self._task.done()

    async def run(self, prompt: str) -> AsyncIterator[Event]:
        """Run one turn; yields its events and ends with ``TurnFinished``."""
        if self.busy:
            raise NbagentError("A turn is already running in this session.", "Wait for it or stop it first.")
        queue: asyncio.Queue[Event] = asyncio.Queue()
        self._emit_target = [queue]
        runner = TurnRunner(self, self._emit)
        task = asyncio.create_task(runner.run(prompt), name=f"nbagent-turn-{runner.turn_id}")
        self._task = task
        try:
            while True:
                getter = asyncio.ensure_future(queue.get())
                done, _ = await asyncio.wait({getter, task}, return_when=asyncio.FIRST_COMPLETED)
                if getter in done:
                    event = getter.result()
                    yield event
                    if isinstance(event, TurnFinished):
                        break
                    continue
                getter.cancel()
                while not queue.empty():
                    event = queue.get_nowait()
                    yield event
                task.result()  # re-raise a crash of the loop itself
                break
        finally:
            if not task.done():
                task.cancel()
                self.broker.cancel_all()
                await asyncio.gather(task, return_exceptions=True)
            self._emit_target = []
            self._task = None

    def cancel(self) -> None:
        """Stop the running turn: tools are stopped, dangling calls closed, the session saved."""
        if self._task is not None and not self._task.done():
            self.broker.cancel_all()
            self._task.cancel()

    def reply(self, request_id: str, kind: ReplyKind, feedback: str = "") -> None:
        """Answer a ``PermissionAsked`` event."""
        self.broker.reply(request_id, kind, feedback)

    async def close(self) -> None:
        """End the session: stop background shells."""
        from nbagent.tools.shell import close_shells

        await close_shells(self.tool_state)
