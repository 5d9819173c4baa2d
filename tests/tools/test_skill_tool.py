"""The ``skill`` tool: a skill's body, its folder and files; unknown names list the available ones."""

from __future__ import annotations

from pathlib import Path

import pytest

from nbagent.core.errors import PermissionRejected
from nbagent.ext.skills import load_skills
from nbagent.tools.base import PermissionQuery, ToolContext, ToolFailure
from nbagent.tools.skill import MAX_FILES, SKILLS_KEY, SkillParams, SkillTool


def make_skill(base: Path, name: str, description: str = "does a thing", extra: str = "") -> Path:
    folder = base / name
    folder.mkdir(parents=True)
    (folder / "SKILL.md").write_text(
        f"---\nname: {name}\ndescription: {description}\n{extra}---\n\n# {name}\nRun scripts/run.py.\n"
    )
    return folder


@pytest.fixture
def ctx(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ToolContext:
    monkeypatch.setenv("NBAGENT_CONFIG_DIR", str(tmp_path / "home/.config/nbagent"))
    repo = tmp_path / "repo"
    (repo / ".git").mkdir(parents=True)
    skills = repo / ".claude/skills"
    folder = make_skill(skills, "pdf-forms", "Fill PDF forms.", "allowed-tools: Read, Bash\n")
    (folder / "scripts").mkdir()
    (folder / "scripts/run.py").write_text("print('hi')\n")
    (folder / "reference.md").write_text("ref\n")
    (folder / ".cache").mkdir()
    (folder / ".cache/junk").write_text("x")
    make_skill(skills, "release-notes", "Write release notes.")
    make_skill(skills, "secret-admin", "Only by hand.", "disable-model-invocation: true\n")
    c = ToolContext(root=repo, output_dir=tmp_path / "out")
    c.state[SKILLS_KEY] = load_skills(repo, home=tmp_path / "home")
    return c


async def test_loads_body_folder_and_files(ctx: ToolContext) -> None:
    asked: list[PermissionQuery] = []

    async def ask(query: PermissionQuery) -> None:
        asked.append(query)

    ctx.ask = ask
    result = await SkillTool().run(SkillParams(name="pdf-forms"), ctx)
    folder = (ctx.root / ".claude/skills/pdf-forms").resolve()
    out = result.output
    assert f'<skill name="pdf-forms" folder="{folder}">' in out
    assert "# pdf-forms\nRun scripts/run.py." in out
    assert "description:" not in out  # the frontmatter is not repeated
    assert "- reference.md\n- scripts/run.py" in out
    assert "SKILL.md" not in out.split("</skill>")[1] and ".cache" not in out
    assert "Tools this skill expects: read, bash." in out
    assert [(q.permission, q.patterns) for q in asked] == [("skill", ["pdf-forms"])]
    assert result.metadata == {"skill": "pdf-forms", "folder": str(folder), "files": 2}


async def test_unknown_and_manual_only_names_list_the_available(ctx: ToolContext) -> None:
    for name in ("nope", "secret-admin"):
        with pytest.raises(ToolFailure) as exc:
            await SkillTool().run(SkillParams(name=name), ctx)
        message = str(exc.value)
        assert f"There is no skill '{name}'" in message
        assert "- pdf-forms: Fill PDF forms.\n- release-notes: Write release notes." in message
        assert "secret-admin:" not in message
    ctx.state.pop(SKILLS_KEY)
    with pytest.raises(ToolFailure, match="no skills are available"):
        await SkillTool().run(SkillParams(name="pdf-forms"), ctx)


async def test_a_refused_permission_stops_it(ctx: ToolContext) -> None:
    async def refuse(query: PermissionQuery) -> None:
        raise PermissionRejected(f"{query.permission} {query.patterns[0]} refused")

    ctx.ask = refuse
    with pytest.raises(PermissionRejected):
        await SkillTool().run(SkillParams(name="release-notes"), ctx)


async def test_file_list_is_bounded(ctx: ToolContext) -> None:
    folder = ctx.root / ".claude/skills/release-notes/templates"
    folder.mkdir()
    for i in range(MAX_FILES + 7):
        (folder / f"t{i:03d}.md").write_text("x")
    out = (await SkillTool().run(SkillParams(name="/release-notes"), ctx)).output
    assert out.count("\n- templates/") == MAX_FILES
    assert f"(+7 more: use glob in {folder.parent.resolve()})" in out


def test_schema() -> None:
    schema = SkillTool().schema()
    assert schema["function"]["name"] == "skill"
    assert schema["function"]["parameters"]["required"] == ["name"]
    assert schema["function"]["parameters"]["additionalProperties"] is False
    assert len(SkillTool().description) < 700
