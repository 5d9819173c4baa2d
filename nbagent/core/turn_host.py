"""What the agent loop needs from the session that runs it: the seam between ``loop`` and ``session``.

``TurnRunner`` (loop.py) is written against this Protocol, so the loop never imports the session;
``Session`` satisfies it. A test or another front-end can drive the loop with any object that does.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from nbagent.core.config import Config
    from nbagent.core.errors import ProviderError
    from nbagent.core.events import Event, ModelSwitched
    from nbagent.core.messages import Message, Usage
    from nbagent.core.permission import PermissionPolicy
    from nbagent.core.scrub import Scrubber
    from nbagent.ext.hooks import HookOutcome
    from nbagent.providers.base import ModelRequest, Provider
    from nbagent.store import TurnChanges
    from nbagent.tools.base import Tool, ToolContext


class TurnHost(Protocol):
    """The session as the loop sees it: history, model, tools, hooks, persistence."""

    id: str
    model: str
    config: Config
    messages: list[Message]
    usage: Usage
    provider: Provider
    policy: PermissionPolicy
    tools: list[Tool[Any]]  # the ones offered to the model
    tools_by_name: dict[str, Tool[Any]]  # every callable one (a removed MCP tool answers that it is gone)
    hooks_started: bool

    @property
    def context_limit(self) -> int: ...

    @property
    def scrubber(self) -> Scrubber: ...

    def append(self, message: Message) -> None: ...

    def scrub(self, text: str) -> str: ...

    def take_notices(self) -> list[str]:
        """Warnings the user has not seen yet (a damaged store moved aside); each returned once."""
        ...

    async def persist(self) -> None:
        """Save the history off the event loop; raises ``NbagentError`` (with the fix) when it cannot."""
        ...

    async def start_turn(self, turn_id: str) -> None:
        """Begin recording the turn for undo (scans the work tree, off the event loop)."""
        ...

    async def finish_turn(self) -> TurnChanges | None: ...

    async def run_hook(
        self, event: str, payload: dict[str, Any], tool_name: str | None = None
    ) -> HookOutcome: ...

    async def fit_context(self, emit: Callable[[Event], None]) -> None: ...

    def compact(self, focus: str | None = None, *, auto: bool = False) -> AsyncIterator[Event]: ...

    def build_request(self) -> ModelRequest: ...

    @property
    def has_fallback(self) -> bool: ...

    async def refresh_tools(self) -> None:
        """Before a step: the tools that changed since the last one (an MCP server's list) are updated."""
        ...

    def model_switches(self) -> list[ModelSwitched]:
        """Before a step: switches to tell (a resume on another model, the switch back after a cool-down)."""
        ...

    def fail_over(self, error: ProviderError) -> ModelSwitched | None:
        """Continue on the next model of the fallback list after ``error`` (None: none can)."""
        ...

    def calibrate(self, usage: Usage) -> None: ...

    def estimate_prompt_tokens(self) -> int: ...

    def nested_memory_note(self, path: Path) -> str: ...

    def tool_context(
        self, call_id: str, hook_decision: str | None = None, hook_reason: str = ""
    ) -> ToolContext: ...

    def display_path(self, path: Path) -> str: ...
