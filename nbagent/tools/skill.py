"""``skill``: the body of a skill (``nbagent.ext.skills``), its folder and the files in it.

The session puts the available skills in the tool state under ``SKILLS_KEY`` (a ``SkillSet``, or a
list of ``Skill``); skills whose ``disable-model-invocation`` is set are not loadable by the model.
Permission key ``skill``, pattern: the skill's name.
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from nbagent.core.permission_types import PermissionQuery
from nbagent.ext.skills import SKILL_FILE, Skill, SkillSet
from nbagent.tools.base import Tool, ToolContext, ToolFailure, ToolResult, bound_output

SKILLS_KEY = "skills"
MAX_FILES = 50
MAX_DEPTH = 4


class SkillParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="The skill's name, as listed.")


def available(ctx: ToolContext) -> dict[str, Skill]:
    value = ctx.state.get(SKILLS_KEY)
    if isinstance(value, SkillSet):
        items = list(value.skills.values())
    elif isinstance(value, list):
        items = [s for s in value if isinstance(s, Skill)]
    else:
        items = []
    return {s.name: s for s in sorted(items, key=lambda s: s.name) if s.model_invocable}


def skill_files(folder: Path, limit: int = MAX_FILES) -> tuple[list[str], int]:
    """Up to ``limit`` files under ``folder`` (relative, sorted, hidden ones skipped) and the total."""
    found: list[str] = []
    total = 0
    for dirpath, dirnames, filenames in os.walk(folder):
        rel = Path(dirpath).relative_to(folder)
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and len(rel.parts) < MAX_DEPTH)
        for name in sorted(filenames):
            if name.startswith(".") or (not rel.parts and name == SKILL_FILE):
                continue
            total += 1
            if len(found) < limit:
                found.append(str(rel / name))
    return found, total


class SkillTool(Tool[SkillParams]):
    name = "skill"
    params = SkillParams
    read_only = False  # asks under its own key ("skill": allow by default)

    async def run(self, args: SkillParams, ctx: ToolContext) -> ToolResult:
        skills = available(ctx)
        name = args.name.strip().removeprefix("/")
        skill = skills.get(name)
        if skill is None:
            listed = "\n".join(f"- {s.name}: {s.description}" for s in skills.values())
            if not listed:
                raise ToolFailure(f"There is no skill '{name}': no skills are available in this session.")
            raise ToolFailure(f"There is no skill '{name}'. Available skills:\n{listed}")
        await ctx.ask(PermissionQuery(permission="skill", patterns=[name], title=f"load skill {name}"))
        try:
            body = skill.body()
        except Exception as exc:  # the file changed or vanished since the session listed it
            raise ToolFailure(f"Skill '{name}' could not be read: {exc}") from None
        files, total = skill_files(skill.path)
        lines = [f'<skill name="{name}" folder="{skill.path}">', body.strip(), "</skill>", ""]
        if files:
            lines.append(
                f"Files in {skill.path} (paths below are relative to it; read them with read,"
                " run scripts with bash):"
            )
            lines += [f"- {f}" for f in files]
            if total > len(files):
                lines.append(f"(+{total - len(files)} more: use glob in {skill.path})")
        else:
            lines.append(f"The skill's folder is {skill.path}; it holds no other files.")
        if skill.allowed_tools:
            lines.append(f"Tools this skill expects: {', '.join(skill.allowed_tools)}.")
        return ToolResult(
            output=bound_output("\n".join(lines), ctx, label="skill"),
            title=f"skill {name}",
            metadata={"skill": name, "folder": str(skill.path), "files": total},
        )
