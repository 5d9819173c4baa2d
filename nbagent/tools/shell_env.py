"""The environment shell commands get: no provider key, no secret-named variable, no session key.

A model can be steered by what it reads (prompt injection), so nothing that unlocks an account goes
to the commands it writes, inside the sandbox or out: variables whose names look secret
(``SECRET_NAME_PATTERNS``), every provider key litellm reads (``PROVIDER_KEYS``), URLs with a
password in them (``postgres://user:pw@host``) and any variable holding the session's own API key
(``--api-key``) are removed. ``config.shell.pass_env`` (names or fnmatch patterns) lets named ones
through; the session's key never passes.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

SECRET_NAME_PATTERNS = (
    "*_API_KEY", "*_APIKEY", "*API_KEY*", "*APIKEY*", "*_TOKEN", "*_TOKEN_*", "*_SECRET*", "*SECRET_KEY*",
    "*PASSWORD*", "*PASSWD*", "*_CREDENTIALS*", "*_PRIVATE_KEY*", "*_ACCESS_KEY*", "*_AUTH_TOKEN*",
    "AWS_SESSION_TOKEN", "AWS_SECRET_ACCESS_KEY", "NBAGENT_*KEY*", "TOKEN", "SECRET", "PASSWORD",
)  # fmt: skip
PROVIDER_KEYS = frozenset(
    {"OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY", "GOOGLE_API_KEY", "MISTRAL_API_KEY",
     "GROQ_API_KEY", "DEEPSEEK_API_KEY", "OPENROUTER_API_KEY", "AZURE_API_KEY", "AZURE_OPENAI_API_KEY",
     "AZURE_AD_TOKEN", "HF_TOKEN", "HUGGINGFACE_API_KEY", "HUGGING_FACE_HUB_TOKEN", "COHERE_API_KEY",
     "CO_API_KEY", "TOGETHERAI_API_KEY", "TOGETHER_API_KEY", "FIREWORKS_API_KEY", "FIREWORKS_AI_API_KEY",
     "PERPLEXITYAI_API_KEY", "PERPLEXITY_API_KEY", "XAI_API_KEY", "CEREBRAS_API_KEY", "REPLICATE_API_KEY",
     "REPLICATE_API_TOKEN", "VOYAGE_API_KEY", "AI21_API_KEY", "NVIDIA_NIM_API_KEY", "DATABRICKS_TOKEN",
     "VERTEXAI_CREDENTIALS", "GOOGLE_APPLICATION_CREDENTIALS", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
     "AWS_SESSION_TOKEN", "AWS_BEARER_TOKEN_BEDROCK", "WATSONX_APIKEY", "WATSONX_TOKEN", "CLOUDFLARE_API_KEY",
     "OLLAMA_API_KEY", "LITELLM_API_KEY", "LITELLM_MASTER_KEY", "NBAGENT_API_KEY"}
)  # fmt: skip
# scheme://user:password@host — a connection string with its password in it.
_URL_WITH_PASSWORD = re.compile(r"[a-z][a-z0-9+.-]*://[^/\s:@]*:[^/\s@]+@", re.IGNORECASE)
DEFAULT_MAX_OUTPUT_BYTES = 50_000_000


def _no_notes() -> list[str]:
    return []


@dataclass(frozen=True)
class ShellOptions:
    """What a session tells its shell commands: which secret-looking variables pass, which values
    never do, the cap on one command's output, and what to check once a command has ended."""

    pass_env: tuple[str, ...] = ()
    hidden_values: tuple[str, ...] = field(default=(), repr=False)
    max_output_bytes: int = DEFAULT_MAX_OUTPUT_BYTES
    # Called once after each command ends (the sandbox guard); returns notes for the model.
    after_command: Callable[[], list[str]] = _no_notes


def looks_secret(name: str, value: str) -> bool:
    upper = name.upper()
    if upper in PROVIDER_KEYS or any(fnmatch.fnmatchcase(upper, p) for p in SECRET_NAME_PATTERNS):
        return True
    return bool(_URL_WITH_PASSWORD.search(value))


def _passes(name: str, patterns: Iterable[str]) -> bool:
    return any(fnmatch.fnmatchcase(name, p) for p in patterns)


def scrubbed_env(environ: Mapping[str, str], options: ShellOptions) -> dict[str, str]:
    """``environ`` without secrets (see the module docstring)."""
    hidden = [v for v in options.hidden_values if v]
    out: dict[str, str] = {}
    for name, value in environ.items():
        if any(secret in value for secret in hidden):
            continue
        if looks_secret(name, value) and not _passes(name, options.pass_env):
            continue
        out[name] = value
    return out
