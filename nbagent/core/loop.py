"""The agent loop: one model step per iteration, then the step's tool calls, until a final answer.

It streams events into ``emit`` and mutates the session's history in place. Control flow by
exceptions that carry messages: ``ProviderError`` ends the turn with an error, ``CancelledError``
closes dangling calls with an "interrupted" result, a person's refusal without feedback stops.

The tool calls of a step run in :class:`nbagent.core.loop_tools.ToolCalls`, the base of
:class:`TurnRunner`; this module drives the turn and the model steps.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from nbagent.core import spend
from nbagent.core.errors import ContextTooLong, NbagentError, ProviderError
from nbagent.core.events import (
    ErrorEvent,
    Notice,
    ReasoningDelta,
    Retrying,
    StepStarted,
    TextDelta,
    ToolCallPending,
    TurnFinished,
    TurnStarted,
    UsageUpdated,
)
from nbagent.core.failover import waits_too_long
from nbagent.core.loop_tools import DOOM_LOOP_REPEATS, INTERRUPTED, ToolCalls, _signature, _StopTurn
from nbagent.core.messages import (
    Message,
    ReasoningPart,
    TextPart,
    ToolError,
    ToolPart,
    ToolPending,
    Usage,
    new_id,
    user_message,
)
from nbagent.providers.base import ModelRequest, ReasoningChunk, StepDone, TextChunk, ToolCallStarted

if TYPE_CHECKING:
    from nbagent.core.events import Event
    from nbagent.core.turn_host import TurnHost

__all__ = [
    "DOOM_LOOP_REPEATS",
    "INTERRUPTED",
    "MAX_STOP_CONTINUATIONS",
    "PLAN_MODE_REMINDER",
    "ToolCalls",
    "TurnRunner",
    "_StopTurn",
    "_signature",
    "close_dangling",
]

MAX_STOP_CONTINUATIONS = 3
PLAN_MODE_REMINDER = (
    "Plan mode is on: tools that change files, and commands that are not read-only, will be refused."
    " Investigate with read-only tools and answer with a plan; the user switches the mode to carry it out."
)


def close_dangling(message: Message, reason: str = INTERRUPTED) -> None:
    """Give every unfinished tool call of ``message`` an error result, so the history stays valid."""
    for part in message.tool_parts():
        if not part.finished:
            data = getattr(part.state, "input", {}) or {}
            raw = getattr(part.state, "raw_input", "")
            started = getattr(part.state, "started", 0.0)
            part.state = ToolError(input=data, raw_input=raw, error=reason, started=started)


class TurnRunner(ToolCalls):
    """Runs one turn of ``session`` for ``prompt``; emits events through ``emit``.

    Disk and subprocess work (saving, the work-tree scan for undo) runs in threads: the event loop
    (a Jupyter kernel's) keeps serving while a turn starts and saves."""

    def __init__(self, session: TurnHost, emit: Callable[[Event], None]) -> None:
        self.session = session
        self.emit = emit
        self.turn_id = new_id("turn")
        self._save_failed = False

    async def _save(self) -> None:
        """Save the history; a failure (full disk) is said once and the turn goes on, the history
        kept in memory: the next save that works writes all of it."""
        try:
            await self.session.persist()
        except NbagentError as exc:
            if not self._save_failed:
                self._save_failed = True
                message = (
                    f"{exc} {exc.hint} The session goes on in memory and is saved again after every step."
                )
                self.emit(Notice(session_id=self.session.id, level="warning", message=message))
            return
        self._save_failed = False

    # -- the turn ---------------------------------------------------------------------------

    async def run(self, prompt: str) -> None:
        s = self.session
        self.emit(TurnStarted(session_id=s.id, turn_id=self.turn_id, prompt=prompt, model=s.model))
        for note in s.take_notices():
            self.emit(Notice(session_id=s.id, level="warning", message=note))
        steps = 0
        reason: Any = "stop"
        turn_usage = Usage()
        current: Message | None = None
        stop_continuations = 0
        changes = None
        try:
            await self._start_undo()
            prompt = await self._prompt_hooks(prompt)
            s.append(user_message(prompt))
            await self._save()  # the prompt is kept even if the process dies during the first request
            while True:
                if steps >= s.config.max_steps:
                    reason = "step_limit"
                    self.emit(
                        Notice(
                            session_id=s.id,
                            level="warning",
                            message=f"Stopped after {steps} steps (max_steps). Continue with another prompt.",
                        )
                    )
                    break
                if not await spend.before_step(s, self.emit):  # a budget is reached: said, the turn ends
                    break
                steps += 1
                self.emit(StepStarted(session_id=s.id, step=steps))
                current = Message(role="assistant", model=s.model)
                await self._model_step(current, steps)
                turn_usage = turn_usage + (current.usage or Usage())
                s.append(current)
                calls = current.tool_parts()
                if not calls:
                    current = None
                    # A Stop hook may keep the agent going, with its reason as the next instruction.
                    stop = await s.run_hook("Stop", {"stop_hook_active": stop_continuations > 0})
                    if stop.blocked and not stop.stop and stop_continuations < MAX_STOP_CONTINUATIONS:
                        stop_continuations += 1
                        s.append(user_message(f"A Stop hook asks to continue: {stop.reason}", synthetic=True))
                        continue
                    break
                await self._run_tools(calls)
                await self._save()
                current = None
        except asyncio.CancelledError:
            reason = "cancelled"
            if current is not None:
                close_dangling(current)
                if current.parts and not any(m is current for m in s.messages):
                    s.append(current)
            self.emit(
                Notice(session_id=s.id, level="warning", message="Turn interrupted; the session was saved.")
            )
        except _StopTurn:
            reason = "stop"
        except NbagentError as exc:  # provider failures, a full context
            reason = "error"
            kind = exc.kind if isinstance(exc, ProviderError) else type(exc).__name__
            self.emit(ErrorEvent(session_id=s.id, message=str(exc), hint=exc.hint, kind=kind))
        finally:
            await self._save()
            await spend.after_turn(s, self.emit)
            try:
                changes = await s.finish_turn()
            except NbagentError as exc:
                self.emit(Notice(session_id=s.id, level="warning", message=f"{exc} {exc.hint}".strip()))
        if changes is not None and changes.shell_changed:
            names = ", ".join(s.display_path(p) for p in changes.shell_changed[:10])
            more = f" and {len(changes.shell_changed) - 10} more" if len(changes.shell_changed) > 10 else ""
            self.emit(
                Notice(
                    session_id=s.id,
                    message=f"Shell commands changed {names}{more}. /undo reverts the agent's file edits;"
                    " shell changes are reverted only on request (/undo --shell).",
                )
            )
        last = s.messages[-1] if s.messages else None
        text = last.text if last is not None and last.role == "assistant" else ""
        self.emit(
            TurnFinished(
                session_id=s.id, turn_id=self.turn_id, reason=reason, steps=steps, usage=turn_usage, text=text
            )
        )

    async def _start_undo(self) -> None:
        try:
            await self.session.start_turn(self.turn_id)
        except NbagentError as exc:  # a full disk: the turn runs, without undo
            self.emit(
                Notice(
                    session_id=self.session.id,
                    level="warning",
                    message=f"{exc} /undo will not cover this turn. {exc.hint}".strip(),
                )
            )

    async def _prompt_hooks(self, prompt: str) -> str:
        """SessionStart (first turn) and UserPromptSubmit may add context or block the prompt; plan mode
        adds a reminder."""
        s = self.session
        extra: list[str] = []
        if not s.hooks_started:
            s.hooks_started = True
            start = await s.run_hook("SessionStart", {"source": "resume" if s.messages else "startup"})
            if start.additional_context:
                extra.append(start.additional_context)
        submit = await s.run_hook("UserPromptSubmit", {"prompt": prompt})
        if submit.blocked or submit.stop:
            self.emit(
                Notice(
                    session_id=s.id,
                    level="warning",
                    message=f"A UserPromptSubmit hook blocked the prompt: {submit.reason or submit.stop_reason}",
                )
            )
            raise _StopTurn("blocked by a hook")
        if submit.additional_context:
            extra.append(submit.additional_context)
        text = prompt + "".join(f"\n\n<hook-context>\n{item}\n</hook-context>" for item in extra)
        if s.policy.mode == "plan":  # volatile facts go into the message, never the cached system prompt
            text += f"\n\n<system-reminder>{PLAN_MODE_REMINDER}</system-reminder>"
        return text

    # -- one model step ---------------------------------------------------------------------

    async def _model_step(self, message: Message, step: int) -> None:
        """One model step into ``message``: retried where the error deserves it, then failed over to the
        next model of the fallback list (the same step goes on there), back to an earlier one at the
        first step after its cool-down."""
        s = self.session
        retry = s.config.retry
        for change in s.model_switches():
            self.emit(change)
        await s.refresh_tools()  # never during a request: its tool list stays as built
        message.model = s.model
        attempt = 0
        compacted = False
        while True:
            attempt += 1
            await s.fit_context(self.emit)
            try:
                await self._stream_into(message, s.build_request())
                break
            except ContextTooLong:
                # The provider counts differently from our estimate: compact once, then retry the step.
                if compacted or not s.config.context.auto_compact:
                    raise
                compacted = True
                message.parts.clear()
                async for event in s.compact(auto=True):
                    self.emit(event)
                attempt -= 1
            except ProviderError as exc:
                # A usage limit, or a wait over a minute, is not waited for when another model can go on.
                hurry = exc.kind == "usage_limit" or (waits_too_long(exc) and s.has_fallback)
                if exc.retryable and attempt < retry.max_attempts and not hurry:
                    backoff = retry.base_delay * 2 ** (attempt - 1)
                    wait = min(exc.retry_after if exc.retry_after is not None else backoff, retry.max_delay)
                    self._discard(message, attempt, wait, str(exc))
                    await asyncio.sleep(wait)
                    continue
                if exc.retryable and not hurry:
                    exc.args = (f"{exc} (gave up after {attempt} attempts)",)
                switched = s.fail_over(exc)
                if switched is None:
                    raise
                if message.parts:
                    self._discard(message, attempt, 0.0, switched.message)
                self.emit(switched)
                message.model = s.model
                attempt = 0
        usage = message.usage or Usage()
        s.usage = s.usage + usage
        s.calibrate(usage)
        self.emit(
            UsageUpdated(
                session_id=s.id,
                step=step,
                model=s.model,
                usage=usage,
                total=s.usage,
                context_tokens=s.estimate_prompt_tokens(),
                context_limit=s.context_limit,
            )
        )

    def _discard(self, message: Message, attempt: int, wait: float, reason: str) -> None:
        """The step starts over (a retry, another model): front-ends drop what it streamed so far."""
        self.emit(
            Retrying(
                session_id=self.session.id,
                attempt=attempt,
                max_attempts=self.session.config.retry.max_attempts,
                wait=wait,
                reason=reason,
                discard_message_id=message.id,
            )
        )
        message.parts.clear()
        message.id = new_id("msg")

    async def _stream_into(self, message: Message, request: ModelRequest) -> None:
        s = self.session
        parts_by_call: dict[str, ToolPart] = {}
        async for chunk in s.provider.stream(request):
            if isinstance(chunk, TextChunk):
                last = message.parts[-1] if message.parts else None
                if isinstance(last, TextPart):
                    last.text += chunk.text
                else:
                    message.parts.append(TextPart(text=chunk.text))
                self.emit(TextDelta(session_id=s.id, message_id=message.id, text=chunk.text))
            elif isinstance(chunk, ReasoningChunk):
                last = message.parts[-1] if message.parts else None
                open_block = isinstance(last, ReasoningPart) and not last.signature and not last.redacted
                if chunk.redacted:
                    message.parts.append(ReasoningPart(text="", redacted=chunk.redacted))
                elif open_block and isinstance(last, ReasoningPart):
                    last.text += chunk.text
                    last.signature = chunk.signature
                else:
                    message.parts.append(ReasoningPart(text=chunk.text, signature=chunk.signature))
                if chunk.text:
                    self.emit(ReasoningDelta(session_id=s.id, message_id=message.id, text=chunk.text))
            elif isinstance(chunk, ToolCallStarted):
                part = ToolPart(call_id=chunk.call_id, tool=chunk.name, state=ToolPending())
                parts_by_call[chunk.call_id] = part
                message.parts.append(part)
                self.emit(ToolCallPending(session_id=s.id, call_id=chunk.call_id, tool=chunk.name))
            elif isinstance(chunk, StepDone):
                for raw in chunk.tool_calls:
                    found = parts_by_call.get(raw.call_id)
                    if found is None:
                        found = ToolPart(call_id=raw.call_id, tool=raw.name, state=ToolPending())
                        message.parts.append(found)
                    part = found
                    part.tool = raw.name
                    part.extra = raw.extra
                    part.state = ToolPending(raw_input=raw.arguments)
                message.usage = chunk.usage
                message.finish_reason = chunk.finish_reason
