"""Where plugins and custom tools join a session (issue 14): its tools and system prompt at creation,
``tool_before``/``tool_after`` around each call, ``compaction`` into each summary.

Tools: the session's own first, then custom tools (user files always; project files only when the
folder is already trusted: ``nbagent trust`` or ``--trust-project``), then plugins' ``register_tools``.
A name already taken is skipped with a notice; a named agent's tool allow/deny lists apply.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from nbagent.core.config import Config
from nbagent.core.events import Notice
from nbagent.ext.cc_plugins import CCPluginSet, hook_entries, load_cc_plugins, project_defines_dirs
from nbagent.ext.custom_tools import load_custom_tools, project_tool_files, user_tool_files
from nbagent.ext.hooks import HookRunner
from nbagent.ext.plugins import Plugins, Refuse, load_plugins
from nbagent.ext.trust import ENV, ProjectTrust, folder_key
from nbagent.tools.base import Tool

if TYPE_CHECKING:
    from nbagent.core.agent_setup import AgentSetup


def trust_sources(root: Path, hook_sources: list[Path], cc: CCPluginSet | None = None) -> list[Path]:
    """What project trust covers: the hooks' config files, the project's custom tool files and, when the
    project names Claude Code plugin folders, those plugins' hooks files."""
    extra: list[Path] = []
    if cc is not None and cc.plugins and project_defines_dirs(root):
        extra = [f for p in cc.plugins if (f := p.path / "hooks" / "hooks.json").is_file()]
    return [*hook_sources, *project_tool_files(root), *extra]


def attach_cc_hooks(runner: HookRunner, cc: CCPluginSet, root: Path) -> list[str]:
    """The Claude Code plugins' hooks join the session's; project code when the project named the folders."""
    entries, notes = hook_entries(cc)
    project = project_defines_dirs(root)
    runner.entries += [(event, matcher, project) for event, matcher in entries]
    return notes


def extension_tools(
    root: Path, config: Config, setup: AgentSetup, trust: ProjectTrust, plugins: Plugins, taken: set[str]
) -> tuple[list[Tool[Any]], list[str]]:
    """The custom and plugin tools for a new session, and the notices about them."""
    files = user_tool_files()
    project_files = project_tool_files(root)
    notices: list[str] = []
    if project_files and trust.trusted_now():
        files += project_files
    elif project_files:
        folder = folder_key(root)
        notices.append(
            f"Custom tools in {root / '.nbagent' / 'tools'} were not loaded: {folder} is not trusted. Trust it"
            f" with `nbagent trust {folder}` (or --trust-project / {ENV}=1 for one run) and start a new session."
        )
    tools, problems = load_custom_tools(files, taken)
    notices += problems
    names = taken | {t.name for t in tools}
    for tool in plugins.tools():
        if tool.name in names:
            notices.append(f"A plugin's tool {tool.name!r} was skipped: a tool with that name exists.")
            continue
        names.add(tool.name)
        tools.append(tool)
    if setup.agent is not None:
        tools = [t for t in tools if setup.agent.allows_tool(t.name)]
    return tools, notices


def session_plugins(config: Config, setup: AgentSetup, root: Path) -> Plugins:
    """The installed plugins (loaded by ``prepare`` for a primary session); their ``system_prompt`` texts
    join the setup's sections."""
    plugins = setup.plugins if isinstance(setup.plugins, Plugins) else load_plugins(config)
    if not setup.child:
        setup.sections += plugins.system_prompt(str(root))
    return plugins


def _flush(host: Any, plugins: Plugins) -> None:
    """A plugin disabled during a turn: said now, as a warning notice of the turn."""
    emit = getattr(host, "_emit", None)
    for notice in plugins.take_notices():
        if emit is not None:
            emit(Notice(session_id=host.id, level="warning", message=notice))
        else:
            host.add_notice(notice)


async def plugin_before(
    host: Any, tool: Tool[Any], data: dict[str, Any]
) -> tuple[Any, dict[str, Any]] | str | None:
    """Plugins' ``tool_before``: None (unchanged), ``(args, data)`` (rewritten) or an error (refused)."""
    plugins: Plugins | None = getattr(host, "plugins", None)
    if plugins is None:
        return None
    result = await plugins.tool_before(tool.name, data, host.id)
    _flush(host, plugins)
    if isinstance(result, Refuse):
        return f"Refused by a plugin: {result.reason}"
    if result == data:
        return None
    try:
        return tool.parse(result), result
    except ValidationError as exc:
        return f"A plugin's tool_before rewrote the input into an invalid one: {exc.errors()[0]['msg']}"


async def plugin_after(host: Any, tool: str, data: dict[str, Any], output: str) -> str:
    plugins: Plugins | None = getattr(host, "plugins", None)
    if plugins is None:
        return output
    output = await plugins.tool_after(tool, data, output, host.id)
    _flush(host, plugins)
    return output


def plugin_compaction(host: Any, summary: str) -> str:
    """The summary with the plugins' ``compaction`` context appended."""
    plugins: Plugins | None = getattr(host, "plugins", None)
    extra = plugins.compaction(host.id) if plugins is not None else ""
    return f"{summary}\n\n{extra}" if extra else summary


def plugins_report(root: Path, config: Config) -> str:
    """``nbagent plugins``: the installed plugins and the custom tools, as a session here would load them."""
    plugins = load_plugins(config)
    lines = ["Plugins (entry point group 'nbagent'):", *("  " + x for x in plugins.listing().splitlines())]
    for notice in plugins.take_notices():
        lines.append(f"  ! {notice}")
    cc = load_cc_plugins(root, config)
    lines.append("Claude Code plugins (plugins.dirs):" + ("" if cc.plugins else " none"))
    for p in cc.plugins:
        counts = {
            "skills": len(p.skills), "agents": len(p.agents), "commands": len(p.commands),
            "hook events": len(p.hooks), "MCP servers": len(p.mcp_servers),
        }  # fmt: skip
        shown = ", ".join(f"{n} {what}" for what, n in counts.items() if n) or "nothing"
        lines.append(f"  {p.name}  [{p.path}]  {shown}")
    lines += [f"  ! {w}" for w in cc.warnings]
    trust = ProjectTrust(root, trust_sources(root, HookRunner(config, root, "").project_sources, cc))
    for label, files, allowed in (
        ("User custom tools", user_tool_files(), True),
        ("Project custom tools", project_tool_files(root), trust.trusted_now()),
    ):
        lines.append(f"{label}:" + ("" if files else " none"))
        if files and not allowed:
            lines.append(f"  not loaded: the folder is not trusted (`nbagent trust {folder_key(root)}`)")
            continue
        tools, problems = load_custom_tools(files, set())
        lines += [f"  {t.name}  ({t.description.splitlines()[0]})" for t in tools]
        lines += [f"  ! {p}" for p in problems]
    return "\n".join(lines)


async def plugin_command(session: Any, name: str, args: str) -> tuple[str, str | None] | None:
    """A plugin's ``/name``: (text shown, prompt to run) or None when no plugin defines it. A template
    expands ``$ARGUMENTS``/``$1``; a callable ``(session, args)`` returns the markdown shown."""
    import inspect

    from nbagent.core.command_expand import expand_args

    plugins: Plugins | None = getattr(session, "plugins", None)
    found = plugins.commands().get(name) if plugins is not None else None
    if found is None:
        return None
    plugin, body = found
    if isinstance(body, str):
        return "", expand_args(body, args)
    try:
        value = body(session, args)
        if inspect.isawaitable(value):
            value = await value
    except Exception as exc:
        return f"/{name} (plugin {plugin}) failed: {type(exc).__name__}: {exc}", None
    return str(value or ""), None
