"""Custom agents from real files in every folder, in Claude Code's and OpenCode's dialects."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nbagent.core.config import Config, load_config
from nbagent.core.errors import ConfigError
from nbagent.core.permission_types import PermissionQuery
from nbagent.ext.agent_parse import MODEL_ALIASES
from nbagent.ext.agents import AgentSet, load_agents
from nbagent.permissions.policy import RulePolicy
from nbagent.providers.models import model_info

CLAUDE_REVIEWER = """\
---
name: code-reviewer
description: Expert code review specialist. Proactively reviews code for quality, security, and maintainability. Use immediately after writing or modifying code.
tools: Read, Grep, Glob, Bash
model: sonnet
color: red
---

You are a senior code reviewer ensuring high standards of code quality and security.

When invoked:
1. Run git diff to see recent changes
2. Focus on modified files
3. Begin review immediately
"""

OPENCODE_REVIEW = """\
---
description: Reviews code for best practices and potential issues
mode: subagent
model: anthropic/claude-sonnet-4-20250514
temperature: 0.1
steps: 12
tools:
  write: false
  edit: false
  bash: false
permission:
  edit: deny
  webfetch: deny
---

You are in code review mode. Focus on:

- Code quality and best practices
- Potential bugs and edge cases
"""

OPENCODE_DOCS = """\
---
description: Writes and maintains project documentation
mode: primary
prompt: "{file:./prompts/docs.txt}"
maxSteps: 30
hidden: false
permission:
  bash:
    "*": ask
    "git status*": allow
---
"""


@pytest.fixture
def root(tmp_path: Path) -> Path:
    r = tmp_path / "repo"
    r.mkdir()
    return r


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def load(root: Path, home: Path) -> AgentSet:
    return load_agents(root, load_config(root), home=home)


def test_builtins_without_any_file(root: Path, home: Path) -> None:
    agents = load(root, home)
    assert sorted(agents.agents) == ["build", "explore", "general", "plan"]
    assert [a.name for a in agents.primaries()] == ["build", "plan"]
    assert [a.name for a in agents.subagents()] == ["explore", "general"]
    explore = agents.subagent("explore")
    tools = [
        "read",
        "write",
        "edit",
        "apply_patch",
        "glob",
        "grep",
        "bash",
        "bash_output",
        "webfetch",
        "task",
    ]
    assert explore.select_tools(tools) == ["read", "glob", "grep", "bash", "bash_output"]
    general = agents.get("general")
    assert general.select_tools(tools) == [t for t in tools if t != "task"]
    assert agents.get("plan").permission_mode == "plan"
    assert agents.primary().name == "build"
    assert agents.warnings == []


def test_explore_is_read_only_under_the_real_policy(root: Path, home: Path) -> None:
    agents = load(root, home)
    explore = agents.get("explore")
    config = Config().model_copy(update={"agent": agents.permission_section()})
    policy = RulePolicy(root, config, agent="explore", mode=explore.permission_mode)

    def decide(permission: str, pattern: str) -> str:
        return policy.evaluate(PermissionQuery(permission=permission, patterns=[pattern])).action

    assert decide("bash", "ls -la") == "allow"
    assert decide("bash", "grep -rn foo .") == "allow"
    assert decide("bash", "rm -rf build") == "deny"
    assert decide("edit", "a.py") == "deny"
    assert decide("read", "a.py") == "allow"


def test_claude_code_agent(root: Path, home: Path) -> None:
    write(root / ".claude/agents/code-reviewer.md", CLAUDE_REVIEWER)
    agents = load(root, home)
    agent = agents.subagent("code-reviewer")
    assert agent.mode == "subagent"  # Claude Code's agents are subagents
    assert agent.model == "anthropic/claude-sonnet-4-6"
    assert agent.tools == ["bash", "bash_output", "glob", "grep", "kill_shell", "read"]
    assert not agent.allows_tool("edit")
    assert agent.prompt.startswith("You are a senior code reviewer")
    assert agent.prompt.endswith("Begin review immediately")
    assert agent.description.startswith("Expert code review specialist.")
    assert agent.source == f"{root / '.claude/agents/code-reviewer.md'}:1"
    assert agents.warnings == []  # color is a known cosmetic key


def test_opencode_agent_and_its_permission(root: Path, home: Path) -> None:
    write(root / ".opencode/agent/review.md", OPENCODE_REVIEW)
    agents = load(root, home)
    agent = agents.get("review")
    assert (agent.mode, agent.model, agent.temperature, agent.max_steps) == (
        "subagent", "anthropic/claude-sonnet-4-20250514", 0.1, 12,
    )  # fmt: skip
    assert agent.tools is None
    # OpenCode: write/edit false turn off every tool that changes files; bash's helpers go with it
    for tool in ("write", "edit", "apply_patch", "notebook_edit", "bash", "bash_output", "kill_shell"):
        assert not agent.allows_tool(tool), tool
    assert agent.allows_tool("read") and agent.allows_tool("mcp__github__list_issues")
    config = Config().model_copy(update={"agent": agents.permission_section()})
    policy = RulePolicy(root, config, agent="review")
    assert (
        policy.evaluate(PermissionQuery(permission="webfetch", patterns=["https://x.org"])).action == "deny"
    )
    assert agent.rules()["edit"] == [("*", "deny")]


def test_opencode_prompt_file_and_json_shape(root: Path, home: Path) -> None:
    write(root / ".opencode/agents/prompts/docs.txt", "You write documentation.\n")
    write(root / ".opencode/agents/docs.md", OPENCODE_DOCS)
    agents = load(root, home)
    docs = agents.primary("docs")
    assert docs.prompt == "You write documentation."
    assert docs.max_steps == 30
    assert docs.permission == {"bash": {"*": "ask", "git status*": "allow"}}
    with pytest.raises(ConfigError, match="primary agent only"):
        agents.subagent("docs")


def test_prompt_file_outside_the_tree_is_refused(root: Path, home: Path, tmp_path: Path) -> None:
    write(tmp_path / "secret.txt", "nope")
    write(root / ".nbagent/agents/leak.md", '---\ndescription: x\nprompt: "{file:../../secret.txt}"\n---\n')
    with pytest.raises(ConfigError, match=r"leak\.md:3: .*outside"):
        load(root, home)


def test_tool_names_of_both_ecosystems(root: Path, home: Path) -> None:
    write(
        root / ".claude/agents/mapper.md",
        "---\nname: mapper\ndescription: maps\n"
        "tools: [Read, MultiEdit, NotebookEdit, WebFetch, TodoWrite, LS, mcp__github__create_issue, Task(explore, docs)]\n"
        "disallowedTools: Bash\nmaxTurns: 7\npermissionMode: bypassPermissions\nmodel: inherit\n---\nMap.\n",
    )
    write(
        root / ".opencode/agent/oc.md",
        "---\ndescription: oc\ntools:\n  '*': false\n  read: true\n  list: true\n  patch: true\n---\nOC\n",
    )
    agents = load(root, home)
    mapper = agents.get("mapper")
    assert mapper.tools == sorted(
        [
            "read",
            "edit",
            "notebook_edit",
            "webfetch",
            "todowrite",
            "glob",
            "mcp__github__create_issue",
            "task",
        ]
    )
    assert mapper.disallowed_tools == ["bash", "bash_output", "kill_shell"]
    assert (mapper.max_steps, mapper.permission_mode, mapper.model) == (7, "bypass", None)
    assert mapper.permission == {"task": {"*": "deny", "explore": "allow", "docs": "allow"}}
    oc = agents.get("oc")
    assert oc.mode == "all"  # OpenCode's default
    assert oc.tools == ["apply_patch", "edit", "glob", "notebook_edit", "read", "write"]


def test_model_aliases_are_priced_models() -> None:
    for alias, model in MODEL_ALIASES.items():
        info = model_info(model)
        assert info is not None and info.input_cost_per_token, (alias, model)


def test_precedence(root: Path, home: Path) -> None:
    write(home / ".config/opencode/agent/twin.md", "---\ndescription: user opencode\n---\nA")
    write(home / ".claude/agents/twin.md", "---\ndescription: user claude\n---\nB")
    write(home / ".config/nbagent/agents/solo.md", "---\ndescription: user only\n---\nC")
    agents = load(root, home)
    assert agents.get("twin").description == "user claude"
    assert agents.get("solo").description == "user only"
    write(root / ".opencode/agents/twin.md", "---\ndescription: project opencode\n---\nD")
    assert load(root, home).get("twin").description == "project opencode"  # project over user
    write(root / ".claude/agents/twin.md", "---\ndescription: project claude\n---\nE")
    assert load(root, home).get("twin").description == "project claude"
    write(root / ".nbagent/agents/twin.md", "---\ndescription: project nbagent\nmode: primary\n---\nF")
    twin = load(root, home).get("twin")
    assert (twin.description, twin.prompt, twin.mode) == ("project nbagent", "F", "primary")
    # nbagent.json is merged over the file, key by key
    write(
        root / "nbagent.json", json.dumps({"agent": {"twin": {"model": "openai/gpt-5", "temperature": 0.3}}})
    )
    twin = load(root, home).get("twin")
    assert (twin.description, twin.prompt, twin.model, twin.temperature) == (
        "project nbagent", "F", "openai/gpt-5", 0.3,
    )  # fmt: skip


def test_config_agent_section_keeps_working(root: Path, home: Path) -> None:
    write(
        root / "nbagent.json",
        json.dumps(
            {
                "agent": {
                    "build": {"permission": {"bash": {"git push*": "deny"}}},
                    "helper": {"description": "json-only helper", "mode": "subagent", "prompt": "Help."},
                }
            }
        ),
    )
    config = load_config(root)
    agents = load_agents(root, config, home=home)
    build = agents.get("build")
    assert build.description.startswith("The default agent") and build.mode == "primary"
    assert build.permission == {"bash": {"git push*": "deny"}}
    helper = agents.subagent("helper")
    assert (helper.prompt, helper.description) == ("Help.", "json-only helper")
    # the policy reads the same rules either way
    for section in (config, config.model_copy(update={"agent": agents.permission_section()})):
        policy = RulePolicy(root, section, agent="build")
        assert (
            policy.evaluate(PermissionQuery(permission="bash", patterns=["git push origin"])).action == "deny"
        )


def test_file_over_builtin_is_merged_and_disable_removes(root: Path, home: Path) -> None:
    write(root / ".opencode/agent/build.md", "---\nmodel: openai/gpt-5\n---\n")
    write(root / ".opencode/agent/general.md", "---\ndisable: true\n---\n")
    agents = load(root, home)
    build = agents.primary("build")
    assert build.model == "openai/gpt-5" and build.mode == "primary" and build.description
    assert "general" not in agents.agents
    with pytest.raises(ConfigError, match="'general' is disabled") as exc:
        agents.get("general")
    assert "explore" in exc.value.hint


def test_broken_frontmatter_names_file_and_line(root: Path, home: Path) -> None:
    path = write(
        root / ".claude/agents/bad.md", "---\nname: bad\ndescription: ok\ntools: [Read, Grep\n---\nbody\n"
    )
    with pytest.raises(ConfigError, match=rf"{path}:\d+: the frontmatter is not valid YAML"):
        load(root, home)
    write(path, "---\nname: bad\ndescription: ok\n")
    with pytest.raises(ConfigError, match=rf"{path}:1: .*never closed"):
        load(root, home)
    write(path, "---\nname: bad\ndescription: ok\ntemperature: hot\n---\nbody\n")
    with pytest.raises(ConfigError, match=rf"{path}:4: key 'temperature'"):
        load(root, home)
    write(path, "---\ndescription: ok\npermission:\n  bash: maybe\n---\nbody\n")
    with pytest.raises(ConfigError, match=rf"{path}:3: key 'permission.bash'"):
        load(root, home)


def test_unknown_keys_are_kept_and_warned(root: Path, home: Path) -> None:
    path = write(
        root / ".claude/agents/odd.md",
        "---\nname: odd\ndescription: Use this agent when: the user asks for odd things\n"
        "memory: project\nfavourite_colour: blue\n---\nOdd.\n",
    )
    agents = load(root, home)
    odd = agents.get("odd")
    assert odd.extra == {"memory": "project", "favourite_colour": "blue"}
    assert odd.description == "Use this agent when: the user asks for odd things"
    assert f"{path}:4: unknown key 'memory' is kept but not used" in agents.warnings
    assert f"{path}:5: unknown key 'favourite_colour' is kept but not used" in agents.warnings
    assert any(w.startswith(f"{path}:3:") and "not quoted" in w for w in agents.warnings)


def test_name_falls_back_to_the_file_stem(root: Path, home: Path) -> None:
    write(
        root / ".opencode/agents/frontend-developer.md",
        "---\nname: Frontend Developer\ndescription: UI\n---\nx",
    )
    agents = load(root, home)
    assert "frontend-developer" in agents.agents
    assert any("not a usable identifier" in w for w in agents.warnings)


def test_listing_is_sorted_compact_and_capped(root: Path, home: Path) -> None:
    for i in range(12):
        write(
            root / f".nbagent/agents/agent-{i:02d}.md",
            f"---\nmode: subagent\ndescription: Agent number {i} does a specific job well. "
            "It also has a long second sentence that the listing leaves out.\n---\nx",
        )
    write(root / ".nbagent/agents/boss.md", "---\nmode: primary\ndescription: not a subagent\n---\nx")
    write(
        root / ".nbagent/agents/quiet.md",
        "---\nmode: subagent\nhidden: true\ndescription: hidden one\n---\nx",
    )
    agents = load(root, home)
    text = agents.listing()
    lines = text.splitlines()
    assert lines[0].startswith("agent-00: Agent number 0 does a specific job well. It also")
    assert all(line.endswith("…") and len(line) <= len("agent-00: ") + 100 for line in lines[:12])
    assert "leaves out" not in text and "boss" not in text
    assert "quiet: hidden one" in text  # hidden hides from @-mentions, not from the task tool
    assert "quiet" not in [a.name for a in agents.subagents(include_hidden=False)]
    assert text == agents.listing()  # stable
    small = agents.listing(max_chars=300)
    assert len(small) <= 300
    assert small.splitlines()[-1].startswith("(+") and "more" in small


def test_empty_keys_mean_unset_and_crlf_files_load(root: Path, home: Path) -> None:
    write(
        root / ".claude/agents/plain.md",
        "---\r\nname: plain\r\ndescription: d\r\ntools:\r\nmodel:\r\n---\r\nHi\r\n",
    )
    plain = load(root, home).get("plain")
    assert (plain.tools, plain.model, plain.prompt) == (None, None, "Hi")
