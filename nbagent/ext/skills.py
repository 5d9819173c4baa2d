"""Skills: ``SKILL.md`` folders (Claude Code's and OpenCode's format), listed compactly, loaded on demand.

Searched, nearest first (the first skill of a name wins, later ones are reported as shadowed):

1. from the working folder up to the git root (the working folder alone outside a repository), in each
   folder: ``.nbagent/skills/``, ``.claude/skills/``, ``.agents/skills/``, ``.opencode/skills/``;
2. the user's: ``~/.config/nbagent/skills/``, ``~/.claude/skills/``, ``~/.config/opencode/skills/``.

Each skill is a folder holding ``SKILL.md``: a frontmatter with ``name`` (lowercase letters, digits and
single hyphens, at most 64 characters; a folder name that differs is a warning), ``description``
(required: without one the skill is skipped with a warning), and Claude Code's optional
``allowed-tools``, ``disable-model-invocation``, ``user-invocable``, ``argument-hint``. The body is read
only when the skill is used (``Skill.body()``).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from nbagent.core.config import user_config_dir
from nbagent.core.errors import ConfigError
from nbagent.ext.frontmatter import parse_file
from nbagent.ext.listing import compact_listing
from nbagent.ext.notes import git_root
from nbagent.ext.tool_names import nbagent_tool, split_list, split_spec

SKILL_FILE = "SKILL.md"
PROJECT_DIRS = (".nbagent/skills", ".claude/skills", ".agents/skills", ".opencode/skills")
NAME = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")
MAX_NAME = 64
MAX_SKILLS_PER_DIR = 200
DEFAULT_LISTING_CHARS = 1_100  # about 275 tokens: ten skills with one-line descriptions
KNOWN = {
    "name", "description", "allowed-tools", "allowed_tools", "disable-model-invocation",
    "user-invocable", "argument-hint", "license", "metadata", "compatibility", "version", "model",
}  # fmt: skip


class Skill(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    description: str
    path: Path = Field(description="The skill's folder (SKILL.md and its scripts, references, assets).")
    allowed_tools: list[str] = Field(default_factory=list, description="nbagent names, specifiers kept.")
    disable_model_invocation: bool = False
    user_invocable: bool = True
    argument_hint: str = ""
    extra: dict[str, Any] = Field(default_factory=dict)

    @property
    def file(self) -> Path:
        return self.path / SKILL_FILE

    @property
    def model_invocable(self) -> bool:
        return not self.disable_model_invocation

    def body(self) -> str:
        """The instructions (SKILL.md without its frontmatter), read now: the file may have changed."""
        return parse_file(self.file).body


class SkillSet(BaseModel):
    skills: dict[str, Skill] = Field(default_factory=dict)
    warnings: list[str] = Field(default_factory=list)

    def model_invocable(self) -> list[Skill]:
        return [self.skills[n] for n in sorted(self.skills) if self.skills[n].model_invocable]

    def user_invocable(self) -> list[Skill]:
        return [self.skills[n] for n in sorted(self.skills) if self.skills[n].user_invocable]


def skill_dirs(cwd: Path, home: Path | None = None) -> list[Path]:
    """Folders searched, nearest first."""
    start = cwd.resolve()
    top = git_root(start)
    chain = [start] if top is None else [start, *start.parents[: len(start.parents) - len(top.parents)]]
    out = [folder / d for folder in chain for d in PROJECT_DIRS]
    h = home if home is not None else Path.home()
    nbagent_user = h / ".config" / "nbagent" if home is not None else user_config_dir()
    out += [nbagent_user / "skills", h / ".claude/skills", h / ".config/opencode/skills"]
    return out


def load_skills(cwd: Path, home: Path | None = None) -> SkillSet:
    """Every skill visible from ``cwd``; a broken SKILL.md raises ``ConfigError`` with file:line."""
    out = SkillSet()
    for folder in skill_dirs(cwd, home):
        if not folder.is_dir():
            continue
        entries = sorted(p for p in folder.iterdir() if (p / SKILL_FILE).is_file())
        if len(entries) > MAX_SKILLS_PER_DIR:
            out.warnings.append(
                f"{folder}: {len(entries)} skills; only the first {MAX_SKILLS_PER_DIR} are read"
            )
        for skill_dir in entries[:MAX_SKILLS_PER_DIR]:
            skill = _read_skill(skill_dir, out.warnings)
            if skill is None:
                continue
            if skill.name in out.skills:
                first = out.skills[skill.name].file
                out.warnings.append(f"{skill.file}: skill '{skill.name}' is shadowed by {first}")
                continue
            out.skills[skill.name] = skill
    return out


def _read_skill(folder: Path, warnings: list[str]) -> Skill | None:
    doc = parse_file(folder / SKILL_FILE)
    warnings.extend(doc.warnings)
    data = doc.data
    raw_name = data.get("name", folder.name)
    name = str(raw_name).strip()
    if not NAME.match(name) or len(name) > MAX_NAME:
        warnings.append(
            f"{doc.where('name')}: skill name {raw_name!r} is not valid; skipped (use lowercase letters,"
            f" digits and single hyphens, at most {MAX_NAME} characters, e.g. pdf-forms)"
        )
        return None
    if "name" in data and name != folder.name:
        warnings.append(f"{doc.where('name')}: skill name '{name}' differs from its folder '{folder.name}'")
    description = data.get("description")
    if not isinstance(description, str) or not description.strip():
        warnings.append(f"{doc.where('description')}: skill '{name}' has no description; skipped")
        return None
    for key in data:
        if key not in KNOWN:
            warnings.append(f"{doc.where(key)}: unknown key '{key}' is kept but not used")
    return Skill(
        name=name,
        description=" ".join(description.split()),
        path=folder.resolve(),
        allowed_tools=_allowed_tools(data, doc.where),
        disable_model_invocation=_flag(data, "disable-model-invocation", False, doc.where),
        user_invocable=_flag(data, "user-invocable", True, doc.where),
        argument_hint=str(data.get("argument-hint") or ""),
        extra={k: v for k, v in data.items() if k not in KNOWN or k in ("license", "metadata", "version")},
    )


def _flag(data: dict[str, Any], key: str, default: bool, where: Any) -> bool:
    value = data.get(key, default)
    if not isinstance(value, bool):
        raise ConfigError(f"{where(key)}: key '{key}': must be true or false, got {value!r}")
    return value


def _allowed_tools(data: dict[str, Any], where: Any) -> list[str]:
    key = "allowed-tools" if "allowed-tools" in data else "allowed_tools"
    value = data.get(key)
    if value is None:
        return []
    items = split_list(value) if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
        raise ConfigError(f"{where(key)}: key '{key}': must be tool names, got {value!r}")
    out = []
    for item in items:
        base, arg = split_spec(item)
        name, _ = nbagent_tool(base)
        out.append(f"{name}({arg})" if arg is not None else name)
    return out


def skill_listing(skills: SkillSet | list[Skill], max_chars: int = DEFAULT_LISTING_CHARS) -> str:
    """``name: description`` lines of the model-invocable skills, by name, within ``max_chars``."""
    items = skills.model_invocable() if isinstance(skills, SkillSet) else skills
    chosen = sorted((s for s in items if s.model_invocable), key=lambda s: s.name)
    return compact_listing([(s.name, s.description) for s in chosen], max_chars, "skill")
