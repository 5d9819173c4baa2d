"""Skills: SKILL.md folders found from the working folder up to the git root and in the user's folders."""

from __future__ import annotations

from pathlib import Path

import pytest

from nbagent.core.errors import ConfigError
from nbagent.ext.skills import PROJECT_DIRS, load_skills, skill_listing

PDF_SKILL = """\
---
name: pdf-forms
description: Fill and extract PDF form fields. Use when the user works with PDF forms or asks to fill a PDF.
allowed-tools: Read, Bash(python scripts/*:*)
argument-hint: "[file.pdf]"
license: Apache-2.0
---

# PDF forms

1. Run `python scripts/fields.py FILE` to list the fields.
2. See reference.md for the field types.
"""


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    r = tmp_path / "outer" / "repo"
    (r / ".git").mkdir(parents=True)
    return r


def skill(
    base: Path, name: str, description: str | None = "does a thing", extra: str = "", body: str = "Body."
) -> Path:
    folder = base / name
    folder.mkdir(parents=True, exist_ok=True)
    desc = f"description: {description}\n" if description is not None else ""
    (folder / "SKILL.md").write_text(f"---\nname: {name}\n{desc}{extra}---\n\n{body}\n", encoding="utf-8")
    return folder


def test_every_project_and_user_folder(repo: Path, home: Path) -> None:
    for i, d in enumerate(PROJECT_DIRS):
        skill(repo / d, f"project-{i}")
    skill(home / ".config/nbagent/skills", "user-nbagent")
    skill(home / ".claude/skills", "user-claude")
    skill(home / ".config/opencode/skills", "user-opencode")
    skills = load_skills(repo, home=home)
    assert sorted(skills.skills) == [
        "project-0", "project-1", "project-2", "project-3", "user-claude", "user-nbagent", "user-opencode",
    ]  # fmt: skip
    assert skills.warnings == []


def test_claude_code_skill_fields_and_lazy_body(repo: Path, home: Path) -> None:
    folder = repo / ".claude/skills/pdf-forms"
    folder.mkdir(parents=True)
    (folder / "SKILL.md").write_text(PDF_SKILL, encoding="utf-8")
    s = load_skills(repo, home=home).skills["pdf-forms"]
    assert s.description.startswith("Fill and extract PDF form fields.")
    assert s.allowed_tools == ["read", "bash(python scripts/*:*)"]
    assert (s.argument_hint, s.user_invocable, s.model_invocable) == ("[file.pdf]", True, True)
    assert s.extra == {"license": "Apache-2.0"}
    assert s.path == folder.resolve()
    assert s.body().startswith("# PDF forms")
    (folder / "SKILL.md").write_text(PDF_SKILL.replace("# PDF forms", "# PDF forms v2"), encoding="utf-8")
    assert s.body().startswith("# PDF forms v2")  # read when used, not when listed


def test_nearest_wins_and_search_stops_at_the_git_root(repo: Path, home: Path) -> None:
    sub = repo / "pkg" / "sub"
    sub.mkdir(parents=True)
    skill(repo / ".claude/skills", "deploy", "repo-level deploy")
    skill(sub / ".nbagent/skills", "deploy", "nearest deploy")
    skill(repo / "pkg/.agents/skills", "lint", "middle lint")
    skill(repo.parent / ".claude/skills", "outside", "above the git root")
    skill(home / ".claude/skills", "lint", "user lint")
    skills = load_skills(sub, home=home)
    assert skills.skills["deploy"].description == "nearest deploy"
    assert skills.skills["lint"].description == "middle lint"  # project over user
    assert "outside" not in skills.skills
    assert any("shadowed" in w and "deploy" in w for w in skills.warnings)


def test_without_git_only_the_working_folder(tmp_path: Path, home: Path) -> None:
    work = tmp_path / "a" / "b"
    work.mkdir(parents=True)
    skill(work / ".claude/skills", "here")
    skill(tmp_path / "a/.claude/skills", "above")
    assert sorted(load_skills(work, home=home).skills) == ["here"]


def test_validation_warnings(repo: Path, home: Path) -> None:
    base = repo / ".claude/skills"
    skill(base, "Bad_Name")
    skill(base, "no-description", description=None)
    folder = skill(base, "folder-name")
    (folder / "SKILL.md").write_text("---\nname: other-name\ndescription: renamed\nweird: 1\n---\nx\n")
    skill(base, "x" * 65)
    skills = load_skills(repo, home=home)
    assert sorted(skills.skills) == ["other-name"]
    text = "\n".join(skills.warnings)
    assert "'Bad_Name' is not valid" in text and f"'{'x' * 65}' is not valid" in text
    assert "skill 'no-description' has no description; skipped" in text
    assert "'other-name' differs from its folder 'folder-name'" in text
    assert f"{folder / 'SKILL.md'}:4: unknown key 'weird'" in text


def test_broken_skill_file_names_file_and_line(repo: Path, home: Path) -> None:
    folder = repo / ".claude/skills/broken"
    folder.mkdir(parents=True)
    (folder / "SKILL.md").write_text("---\nname: broken\ndescription: [unclosed\n---\nx\n")
    with pytest.raises(ConfigError, match=rf"{folder / 'SKILL.md'}:\d+: the frontmatter is not valid YAML"):
        load_skills(repo, home=home)


def test_listing_only_model_invocable_sorted_and_capped(repo: Path, home: Path) -> None:
    base = repo / ".nbagent/skills"
    for i in range(15):
        skill(
            base, f"skill-{i:02d}", f"Skill {i} handles one kind of task carefully. More detail follows here."
        )
    skill(base, "manual-only", "only by hand", extra="disable-model-invocation: true\n")
    skills = load_skills(repo, home=home)
    text = skill_listing(skills)
    assert "manual-only" not in text
    assert text.splitlines()[0].startswith("skill-00: Skill 0 handles one kind of task carefully.")
    assert text == skill_listing(list(reversed(list(skills.skills.values()))))  # stable order
    assert "manual-only" in [s.name for s in skills.user_invocable()]
    capped = skill_listing(skills, max_chars=400)
    assert len(capped) <= 400
    assert capped.endswith("more: use skill to list)")
    long = skill_listing(skills, max_chars=900)
    assert len(long) <= 900 and "(+" not in long  # descriptions shortened before entries are dropped
    assert skill_listing([]) == ""
