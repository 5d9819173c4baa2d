"""Validation of the permission, agent, sandbox and hooks sections of ``nbagent.json``.

``Config`` keeps these sections as raw dicts (merged from the user and project files). Errors here
name the file and the key: the merged value is validated first, and on failure each config file's own
section is validated to find the one at fault.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, TypeVar, cast

from pydantic import BaseModel, ValidationError

from nbagent.core.config import config_files
from nbagent.core.errors import ConfigError
from nbagent.permissions.defaults import KEY_ALIASES

Action = Literal["allow", "ask", "deny"]
ACTIONS: tuple[Action, ...] = ("allow", "ask", "deny")
HINT = 'Each permission key takes "allow", "ask" or "deny", or an object of pattern -> action.'

# key -> [(pattern, action), ...] in the order written: the last matching pattern wins.
Rules = dict[str, list[tuple[str, Action]]]

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)
_MISSING = object()


def _action(value: Any, where: str, source: str) -> Action:
    if value not in ACTIONS:
        raise ConfigError(f'{source}: key \'{where}\': must be "allow", "ask" or "deny", got {value!r}', HINT)
    return cast(Action, value)


def parse_rules(raw: Any, where: str, source: str) -> Rules:
    """Validate a permission section in OpenCode's shape; ``where`` is the key path (``permission``)."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: key '{where}': must be an object of tool -> rule, got {raw!r}", HINT)
    out: Rules = {}
    for key, value in raw.items():
        if not isinstance(key, str) or not key.strip():
            raise ConfigError(
                f"{source}: key '{where}': tool names must be non-empty strings, got {key!r}", HINT
            )
        name = KEY_ALIASES.get(key, key)
        rules: list[tuple[str, Action]]
        if isinstance(value, str):
            rules = [("*", _action(value, f"{where}.{key}", source))]
        elif isinstance(value, dict):
            rules = []
            for pattern, action in value.items():
                at = f"{where}.{key}.{pattern}"
                if not isinstance(pattern, str) or not pattern.strip():
                    raise ConfigError(f"{source}: key '{at}': a pattern must be a non-empty string", HINT)
                if pattern.startswith("!"):
                    raise ConfigError(
                        f"{source}: key '{at}': negated patterns ('!') are not supported",
                        "Write the exception as its own rule after the broader one: the last match wins.",
                    )
                _check_pattern(name, pattern, at, source)
                rules.append((pattern, _action(action, at, source)))
        else:
            raise ConfigError(
                f'{source}: key \'{where}.{key}\': must be "allow", "ask", "deny" or an object, got {value!r}',
                HINT,
            )
        out.setdefault(name, []).extend(rules)
    return out


def _check_pattern(key: str, pattern: str, at: str, source: str) -> None:
    """A pattern that cannot be compiled is an error now, never a rule that silently never matches."""
    import re
    from pathlib import Path

    from nbagent.permissions.defaults import PATH_KEYS
    from nbagent.permissions.patterns import PathPattern, command_regex, plain_regex

    try:
        if key == "bash":
            command_regex(pattern)
        elif key in PATH_KEYS:
            PathPattern(pattern, Path("/"))
        else:
            plain_regex(pattern)
    except (re.error, ValueError, RecursionError) as exc:
        raise ConfigError(
            f"{source}: key '{at}': the pattern {pattern!r} is not valid ({exc})",
            "Fix the pattern: * matches any text, ? one character, [abc] or [a-z] one of a set"
            " (ranges go from low to high).",
        ) from None


def _dig(data: Any, path: tuple[str, ...]) -> Any:
    for part in path:
        if not isinstance(data, dict) or part not in data:
            return _MISSING
        data = data[part]
    return data


def validate_section(root: Path, value: Any, path: tuple[str, ...], check: Callable[[Any, str], T]) -> T:
    """Run ``check(value, source)``; on failure, blame the config file whose own section fails."""
    try:
        return check(value, "configuration")
    except ConfigError:
        for file in config_files(root):
            try:
                data = json.loads(file.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            raw = _dig(data, path)
            if raw is _MISSING:
                continue
            check(raw, str(file))  # raises with the file's name when this file is at fault
        raise


def model_check(model: type[M], where: str) -> Callable[[Any, str], M]:
    """A ``check`` for ``validate_section`` that validates a pydantic model and names the key."""

    def check(raw: Any, source: str) -> M:
        try:
            return model.model_validate(raw if raw is not None else {})
        except ValidationError as exc:
            problems = "; ".join(
                f"key '{'.'.join([where, *(str(p) for p in err['loc'])])}': {err['msg']}"
                for err in exc.errors()
            )
            raise ConfigError(f"{source}: {problems}") from exc

    return check


def config_rules(root: Path, permission: dict[str, Any]) -> Rules:
    return validate_section(
        root, permission, ("permission",), lambda raw, src: parse_rules(raw, "permission", src)
    )


def agent_rules(root: Path, agents: dict[str, Any], name: str) -> Rules:
    """The ``permission`` overrides of agent ``name`` (empty when it has none)."""
    agent = agents.get(name)
    if agent is None:
        return {}
    if not isinstance(agent, dict):
        return validate_section(root, agent, ("agent", name), _agent_not_object(name))
    raw = agent.get("permission")
    if raw is None:
        return {}
    where = f"agent.{name}.permission"
    return validate_section(
        root, raw, ("agent", name, "permission"), lambda r, src: parse_rules(r, where, src)
    )


def _agent_not_object(name: str) -> Callable[[Any, str], Rules]:
    def check(raw: Any, source: str) -> Rules:
        if isinstance(raw, dict):
            return {}
        raise ConfigError(f"{source}: key 'agent.{name}': must be an object, got {raw!r}")

    return check
