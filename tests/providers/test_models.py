"""Model metadata and prices from litellm's bundled map, read without importing litellm."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime

import pytest

from nbagent.core.messages import Usage
from nbagent.providers import models


def test_lookup_by_provider_and_name() -> None:
    info = models.model_info("anthropic/claude-sonnet-4-5")
    assert info is not None
    assert (info.key, info.provider, info.mode) == ("claude-sonnet-4-5", "anthropic", "chat")
    assert (info.max_input_tokens, info.max_output_tokens) == (200_000, 64_000)
    assert info.input_cost_per_token == pytest.approx(3e-6)
    assert info.output_cost_per_token == pytest.approx(15e-6)
    assert info.cache_read_cost_per_token == pytest.approx(0.3e-6)
    assert info.cache_write_cost_per_token == pytest.approx(3.75e-6)
    assert info.supports_vision and info.supports_prompt_caching and info.chat_completions
    # "provider/name" is tried first, as litellm does: DeepSeek's own entry, not the bare one.
    deepseek = models.model_info("deepseek/deepseek-chat")
    assert deepseek is not None and deepseek.key == "deepseek/deepseek-chat"
    assert models.model_info("gpt-4.1") == models.model_info("openai/gpt-4.1")
    assert models.model_info("openai/GPT-4.1") == models.model_info("openai/gpt-4.1")  # names fold case


def test_unknown_or_other_providers_model() -> None:
    assert models.model_info("openai/scripted") is None
    assert models.model_info("") is None
    # Another provider's entry does not describe this one (litellm's provider match).
    assert models.model_info("groq/claude-sonnet-4-5") is None
    assert models.model_info("hosted_vllm/gpt-4.1") is None
    assert models.cost("openai/scripted", Usage(input_tokens=10, output_tokens=5)) is None


def test_responses_only_models_are_flagged() -> None:
    info = models.model_info("openai/o3-pro")
    assert info is not None and not info.chat_completions


def test_every_entry_is_found_as_json_parses_it() -> None:
    """The lazy lookup (substring search + raw_decode) agrees with a full parse for every model."""
    path = models.price_map_path()
    assert path is not None
    full = json.loads(path.read_text(encoding="utf-8"))
    prices = models._price_map()
    assert prices is not None
    checked = 0
    for key, entry in full.items():
        if not isinstance(entry, dict) or "litellm_provider" not in entry:
            continue  # the spec sample and litellm's own rule tables
        assert prices.get(key) == (key, entry), key
        checked += 1
    assert checked > 4000


def test_loads_without_litellm() -> None:
    """Model limits come from our own map, never by importing litellm (its speed: bench/model_info.py)."""
    code = (
        "import sys; from nbagent.providers import models; "
        "info = models.model_info('anthropic/claude-sonnet-4-5'); "
        "print(info.max_output_tokens, 'litellm' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["64000", "False"]


USAGES = [
    Usage(input_tokens=1318, output_tokens=27),
    Usage(input_tokens=1318, output_tokens=27, cache_read_tokens=857),
    Usage(input_tokens=1318, output_tokens=27, cache_write_tokens=857),
    Usage(input_tokens=250_000, output_tokens=1000, cache_read_tokens=100_000, cache_write_tokens=20_000),
    Usage(input_tokens=300_000, output_tokens=5, cache_write_tokens=300_000),
    Usage(input_tokens=200_000, output_tokens=5),  # on a 200k threshold: inclusive for xAI only
    Usage(input_tokens=0, output_tokens=0),
]


def test_cost_matches_litellm_for_native_providers() -> None:
    from nbagent.providers.litellm_provider import step_cost

    path = models.price_map_path()
    assert path is not None
    full = json.loads(path.read_text(encoding="utf-8"))
    native = {"anthropic", "openai", "deepseek", "groq", "xai", "openrouter", "hosted_vllm", "lm_studio"}
    names = []
    for key, entry in full.items():
        provider = entry.get("litellm_provider") if isinstance(entry, dict) else None
        if provider in native and entry.get("mode") in ("chat", "responses"):
            names.append(key if key.startswith(f"{provider}/") else f"{provider}/{key}")
    assert len(names) > 150
    priced = 0
    for name in names:
        for usage in USAGES:
            ours, theirs = models.cost(name, usage), step_cost(name, usage)
            if ours is None:
                assert not theirs, name  # litellm bills 0 for a model with no prices
                continue
            assert theirs is not None and ours == pytest.approx(theirs, rel=1e-9, abs=1e-15), (name, usage)
            priced += 1
    assert priced > 1000


def test_cost_worked_example() -> None:
    # claude-sonnet-4-5: 461 plain input at $3/M, 857 cache writes at $3.75/M, 27 output at $15/M.
    usage = Usage(input_tokens=1318, output_tokens=27, cache_write_tokens=857)
    assert models.cost("anthropic/claude-sonnet-4-5", usage) == pytest.approx(
        461 * 3e-6 + 857 * 3.75e-6 + 27 * 15e-6
    )
    # Above 200k prompt tokens the model's "_above_200k_tokens" prices apply to every token.
    info = models.model_info("anthropic/claude-sonnet-4-5")
    assert info is not None
    big = Usage(input_tokens=300_000, output_tokens=10)
    above = info.raw.get("input_cost_per_token_above_200k_tokens")
    if above is not None:
        assert models.cost("anthropic/claude-sonnet-4-5", big) == pytest.approx(
            300_000 * above + 10 * info.raw["output_cost_per_token_above_200k_tokens"]
        )


def test_off_peak_prices_apply_inside_their_windows() -> None:
    name = next(
        (n for n in ("deepseek/deepseek-v4-flash", "deepseek/deepseek-flash") if models.model_info(n)), None
    )
    assert name is not None, "the pinned litellm's price map has an off-peak priced model"
    info = models.model_info(name)
    assert info is not None
    block = info.raw["off_peak_pricing"]
    usage = Usage(input_tokens=1000, output_tokens=100, cache_read_tokens=400)
    saturday = datetime(2025, 6, 7, 12, 0, tzinfo=UTC)  # DeepSeek's weekend rule covers the whole day
    off = models.cost(name, usage, now=saturday)
    assert off == pytest.approx(
        600 * block["input_cost_per_token"]
        + 400 * block["cache_read_input_token_cost"]
        + 100 * block["output_cost_per_token"]
    )
    weekday_peak = datetime(2025, 6, 4, 8, 0, tzinfo=UTC)  # Wednesday 08:00 UTC: outside the windows
    peak = models.cost(name, usage, now=weekday_peak)
    assert peak == pytest.approx(
        600 * (info.input_cost_per_token or 0)
        + 400 * (info.cache_read_cost_per_token or 0)
        + 100 * (info.output_cost_per_token or 0)
    )
    assert peak != off
