"""Model metadata and prices, read from the map litellm ships, without importing litellm.

litellm bundles ``model_prices_and_context_window_backup.json`` (context windows, output limits,
per-token prices, capabilities). We locate it with ``importlib.util.find_spec`` (no import),
read it once, and look entries up lazily: each model's key opens a line as ``"name": {``, so a
lookup is a substring search plus one small ``raw_decode`` instead of parsing 3 MB of JSON.
Lookups follow litellm's order ("provider/name", then "name" from the same provider; names
compared case-insensitively), and :func:`cost` follows litellm's ``cost_per_token`` for chat
usage: cached reads and writes are part of ``input_tokens``, ``*_above_<N>k_tokens`` prices apply
when the prompt exceeds N, and DeepSeek-style ``off_peak_pricing`` applies inside its windows.
"""

from __future__ import annotations

import importlib.util
import json
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, tzinfo
from functools import cache
from pathlib import Path
from typing import Any

from nbagent.core.messages import Usage

PRICE_MAP = "model_prices_and_context_window_backup.json"


@dataclass(frozen=True)
class ModelInfo:
    key: str  # the entry's name in the map
    provider: str | None
    mode: str | None  # "chat", "responses", "embedding", ...
    max_input_tokens: int | None
    max_output_tokens: int | None
    input_cost_per_token: float | None
    output_cost_per_token: float | None
    cache_read_cost_per_token: float | None
    cache_write_cost_per_token: float | None
    supports_vision: bool
    supports_prompt_caching: bool
    raw: Mapping[str, Any] = field(repr=False, compare=False)

    @property
    def chat_completions(self) -> bool:
        """Whether the model is served on /chat/completions (not only on the Responses API)."""
        if self.mode == "responses":
            return False
        endpoints = self.raw.get("supported_endpoints")
        return not isinstance(endpoints, list) or "/v1/chat/completions" in endpoints


class _PriceMap:
    """The JSON text, with entries decoded on demand and cached."""

    def __init__(self, text: str) -> None:
        self._text = text
        self._lower = text.lower() if text.isascii() else None  # same offsets only for ASCII
        self._full: dict[str, Any] | None = None if self._lower is not None else json.loads(text)
        self._full_lower: dict[str, str] = {k.lower(): k for k in self._full or {}}
        self._decoder = json.JSONDecoder()
        self._entries: dict[str, tuple[str, dict[str, Any]] | None] = {}
        self._lock = threading.Lock()

    def get(self, name: str) -> tuple[str, dict[str, Any]] | None:
        """(key, entry) for ``name``, exact or case-insensitive."""
        folded = name.lower()
        with self._lock:
            if folded not in self._entries:
                self._entries[folded] = self._find(folded)
            return self._entries[folded]

    def _find(self, folded: str) -> tuple[str, dict[str, Any]] | None:
        if self._full is not None:
            key = self._full_lower.get(folded)
            return None if key is None else (key, self._full[key])
        assert self._lower is not None
        needle = f"{json.dumps(folded)}: {{"
        at = self._lower.find(needle)
        while at >= 0:
            line = self._lower.rfind("\n", 0, at) + 1
            if not self._lower[line:at].strip():  # the key opens its line
                start = at + len(needle) - 1
                entry, _ = self._decoder.raw_decode(self._text, start)
                if isinstance(entry, dict) and "litellm_provider" in entry:  # a model, not a nested block
                    return json.loads(self._text[at : start - 2]), entry
            at = self._lower.find(needle, at + 1)
        return None


def price_map_path() -> Path | None:
    """The JSON file inside the installed litellm package (located without importing it)."""
    try:
        spec = importlib.util.find_spec("litellm")
    except (ImportError, ValueError):
        return None
    for location in (spec.submodule_search_locations or []) if spec else []:
        path = Path(location) / PRICE_MAP
        if path.is_file():
            return path
    return None


@cache
def _price_map() -> _PriceMap | None:
    path = price_map_path()
    if path is None:
        return None
    try:
        return _PriceMap(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _provider_matches(entry: Mapping[str, Any], provider: str | None) -> bool:
    """litellm's rule: an entry of another provider does not price this one (a few families excepted)."""
    owner = entry.get("litellm_provider")
    if not provider or owner is None or owner == provider:
        return True
    if not isinstance(owner, str):
        return False
    for family in ("vertex_ai", "fireworks_ai", "bedrock"):
        if provider.startswith(family) and owner.startswith(family):
            return True
    return provider in ("litellm_proxy", "github", "nadir") or (
        provider == "azure_ai" and owner in ("azure", "openai")
    )


def _int(value: Any) -> int | None:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _float(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def _or(value: Any, fallback: float) -> float:
    """``value`` as a price when it is one (0.0 included), else ``fallback``."""
    parsed = _float(value)
    return fallback if parsed is None else parsed


def _opt(value: Any, fallback: float | None) -> float | None:
    parsed = _float(value)
    return fallback if parsed is None else parsed


@cache
def model_info(model: str) -> ModelInfo | None:
    """Metadata for a litellm model string (``provider/name`` or a bare name); None if unknown."""
    prices = _price_map()
    if prices is None or not model:
        return None
    provider, sep, rest = model.partition("/")
    candidates = [model, rest] if sep and rest else [model]
    for name in candidates:
        found = prices.get(name)
        if found is None or not _provider_matches(found[1], provider if sep else None):
            continue
        key, raw = found
        return ModelInfo(
            key=key,
            provider=raw.get("litellm_provider") if isinstance(raw.get("litellm_provider"), str) else None,
            mode=raw.get("mode") if isinstance(raw.get("mode"), str) else None,
            max_input_tokens=_int(raw.get("max_input_tokens")),
            max_output_tokens=_int(raw.get("max_output_tokens")) or _int(raw.get("max_tokens")),
            input_cost_per_token=_float(raw.get("input_cost_per_token")),
            output_cost_per_token=_float(raw.get("output_cost_per_token")),
            cache_read_cost_per_token=_float(raw.get("cache_read_input_token_cost")),
            cache_write_cost_per_token=_float(raw.get("cache_creation_input_token_cost")),
            supports_vision=raw.get("supports_vision") is True,
            supports_prompt_caching=raw.get("supports_prompt_caching") is True,
            raw=raw,
        )
    return None


# -- cost -----------------------------------------------------------------------------------

_RATE_KEYS = (
    "input_cost_per_token",
    "output_cost_per_token",
    "cache_read_input_token_cost",
    "cache_creation_input_token_cost",
)
_THRESHOLD = re.compile(r"^(?:" + "|".join(_RATE_KEYS) + r")_above_(\d+(?:\.\d+)?k?)_tokens$")
_INCLUSIVE_THRESHOLD_PROVIDERS = frozenset({"xai"})  # billed at the higher tier from the threshold on
_WEEKDAYS = {"mon": 1, "tue": 2, "wed": 3, "thu": 4, "fri": 5, "sat": 6, "sun": 7}


def _threshold_tokens(text: str) -> float:
    return float(text.rstrip("k")) * (1000 if text.endswith("k") else 1)


def _in_window(window: str, now: time) -> bool:
    """``HH:MM-HH:MM`` in UTC, start inclusive, end exclusive; may wrap midnight; start == end is all day."""
    try:
        start_text, end_text = window.split("-")
        start = datetime.strptime(start_text.strip(), "%H:%M").time()
        end = datetime.strptime(end_text.strip(), "%H:%M").time()
    except ValueError:
        return False
    return start <= now < end if start < end else (now >= start or now < end)


def _windows(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    return [w for w in value if isinstance(w, str)] if isinstance(value, list) else []


def _weekday(value: Any) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return value if 1 <= value <= 7 else None
    return _WEEKDAYS.get(value.strip().lower()[:3]) if isinstance(value, str) else None


def _calendar(name: Any) -> tzinfo:
    if isinstance(name, str) and name.strip():
        try:
            from zoneinfo import ZoneInfo

            return ZoneInfo(name.strip())
        except (ValueError, KeyError, OSError):
            return UTC
    return UTC


def _off_peak(raw: Mapping[str, Any], now: datetime) -> Mapping[str, Any] | None:
    """The model's ``off_peak_pricing`` block when ``now`` falls inside one of its windows."""
    block = raw.get("off_peak_pricing")
    if not isinstance(block, Mapping):
        return None
    clock = now.time()
    if any(_in_window(w, clock) for w in _windows(block.get("hours_utc"))):
        return block
    rules = block.get("windows")
    for rule in rules if isinstance(rules, list) else []:
        if not isinstance(rule, Mapping):
            continue
        days = rule.get("weekdays")
        if days is not None:
            if not isinstance(days, list):
                continue
            allowed = {d for d in map(_weekday, days) if d is not None}
            if now.astimezone(_calendar(block.get("weekday_timezone"))).isoweekday() not in allowed:
                continue
        if any(_in_window(w, clock) for w in _windows(rule.get("hours_utc"))):
            return block
    return None


def cost(model: str, usage: Usage, *, now: datetime | None = None) -> float | None:
    """USD for one step, as litellm's ``cost_per_token`` bills chat usage; None when the model has no prices.

    ``usage.input_tokens`` includes cache reads and writes (the convention both providers report in).
    """
    info = model_info(model)
    if info is None or (info.input_cost_per_token is None and info.output_cost_per_token is None):
        return None
    raw = info.raw
    prompt_rate = info.input_cost_per_token or 0.0
    output_rate = info.output_cost_per_token or 0.0
    read_rate = info.cache_read_cost_per_token
    write_rate = info.cache_write_cost_per_token
    inclusive = info.provider in _INCLUSIVE_THRESHOLD_PROVIDERS
    thresholds = sorted(
        {m.group(1) for k in raw if (m := _THRESHOLD.match(k)) is not None}, key=_threshold_tokens
    )
    for label in thresholds:
        limit = _threshold_tokens(label)
        if usage.input_tokens > limit or (inclusive and usage.input_tokens == limit):
            suffix = f"_above_{label}_tokens"
            prompt_rate = _or(raw.get(f"input_cost_per_token{suffix}"), prompt_rate)
            output_rate = _or(raw.get(f"output_cost_per_token{suffix}"), output_rate)
            read_rate = _opt(raw.get(f"cache_read_input_token_cost{suffix}"), read_rate)
            write_rate = _opt(raw.get(f"cache_creation_input_token_cost{suffix}"), write_rate)
    off_peak = _off_peak(raw, (now or datetime.now(UTC)).astimezone(UTC)) or {}
    # A model without cache prices bills cached tokens as ordinary input.
    plain_rate = _or(off_peak.get("input_cost_per_token"), prompt_rate)
    read_price = _or(off_peak.get("cache_read_input_token_cost"), _or(read_rate, plain_rate))
    write_price = _or(off_peak.get("cache_creation_input_token_cost"), _or(write_rate, plain_rate))
    output_rate = _or(off_peak.get("output_cost_per_token"), output_rate)
    read, write = usage.cache_read_tokens, usage.cache_write_tokens
    text = max(usage.input_tokens - read - write, 0)
    return text * plain_rate + read * read_price + write * write_price + usage.output_tokens * output_rate


def load_seconds() -> float:
    """Time to load the map from scratch (for benchmarks and the report)."""
    import time as _time

    _price_map.cache_clear()
    model_info.cache_clear()
    start = _time.perf_counter()
    _price_map()
    model_info("anthropic/claude-sonnet-4-5")
    return _time.perf_counter() - start
