"""What a session is made of beyond the config: its primary agent, skills and auto-memory.

``prepare`` runs once when a session is created (the results are fixed for the session, so the system
prompt and the tool list stay byte-identical across requests and the prompt cache holds):

- the primary agent (``%%agent --agent NAME``, ``nbagent run --agent NAME``; none named: the session
  runs as before, with the configuration's rules): its prompt joins the system prompt, its tool
  allow/deny lists filter the tools, its model, permission mode and ``max_steps`` replace the
  configuration's, and its permission rules layer over the configuration's (``RulePolicy(agent=...)``);
- the skills (``ext.skills``): a compact listing in the system prompt and the ``skill`` tool, when
  there are skills the model may load and the agent allows the tool;
- auto-memory (``"memory": {"auto": true}``): the per-project file, loaded bounded, and the ``memory``
  tool that writes to it.

Problems in the definitions become ``warnings``, shown once (at the session's first turn).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nbagent.core.config import Config
from nbagent.core.context import memory
from nbagent.core.errors import ConfigError
from nbagent.ext.agents import AgentDef, AgentSet, load_agents
from nbagent.ext.cc_plugins import CCPluginSet, load_cc_plugins  # issue 14 (M3)
from nbagent.ext.plugins import load_plugins  # issue 14 (M3)
from nbagent.ext.skills import SkillSet, load_skills, skill_listing
from nbagent.tools.base import Tool

SKILLS_HEADING = (
    "# Skills\nLoad a skill with the skill tool before working on a task that matches its description:"
)


@dataclass
class AgentSetup:
    config: Config
    tools: list[Tool[Any]]
    agent: AgentDef | None = None
    agents: AgentSet = field(default_factory=AgentSet)
    skills: SkillSet = field(default_factory=SkillSet)
    sections: list[str] = field(default_factory=list)  # system prompt sections after the base prompt
    auto_memory: memory.MemoryFile | None = None
    warnings: list[str] = field(default_factory=list)
    cc_plugins: CCPluginSet = field(default_factory=CCPluginSet)  # issue 14 (M3): Claude Code plugins
    plugins: Any = None  # issue 14 (M3): the installed plugins (ext.plugins.Plugins), loaded once
    child: bool = False  # a subagent's session: its prompts come from a model, never notes or commands

    def policy_config(self) -> Config:
        """The config whose ``agent`` section holds every agent's rules (files included)."""
        return self.config.model_copy(update={"agent": self.agents.permission_section()})


def prepare(
    root: Path, config: Config, tools: list[Tool[Any]], agent_name: str | None, home: Path | None = None
) -> AgentSetup:
    """The session's agent, skills and auto-memory; a named agent that cannot be used is a ``ConfigError``."""
    warnings: list[str] = []
    try:
        agents = load_agents(root, config, home=home)
    except ConfigError as exc:
        if agent_name:
            raise
        agents = AgentSet()
        warnings.append(f"Custom agents are not available: {exc}" + (f" {exc.hint}" if exc.hint else ""))
    warnings += agents.warnings
    try:
        skills = load_skills(root, home=home)
    except ConfigError as exc:
        skills = SkillSet()
        warnings.append(f"Skills are not available: {exc}" + (f" {exc.hint}" if exc.hint else ""))
    warnings += skills.warnings
    # issue 14 (M3): Claude Code plugin folders (plugins.dirs): their skills and agents as plugin:item
    cc_plugins = load_cc_plugins(root, config)
    warnings += cc_plugins.warnings
    for cc_skill in cc_plugins.skills():
        skills.skills.setdefault(cc_skill.name, cc_skill)
    for cc_agent in cc_plugins.agents():
        agents.agents.setdefault(cc_agent.name, cc_agent)
    plugins = load_plugins(config)  # issue 14 (M3): installed plugins; their agents join
    for plugin_agent in plugins.agents():
        agents.agents.setdefault(plugin_agent.name, plugin_agent)
    agent = agents.primary(agent_name) if agent_name else None
    setup = AgentSetup(config=config, tools=list(tools), agent=agent, agents=agents, skills=skills)
    setup.cc_plugins, setup.plugins = cc_plugins, plugins  # issue 14 (M3)
    setup.warnings = warnings
    if agent is not None:
        update: dict[str, Any] = {}
        if agent.model:
            update["model"] = agent.model
        if agent.permission_mode:
            update["mode"] = agent.permission_mode
        if agent.max_steps:
            update["max_steps"] = agent.max_steps
        setup.config = config.model_copy(update=update)
        setup.tools = [t for t in tools if agent.allows_tool(t.name)]
        if agent.prompt.strip():
            setup.sections.append(f"# Agent: {agent.name}\n{agent.prompt.strip()}")
    allows = agent.allows_tool if agent is not None else (lambda _name: True)
    names = {t.name for t in setup.tools}
    listing = skill_listing(skills)
    if listing and allows("skill"):
        if "skill" not in names:
            from nbagent.tools.skill import SkillTool

            setup.tools.append(SkillTool())
        setup.sections.append(f"{SKILLS_HEADING}\n{listing}")
    if config.memory.auto:
        setup.auto_memory = memory.load_auto(root, config.memory.max_chars)
        if allows("memory") and "memory" not in names:
            from nbagent.tools.memory_tool import MemoryTool

            setup.tools.append(MemoryTool())
    return setup


def mention_note(agents: AgentSet, prompt: str, has_task: bool) -> str:
    """A reminder asking the model to delegate to the subagents ``@name``d in ``prompt`` (visible ones)."""
    import re

    if not has_task:
        return ""
    named = []
    for match in re.finditer(r"(?<![\w@/.])@([A-Za-z0-9][A-Za-z0-9_.-]{0,63})", prompt):
        agent = agents.agents.get(match.group(1))
        if agent is not None and agent.is_subagent and not agent.hidden and agent.name not in named:
            named.append(agent.name)
    if not named:
        return ""
    lines = [
        f'The user mentioned @{n}: delegate that part to it with the task tool (subagent_type: "{n}").'
        for n in named
    ]
    return "\n\n<system-reminder>\n" + "\n".join(lines) + "\n</system-reminder>"


def make_policy(setup: AgentSetup, root: Path) -> Any:
    """The session's ``RulePolicy``: the agent's rules over the configuration's when an agent is named."""
    from nbagent.permissions.policy import RulePolicy

    if setup.agent is None:
        return RulePolicy(root, setup.config)
    return RulePolicy(root, setup.policy_config(), agent=setup.agent.name, mode=setup.config.mode)
