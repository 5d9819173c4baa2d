"""Custom agents: markdown files with a YAML frontmatter (Claude Code's or OpenCode's), and nbagent.json.

Where they are read, lowest precedence first (a later definition of the same name wins):

1. the built-ins (``build``, ``plan``, ``explore``, ``general``: ``agent_builtins.py``);
2. the user's folders: ``~/.config/opencode/agent/``, ``~/.config/opencode/agents/``,
   ``~/.claude/agents/``, ``~/.config/nbagent/agents/``;
3. the project's folders (at the project root): ``.opencode/agent/``, ``.opencode/agents/``,
   ``.claude/agents/``, ``.nbagent/agents/``;
4. ``"agent": {"NAME": {...}}`` in nbagent.json (user, then project), same keys as the frontmatter.

A file replaces a file's definition of the same name whole; over a built-in it is merged key by key
(``build.md`` holding only ``model:`` keeps build's role), and an ``"agent"`` entry is always merged
key by key over whatever defined the name (so ``"agent": {"build": {"permission": {...}}}`` keeps
working). The file's body is the agent's prompt; the name is the frontmatter's ``name`` or the file's
stem. Unknown keys are kept in ``extra`` and listed in ``AgentSet.warnings``; a broken file raises
``ConfigError`` with ``file:line``.
"""

from __future__ import annotations

import fnmatch
import json
import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from nbagent.core.config import Config, Mode, config_files, user_config_dir
from nbagent.core.errors import ConfigError
from nbagent.ext.agent_builtins import BUILTINS
from nbagent.ext.agent_parse import parse_fields
from nbagent.ext.frontmatter import parse_file
from nbagent.ext.listing import compact_listing
from nbagent.permissions.config import Rules, parse_rules

AgentMode = Literal["primary", "subagent", "all"]
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
MAX_FILES_PER_DIR = 200
DEFAULT_LISTING_CHARS = 1_100  # about 275 tokens: ten agents with one-line descriptions


class AgentDef(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    description: str = ""
    mode: AgentMode = "all"
    prompt: str = Field("", description="The agent's instructions; empty: the session's system prompt.")
    model: str | None = Field(None, description="litellm model string; None: the parent's / session's.")
    temperature: float | None = None
    max_steps: int | None = None
    tools: list[str] | None = Field(None, description="Allow-list (fnmatch patterns); None: every tool.")
    disallowed_tools: list[str] = Field(default_factory=list)
    permission: dict[str, Any] = Field(
        default_factory=dict, description="Rules in nbagent.json's permission shape (parse_rules)."
    )
    permission_mode: Mode | None = Field(None, description="None: the session's mode.")
    skills: list[str] = Field(default_factory=list)
    mcp_servers: list[str | dict[str, Any]] = Field(default_factory=list)
    hidden: bool = False
    disabled: bool = False
    builtin: bool = False
    source: str = Field("", description="file:line of the definition ('built-in', 'nbagent.json').")
    extra: dict[str, Any] = Field(default_factory=dict)

    @property
    def is_subagent(self) -> bool:
        return self.mode in ("subagent", "all")

    @property
    def is_primary(self) -> bool:
        return self.mode in ("primary", "all")

    def allows_tool(self, tool: str) -> bool:
        """Whether the model of this agent sees ``tool`` (the allow-list, then the deny-list)."""
        if self.tools is not None and not any(fnmatch.fnmatchcase(tool, t) for t in self.tools):
            return False
        return not any(fnmatch.fnmatchcase(tool, t) for t in self.disallowed_tools)

    def select_tools(self, names: Iterable[str]) -> list[str]:
        return [n for n in names if self.allows_tool(n)]

    def rules(self) -> Rules:
        """The permission overrides as rules (validated when the definition was read)."""
        return parse_rules(self.permission, f"agent.{self.name}.permission", self.source or self.name)


class AgentSet(BaseModel):
    agents: dict[str, AgentDef] = Field(default_factory=dict)  # enabled agents, by name
    disabled: list[str] = Field(default_factory=list)
    warnings: list[str] = Field(default_factory=list)

    def get(self, name: str) -> AgentDef:
        agent = self.agents.get(name)
        if agent is not None:
            return agent
        why = "is disabled" if name in self.disabled else "does not exist"
        raise ConfigError(
            f"agent '{name}' {why}", f"Available agents: {', '.join(sorted(self.agents)) or '(none)'}."
        )

    def primary(self, name: str | None = None) -> AgentDef:
        """The agent a session runs as (``build`` by default); a subagent-only one is an error."""
        agent = self.get(name or "build")
        if not agent.is_primary:
            names = ", ".join(a.name for a in self.primaries())
            raise ConfigError(f"agent '{agent.name}' is a subagent only", f"Primary agents: {names}.")
        return agent

    def subagent(self, name: str) -> AgentDef:
        agent = self.get(name)
        if not agent.is_subagent:
            names = ", ".join(a.name for a in self.subagents())
            raise ConfigError(f"agent '{agent.name}' is a primary agent only", f"Subagents: {names}.")
        return agent

    def primaries(self) -> list[AgentDef]:
        return [a for a in self._sorted() if a.is_primary and not a.hidden]

    def subagents(self, *, include_hidden: bool = True) -> list[AgentDef]:
        """Subagents the task tool may start (hidden ones too: ``hidden`` only hides from @ mentions)."""
        return [a for a in self._sorted() if a.is_subagent and (include_hidden or not a.hidden)]

    def listing(self, max_chars: int = DEFAULT_LISTING_CHARS) -> str:
        """``name: description`` lines of the subagents, by name, within ``max_chars``."""
        return compact_listing([(a.name, a.description) for a in self.subagents()], max_chars, "task")

    def permission_section(self) -> dict[str, dict[str, Any]]:
        """``{"NAME": {"permission": {...}}}`` for every agent with rules: ``Config.agent``'s shape, so
        ``RulePolicy(root, config.model_copy(update={"agent": agents.permission_section()}), agent=NAME)``
        applies file-defined agents' rules too."""
        return {name: {"permission": a.permission} for name, a in self.agents.items() if a.permission}

    def _sorted(self) -> list[AgentDef]:
        return [self.agents[n] for n in sorted(self.agents)]


def agent_dirs(root: Path, home: Path | None = None) -> list[tuple[Path, Path]]:
    """``(folder, the tree it belongs to)`` where agent files are read, lowest precedence first."""
    h = home if home is not None else Path.home()
    nbagent_user = h / ".config" / "nbagent" if home is not None else user_config_dir()
    user = [
        h / ".config/opencode/agent",
        h / ".config/opencode/agents",
        h / ".claude/agents",
        nbagent_user / "agents",
    ]
    project = [
        root / ".opencode/agent",
        root / ".opencode/agents",
        root / ".claude/agents",
        root / ".nbagent/agents",
    ]
    return [(d, h) for d in user] + [(d, root) for d in project]


def load_agents(root: Path, config: Config, home: Path | None = None) -> AgentSet:
    """Every agent definition for a project rooted at ``root`` (``home``: the user's home, for tests)."""
    defs: dict[str, dict[str, Any]] = {
        name: {"name": name, "builtin": True, "source": "built-in", **fields}
        for name, fields in BUILTINS.items()
    }
    warnings: list[str] = []
    for folder, tree in agent_dirs(root, home):
        seen: set[str] = set()
        for fields, file_warnings in _read_folder(folder, tree):
            warnings += file_warnings
            name = fields["name"]
            if name in seen:
                warnings.append(
                    f"{fields['source']}: agent '{name}' is defined twice in {folder}; this one wins"
                )
            seen.add(name)
            base = defs.get(name)
            if base and base.get("builtin"):
                defs[name] = {**base, **fields, "builtin": False}
            else:  # Claude Code's agents are subagents; OpenCode's (and ours) default to "all"
                defs[name] = {"mode": "subagent" if folder.parent.name == ".claude" else "all", **fields}
    for name, raw in config.agent.items():
        file = _config_file(root, name)
        if not isinstance(raw, dict):
            raise ConfigError(f"{file}: key 'agent.{name}': must be an object, got {raw!r}")
        fields, entry_warnings = parse_fields(
            raw, where=_json_where(file, name), base_dir=root, allowed_root=root
        )
        warnings += entry_warnings
        base = defs.get(name) or {"name": name, "mode": "all", "source": f"{file}: agent.{name}"}
        merged = {**base, **fields}
        if "extra" in base and "extra" in fields:
            merged["extra"] = {**base["extra"], **fields["extra"]}
        defs[name] = merged
    out = AgentSet(warnings=warnings)
    for name, fields in defs.items():
        try:
            agent = AgentDef.model_validate(fields)
        except ValidationError as exc:
            problems = "; ".join(f"key '{'.'.join(map(str, e['loc']))}': {e['msg']}" for e in exc.errors())
            raise ConfigError(f"{fields.get('source', name)}: agent '{name}': {problems}") from None
        if not agent.description and not agent.builtin:
            out.warnings.append(
                f"{agent.source}: agent '{name}' has no description; the model cannot tell when to use it"
            )
        if agent.disabled:
            out.disabled.append(name)
        else:
            out.agents[name] = agent
    return out


def _config_file(root: Path, name: str) -> str:
    """The nbagent.json that defines ``agent.NAME`` (the project's wins), for messages."""
    found = "nbagent.json"
    for path in config_files(root):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(data, dict) and isinstance(data.get("agent"), dict) and name in data["agent"]:
            found = str(path)
    return found


def _json_where(file: str, name: str) -> Callable[[str | None], str]:
    def where(_key: str | None) -> str:
        return f"{file}, agent '{name}'"

    return where


def _read_folder(folder: Path, tree: Path) -> list[tuple[dict[str, Any], list[str]]]:
    if not folder.is_dir():
        return []
    files = sorted(p for p in folder.rglob("*.md") if p.is_file())
    out = []
    warnings: list[str] = []
    if len(files) > MAX_FILES_PER_DIR:
        warnings.append(f"{folder}: {len(files)} agent files; only the first {MAX_FILES_PER_DIR} are read")
    for path in files[:MAX_FILES_PER_DIR]:
        out.append(_read_file(path, tree))
    if out and warnings:
        out[0][1].extend(warnings)
    return out


def _read_file(path: Path, tree: Path) -> tuple[dict[str, Any], list[str]]:
    doc = parse_file(path)
    data = doc.data
    warnings = list(doc.warnings)
    name = path.stem
    raw_name = data.get("name")
    if isinstance(raw_name, str) and NAME.match(raw_name.strip()):
        name = raw_name.strip()
    elif raw_name is not None:
        warnings.append(f"{doc.where('name')}: name {raw_name!r} is not a usable identifier; using '{name}'")
    if not NAME.match(name):
        raise ConfigError(
            f"{path}:1: '{name}' is not a valid agent name",
            "Name the file (or set 'name:') with letters, digits, '-', '_' or '.', at most 64 characters.",
        )
    fields, field_warnings = parse_fields(data, where=doc.where, base_dir=path.parent, allowed_root=tree)
    fields["name"] = name
    fields["source"] = f"{path}:1"
    if doc.body:
        if fields.get("prompt"):
            warnings.append(f"{doc.where('prompt')}: both a 'prompt' key and a body; the body is used")
        fields["prompt"] = doc.body
    return fields, warnings + field_warnings
