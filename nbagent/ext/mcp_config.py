"""MCP server definitions, in the two shapes users already have.

- ``nbagent.json`` ``"mcp"`` (OpenCode's shape; ``"tool_budget": 0.1`` beside the servers sets the share
  of the context window their tool schemas may take before ``tool_search`` loads them on demand;
  ``"startup": "session"`` connects as the session is created instead of at its first turn)::

    {"mcp": {"NAME": {"type": "local", "command": ["prog", "arg"], "environment": {...}, "enabled": true,
                      "timeout": 30},
             "OTHER": {"type": "remote", "url": "https://...", "headers": {...}}}}

- ``.mcp.json`` ``"mcpServers"`` (Claude Code's shape), with ``${VAR}`` and ``${VAR:-default}``::

    {"mcpServers": {"NAME": {"command": "prog", "args": [...], "env": {...}},
                    "OTHER": {"type": "http" | "sse", "url": "...", "headers": {...}}}}

User-level servers (``user_config_dir()/nbagent.json``) are trusted; project-level ones (the project's
``nbagent.json`` and ``.mcp.json``) run only once the folder is trusted (``ext/trust.py``). A server
that is defined wrongly is reported (``McpConfig.errors``) and left out; the others still run.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from nbagent.ext.trust import project_config_file, user_config_file

CLAUDE_FILE = ".mcp.json"
DEFAULT_START_TIMEOUT = 30.0
DEFAULT_CALL_TIMEOUT = 300.0
DEFAULT_TOOL_BUDGET = 0.10
_NAME_OK = re.compile(r"[^A-Za-z0-9_-]")
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}|\{env:([A-Za-z_][A-Za-z0-9_]*)\}")

Transport = Literal["stdio", "http", "sse"]


class ServerSpec(BaseModel):
    """One MCP server, whichever file defined it."""

    name: str
    transport: Transport
    command: list[str] = Field(default_factory=list)
    env: dict[str, str] = Field(default_factory=dict)
    cwd: str | None = None
    url: str = ""
    headers: dict[str, str] = Field(default_factory=dict)
    enabled: bool = True
    start_timeout: float = DEFAULT_START_TIMEOUT
    call_timeout: float = DEFAULT_CALL_TIMEOUT
    source: str = ""  # the file that defined it
    project: bool = False  # defined by the project: runs only in a trusted folder


class McpConfig(BaseModel):
    servers: dict[str, ServerSpec] = Field(default_factory=dict)
    errors: list[str] = Field(default_factory=list)
    # When the MCP tools' schemas would take more than this share of the context window (or, above 1,
    # this many tokens), they are not all sent: ``tool_search`` loads them on demand.
    tool_budget: float = DEFAULT_TOOL_BUDGET
    # "first_turn": the servers start when the session's first turn does; "session": those that need no
    # trust question start in the background as the session is created (a notebook's session).
    startup: Literal["first_turn", "session"] = "first_turn"

    @property
    def project_servers(self) -> list[str]:
        return [n for n, s in self.servers.items() if s.project and s.enabled]


class _Missing(Exception):
    pass


def safe_name(name: str) -> str:
    """A server or tool name as it can appear in a tool name (letters, digits, ``_`` and ``-``)."""
    return _NAME_OK.sub("_", name) or "_"


def expand(text: str, env: Mapping[str, str]) -> str:
    """``${VAR}``, ``${VAR:-default}`` (Claude Code) and ``{env:VAR}`` (OpenCode) from ``env``; a
    variable that is unset and has no default raises ``_Missing``."""

    def sub(match: re.Match[str]) -> str:
        var = match.group(1) or match.group(3)
        default = match.group(2)
        value = env.get(var)
        if value:
            return value
        if default is not None:
            return default
        if value is not None:
            return value
        raise _Missing(var)

    return _VAR.sub(sub, text)


def _expand_all(value: Any, env: Mapping[str, str]) -> Any:
    if isinstance(value, str):
        return expand(value, env)
    if isinstance(value, list):
        return [_expand_all(v, env) for v in value]
    if isinstance(value, dict):
        return {k: _expand_all(v, env) for k, v in value.items()}
    return value


def _str_map(value: Any, what: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise ValueError(f"'{what}' must be an object of strings")
    return {str(k): v for k, v in value.items()}


def _timeout(raw: dict[str, Any], key: str, default: float) -> float:
    value = raw.get(key, default)
    if not isinstance(value, int | float) or isinstance(value, bool) or value <= 0:
        raise ValueError(f"'{key}' must be a positive number of seconds")
    return float(value)


def parse_server(name: str, raw: Any, *, source: str, project: bool, env: Mapping[str, str]) -> ServerSpec:
    """One server entry, in either shape; ``ValueError`` says what is wrong with it."""
    if not isinstance(raw, dict):
        raise ValueError("must be an object")
    try:
        raw = _expand_all(raw, env)
    except _Missing as exc:
        raise ValueError(
            f"uses ${{{exc.args[0]}}}, which is not set; set it or give a default: ${{{exc.args[0]}:-value}}"
        ) from None
    kind = raw.get("type")
    common: dict[str, Any] = {
        "name": name,
        "enabled": raw.get("enabled", not raw.get("disabled", False)) is not False,
        "start_timeout": _timeout(raw, "timeout", DEFAULT_START_TIMEOUT),
        "call_timeout": _timeout(raw, "call_timeout", DEFAULT_CALL_TIMEOUT),
        "source": source,
        "project": project,
    }
    if kind in ("remote", "http", "streamable-http", "streamable_http", "sse") or (
        kind is None and "url" in raw
    ):
        url = raw.get("url")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise ValueError('a remote server needs "url": "http(s)://..."')
        transport: Transport = "sse" if kind == "sse" else "http"
        return ServerSpec(
            transport=transport, url=url, headers=_str_map(raw.get("headers"), "headers"), **common
        )
    if kind not in (None, "local", "stdio"):
        raise ValueError(f'unknown type {kind!r}: use "local"/"stdio", "remote"/"http" or "sse"')
    command = raw.get("command")
    args = raw.get("args", [])
    if isinstance(command, str):
        command = [command]
    if not isinstance(command, list) or not command or not all(isinstance(c, str) for c in command):
        raise ValueError('a local server needs "command": ["program", "arg", ...] (or "command" + "args")')
    if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
        raise ValueError("'args' must be a list of strings")
    server_env = _str_map(raw.get("environment", raw.get("env")), "environment")
    cwd = raw.get("cwd")
    return ServerSpec(
        transport="stdio",
        command=[*command, *args],
        env=server_env,
        cwd=cwd if isinstance(cwd, str) else None,
        **common,
    )


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: not valid JSON ({exc})") from None
    return data if isinstance(data, dict) else None


def add_servers(config: McpConfig, section: Any, *, source: Path, project: bool) -> None:
    """More servers in ``.mcp.json``'s shape (a Claude Code plugin's); ``project``: they run only in a
    trusted folder."""
    _add(config, section, source=source, project=project, env=os.environ)


def _add(config: McpConfig, section: Any, *, source: Path, project: bool, env: Mapping[str, str]) -> None:
    if section is None:
        return
    if not isinstance(section, dict):
        config.errors.append(f"{source}: the MCP section must be an object of server name -> definition.")
        return
    for name, raw in section.items():
        if name == "startup" and not isinstance(raw, dict):  # an option, not a server
            if raw in ("first_turn", "session"):
                config.startup = raw
            else:
                config.errors.append(f'{source}: mcp.startup must be "first_turn" or "session", got {raw!r}.')
            continue
        if name == "tool_budget" and not isinstance(raw, dict):  # an option, not a server
            if isinstance(raw, int | float) and not isinstance(raw, bool) and raw > 0:
                config.tool_budget = float(raw)
            else:
                config.errors.append(f"{source}: mcp.tool_budget must be a positive number, got {raw!r}.")
            continue
        try:
            spec = parse_server(str(name), raw, source=str(source), project=project, env=env)
        except ValueError as exc:
            config.errors.append(f"MCP server '{name}' ({source}): {exc}. It is left out.")
            continue
        config.servers[str(name)] = spec  # a later (project) definition replaces an earlier one


def load_mcp_config(root: Path, env: Mapping[str, str] | None = None) -> McpConfig:
    """The servers of the user's ``nbagent.json``, then the project's ``nbagent.json`` and ``.mcp.json``."""
    env = os.environ if env is None else env
    config = McpConfig()
    sources: list[tuple[Path, str, bool]] = [(user_config_file(), "mcp", False)]
    own = project_config_file(root)
    if own is not None:
        sources.append((own, "mcp", True))
    sources.append((root / CLAUDE_FILE, "mcpServers", True))
    for path, key, project in sources:
        try:
            data = _read_json(path)
        except ValueError as exc:
            config.errors.append(f"{exc}; its MCP servers are left out.")
            continue
        if data is not None:
            _add(config, data.get(key), source=path, project=project, env=env)
    return config
