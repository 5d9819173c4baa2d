"""Claude Code plugin folders: ``.claude-plugin/plugin.json`` with ``skills/``, ``agents/``, ``commands/``,
``hooks/hooks.json`` and ``.mcp.json``, loaded as such with every item namespaced ``plugin:item``.

Where: ``"plugins": {"dirs": ["~/cc-plugins", "vendor/plugins/lint"]}`` in nbagent.json; each entry is a
plugin folder or a folder of plugin folders (a marketplace checkout). Relative paths are from the project
root. A plugin's hooks and MCP servers run code: those from a project's nbagent.json count as project
code (the ``plugins`` section is part of what ``nbagent trust`` covers). ``${CLAUDE_PLUGIN_ROOT}`` in
hook commands and MCP server definitions is the plugin's folder.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from nbagent.core.config import Config
from nbagent.core.errors import ConfigError
from nbagent.ext.agents import AgentDef, _read_folder
from nbagent.ext.skills import SKILL_FILE, Skill, _read_skill

MANIFEST = Path(".claude-plugin") / "plugin.json"
ROOT_VAR = "${CLAUDE_PLUGIN_ROOT}"
MAX_PLUGINS = 100


class Manifest(BaseModel):
    model_config = ConfigDict(extra="allow")

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    version: str = ""
    description: str = ""


@dataclass
class CommandFile:
    name: str  # plugin:command
    path: Path


@dataclass
class CCPlugin:
    name: str
    path: Path
    manifest: Manifest
    skills: list[Skill] = field(default_factory=list)
    agents: list[AgentDef] = field(default_factory=list)
    commands: list[CommandFile] = field(default_factory=list)
    hooks: dict[str, Any] = field(default_factory=dict)  # the "hooks" section, nbagent.json's shape
    mcp_servers: dict[str, Any] = field(default_factory=dict)  # "plugin:server" -> .mcp.json entry


@dataclass
class CCPluginSet:
    plugins: list[CCPlugin] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def skills(self) -> list[Skill]:
        return [s for p in self.plugins for s in p.skills]

    def agents(self) -> list[AgentDef]:
        return [a for p in self.plugins for a in p.agents]

    def commands(self) -> list[CommandFile]:
        return [c for p in self.plugins for c in p.commands]

    def hooks(self) -> dict[str, list[Any]]:
        """Every plugin's hooks merged: event -> matchers (the ``hooks`` config shape)."""
        merged: dict[str, list[Any]] = {}
        for plugin in self.plugins:
            for event, matchers in plugin.hooks.items():
                if isinstance(matchers, list):
                    merged.setdefault(event, []).extend(matchers)
        return merged

    def mcp_servers(self) -> dict[str, Any]:
        return {k: v for p in self.plugins for k, v in p.mcp_servers.items()}


def configured_dirs(root: Path, config: Config) -> list[Path]:
    raw = config.plugins.get("dirs", [])
    if not isinstance(raw, list) or not all(isinstance(d, str) for d in raw):
        raise ConfigError(
            f"plugins.dirs must be a list of folder paths, got {raw!r}",
            'Write e.g. "plugins": {"dirs": ["~/cc-plugins"]} in nbagent.json.',
        )
    return [(root / os.path.expanduser(d)).resolve() for d in raw]


def find_plugin_folders(folder: Path) -> list[Path]:
    """``folder`` when it is a plugin, else its sub-folders (one or two levels) that are."""
    if (folder / MANIFEST).is_file():
        return [folder]
    found: list[Path] = []
    for child in sorted(p for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []:
        if (child / MANIFEST).is_file():
            found.append(child)
        elif child.name in ("plugins", "external_plugins"):
            found += [g for g in sorted(child.iterdir()) if (g / MANIFEST).is_file()]
    return found[:MAX_PLUGINS]


def _with_root(value: Any, root: Path) -> Any:
    if isinstance(value, str):
        return value.replace(ROOT_VAR, str(root))
    if isinstance(value, list):
        return [_with_root(v, root) for v in value]
    if isinstance(value, dict):
        return {k: _with_root(v, root) for k, v in value.items()}
    return value


def _json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: not readable JSON ({exc})", "Fix the file or remove the plugin.") from exc


def load_plugin(folder: Path) -> tuple[CCPlugin, list[str]]:
    """One plugin folder; a broken manifest is a ``ConfigError``, a broken item a warning."""
    try:
        manifest = Manifest.model_validate(_json(folder / MANIFEST))
    except ValidationError as exc:
        raise ConfigError(
            f"{folder / MANIFEST}: not a valid plugin manifest ({exc.errors()[0]['msg']})",
            'It needs at least {"name": "my-plugin"}.',
        ) from None
    plugin = CCPlugin(manifest.name, folder, manifest)
    warnings: list[str] = []
    ns = f"{manifest.name}:"
    skills_dir = folder / "skills"
    for skill_dir in sorted(skills_dir.iterdir()) if skills_dir.is_dir() else []:
        if (skill_dir / SKILL_FILE).is_file():
            skill = _read_skill(skill_dir, warnings)
            if skill is not None:
                plugin.skills.append(skill.model_copy(update={"name": ns + skill.name}))
    for fields, item_warnings in _read_folder(folder / "agents", folder):
        warnings += item_warnings
        fields = {"mode": "subagent", **fields, "name": ns + fields["name"]}
        try:
            plugin.agents.append(AgentDef.model_validate(fields))
        except ValidationError as exc:
            warnings.append(f"{fields.get('source')}: agent left out ({exc.errors()[0]['msg']})")
    commands_dir = folder / "commands"
    for path in sorted(commands_dir.rglob("*.md")) if commands_dir.is_dir() else []:
        name = ":".join(path.relative_to(commands_dir).with_suffix("").parts).lower()
        plugin.commands.append(CommandFile(ns + name, path))
    hooks_file = folder / "hooks" / "hooks.json"
    if hooks_file.is_file():
        data = _json(hooks_file)
        section = data.get("hooks", data) if isinstance(data, dict) else None
        if isinstance(section, dict):
            plugin.hooks = _with_root(section, folder)
        else:
            warnings.append(f'{hooks_file}: expected {{"hooks": {{EVENT: [...]}}}}; hooks left out')
    mcp_file = folder / ".mcp.json"
    if mcp_file.is_file():
        data = _json(mcp_file)
        servers = data.get("mcpServers", data) if isinstance(data, dict) else {}
        if isinstance(servers, dict):
            plugin.mcp_servers = {ns + k: _with_root(v, folder) for k, v in servers.items()}
    return plugin, warnings


def load_cc_plugins(root: Path, config: Config) -> CCPluginSet:
    """The Claude Code plugins in the configured folders; problems become warnings, never a failure."""
    out = CCPluginSet()
    try:
        dirs = configured_dirs(root, config)
    except ConfigError as exc:
        out.warnings.append(f"{exc} {exc.hint}".strip())
        return out
    seen: dict[str, Path] = {}
    for folder in dirs:
        if not folder.is_dir():
            out.warnings.append(f"Plugin folder {folder} does not exist (plugins.dirs in nbagent.json).")
            continue
        for plugin_dir in find_plugin_folders(folder):
            try:
                plugin, warnings = load_plugin(plugin_dir)
            except ConfigError as exc:
                out.warnings.append(f"Plugin {plugin_dir} left out: {exc} {exc.hint}".strip())
                continue
            out.warnings += warnings
            if plugin.name in seen:
                out.warnings.append(
                    f"Plugin {plugin.name!r} in {plugin_dir} skipped: already loaded from {seen[plugin.name]}"
                )
                continue
            seen[plugin.name] = plugin_dir
            out.plugins.append(plugin)
    return out


def project_defines_dirs(root: Path) -> bool:
    """Whether the project's own nbagent.json names plugin folders (their hooks are then project code)."""
    from nbagent.ext.trust import project_config_file

    path = project_config_file(root)
    if path is None:
        return False
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return True
    section = data.get("plugins") if isinstance(data, dict) else None
    return isinstance(section, dict) and bool(section.get("dirs"))


def hook_entries(plugins: CCPluginSet) -> tuple[list[tuple[str, Any]], list[str]]:
    """``(event, HookMatcher)`` for the plugins' hooks (command hooks; others are skipped with a note)."""
    from nbagent.ext.hooks import EVENTS, HookCommand, HookMatcher

    found: list[tuple[str, Any]] = []
    notes: list[str] = []
    for plugin in plugins.plugins:
        where = plugin.path / "hooks" / "hooks.json"
        for event, entries in plugin.hooks.items():
            if event not in EVENTS:
                notes.append(f"{where}: hook event {event} is not supported by nbagent; skipped")
                continue
            for entry in entries if isinstance(entries, list) else []:
                raw = entry.get("hooks", []) if isinstance(entry, dict) else []
                commands = [
                    HookCommand(command=str(h["command"]), timeout=float(h.get("timeout", 60)))
                    for h in raw
                    if isinstance(h, dict) and h.get("type", "command") == "command" and h.get("command")
                ]
                if commands:
                    found.append((event, HookMatcher(matcher=str(entry.get("matcher", "")), hooks=commands)))
    return found, notes
