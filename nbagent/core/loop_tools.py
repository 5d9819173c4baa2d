"""Running a model step's tool calls: the part of the agent loop between "the model asked for these
calls" and "each call has a result in the history".

:class:`ToolCalls` is the base of :class:`nbagent.core.loop.TurnRunner`. It runs a step's calls in
order (consecutive read-only calls concurrently), parses each call's arguments, runs the steps every
call meets (validation, hooks, plugins, scrubbing: :mod:`nbagent.core.tool_steps`), asks before a
repeated identical call (a doom loop), and turns every failure into an error result the model can act
on. A refusal without feedback raises :class:`_StopTurn`, which ends the turn.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from nbagent.core.events import ToolCallCompleted, ToolCallError, ToolCallRunning
from nbagent.core.messages import ToolCompleted, ToolError, ToolPart, ToolRunning
from nbagent.core.text import strip_ansi
from nbagent.core.tool_steps import Refused, finish_call, prepare_call
from nbagent.tools.base import PermissionQuery, PermissionRejected, Tool, ToolFailure

if TYPE_CHECKING:
    from nbagent.core.events import Event
    from nbagent.core.turn_host import TurnHost

__all__ = ["DOOM_LOOP_REPEATS", "INTERRUPTED", "ToolCalls"]

INTERRUPTED = "Interrupted by the user before the tool finished."
DOOM_LOOP_REPEATS = 3
TASK_TOOL = "task"


class _StopTurn(Exception):
    """The user refused a call without saying what to do instead: end the turn."""


def _signature(part: ToolPart) -> str | None:
    data = getattr(part.state, "input", None)
    return None if data is None else part.tool + json.dumps(data, sort_keys=True)


class ToolCalls:
    """Runs the tool calls of a step of ``session``'s turn; emits events through ``emit``."""

    session: TurnHost
    emit: Callable[[Event], None]

    async def _run_tools(self, calls: list[ToolPart]) -> None:
        """Run a step's calls in order; consecutive read-only calls (and ``task`` calls: subagents, at
        most ``subagents.max_parallel`` at once) run concurrently."""
        stop: PermissionRejected | None = None
        batch: list[ToolPart] = []
        children = asyncio.Semaphore(self.session.config.subagents.max_parallel)

        async def bounded(part: ToolPart) -> PermissionRejected | None:
            if part.tool != TASK_TOOL:
                return await self._run_one(part)
            async with children:
                return await self._run_one(part)

        async def flush() -> None:
            nonlocal stop
            results = await asyncio.gather(*(bounded(p) for p in batch))
            batch.clear()
            for rejected in results:
                if rejected is not None and rejected.stops_turn and stop is None:
                    stop = rejected

        for part in calls:
            if stop is not None:
                part.state = ToolError(
                    raw_input=self._raw(part), error="Skipped: the user refused an earlier call."
                )
                self._emit_error(part)
                continue
            tool = self.session.tools_by_name.get(part.tool)
            batch.append(part)
            if tool is None or not (tool.read_only or tool.name == TASK_TOOL):
                await flush()
        if batch:
            await flush()
        self._background_reminders()
        if stop is not None:
            raise _StopTurn(str(stop))

    def _background_reminders(self) -> None:
        """Background subagents that finished: a reminder the model reads before its next request."""
        from nbagent.core.messages import user_message

        runner = getattr(self.session, "subagents", None)
        text = runner.take_reminders() if runner is not None else ""
        if text:
            self.session.append(user_message(text, synthetic=True))

    @staticmethod
    def _raw(part: ToolPart) -> str:
        return getattr(part.state, "raw_input", "")

    def _emit_error(self, part: ToolPart) -> None:
        state = part.state
        assert isinstance(state, ToolError)
        self.emit(
            ToolCallError(
                session_id=self.session.id,
                call_id=part.call_id,
                tool=part.tool,
                input=state.input,
                error=state.error,
            )
        )

    def _fail(
        self, part: ToolPart, error: str, data: dict[str, Any] | None = None, started: float = 0.0
    ) -> None:
        part.state = ToolError(
            input=data or {},
            raw_input=self._raw(part) if data is None else "",
            error=self.session.scrub(strip_ansi(error)),
            started=started,
        )
        self._emit_error(part)

    async def _run_one(self, part: ToolPart) -> PermissionRejected | None:
        s = self.session
        tool: Tool[Any] | None = s.tools_by_name.get(part.tool)
        if tool is None:
            names = ", ".join(sorted(t.name for t in s.tools))  # the offered ones (not a removed MCP tool)
            self._fail(part, f"Unknown tool '{part.tool}'. Available tools: {names}.")
            return None
        raw = self._raw(part) or "{}"
        try:
            data = json.loads(raw)
        except json.JSONDecodeError as exc:
            self._fail(
                part,
                f"The arguments are not valid JSON ({exc.msg} at position {exc.pos}). Send the call again with a JSON object.",
            )
            return None
        if not isinstance(data, dict):
            self._fail(part, "The arguments must be a JSON object.")
            return None
        prepared = await prepare_call(s, tool, data)
        if isinstance(prepared, Refused):
            self._fail(part, prepared.reason, prepared.data)
            return None
        args, data = prepared.args, prepared.data
        started = time.time()
        part.state = ToolRunning(input=data, started=started)
        self.emit(ToolCallRunning(session_id=s.id, call_id=part.call_id, tool=part.tool, input=data))
        ctx = s.tool_context(part.call_id, prepared.decision, prepared.reason)
        try:
            if self._is_doom_loop(part):
                try:
                    await ctx.ask(
                        PermissionQuery(
                            permission="doom_loop",
                            patterns=[part.tool],
                            title=f"{part.tool} was called {DOOM_LOOP_REPEATS} times in a row with the same input. Continue?",
                        )
                    )
                except PermissionRejected as exc:  # a loop that nobody lets continue ends the turn
                    raise PermissionRejected(str(exc), stops_turn=not exc.feedback) from None
            result = await tool.run(args, ctx)
        except PermissionRejected as exc:
            self._fail(part, str(exc), data, started)
            return exc
        except ToolFailure as exc:
            self._fail(part, str(exc), data, started)
            return None
        except asyncio.CancelledError:
            part.state = ToolError(input=data, error=INTERRUPTED, started=started)
            self._emit_error(part)
            raise
        except Exception as exc:  # a bug in a tool must not end the session
            self._fail(part, f"The tool failed unexpectedly: {type(exc).__name__}: {exc}", data, started)
            return None
        done = await finish_call(s, tool, data, result, ctx)
        output, title, metadata = done.output, done.title, done.metadata
        part.state = ToolCompleted(
            input=data,
            output=output,
            title=title,
            metadata=metadata,
            attachments=result.attachments,
            started=started,
        )
        self.emit(
            ToolCallCompleted(
                session_id=s.id,
                call_id=part.call_id,
                tool=part.tool,
                input=data,
                output=output,
                title=title,
                metadata=metadata,
                attachments=result.attachments,
            )
        )
        return None

    def _is_doom_loop(self, part: ToolPart) -> bool:
        """The same call with the same input as the two calls before it in the session."""
        signature = _signature(part)
        if signature is None:
            return False
        earlier: list[ToolPart] = []
        for message in self.session.messages:
            for p in message.tool_parts():
                if p is part:
                    recent = earlier[-(DOOM_LOOP_REPEATS - 1) :]
                    return len(recent) == DOOM_LOOP_REPEATS - 1 and all(
                        _signature(q) == signature for q in recent
                    )
                earlier.append(p)
        return False
