"""One agent definition's raw keys (Claude Code's or OpenCode's dialect) as ``AgentDef`` fields.

Both dialects are accepted in every place; ``mode`` defaults by origin (``.claude/agents`` files are
subagents, the rest ``all``, as in OpenCode). Returns only the fields the raw data sets, so that
``nbagent.json`` entries can be merged over a file's or a built-in's definition. Unknown keys are kept
in ``extra`` and reported; a value of the wrong type is a ``ConfigError`` naming the file and line.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from nbagent.core.errors import ConfigError
from nbagent.ext.frontmatter import read_text
from nbagent.ext.tool_names import COMPANIONS, EDIT_FAMILY, is_pattern, nbagent_tool, split_list, split_spec
from nbagent.permissions.config import parse_rules

Where = Callable[[str | None], str]

# Claude Code's model aliases, as the newest Anthropic models of litellm's price map.
MODEL_ALIASES = {
    "sonnet": "anthropic/claude-sonnet-4-6",
    "opus": "anthropic/claude-opus-4-8",
    "haiku": "anthropic/claude-haiku-4-5",
}
PERMISSION_MODES = {
    "default": "default",
    "acceptEdits": "acceptEdits",
    "plan": "plan",
    "bypass": "bypass",
    "bypassPermissions": "bypass",
}
MODES = ("primary", "subagent", "all")
# Keys read and used (or deliberately cosmetic: ``color``), in any spelling of either dialect.
KNOWN = {
    "name", "description", "mode", "prompt", "model", "temperature", "steps", "maxSteps", "max_steps",
    "maxTurns", "tools", "disallowedTools", "disallowed_tools", "permission", "permissionMode",
    "permission_mode", "skills", "mcpServers", "mcp_servers", "hidden", "disable", "disabled", "color",
}  # fmt: skip
MAX_PROMPT_FILE = 256 * 1024


def parse_fields(
    data: dict[str, Any], *, where: Where, base_dir: Path, allowed_root: Path
) -> tuple[dict[str, Any], list[str]]:
    """``(fields, warnings)`` for the keys present in ``data``."""
    out: dict[str, Any] = {}
    warnings: list[str] = []
    data = {k: v for k, v in data.items() if v is not None or k not in KNOWN}  # `tools:` left empty: unset
    extra = {k: v for k, v in data.items() if k not in KNOWN}
    for key in extra:
        warnings.append(f"{where(key)}: unknown key '{key}' is kept but not used")
    if extra:
        out["extra"] = extra
    if "description" in data:
        out["description"] = _text(data["description"], "description", where)
    if "mode" in data:
        mode = data["mode"]
        if mode not in MODES:
            raise ConfigError(f"{where('mode')}: key 'mode': must be primary, subagent or all, got {mode!r}")
        out["mode"] = mode
    if "prompt" in data:
        out["prompt"] = _prompt(data["prompt"], where, base_dir, allowed_root)
    if "model" in data:
        out["model"] = _model(data["model"], where)
    if "temperature" in data:
        out["temperature"] = _number(data["temperature"], "temperature", where, 0.0, 2.0)
    for key in ("steps", "maxSteps", "max_steps", "maxTurns"):
        if key in data:
            out["max_steps"] = int(_number(data[key], key, where, 1, 10_000, integer=True))
    for key in ("permissionMode", "permission_mode"):
        if key in data:
            value = data[key]
            if value == "dontAsk":
                warnings.append(
                    f"{where(key)}: permissionMode 'dontAsk' is not supported; the session's mode applies"
                )
            elif value not in PERMISSION_MODES:
                raise ConfigError(
                    f"{where(key)}: key '{key}': must be default, acceptEdits, plan or bypassPermissions,"
                    f" got {value!r}"
                )
            else:
                out["permission_mode"] = PERMISSION_MODES[value]
    for key, field in (("hidden", "hidden"), ("disable", "disabled"), ("disabled", "disabled")):
        if key in data:
            if not isinstance(data[key], bool):
                raise ConfigError(f"{where(key)}: key '{key}': must be true or false, got {data[key]!r}")
            out[field] = data[key]
    if "skills" in data:
        out["skills"] = _names(data["skills"], "skills", where)
    for key in ("mcpServers", "mcp_servers"):
        if key in data:
            out["mcp_servers"] = _servers(data[key], key, where)
    permission: dict[str, Any] = {}
    if "permission" in data:
        raw = data["permission"]
        parse_rules(raw, "permission", where("permission"))  # validated now, errors naming the file
        permission = dict(raw)
    if "tools" in data:
        _, spawn, tool_warnings = _tools(data["tools"], where, out)
        warnings += tool_warnings
        if spawn is not None and "task" not in permission:
            permission["task"] = {"*": "deny", **{name: "allow" for name in spawn}}
    for key in ("disallowedTools", "disallowed_tools"):
        if key in data:
            names, _, bad = _tool_list(data[key], key, where)
            warnings += bad
            out["disallowed_tools"] = sorted(set(out.get("disallowed_tools", [])) | _with_companions(names))
    if permission:
        out["permission"] = permission
    return out, warnings


def _text(value: Any, key: str, where: Where) -> str:
    if value is None:
        return ""
    if not isinstance(value, str | int | float) or isinstance(value, bool):
        raise ConfigError(f"{where(key)}: key '{key}': must be text, got {value!r}")
    return " ".join(str(value).split()) if key == "description" else str(value)


def _number(value: Any, key: str, where: Where, low: float, high: float, *, integer: bool = False) -> float:
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    if not ok or (integer and int(value) != value) or not low <= value <= high:
        kind = "a whole number" if integer else "a number"
        raise ConfigError(
            f"{where(key)}: key '{key}': must be {kind} from {low:g} to {high:g}, got {value!r}"
        )
    return float(value)


def _model(value: Any, where: Where) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{where('model')}: key 'model': must be a model name or 'inherit', got {value!r}")
    name = value.strip()
    if name == "inherit":
        return None
    return MODEL_ALIASES.get(name, name)


def _prompt(value: Any, where: Where, base_dir: Path, allowed_root: Path) -> str:
    text = _text(value, "prompt", where).strip()
    if not (text.startswith("{file:") and text.endswith("}")):
        return text
    target = Path(os.path.expanduser(text[len("{file:") : -1].strip()))
    path = Path(os.path.realpath(target if target.is_absolute() else base_dir / target))
    root = Path(os.path.realpath(allowed_root))
    if not path.is_relative_to(root):
        raise ConfigError(
            f"{where('prompt')}: key 'prompt': {path} is outside {root}",
            "A prompt file must live inside the folder tree that defines the agent.",
        )
    if not path.is_file():
        raise ConfigError(f"{where('prompt')}: key 'prompt': {path} does not exist", "Fix the path.")
    return read_text(path).strip()


def _names(value: Any, key: str, where: Where) -> list[str]:
    if isinstance(value, str):
        return split_list(value)
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return [v.strip() for v in value if v.strip()]
    raise ConfigError(f"{where(key)}: key '{key}': must be a list of names, got {value!r}")


def _servers(value: Any, key: str, where: Where) -> list[str | dict[str, Any]]:
    if isinstance(value, str):
        return list(split_list(value))
    if isinstance(value, dict):  # {name: definition}
        return [{str(k): v} for k, v in value.items()]
    if isinstance(value, list) and all(isinstance(v, str | dict) for v in value):
        return list(value)
    raise ConfigError(f"{where(key)}: key '{key}': must be a list of server names or definitions")


def _with_companions(names: set[str]) -> set[str]:
    out = set(names)
    for name in names:
        out.update(COMPANIONS.get(name, ()))
    return out


def _tool_list(value: Any, key: str, where: Where) -> tuple[set[str], list[str] | None, list[str]]:
    """Names (mapped), the subagents a ``Task(a, b)`` entry names (None: no restriction), warnings."""
    if not isinstance(value, str) and not (
        isinstance(value, list) and all(isinstance(i, str) for i in value)
    ):
        raise ConfigError(
            f"{where(key)}: key '{key}': must be tool names (a list, a comma-separated string, or an"
            f" object of name -> true/false), got {value!r}"
        )
    # YAML splits [Read, Task(a, b)] inside the parentheses: join and split again at the top level
    items = split_list(value if isinstance(value, str) else ", ".join(value))
    names: set[str] = set()
    spawn: list[str] | None = None
    warnings: list[str] = []
    for item in items:
        base, arg = split_spec(item)
        name, known = nbagent_tool(base) if arg is not None else nbagent_tool(item)
        if not known:
            warnings.append(f"{where(key)}: tool '{item}' is not an nbagent tool; kept as '{name}'")
        if arg is not None and name == "task":
            spawn = [*(spawn or []), *split_list(arg)]
        elif arg is not None:
            warnings.append(
                f"{where(key)}: '{item}' is read as tool '{name}'; restrict its inputs with 'permission'"
            )
        names.add(name)
    return names, spawn, warnings


def _tools(value: Any, where: Where, out: dict[str, Any]) -> tuple[set[str], list[str] | None, list[str]]:
    """``tools``: an allow-list (Claude Code) or an object of name -> bool (OpenCode)."""
    if not isinstance(value, dict):
        names, spawn, warnings = _tool_list(value, "tools", where)
        out["tools"] = sorted(_with_companions(names))
        return names, spawn, warnings
    warnings = []
    enabled: set[str] = set()
    disabled: set[str] = set()
    everything_off = False
    for raw_name, on in value.items():
        if not isinstance(on, bool):
            raise ConfigError(f"{where('tools')}: key 'tools.{raw_name}': must be true or false, got {on!r}")
        if raw_name == "*":
            everything_off = not on
            continue
        name, known = nbagent_tool(str(raw_name))
        if not known:
            warnings.append(f"{where('tools')}: tool '{raw_name}' is not an nbagent tool; kept as '{name}'")
        group = set(EDIT_FAMILY) if name in EDIT_FAMILY else {name}
        (enabled if on else disabled).update(_with_companions(group) if not is_pattern(name) else group)
    if everything_off:
        out["tools"] = sorted(enabled - disabled)
    if disabled:
        out["disallowed_tools"] = sorted(disabled)
    return enabled, None, warnings
