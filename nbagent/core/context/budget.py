"""The token budget of a request: the model's window, a reserve for its answer, and estimates.

Limits come from the model's metadata (litellm's model map, read without importing litellm), or
from ``"models"`` overrides in the configuration; an unknown model gets conservative defaults.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from nbagent.core.config import Config

DEFAULT_CONTEXT = 32_000
DEFAULT_OUTPUT = 4_096
MAX_RESERVE = 16_000
CHARS_PER_TOKEN = 4.0


@dataclass(frozen=True)
class Limits:
    context: int
    output: int
    reserve: int  # tokens kept free for the model's answer
    known: bool  # False when the defaults were used

    @property
    def usable(self) -> int:
        """Tokens the prompt may take."""
        return max(1, self.context - self.reserve)


def model_limits(model: str, config: Config) -> Limits:
    from nbagent.providers.models import model_info

    override = config.models.get(model)
    info = model_info(model)
    context = (override and override.context) or (info and info.max_input_tokens) or None
    output = (override and override.output) or (info and info.max_output_tokens) or None
    known = context is not None
    context = context or DEFAULT_CONTEXT
    output = min(output or DEFAULT_OUTPUT, context // 2)
    reserve = config.context.reserve or min(output, MAX_RESERVE)
    return Limits(context=context, output=output, reserve=min(reserve, context // 2), known=known)


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
