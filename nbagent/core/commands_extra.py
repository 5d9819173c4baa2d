"""The slash commands of issue 13: a custom command or a skill run as a prompt, ``/memory``, ``/agents``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from nbagent.core.command_expand import expand_args
from nbagent.core.command_files import CustomCommand
from nbagent.core.context import memory
from nbagent.core.errors import ConfigError
from nbagent.core.events import Event
from nbagent.core.prompt_prep import mark_command_prompt
from nbagent.ext.frontmatter import parse_file

if TYPE_CHECKING:
    from nbagent.core.session import Session


def custom_output(session: Session, command: CustomCommand, args: str) -> tuple[str | None, str, list[Event]]:
    """``(prompt, text, events)`` of a custom command or a skill invoked by the user."""
    if command.kind == "skill":
        try:
            body = parse_file(command.path).body
        except ConfigError as exc:
            return None, f"The skill `/{command.name}` cannot be read: {exc}", []
        folder = command.path.parent
        prompt = (
            f'<skill name="{command.name}" folder="{folder}">\n{expand_args(body, args).strip()}\n</skill>\n\n'
            f"The user invoked the skill /{command.name}: follow its instructions now (paths in it are"
            f" relative to {folder})."
        )
        return prompt, "", []
    events: list[Event] = []
    if command.model:
        switched = session.set_model(command.model)
        if switched is not None:
            events.append(switched)
    prompt = expand_args(command.template, args)
    text = ""
    agent = session.setup.agents.agents.get(command.agent) if command.agent else None
    if command.agent and agent is None:
        text = f"`/{command.name}` asks for agent '{command.agent}', which does not exist; it runs here."
    elif agent is not None and (command.subtask or not agent.is_primary):
        prompt = (
            f"Delegate this request to the {agent.name} subagent with the task tool"
            f' (subagent_type: "{agent.name}", its prompt: the request below, whole), then report its answer.'
            f"\n\n<request>\n{prompt.strip()}\n</request>\n"
        )
    elif agent is not None and session.setup.agent is not None and agent.name != session.setup.agent.name:
        text = f"`/{command.name}` is meant for agent '{agent.name}'; this session runs as '{session.setup.agent.name}'."
    mark_command_prompt(session, prompt)
    return prompt, text, events


def memory_command(session: Session, args: str) -> tuple[str, str | None]:
    """``/memory``: the memory files loaded and where notes go; ``/memory add TEXT`` runs ``# TEXT``."""
    verb, _, rest = args.partition(" ")
    if verb == "add":
        if not rest.strip():
            return "Usage: `/memory add TEXT` (or a prompt starting with `# `).", None
        return "", f"# {rest.strip()}"
    if verb:
        return f"Unknown `/memory {verb}`: `/memory` lists the files, `/memory add TEXT` adds a note.", None
    lines = ["**Memory files loaded in this session** (edit them with any editor; new sessions load them):"]
    for f in session.memory_files:
        lines.append(f"- {f.scope}: `{f.path}` ({len(f.text):,} characters)")
    if not session.memory_files:
        lines.append("- none")
    lines.append(
        f"\nNotes (`/memory add TEXT`, `# TEXT`) go to `{memory.project_memory_path(session.root)}`."
    )
    auto = memory.auto_memory_path(session.root)
    if session.config.memory.auto:
        lines.append(f"Auto-memory is on: the agent saves facts to `{auto}` (each write is shown).")
    else:
        lines.append('Auto-memory is off (`"memory": {"auto": true}` in nbagent.json turns it on).')
    return "\n".join(lines), None


def agents_text(session: Session) -> str:
    agents = session.setup.agents
    current = session.setup.agent.name if session.setup.agent is not None else "build"
    lines = [f"This session runs as **{current}**.", "", "Primary agents (`--agent NAME`):"]
    lines += [f"- `{a.name}`: {a.description} ({a.source})" for a in agents.primaries()]
    lines += ["", "Subagents (`@name` in a prompt, or the task tool):"]
    lines += [f"- `{a.name}`: {a.description} ({a.source})" for a in agents.subagents(include_hidden=False)]
    if agents.disabled:
        lines.append(f"\nDisabled: {', '.join(agents.disabled)}")
    return "\n".join(lines)
