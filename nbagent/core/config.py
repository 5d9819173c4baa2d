"""One configuration model, layered: defaults < user < project < (notebook) < explicit overrides.

Files: ``~/.config/nbagent/nbagent.json`` (user) and ``nbagent.json`` at the project root. A file
that does not parse or validate is an error naming the file and the key, never a silent default.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from nbagent.core.errors import ConfigError

Mode = Literal["default", "acceptEdits", "plan", "bypass"]
CONFIG_NAME = "nbagent.json"


def user_config_dir() -> Path:
    base = os.environ.get("NBAGENT_CONFIG_DIR")
    if base:
        return Path(base)
    xdg = os.environ.get("XDG_CONFIG_HOME")
    return (Path(xdg) if xdg else Path.home() / ".config") / "nbagent"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RetryConfig(_Strict):
    max_attempts: int = Field(5, ge=1, le=20, description="Attempts per model step, the first included.")
    base_delay: float = Field(1.0, ge=0, description="Seconds before the first retry; doubles each time.")
    max_delay: float = Field(60.0, ge=0, description="Cap on a single wait, retry-after included.")


class ModelLimits(_Strict):
    """One model's settings (``"models": {"openai/backup": {...}}``)."""

    context: int | None = Field(None, gt=0, description="Context window in tokens.")
    output: int | None = Field(None, gt=0, description="Maximum output tokens.")
    api_base: str | None = Field(
        None, description="This model's endpoint (overrides the top-level api_base)."
    )
    api_key_env: str | None = Field(
        None,
        description="Environment variable holding this model's API key (the key itself is never written).",
    )
    tools: Literal["auto", "native", "text"] = Field(
        "auto",
        description="How the model calls tools: native tool calling, or a text protocol written in its replies"
        " (models without tool support); auto switches to text when the server rejects tools.",
    )


class BudgetConfig(_Strict):
    """Spending limits: a warning when one is near, a clear stop when it is reached."""

    session_cost: float | None = Field(None, gt=0, description="USD per session (where prices are known).")
    session_tokens: int | None = Field(None, gt=0, description="Tokens (input + output) per session.")
    daily_cost: float | None = Field(None, gt=0, description="USD per day, all sessions of this user.")
    daily_tokens: int | None = Field(None, gt=0, description="Tokens per day, all sessions of this user.")
    warn_at: float = Field(0.8, gt=0, le=1, description="Warn when this fraction of a budget is spent.")


class ContextConfig(_Strict):
    auto_compact: bool = Field(
        True, description="Compact the session when the context fills; off means an error at the limit."
    )
    prune: bool = Field(True, description="Replace old tool outputs by a marker before compacting.")
    reserve: int | None = Field(
        None,
        gt=0,
        description="Tokens kept free for the model's answer (default: its output limit, at most 16k).",
    )


class ShellConfig(_Strict):
    pass_env: list[str] = Field(
        default_factory=list,
        description="Environment variables that commands still see although their names look secret"
        " (names or fnmatch patterns, e.g. GITHUB_TOKEN). Provider API keys and other secret-named"
        " variables are removed from every command's environment unless listed here.",
    )
    max_output_mb: float = Field(
        50, gt=0, description="Cap on one command's saved output, in MB; at the cap the command is stopped."
    )


class SubagentsConfig(_Strict):
    """Subagents (the ``task`` tool)."""

    max_parallel: int = Field(4, ge=1, le=32, description="task calls of one step that run at the same time.")
    max_depth: int = Field(
        2,
        ge=1,
        le=8,
        description="Levels of subagents: 1 = children cannot start their own; a child starts"
        " grandchildren only when its agent allows the task tool.",
    )


class MemoryConfig(_Strict):
    """Auto-memory: durable facts the agent saves for this project, outside the repository."""

    auto: bool = Field(
        False,
        description="Let the agent save facts (commands that work, conventions, pitfalls) to a per-project"
        " file in nbagent's data folder, loaded at session start; every write is shown.",
    )
    max_chars: int = Field(8_000, ge=500, le=100_000, description="Characters of it loaded per session.")


class Config(_Strict):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"title": "nbagent configuration"})

    schema_: str | None = Field(None, alias="$schema")
    model: str | None = Field(None, description="litellm model string, e.g. anthropic/claude-sonnet-4-5.")
    api_base: str | None = Field(None, description="Base URL of the model endpoint (local servers, proxies).")
    provider: Literal["auto", "native", "litellm"] = Field(
        "auto",
        description="How models are reached: auto (a direct HTTP client for OpenAI-compatible and Anthropic"
        " APIs, litellm for every other provider), or litellm for all. Env NBAGENT_PROVIDER overrides.",
    )
    max_steps: int = Field(100, ge=1, description="Model steps per turn before the loop stops.")
    retry: RetryConfig = Field(default_factory=RetryConfig)
    models: dict[str, ModelLimits] = Field(
        default_factory=dict, description="Per-model settings: limits, endpoint, key variable, tool protocol."
    )
    fallback: list[str] = Field(
        default_factory=list,
        description="Models to continue the same turn on, in order, when the current one hits a usage limit,"
        " a quota, a sustained rate limit, an overload or an outage that retries did not clear.",
    )
    fallback_cooldown: float = Field(
        900.0,
        ge=0,
        description="Seconds before switching back to the first model after a failover (a reset time the"
        " provider gives wins).",
    )
    budget: BudgetConfig = Field(default_factory=BudgetConfig)
    mode: Mode = "default"
    store: str | None = Field(
        None, description="Path of the session store (SQLite); default: the user data dir."
    )
    context: ContextConfig = Field(default_factory=ContextConfig)
    shell: ShellConfig = Field(default_factory=ShellConfig)
    memory: MemoryConfig = Field(default_factory=MemoryConfig)
    subagents: SubagentsConfig = Field(default_factory=SubagentsConfig)
    # Sections owned by other domains; validated by their own models where they are used.
    permission: dict[str, Any] = Field(default_factory=dict)
    agent: dict[str, Any] = Field(default_factory=dict)
    sandbox: dict[str, Any] = Field(default_factory=dict)
    hooks: dict[str, Any] = Field(default_factory=dict)
    mcp: dict[str, Any] = Field(default_factory=dict)  # MCP servers: ext/mcp_config.py
    # issue 14 (M3): {"disabled": [names], "dirs": [Claude Code plugin folders]}; ext/plugins.py
    plugins: dict[str, Any] = Field(default_factory=dict)


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _read(path: Path) -> dict[str, Any]:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot be read ({exc.strerror or exc})", "Fix its permissions.") from exc
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ConfigError(
            f"{path}: not valid UTF-8 (byte 0x{raw[exc.start]:02x} on line {line})",
            "Save the file as UTF-8, or move it away.",
        ) from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"{path}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})",
            "Fix the file or move it away.",
        ) from exc
    except RecursionError:
        raise ConfigError(
            f"{path}: nested too deeply to be a configuration", "Fix the file or move it away."
        ) from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a JSON object")
    if _too_deep(data):
        raise ConfigError(
            f"{path}: nested more than {MAX_CONFIG_DEPTH} levels deep; no configuration is",
            "Fix the file or move it away.",
        )
    _validate(data, str(path))
    return data


MAX_CONFIG_DEPTH = 64  # far beyond any real configuration; deeper is an accident or an attack


def _too_deep(data: Any) -> bool:
    """Whether ``data`` nests lists/objects more than ``MAX_CONFIG_DEPTH`` levels (checked without recursion)."""
    stack: list[tuple[Any, int]] = [(data, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_CONFIG_DEPTH:
            return True
        children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else ()
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False


def _validate(data: dict[str, Any], source: str) -> Config:
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"key '{'.'.join(str(p) for p in err['loc']) or '(top level)'}': {err['msg']}"
            for err in exc.errors()
        )
        raise ConfigError(f"{source}: {problems}", "See `nbagent config schema` for the valid keys.") from exc


def config_files(root: Path) -> list[Path]:
    return [p for p in (user_config_dir() / CONFIG_NAME, root / CONFIG_NAME) if p.is_file()]


def load_config(root: Path, overrides: dict[str, Any] | None = None) -> Config:
    """Merge the layers for a project rooted at ``root``."""
    merged: dict[str, Any] = {}
    for path in config_files(root):
        merged = _merge(merged, _read(path))
    if overrides:
        merged = _merge(merged, {k: v for k, v in overrides.items() if v is not None})
    return _validate(merged, "configuration")


def config_json_schema() -> dict[str, Any]:
    return Config.model_json_schema(by_alias=True)
