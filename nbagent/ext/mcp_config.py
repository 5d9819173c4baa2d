"""MCP server definitions, in the shapes users already have, from the files they already keep them in.

- ``nbagent.json`` ``"mcp"`` (OpenCode's shape, timeouts in seconds; ``"tool_budget": 0.1`` beside the
  servers sets the share of the context window their tool schemas may take before ``tool_search`` loads
  them on demand; ``"startup": "session"`` connects as the session is created instead of at its first
  turn)::

    {"mcp": {"NAME": {"type": "local", "command": ["prog", "arg"], "environment": {...}, "enabled": true,
                      "timeout": 30},
             "OTHER": {"type": "remote", "url": "https://...", "headers": {...}}}}

- ``.mcp.json`` ``"mcpServers"`` (Claude Code's shape), with ``${VAR}`` and ``${VAR:-default}``::

    {"mcpServers": {"NAME": {"command": "prog", "args": [...], "env": {...}},
                    "OTHER": {"type": "http" | "sse", "url": "...", "headers": {...}}}}

- Claude Code's ``~/.claude.json`` and OpenCode's ``opencode.json(c)`` files (``mcp_import.py`` says
  where they are and how their entries read), so a user's servers work unchanged.

Read in this order; a later definition of the same name replaces an earlier one:

1. ``~/.claude.json`` ``"mcpServers"`` (Claude Code's user scope),
2. OpenCode's global files, then ``$OPENCODE_CONFIG``,
3. the user's ``nbagent.json``,
4. the project's ``opencode.jsonc``, ``opencode.json``, ``.opencode/opencode.jsonc``, ``.opencode/opencode.json``,
5. the project's ``nbagent.json``,
6. the project's ``.mcp.json``,
7. ``~/.claude.json`` ``"projects"`` -> this project -> ``"mcpServers"`` (Claude Code's local scope).

Within each tool this is the tool's own order (Claude Code: local > project > user; OpenCode: project >
custom > global); across them, the user's global files come first, nbagent's own files after the
foreign ones of the same level. Claude Code's local scope comes last, as in Claude Code: it is the
user's own choice for this very project, so a cloned repository's files cannot replace it.

``"mcp": {"import": false}`` in the user's or the project's ``nbagent.json`` (the project's wins) reads
neither tool's files; ``"import": ["claude"]`` or ``["opencode"]`` reads only that one (default: both).
The project's ``.mcp.json`` is nbagent's own input and is always read.

The user's files (``~/.claude.json``, both scopes, OpenCode's global ones, the user's ``nbagent.json``)
are trusted; the project's (``opencode.json(c)``, ``nbagent.json``, ``.mcp.json``) are project code:
their servers run only once the folder is trusted (``ext/trust.py``). A server that is defined wrongly
is reported (``McpConfig.errors``, naming its file) and left out; the others still run.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from nbagent.ext.mcp_import import (
    ClaudeUser,
    Layer,
    claude_entry,
    claude_layers,
    import_choice,
    opencode_entry,
    opencode_global_files,
    opencode_layers,
    opencode_project_files,
    read_object,
)
from nbagent.ext.trust import project_config_file, user_config_file

CLAUDE_FILE = ".mcp.json"
DEFAULT_START_TIMEOUT = 30.0
DEFAULT_CALL_TIMEOUT = 300.0
DEFAULT_TOOL_BUDGET = 0.10
MS_THRESHOLD = 1000  # a start "timeout" this large in nbagent.json was meant in milliseconds
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
    shown: str = ""  # the command or URL as the file wrote it: variables not substituted, no query string
    project: bool = False  # defined by the project: runs only in a trusted folder
    fallback_sse: bool = False  # "http" not said ("remote", a bare "url"): SSE when it is no such endpoint

    @property
    def where(self) -> str:
        """What ``/mcp``, the sidebar and errors show: ``shown`` (set by the config loader), else, for a
        spec made in code, its URL without query and credentials, or its command."""
        return self.shown or display_url(self.url) or " ".join(self.command)


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


def shown_where(raw: Any) -> str:
    """What ``/mcp`` and the sidebar show of a server's entry: the command or the URL as written (a
    secret that comes from a variable stays a variable; a URL loses its query, fragment and credentials),
    since ``/mcp`` output can be saved in a notebook."""
    if not isinstance(raw, dict):
        return ""
    url = raw.get("url")
    if isinstance(url, str):
        return display_url(url)
    command, args = raw.get("command"), raw.get("args")
    words = [command] if isinstance(command, str) else command if isinstance(command, list) else []
    words += args if isinstance(args, list) else []
    return " ".join(str(w) for w in words)


def display_url(url: str) -> str:
    """``url`` without its query, fragment and ``user:password@``."""
    base = url.split("#", 1)[0].split("?", 1)[0]
    scheme, sep, rest = base.partition("://")
    if not sep:
        return base
    authority, slash, path = rest.partition("/")
    return f"{scheme}://{authority.rpartition('@')[2]}{slash}{path}"


def parse_server(
    name: str, raw: Any, *, source: str, project: bool, env: Mapping[str, str] | None
) -> ServerSpec:
    """One server entry, in either shape; ``ValueError`` says what is wrong with it. ``env`` None: the
    variables were substituted already (an OpenCode file's)."""
    if not isinstance(raw, dict):
        raise ValueError("must be an object")
    kind = raw.get("type")  # as written: an error naming it never shows what a variable holds
    try:
        raw = raw if env is None else _expand_all(raw, env)
    except _Missing as exc:
        raise ValueError(
            f"uses ${{{exc.args[0]}}}, which is not set; set it or give a default: ${{{exc.args[0]}:-value}}"
        ) from None
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
            transport=transport,
            url=url,
            headers=_str_map(raw.get("headers"), "headers"),
            fallback_sse=kind in ("remote", None),
            **common,
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


def add_servers(config: McpConfig, section: Any, *, source: Path, project: bool) -> None:
    """More servers in ``.mcp.json``'s shape (a Claude Code plugin's); ``project``: they run only in a
    trusted folder."""
    _add(config, Layer(source, section, project, "claude"), env=os.environ, root=Path.cwd())


def _option(config: McpConfig, name: str, raw: Any, source: Path) -> bool:
    """``startup``, ``tool_budget`` and ``import`` beside nbagent.json's servers: True when ``name`` is one."""
    if name == "import" and not isinstance(raw, dict):
        return True  # read by import_choice
    if name == "startup" and not isinstance(raw, dict):
        if raw in ("first_turn", "session"):
            config.startup = raw
        else:
            config.errors.append(f'{source}: mcp.startup must be "first_turn" or "session", got {raw!r}.')
        return True
    if name == "tool_budget" and not isinstance(raw, dict):
        if isinstance(raw, int | float) and not isinstance(raw, bool) and raw > 0:
            config.tool_budget = float(raw)
        else:
            config.errors.append(f"{source}: mcp.tool_budget must be a positive number, got {raw!r}.")
        return True
    return False


def _add(config: McpConfig, layer: Layer, *, env: Mapping[str, str], root: Path) -> None:
    source, section = layer.path, layer.servers
    if section is None:
        return
    if not isinstance(section, dict):
        config.errors.append(f"{source}: the MCP section must be an object of server name -> definition.")
        return
    for name, raw in section.items():
        if layer.shape == "nbagent" and _option(config, str(name), raw, source):
            continue
        try:
            if layer.shape == "opencode":
                entry = opencode_entry(raw, layer, env, root)
                spec = parse_server(str(name), entry, source=str(source), project=layer.project, env=None)
                spec.shown = shown_where(raw)
            else:
                entry = (
                    claude_entry(raw) if layer.shape == "claude" else _seconds(raw, str(name), source, config)
                )
                spec = parse_server(str(name), entry, source=str(source), project=layer.project, env=env)
                spec.shown = shown_where(entry)
        except ValueError as exc:
            config.errors.append(f"MCP server '{name}' ({source}): {exc}. It is left out.")
            continue
        config.servers[str(name)] = spec  # a later definition replaces an earlier one


def _seconds(raw: Any, name: str, source: Path, config: McpConfig) -> Any:
    """nbagent.json's ``"timeout"`` is in seconds; OpenCode's (same shape, often pasted) in milliseconds. A
    start timeout of 1000 or more can only be milliseconds: read so, and said, to be fixed."""
    value = raw.get("timeout") if isinstance(raw, dict) else None
    if not isinstance(value, int | float) or isinstance(value, bool) or value < MS_THRESHOLD:
        return raw
    config.errors.append(
        f"MCP server '{name}' ({source}): \"timeout\": {value:g} is read as {value / 1000:g} s (milliseconds,"
        f" as OpenCode writes it); nbagent.json takes seconds: write {value / 1000:g}."
    )
    return {**raw, "timeout": value / 1000}


def _nbagent_layer(path: Path | None, project: bool, config: McpConfig) -> Layer | None:
    if path is None:
        return None
    try:
        data = read_object(path, jsonc=False)
    except ValueError as exc:
        config.errors.append(f"{exc}; its MCP servers are left out.")
        return None
    return Layer(path, data.get("mcp"), project, "nbagent") if data is not None else None


def load_mcp_config(root: Path, env: Mapping[str, str] | None = None) -> McpConfig:
    """Every MCP server the user has for ``root``, in the order of the module docstring."""
    env = os.environ if env is None else env
    config = McpConfig()
    user = _nbagent_layer(user_config_file(), False, config)
    own = _nbagent_layer(project_config_file(root), True, config)
    mine = [layer for layer in (user, own) if layer is not None]
    tools = import_choice([la.servers for la in mine], config.errors, [la.path for la in mine])
    claude = claude_layers(root, env, config.errors) if "claude" in tools else ClaudeUser()
    opencode = "opencode" in tools
    layers = [
        claude.user,
        *(
            opencode_layers(opencode_global_files(env), project=False, errors=config.errors)
            if opencode
            else []
        ),
        user,
        *(
            opencode_layers(opencode_project_files(root), project=True, errors=config.errors)
            if opencode
            else []
        ),
        own,
    ]
    try:
        claude_project = read_object(root / CLAUDE_FILE, jsonc=False)
    except ValueError as exc:
        config.errors.append(f"{exc}; its MCP servers are left out.")
        claude_project = None
    if claude_project is not None:
        layers.append(Layer(root / CLAUDE_FILE, claude_project.get("mcpServers"), True, "claude"))
    layers.append(claude.local)
    for layer in layers:
        if layer is not None:
            _add(config, layer, env=env, root=root)
    for name in claude.disabled:  # turned off for this project in Claude Code's /mcp
        if name in config.servers:
            config.servers[name].enabled = False
    return config
