"""The token budget of a request: the model's window, a reserve for its answer, and estimates.

The window comes, first found first: ``"models": {name: {"context": N}}`` in the configuration; the
server itself for local and self-hosted models (:mod:`nbagent.providers.local`: asked in a thread,
cached); the model's metadata (litellm's model map, read without importing litellm); else a
conservative default. ``Limits.source`` says which, and why the server did not say (``/context``).
"""

from __future__ import annotations

import asyncio
import json
import time
from concurrent.futures import Future
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from nbagent.core.config import Config

if TYPE_CHECKING:
    from nbagent.providers.local import Discovery

DEFAULT_CONTEXT = 32_000
DEFAULT_OUTPUT = 4_096
MAX_RESERVE = 16_000
CHARS_PER_TOKEN = 4.0
SETTLE_WAIT = 3.0  # seconds after the question started that the first step waits for the server's answer


@dataclass(frozen=True)
class Limits:
    context: int
    output: int
    reserve: int  # tokens kept free for the model's answer
    known: bool  # False when the defaults were used
    source: str = ""  # where the window comes from (shown by /context)
    # The limits once the server has answered (local servers, asked in a thread); None: final.
    pending: Future[Limits] | None = field(default=None, compare=False, repr=False)
    asked_at: float = field(default=0.0, compare=False, repr=False)  # time.monotonic() of the question

    @property
    def usable(self) -> int:
        """Tokens the prompt may take."""
        return max(1, self.context - self.reserve)

    def current(self) -> Limits:
        """These limits, or the final ones when the server has answered meanwhile (never waits)."""
        if self.pending is not None and self.pending.done():
            return self.pending.result()
        return self

    async def settled(self, wait: float = SETTLE_WAIT) -> Limits:
        """The final limits, waited for (without blocking the event loop) until ``wait`` seconds after
        the question started; past that, these limits (a later :meth:`current` picks the answer up)."""
        if self.pending is None or self.pending.done():
            return self.current()
        left = self.asked_at + wait - time.monotonic()
        if left <= 0:
            return self
        try:
            return await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(self.pending)), left)
        except TimeoutError:
            return self


def _limits(model: str, config: Config, context: int | None, source: str) -> Limits:
    from nbagent.providers.models import model_info

    override = config.models.get(model)
    info = model_info(model)
    if context is None and info and info.max_input_tokens:
        context = info.max_input_tokens
        source = f"the model map (litellm's prices and context windows){source}"
    output = (override and override.output) or (info and info.max_output_tokens) or None
    known = context is not None
    if context is None:
        source = f"a conservative default{source}"
    context = context or DEFAULT_CONTEXT
    output = min(output or DEFAULT_OUTPUT, context // 2)
    # a small window (a local model's 4-8k) keeps most of itself for the prompt
    reserve = config.context.reserve or min(output, MAX_RESERVE, context // 4)
    return Limits(
        context=context, output=output, reserve=min(reserve, context // 2), known=known, source=source
    )


def _from_server(model: str, config: Config, found: Discovery, cached: bool) -> Limits:
    if found.context is not None:
        note = ", cached" if cached else ""
        return _limits(model, config, found.context, f"the server: {found.source}{note}")
    return _limits(model, config, None, f"; the server did not say ({found.problem})")


def model_limits(model: str, config: Config) -> Limits:
    """The limits for ``model``. For a local or self-hosted server not answered yet, the limits without
    it, with ``pending`` set: the server is asked in a thread (see :meth:`Limits.settled`)."""
    from nbagent.providers import local

    override = config.models.get(model)
    if override and override.context:
        return _limits(
            model, config, override.context, f'"models" -> "{model}" -> "context" in the configuration'
        )
    endpoint = local.endpoint_for(model, config)
    if endpoint is None:
        return _limits(model, config, None, "")
    hit = local.cached(endpoint)
    if hit is not None:
        return _from_server(model, config, hit, cached=True)
    future: Future[Limits] = Future()

    def answered(question: Future[Discovery]) -> None:
        future.set_result(_from_server(model, config, question.result(), cached=False))

    asked_at = time.monotonic()
    local.start(endpoint).add_done_callback(answered)
    meanwhile = _limits(model, config, None, "; asking the server")
    return replace(meanwhile, pending=future, asked_at=asked_at)


def estimate_chars(payload: Any) -> int:
    if isinstance(payload, str):
        return len(payload)
    return len(json.dumps(payload, ensure_ascii=False))


class Estimator:
    """chars -> tokens, calibrated by the provider's reported prompt sizes."""

    def __init__(self) -> None:
        self.ratio = 1 / CHARS_PER_TOKEN

    def calibrate(self, chars: int, tokens: int) -> None:
        if chars > 2_000 and tokens > 0:
            self.ratio = min(1.0, max(0.1, tokens / chars))

    def tokens(self, chars: int) -> int:
        return int(chars * self.ratio) + 1
