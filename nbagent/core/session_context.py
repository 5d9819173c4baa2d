"""The context half of a session: the history's wire form (cached per message, byte-stable prefixes),
the model request, and context management (pruning, compaction). A mixin of ``Session``."""

from __future__ import annotations

import os
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nbagent.core.config import Config
from nbagent.core.context import memory
from nbagent.core.context.budget import Estimator, Limits, estimate_chars
from nbagent.core.context.compaction import summarize, summary_message_text
from nbagent.core.context.prune import prune
from nbagent.core.errors import NbagentError
from nbagent.core.events import Compacted, ContextReport, Event, Notice
from nbagent.core.messages import Message, ToolCompleted, ToolPart, Usage
from nbagent.core.plugin_wiring import plugin_compaction  # issue 14 (M3)
from nbagent.providers.base import ModelRequest, Provider
from nbagent.providers.wire import to_openai
from nbagent.tools.base import default_output_dir
from nbagent.tools.spill import private_dir

if TYPE_CHECKING:
    from nbagent.ext.hooks import HookOutcome
    from nbagent.store import SessionStore

CACHE_TTL = 300.0  # seconds a provider keeps a prompt cache warm
PRUNE_AT = 0.8  # fraction of the usable window at which old tool outputs are pruned
PRUNE_COLD_AT = 0.5  # ... or already at this fraction when the cache has gone cold anyway
COMPACT_AT = 0.9  # fraction at which the session is compacted
KEEP_RECENT = 0.3  # fraction of the usable window kept verbatim after compaction
EPHEMERAL = {"type": "ephemeral"}


def uses_anthropic_cache(model: str) -> bool:
    return model.startswith(("anthropic/", "claude", "bedrock/anthropic", "vertex_ai/claude"))


class ContextFull(NbagentError):
    """The prompt does not fit the model's window and compaction is off (or could not help)."""


class SessionContext:
    """What the context methods use of the session (set in ``Session.__init__``)."""

    id: str
    model: str
    config: Config
    provider: Provider
    api_key: str | None
    messages: list[Message]
    usage: Usage
    summary: str | None
    compacted_until: int
    limits: Limits
    estimator: Estimator
    store: SessionStore | None
    memory_files: list[Any]
    tool_state: dict[str, Any]
    _system_prompt: str
    _tool_schemas: list[dict[str, Any]]
    _fixed: int
    _wire: dict[str, tuple[int, list[dict[str, Any]], int]]
    _prefix: list[dict[str, Any]]
    _prefix_chars: int
    _prefix_n: int
    _prefix_start: int
    _saved_clean: int
    _last_request_at: float
    _wire_model: str | None = None  # the model the cached wire form was made for

    def save(self) -> None:
        raise NotImplementedError

    def endpoint(self, model: str | None = None) -> tuple[str | None, str | None]:
        """(api_base, api_key) of the current model (``SessionModels``)."""
        raise NotImplementedError

    async def run_hook(
        self, event: str, payload: dict[str, Any], tool_name: str | None = None
    ) -> HookOutcome:
        raise NotImplementedError

    # -- wire format, cached per message ---------------------------------------------------------

    @staticmethod
    def _version(message: Message) -> int:
        """Changes when a message's wire form can change (a tool finishing, an output pruned)."""
        return hash(
            tuple(
                (p.state.status, getattr(p.state, "pruned", None) is not None) for p in message.tool_parts()
            )
        ) ^ len(message.parts)

    def _check_wire_model(self) -> None:
        """The wire form depends on the model (reasoning and provider metadata go back to the model
        that wrote them only): after a model change the history is converted again."""
        if self._wire_model != self.model:
            self._wire.clear()
            self._wire_model = self.model
            self._prefix_start = -1

    def _wire_of(self, message: Message) -> tuple[list[dict[str, Any]], int]:
        self._check_wire_model()
        version = self._version(message)
        cached = self._wire.get(message.id)
        if cached is None or cached[0] != version:
            wire = to_openai([message], model=self.model)
            cached = (version, wire, estimate_chars(wire))
            self._wire[message.id] = cached
        return cached[1], cached[2]

    def _live_messages(self) -> list[Message]:
        return self.messages[self.compacted_until :]

    def invalidate_history(self) -> None:
        """Old messages changed (pruned, compacted, undone): rebuild the cached wire form, save all."""
        self._prefix_start = -1
        self._saved_clean = 0

    def _history_wire(self) -> tuple[list[dict[str, Any]], int]:
        """The live history in wire form. Settled messages are converted once; only the last two
        (whose tool calls may still be running) are looked at again, so a step costs the same at
        step 200 as at step 2."""
        self._check_wire_model()
        live = self._live_messages()
        settled = max(0, len(live) - 2)
        if self._prefix_start != self.compacted_until or settled < self._prefix_n:
            self._prefix, self._prefix_chars, self._prefix_n = [], 0, 0
            self._prefix_start = self.compacted_until
        for message in live[self._prefix_n : settled]:
            wire, size = self._wire_of(message)
            self._prefix.extend(wire)
            self._prefix_chars += size
        self._prefix_n = settled
        out: list[dict[str, Any]] = []
        chars = self._prefix_chars
        if self.summary:
            text = summary_message_text(self.summary)
            out.append({"role": "user", "content": text})
            chars += len(text)
        out.extend(self._prefix)
        for message in live[settled:]:
            wire, size = self._wire_of(message)
            out.extend(wire)
            chars += size
        return out, chars

    def _fixed_chars(self) -> int:
        return self._fixed

    def estimate_prompt_tokens(self) -> int:
        return self.estimator.tokens(self._fixed_chars() + self._history_wire()[1])

    def build_request(self) -> ModelRequest:
        history, _ = self._history_wire()
        system: dict[str, Any] = {"role": "system", "content": self._system_prompt}
        tools = self._tool_schemas
        extra: dict[str, Any] = {}
        cache_key = None
        if uses_anthropic_cache(self.model):
            # Breakpoints: the stable prefix (tools + system) and the two last messages.
            system = {
                "role": "system",
                "content": [{"type": "text", "text": self._system_prompt, "cache_control": EPHEMERAL}],
            }
            if tools:
                tools = [*tools[:-1], {**tools[-1], "cache_control": EPHEMERAL}]
            history = [*history[:-2], *(_with_breakpoint(m) for m in history[-2:])]
        else:
            cache_key = self.id
        self._last_request_at = time.time()
        api_base, api_key = self.endpoint()
        return ModelRequest(
            model=self.model,
            messages=[system, *history],
            tools=tools,
            max_tokens=min(self.limits.output, self.limits.reserve),
            api_base=api_base,
            api_key=api_key,
            prompt_cache_key=cache_key,
            extra=extra,
        )

    def calibrate(self, usage: Usage) -> None:
        """Learn chars-per-token from the provider's count of the prompt just sent.

        ``input_tokens`` counts the whole prompt, cached parts included, for every provider."""
        self.estimator.calibrate(self._fixed_chars() + self._history_wire()[1], usage.input_tokens)

    # -- context management ------------------------------------------------------------------------

    def context_report(self) -> ContextReport:
        self.limits = self.limits.current()
        tokens = self.estimator.tokens
        memory_chars = len(memory.render(self.memory_files))
        tool_chars = 0
        message_chars = 0
        for message in self._live_messages():
            _, size = self._wire_of(message)
            results = sum(
                len(p.state.pruned or p.state.output)
                for p in message.tool_parts()
                if isinstance(p.state, ToolCompleted)
            )
            tool_chars += results
            message_chars += size - results
        summary_chars = len(summary_message_text(self.summary)) if self.summary else 0
        used = self.estimate_prompt_tokens()
        return ContextReport(
            session_id=self.id,
            model=self.model,
            context_limit=self.limits.context,
            reserve=self.limits.reserve,
            system_prompt=tokens(len(self._system_prompt) - memory_chars),
            tools=tokens(estimate_chars(self._tool_schemas)),
            memory=tokens(memory_chars) if memory_chars else 0,
            summary=tokens(summary_chars) if summary_chars else 0,
            messages=tokens(message_chars),
            tool_results=tokens(tool_chars),
            free=max(0, self.limits.usable - used),
            limits_known=self.limits.known,
        )

    def _keep_pruned_output(self, part: ToolPart) -> Path | None:
        state = part.state
        if not isinstance(state, ToolCompleted):
            return None
        directory = private_dir(default_output_dir() / self.id)
        path = directory / f"{part.call_id}.txt"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            os.fchmod(fh.fileno(), 0o600)
            fh.write(state.output)
        return path

    def prune(self, *, force: bool = False) -> int:
        """Prune old tool outputs; returns the tokens freed."""
        usable_chars = int(self.limits.usable / self.estimator.ratio)
        self.invalidate_history()
        freed = prune(
            self._live_messages(),
            protect_chars=0 if force else min(160_000, usable_chars // 4),
            minimum_chars=0 if force else min(80_000, usable_chars // 10),
            keep=self._keep_pruned_output,
        )
        return self.estimator.tokens(freed) if freed else 0

    async def fit_context(self, emit: Any) -> None:
        """Before a step: prune, then compact, so the request fits; raise ContextFull when it cannot."""
        self.limits = await self.limits.settled()  # a local server's window, asked in a thread
        usable = self.limits.usable
        estimate = self.estimate_prompt_tokens()
        cold = bool(self._last_request_at) and time.time() - self._last_request_at > CACHE_TTL
        threshold = usable * (PRUNE_COLD_AT if cold else PRUNE_AT)
        if self.config.context.prune and estimate > threshold and self.prune():
            estimate = self.estimate_prompt_tokens()
        if estimate <= usable * COMPACT_AT:
            return
        if not self.config.context.auto_compact:
            if estimate <= usable:
                return
            raise ContextFull(
                f"The context is full ({estimate:,} of {usable:,} usable tokens) and auto-compaction is off.",
                "Run /compact, start a new session, or set context.auto_compact to true.",
            )
        async for event in self.compact(auto=True):
            emit(event)
        if self.estimate_prompt_tokens() > usable and self.config.context.prune:
            self.prune(force=True)
        estimate = self.estimate_prompt_tokens()
        if estimate > usable:
            raise ContextFull(
                f"Even after compaction the prompt needs {estimate:,} tokens; the model allows {usable:,}.",
                "Start a new session, or configure a model with a larger context.",
            )

    async def compact(self, focus: str | None = None, *, auto: bool = False) -> AsyncIterator[Event]:
        """Summarise the older part of the live history; the last messages stay verbatim."""
        live = self._live_messages()
        keep_chars = int(self.limits.usable * KEEP_RECENT / self.estimator.ratio)
        split = len(live)
        kept = 0
        while split > 0:
            size = self._wire_of(live[split - 1])[1]
            if kept + size > keep_chars:
                break
            kept += size
            split -= 1
        if split == 0 and live:
            split = 1  # always summarise something
        if not live:
            return
        before = self.estimate_prompt_tokens()
        trigger = "auto" if auto else "manual"
        pre = await self.run_hook("PreCompact", {"trigger": trigger, "custom_instructions": focus or ""})
        if pre.blocked:
            yield Notice(
                session_id=self.id,
                level="warning",
                message=f"A PreCompact hook blocked compaction: {pre.reason}",
            )
            return
        api_base, api_key = self.endpoint()
        summary, usage = await summarize(
            self.provider,
            model=self.model,
            api_base=api_base,
            api_key=api_key,
            messages=live[:split],
            previous=strip_kernel_state(self.summary),
            focus=focus,
            budget_chars=int(self.limits.usable * 0.6 / self.estimator.ratio),
            max_tokens=min(self.limits.output, self.limits.reserve),
        )
        if not summary:
            yield Notice(
                session_id=self.id,
                level="warning",
                message="Compaction returned an empty summary; kept the history.",
            )
            return
        self.usage = self.usage + usage
        summary = with_kernel_state(summary, self.tool_state)
        summary = plugin_compaction(self, summary)  # issue 14 (M3): plugins add context
        self.summary = summary
        self.compacted_until += split
        self.invalidate_history()
        self.save()
        if self.store is not None:
            self.store.add_summary(
                self.id,
                summary,
                covers_until=self.messages[self.compacted_until - 1].id,
                tokens_before=before,
                tokens_after=self.estimate_prompt_tokens(),
            )
        yield Compacted(
            session_id=self.id,
            summary=summary,
            tokens_before=before,
            tokens_after=self.estimate_prompt_tokens(),
            auto=auto,
        )


KERNEL_STATE = re.compile(r"\n*<kernel-state>.*?</kernel-state>\n*", re.S)


def with_kernel_state(summary: str, tool_state: dict[str, Any]) -> str:
    """The summary with the live kernel's state card (variables, last error) as it is now: after a
    compaction the model still knows what the notebook's kernel holds."""
    from nbagent.tools.kernel import KERNEL_KEY, state_card

    namespace = tool_state.get(KERNEL_KEY)
    if namespace is None:
        return summary
    try:
        card = state_card(namespace)
    except Exception:
        return summary
    return f"{summary}\n\n<kernel-state>\nThe live kernel at this compaction (inspect for now):\n{card}\n</kernel-state>"


def strip_kernel_state(summary: str | None) -> str | None:
    return KERNEL_STATE.sub("\n", summary).strip() if summary else summary


def _with_breakpoint(message: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``message`` whose last content block carries a cache breakpoint."""
    content = message.get("content")
    if isinstance(content, str):
        if not content:
            return message
        blocks: list[dict[str, Any]] = [{"type": "text", "text": content}]
    elif isinstance(content, list) and content:
        blocks = [dict(b) for b in content]
    else:
        return message
    blocks[-1] = {**blocks[-1], "cache_control": EPHEMERAL}
    return {**message, "content": blocks}
