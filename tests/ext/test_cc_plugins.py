"""Claude Code plugin folders: skills, agents, commands, hooks and MCP servers, namespaced plugin:item,
loaded by a real session (scripted model over HTTP; hooks run as real processes)."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

from nbagent.core.command_files import load_commands
from nbagent.core.config import load_config, user_config_dir
from nbagent.core.events import Notice
from nbagent.core.session import Session
from nbagent.ext.cc_plugins import load_cc_plugins
from nbagent.providers.scripted import ListScript, Reply, ScriptedModelServer, ToolCallSpec
from tests.conftest import Serve, collect


def write(path: Path, body: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(body).lstrip())


def make_plugin(folder: Path) -> Path:
    """A marketplace folder holding one plugin, lint-kit, with one item of each kind."""
    plugin = folder / "lint-kit"
    write(plugin / ".claude-plugin" / "plugin.json", '{"name": "lint-kit", "version": "1.2.0"}')
    write(
        plugin / "skills" / "style" / "SKILL.md",
        """
        ---
        name: style
        description: The house style for Python code.
        ---
        Use four spaces.
        """,
    )
    write(
        plugin / "agents" / "reviewer.md",
        """
        ---
        description: Reviews a change for style problems.
        tools: read, grep
        ---
        You review code.
        """,
    )
    write(
        plugin / "commands" / "check.md", "---\ndescription: Check a file\n---\nCheck $ARGUMENTS for style.\n"
    )
    hook = {
        "hooks": {
            "PostToolUse": [
                {
                    "matcher": "Bash",
                    "hooks": [{"type": "command", "command": "cat > ${CLAUDE_PLUGIN_ROOT}/ran.json"}],
                }
            ]
        }
    }
    write(plugin / "hooks" / "hooks.json", json.dumps(hook))
    write(plugin / ".mcp.json", json.dumps({"mcpServers": {"db": {"command": "${CLAUDE_PLUGIN_ROOT}/srv"}}}))
    return plugin


def session_for(root: Path, server: ScriptedModelServer) -> Session:
    config = load_config(root).model_copy(update={"model": "openai/scripted", "api_base": server.openai_base})
    return Session(root, config, api_key="k", headless="allow")


def bash_script() -> ListScript:
    return ListScript([Reply(tool_calls=[ToolCallSpec("bash", {"command": "echo hi"})]), Reply(text="ok")])


async def test_user_configured_plugin_folder_loads_every_kind(tmp_path: Path, serve: Serve) -> None:
    plugin = make_plugin(tmp_path / "market")
    project = tmp_path / "project"
    project.mkdir()
    user_config_dir().mkdir(parents=True, exist_ok=True)
    (user_config_dir() / "nbagent.json").write_text(
        json.dumps({"plugins": {"dirs": [str(tmp_path / "market")]}})
    )

    server = serve(bash_script())
    session = session_for(project, server)
    skill = session.setup.skills.skills["lint-kit:style"]
    assert skill.description == "The house style for Python code."
    reviewer = session.setup.agents.agents["lint-kit:reviewer"]
    assert reviewer.is_subagent and reviewer.prompt.strip() == "You review code."
    commands = load_commands(project, skills=session.setup.skills).commands
    assert commands["lint-kit:check"].template.strip() == "Check $ARGUMENTS for style."
    assert "lint-kit:style" in commands  # a user-invocable skill is a command too
    assert load_cc_plugins(project, load_config(project)).mcp_servers() == {
        "lint-kit:db": {"command": f"{plugin}/srv"}
    }

    # the hook (user-level: trusted) runs on the bash call with the plugin root expanded
    await collect(session, "go")
    await session.close()
    ran = json.loads((plugin / "ran.json").read_text())
    assert ran["hook_event_name"] == "PostToolUse" and ran["tool_name"] == "bash"


async def test_project_named_plugin_hooks_wait_for_trust(tmp_path: Path, serve: Serve) -> None:
    project = tmp_path / "project"
    plugin = make_plugin(project / "vendor")
    (project / "nbagent.json").write_text(json.dumps({"plugins": {"dirs": ["vendor"]}}))
    server = serve(bash_script())
    session = session_for(project, server)
    assert "lint-kit:style" in session.setup.skills.skills  # prompts load; code waits for trust
    events = await collect(session, "go")
    await session.close()
    assert not (plugin / "ran.json").exists()
    assert any("not trusted" in e.message for e in events if isinstance(e, Notice))

    # trusting runs it; the trust covers the plugin's hooks file
    server2 = serve(bash_script())
    trusted = Session(
        project,
        load_config(project).model_copy(update={"model": "openai/scripted", "api_base": server2.openai_base}),
        api_key="k",
        headless="allow",
        trust_project=True,
    )
    assert plugin / "hooks" / "hooks.json" in trusted.project_trust.sources
    await collect(trusted, "go")
    await trusted.close()
    assert (plugin / "ran.json").is_file()


def test_broken_plugins_are_warnings(tmp_path: Path) -> None:
    market = tmp_path / "market"
    write(market / "bad" / ".claude-plugin" / "plugin.json", '{"version": "1"}')
    make_plugin(market)
    write(market / "dup" / ".claude-plugin" / "plugin.json", '{"name": "lint-kit"}')
    config = load_config(tmp_path).model_copy(update={"plugins": {"dirs": [str(market), "missing"]}})
    found = load_cc_plugins(tmp_path, config)
    assert [p.name for p in found.plugins] == ["lint-kit"]
    text = "\n".join(found.warnings)
    assert "bad" in text and "not a valid plugin manifest" in text
    assert "'lint-kit'" in text and "already loaded" in text
    assert "missing does not exist" in text


async def test_plugin_mcp_servers_give_the_session_tools(tmp_path: Path, serve: Serve) -> None:
    """A plugin's .mcp.json server (user-configured folder: trusted) starts with the session's MCP
    servers; its tools are offered and answer under the plugin's namespace."""
    import sys

    from nbagent.core.events import ToolCallCompleted

    fixture = str(Path(__file__).with_name("mcp_fixture_server.py"))
    plugin = tmp_path / "market" / "kit"
    write(plugin / ".claude-plugin" / "plugin.json", json.dumps({"name": "kit"}))
    write(
        plugin / ".mcp.json",
        json.dumps({"mcpServers": {"fx": {"command": sys.executable, "args": [fixture, "stdio"]}}}),
    )
    project = tmp_path / "project"
    project.mkdir()
    user_config_dir().mkdir(parents=True, exist_ok=True)
    (user_config_dir() / "nbagent.json").write_text(
        json.dumps({"plugins": {"dirs": [str(tmp_path / "market")]}})
    )
    call = Reply(tool_calls=[ToolCallSpec("mcp__kit_fx__echo", {"text": "via the plugin"})])
    server = serve(ListScript([call, Reply(text="done")]))
    session = session_for(project, server)
    events = await collect(session, "echo")
    await session.close()
    done = [e for e in events if isinstance(e, ToolCallCompleted)]
    assert done and done[0].output == "echo: via the plugin", events
    assert "mcp__kit_fx__echo" in {t["function"]["name"] for t in server.requests[0].body["tools"]}
