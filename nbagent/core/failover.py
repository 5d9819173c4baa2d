"""Which model a session runs on: the user's choice first, then its ``fallback`` list.

A model that hits a usage limit or a quota, or a rate limit, overload or outage that retries did not
clear, rests: the same turn goes on with the next model of the list that is not resting. At the
next step after the rest is over (``fallback_cooldown`` seconds, or the reset time the provider
gave) the session returns to the earlier model. A usage limit (or a ``retry-after`` over a minute)
is not retried: it fails over at once.

Rests are the user's, not one session's (a usage limit is an account's): they are kept in a private
file of the cache folder, so a resumed session, or another one, starts on a model that can answer.

    chain = ModelChain(config, primary="anthropic/claude-sonnet-4-5")
    chain.after_failure("anthropic/claude-sonnet-4-5", error)   # -> "openai/gpt-5" (or None)
    chain.due_back("openai/gpt-5")                              # -> the primary once its rest ended
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from nbagent.core.errors import ProviderError
from nbagent.core.private import cache_dir, private_dir, write_private
from nbagent.providers.errors import FALLBACK_HINT, USAGE_LIMIT_AFTER, about

if TYPE_CHECKING:
    from nbagent.core.config import Config

REST_FILE = "model-rests.json"
# What the user is told a model ran into, by error kind.
REASONS = {
    "usage_limit": "usage limit hit",
    "billing": "billing or credit limit hit",
    "rate_limit": "rate limit did not clear",
    "overloaded": "overloaded",
    "server": "server errors (an outage)",
    "timeout": "requests time out",
    "connection": "unreachable",
    "stream_broken": "responses keep breaking off",
}


def fails_over(error: ProviderError) -> bool:
    """Whether ``error`` (after the retries it deserved) moves the turn to the next model."""
    return error.kind in ("usage_limit", "billing") or error.retryable


def waits_too_long(error: ProviderError) -> bool:
    """A retryable error whose provider asks for a wait over a minute: with a fallback, not waited for."""
    return error.retryable and error.retry_after is not None and error.retry_after > USAGE_LIMIT_AFTER


def reason_of(error: ProviderError) -> str:
    reason = REASONS.get(error.kind, error.kind or "failed")
    if error.retry_after is not None and error.retry_after > USAGE_LIMIT_AFTER:
        reason += f" (resets in {about(error.retry_after)})"
    return reason


class Rests:
    """Until when each model rests (epoch seconds), kept in a private JSON file (``None``: memory only).

    Read again at every question, so sessions of other processes see a rest at their next step; a
    lost update between two processes costs one request that fails over again."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._memory: dict[str, float] = {}

    @classmethod
    def for_user(cls) -> Rests:
        return cls(cache_dir() / REST_FILE)

    def _load(self) -> dict[str, float]:
        if self.path is None:
            return self._memory
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        if not isinstance(data, dict):
            return {}
        return {str(k): float(v) for k, v in data.items() if isinstance(v, int | float)}

    def _save(self, rests: dict[str, float]) -> None:
        now = time.time()
        rests = {k: v for k, v in rests.items() if v > now}
        if self.path is None:
            self._memory = rests
            return
        try:
            private_dir(self.path.parent)
            write_private(self.path, json.dumps(rests, sort_keys=True))
        except OSError:
            self.path = None  # a read-only or full disk: rests stay in this process
            self._memory = rests

    def until(self, model: str) -> float:
        return self._load().get(model, 0.0)

    def resting(self, model: str, now: float | None = None) -> bool:
        return self.until(model) > (time.time() if now is None else now)

    def rest(self, model: str, seconds: float) -> None:
        rests = self._load()
        rests[model] = max(rests.get(model, 0.0), time.time() + seconds)
        self._save(rests)

    def clear(self, model: str) -> None:
        rests = self._load()
        if rests.pop(model, None) is not None:
            self._save(rests)


@dataclass
class ModelChain:
    """The user's model, then the fallback list (without repeats), and the rests between them."""

    config: Config
    primary: str
    rests: Rests
    failed: set[str] = field(default_factory=set)  # models that failed in this step: not tried again

    def new_step(self) -> None:
        self.failed.clear()

    @property
    def models(self) -> list[str]:
        out = [self.primary]
        out += [m for m in self.config.fallback if m not in out]
        return out

    @property
    def has_fallback(self) -> bool:
        return len(self.models) > 1

    def start(self) -> str:
        """The model to start on: the first of the chain that is not resting (else the primary)."""
        now = time.time()
        return next((m for m in self.models if not self.rests.resting(m, now)), self.primary)

    def rest_for(self, error: ProviderError) -> float:
        """The rest after ``error``: the provider's reset time when it gave one, else the cool-down."""
        if error.retry_after is not None and error.retry_after > USAGE_LIMIT_AFTER:
            return error.retry_after
        return self.config.fallback_cooldown

    def after_failure(self, current: str, error: ProviderError) -> str | None:
        """``current`` failed with ``error``: it rests, and the next model not resting is returned (None:
        no fallback, or every model rests)."""
        if not fails_over(error) or not self.has_fallback:
            return None
        self.rests.rest(current, self.rest_for(error))
        self.failed.add(current)  # a cool-down of 0 s must not bring it back within the step
        models = self.models
        start = models.index(current) + 1 if current in models else 0
        now = time.time()
        for model in models[start:] + models[:start]:
            if model not in self.failed and not self.rests.resting(model, now):
                return model
        return None

    def due_back(self, current: str) -> str | None:
        """An earlier model of the chain than ``current`` whose rest is over (None: stay)."""
        models = self.models
        end = models.index(current) if current in models else len(models)
        now = time.time()
        return next((m for m in models[:end] if not self.rests.resting(m, now)), None)

    def choose(self, model: str) -> None:
        """The user picked ``model``: it leads the chain and rests no more."""
        self.primary = model
        self.rests.clear(model)

    def explain_stop(self, current: str, error: ProviderError) -> None:
        """``error`` ends the turn: its hint says how a fallback would have carried it on."""
        if not fails_over(error):
            return
        if not self.has_fallback:
            if "fallback" not in error.hint:
                error.hint = f"{error.hint} {FALLBACK_HINT}".strip()
            return
        others = [m for m in self.models if m != current]
        soonest = min(max(0.0, self.rests.until(m) - time.time()) for m in others)
        when = f"in {about(soonest)}" if soonest >= 1 else "now"
        error.hint = (
            f"{error.hint} Every fallback model is resting after a failure or failed in this step"
            f" ({', '.join(others)}); try again {when}, or switch with /model."
        ).strip()


def failover_message(current: str, target: str, error: ProviderError) -> str:
    return f"{current}: {reason_of(error)}; continuing on {target}."


def switch_back_message(current: str, target: str) -> str:
    return f"Back on {target}: its cool-down is over (leaving {current}). The prompt cache starts over."


def user_switch_message(current: str, target: str) -> str:
    return (
        f"Model switched from {current} to {target}; the conversation carries over. The prompt cache"
        " starts over on the new model: the next request pays for the whole history again."
    )
