"""Where Claude Code and OpenCode keep a user's MCP servers, and how their entries read.

- Claude Code: ``~/.claude.json`` (``$CLAUDE_CONFIG_DIR/.claude.json`` when set): ``"mcpServers"`` (user
  scope) and ``"projects": {"/abs/project": {"mcpServers": {...}}}`` (local scope: the user's own, for
  that project). Entries have ``.mcp.json``'s shape; ``oauth`` and ``headersHelper`` are not supported.
  A server the user turned off for the project in Claude Code (``"disabledMcpServers"``) is off here too.
- OpenCode: ``opencode.json`` / ``opencode.jsonc`` (JSON with comments and trailing commas), key
  ``"mcp"``: globally in ``$XDG_CONFIG_HOME/opencode/`` (else ``~/.config/opencode/``: ``config.json``,
  ``opencode.json``, ``opencode.jsonc``) and the file ``$OPENCODE_CONFIG``; in the project at its root
  and in its ``.opencode/``. OpenCode's ``{env:VAR}`` (unset: empty, as OpenCode does) and
  ``{file:path}`` (the file's text, trimmed; relative to the config file, or ``~/``) are substituted;
  ``"timeout"`` is OpenCode's, in milliseconds; OpenCode 2's ``"mcp": {"servers": {...}}``,
  ``"disabled"``, ``"cwd"`` and ``"timeout": {"startup", "request"}`` are read too.

This module only finds, parses and translates; ``mcp_config.py`` turns the entries into servers.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

Shape = Literal["nbagent", "claude", "opencode"]
Tool = Literal["claude", "opencode"]
TOOLS: tuple[Tool, ...] = ("claude", "opencode")
OPENCODE_NAMES = ("opencode.jsonc", "opencode.json")  # in this order: opencode.json wins, as in OpenCode
MAX_FILE = 1 << 20  # a {file:...} larger than this is refused
_ENV = re.compile(r"\{env:([^}]+)\}")
_FILE = re.compile(r"\{file:([^}]+)\}")
_OPENCODE_LOCAL = {"type", "command", "environment", "enabled", "disabled", "timeout", "cwd"}
_OPENCODE_REMOTE = {"type", "url", "enabled", "disabled", "headers", "oauth", "timeout"}


@dataclass
class Layer:
    """One file's MCP section: ``servers`` is name -> raw entry (or whatever the file holds there)."""

    path: Path
    servers: Any
    project: bool
    shape: Shape
    call_timeout_ms: int | None = None  # OpenCode's experimental.mcp_timeout


# -- JSONC ---------------------------------------------------------------------------------------------


def _blank(text: str) -> str:
    """Spaces for ``text``, newlines kept: positions in error messages stay right."""
    return "".join("\n" if c == "\n" else " " for c in text)


def _string_end(text: str, start: int) -> int:
    """The index just past the JSON string that opens at ``start`` (or the end of the text)."""
    i = start + 1
    while i < len(text) and text[i] != '"':
        i += 2 if text[i] == "\\" else 1
    return min(i + 1, len(text))


def strip_jsonc(text: str) -> str:
    """JSON from JSONC: ``//`` and ``/* */`` comments and trailing commas become spaces (strings are
    left alone, so ``"https://x"`` stays); ``ValueError`` for an unterminated ``/*``."""
    out: list[str] = []
    i = 0
    while i < len(text):
        if text[i] == '"':
            end = _string_end(text, i)
            out.append(text[i:end])
            i = end
        elif text.startswith("//", i):
            end = text.find("\n", i)
            end = len(text) if end < 0 else end
            out.append(_blank(text[i:end]))
            i = end
        elif text.startswith("/*", i):
            end = text.find("*/", i + 2)
            if end < 0:
                line = text.count("\n", 0, i) + 1
                raise ValueError(f"a /* comment opened on line {line} is never closed")
            out.append(_blank(text[i : end + 2]))
            i = end + 2
        else:
            out.append(text[i])
            i += 1
    clean = "".join(out)
    chars = list(clean)
    i = 0
    while i < len(clean):  # trailing commas: ',' followed only by whitespace, then '}' or ']'
        if clean[i] == '"':
            i = _string_end(clean, i)
            continue
        if clean[i] == ",":
            j = i + 1
            while j < len(clean) and clean[j] in " \t\r\n":
                j += 1
            if j < len(clean) and clean[j] in "}]":
                chars[i] = " "
        i += 1
    return "".join(chars)


def loads_jsonc(text: str) -> Any:
    """Parse JSON with comments and trailing commas; ``ValueError`` (with line and column) if it is not."""
    return json.loads(strip_jsonc(text.removeprefix("\ufeff")))


def read_object(path: Path, *, jsonc: bool) -> dict[str, Any] | None:
    """A config file's top-level object; None when there is no such file; ``ValueError`` naming the file
    when it cannot be read or parsed. Only regular files are read (a FIFO would block)."""
    if not path.is_file():
        if path.exists():
            raise ValueError(f"{path}: not a regular file")
        return None
    try:
        text = path.read_text(encoding="utf-8")
        data = loads_jsonc(text) if jsonc else json.loads(text)
    except (OSError, ValueError) as exc:
        kind = "JSON with comments" if jsonc else "JSON"
        raise ValueError(f"{path}: not valid {kind} ({exc})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: not a JSON object")
    return data


# -- where the files are ---------------------------------------------------------------------------------


def claude_file(env: Mapping[str, str]) -> Path:
    """Claude Code's ``~/.claude.json`` (``$CLAUDE_CONFIG_DIR/.claude.json`` when that is set)."""
    base = env.get("CLAUDE_CONFIG_DIR")
    return (Path(base).expanduser() if base else Path.home()) / ".claude.json"


def opencode_global_files(env: Mapping[str, str]) -> list[Path]:
    """OpenCode's global config files, lowest precedence first, then ``$OPENCODE_CONFIG``."""
    xdg = env.get("XDG_CONFIG_HOME")
    folder = (Path(xdg) if xdg else Path.home() / ".config") / "opencode"
    files = [folder / "config.json", folder / "opencode.json", folder / "opencode.jsonc"]
    custom = env.get("OPENCODE_CONFIG")
    if custom:
        files.append(Path(custom).expanduser())
    return files


def opencode_project_files(root: Path) -> list[Path]:
    """The project's OpenCode config files, lowest precedence first (all of them project code)."""
    return [folder / name for folder in (root, root / ".opencode") for name in OPENCODE_NAMES]


def _same_folder(key: str, root: Path) -> bool:
    try:
        return os.path.realpath(key) == os.path.realpath(root)
    except (OSError, ValueError):
        return False


@dataclass
class ClaudeUser:
    """What ``~/.claude.json`` holds for ``root``: user scope, local scope, the servers the user turned
    off for this project in Claude Code's ``/mcp`` (``"disabledMcpServers"``)."""

    user: Layer | None = None
    local: Layer | None = None
    disabled: tuple[str, ...] = ()


def claude_layers(root: Path, env: Mapping[str, str], errors: list[str]) -> ClaudeUser:
    """``~/.claude.json``'s user scope and its local scope for ``root`` (both the user's own)."""
    path = claude_file(env)
    try:
        data = read_object(path, jsonc=False)
    except ValueError as exc:
        errors.append(f"{exc}; its MCP servers are left out.")
        return ClaudeUser()
    if data is None:
        return ClaudeUser()
    found = ClaudeUser(Layer(path, data["mcpServers"], False, "claude") if "mcpServers" in data else None)
    projects = data.get("projects")
    for key, entry in projects.items() if isinstance(projects, dict) else ():
        if isinstance(entry, dict) and _same_folder(str(key), root):
            if "mcpServers" in entry:
                found.local = Layer(path, entry["mcpServers"], False, "claude")
            off = entry.get("disabledMcpServers")
            if isinstance(off, list):
                found.disabled = tuple(str(name) for name in off)
    return found


def opencode_layers(paths: list[Path], *, project: bool, errors: list[str]) -> list[Layer]:
    """The ``"mcp"`` section of each OpenCode config file that exists."""
    layers: list[Layer] = []
    for path in paths:
        try:
            data = read_object(path, jsonc=True)
        except ValueError as exc:
            errors.append(f"{exc}; its MCP servers are left out.")
            continue
        if data is None or "mcp" not in data:
            continue
        section = data["mcp"]
        nested = section.get("servers") if isinstance(section, dict) else None
        if isinstance(nested, dict) and all(isinstance(v, dict) for v in nested.values()):
            section = nested  # OpenCode 2: "mcp": {"servers": {...}}
        experimental = data.get("experimental")
        timeout = experimental.get("mcp_timeout") if isinstance(experimental, dict) else None
        ms = timeout if isinstance(timeout, int) and not isinstance(timeout, bool) and timeout > 0 else None
        layers.append(Layer(path, section, project, "opencode", call_timeout_ms=ms))
    return layers


def import_choice(sections: list[Any], errors: list[str], sources: list[Path]) -> set[Tool]:
    """Which tools' files to read, from ``"mcp": {"import": ...}`` of the user's then the project's
    ``nbagent.json``: ``false``, ``true`` or a list of ``"claude"``/``"opencode"``. Each file can only
    narrow the choice (the user's files are the user's servers: a project cannot turn their import back on)."""
    chosen: set[Tool] = set(TOOLS)
    for section, source in zip(sections, sources, strict=True):
        if not isinstance(section, dict) or "import" not in section:
            continue
        value = section["import"]
        if isinstance(value, bool):
            chosen &= set(TOOLS) if value else set()
        elif isinstance(value, list) and all(v in TOOLS for v in value):
            chosen &= {t for t in TOOLS if t in value}
        else:
            errors.append(
                f'{source}: mcp.import must be true, false or a list of "claude"/"opencode", got {value!r};'
                " it is ignored."
            )
    return chosen


# -- one entry ------------------------------------------------------------------------------------------


def claude_entry(raw: Any) -> Any:
    """A Claude Code entry, checked for what nbagent does not do (``ValueError`` says what)."""
    if isinstance(raw, dict) and raw.get("disabled") is not True:
        if raw.get("headersHelper"):
            raise ValueError(
                "uses headersHelper (a command printing headers), which nbagent does not run; put the"
                ' headers in "headers", with ${VAR} for secrets'
            )
        if raw.get("oauth"):
            raise ValueError(
                'uses "oauth", which nbagent\'s MCP client does not do yet; give a token in "headers"'
                ' ("Authorization": "Bearer ${TOKEN}") instead'
            )
    return raw


def _substitute(value: Any, env: Mapping[str, str], folder: Path) -> Any:
    """OpenCode's ``{env:VAR}`` and ``{file:path}`` in every string of an entry."""
    if isinstance(value, list):
        return [_substitute(v, env, folder) for v in value]
    if isinstance(value, dict):
        return {k: _substitute(v, env, folder) for k, v in value.items()}
    if not isinstance(value, str):
        return value
    text = _ENV.sub(lambda m: env.get(m.group(1)) or "", value)
    return _FILE.sub(lambda m: _file_text(m.group(1), folder), text)


def _file_text(name: str, folder: Path) -> str:
    path = Path.home() / name[2:] if name.startswith("~/") else folder / name
    if not path.is_file():
        raise ValueError(f"{{file:{name}}}: {path} does not exist or is not a regular file")
    try:
        with path.open("rb") as f:
            data = f.read(MAX_FILE + 1)  # not st_size: /proc files say 0
        if len(data) > MAX_FILE:
            raise ValueError(f"{{file:{name}}}: {path} is larger than {MAX_FILE} bytes")
        return data.decode("utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"{{file:{name}}}: {path} cannot be read ({exc})") from None


def _ms(value: Any, what: str) -> float:
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ValueError(f"'{what}' must be a positive whole number of milliseconds (OpenCode's unit)")
    return value / 1000


def opencode_entry(raw: Any, layer: Layer, env: Mapping[str, str], root: Path) -> dict[str, Any]:
    """An OpenCode entry translated to nbagent's own shape (timeouts in seconds, ``cwd`` absolute);
    ``ValueError`` for what OpenCode would reject or nbagent cannot do."""
    if not isinstance(raw, dict):
        raise ValueError("must be an object")
    kind = raw.get("type")
    if kind not in ("local", "remote"):
        raise ValueError(f'OpenCode needs "type": "local" or "remote", got {kind!r}')
    allowed = _OPENCODE_LOCAL if kind == "local" else _OPENCODE_REMOTE
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise ValueError(
            f"unknown field(s) {', '.join(unknown)} for a {kind} server (OpenCode rejects them too);"
            f" known: {', '.join(sorted(allowed))}"
        )
    entry = _substitute(raw, env, layer.path.parent)
    enabled = entry.pop("enabled", True) is not False and entry.pop("disabled", False) is not True
    oauth = entry.pop("oauth", None)
    if enabled and oauth not in (None, False):
        raise ValueError(
            'uses "oauth", which nbagent\'s MCP client does not do yet; give a token in "headers"'
            ' ("Authorization": "Bearer {env:TOKEN}"), or set "oauth": false if the server needs none'
        )
    out: dict[str, Any] = {**entry, "enabled": enabled}
    timeout = entry.get("timeout")
    out.pop("timeout", None)
    if layer.call_timeout_ms is not None:
        out["call_timeout"] = layer.call_timeout_ms / 1000
    if isinstance(timeout, dict):  # OpenCode 2: {"startup": ms, "request": ms}
        extra = sorted(set(timeout) - {"startup", "request"})
        if extra:
            raise ValueError(f"unknown timeout field(s) {', '.join(extra)}: use startup and request (ms)")
        if "startup" in timeout:
            out["timeout"] = _ms(timeout["startup"], "timeout.startup")
        if "request" in timeout:
            out["call_timeout"] = _ms(timeout["request"], "timeout.request")
    elif timeout is not None:  # OpenCode 1: the time to connect and list the tools
        out["timeout"] = _ms(timeout, "timeout")
    cwd = entry.get("cwd")
    if isinstance(cwd, str):
        out["cwd"] = str(root / Path(cwd).expanduser())
    elif cwd is not None:
        raise ValueError("'cwd' must be a folder path")
    return out
