"""Slash commands shared by every front-end: built-ins and the project's custom commands.

A command either answers with markdown text (``/cost``, ``/context``), changes the session
(``/model``, ``/undo``, ``/compact``), or expands to a prompt that runs as a turn (``/init`` and
custom commands from ``.nbagent/commands``, ``.claude/commands`` or ``.opencode/command``).
Front-end matters (``/new``, switching sessions) are reported back as an ``action``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from nbagent.core.command_expand import expand_args
from nbagent.core.command_files import COMMAND_DIRS, CustomCommand, custom_commands, load_commands
from nbagent.core.commands_extra import agents_text, custom_output, memory_command
from nbagent.core.events import Compacted, ContextReport, Event, Notice
from nbagent.core.messages import Usage
from nbagent.core.plugin_wiring import plugin_command  # issue 14 (M3)
from nbagent.tools.notebook_live import revert_live_edits

if TYPE_CHECKING:
    from nbagent.core.session import Session

__all__ = [
    "COMMAND_DIRS",
    "CommandOutput",
    "CustomCommand",
    "custom_commands",
    "expand",
    "parse",
    "run_command",
]

INIT_PROMPT = """\
Look at this repository and write a starter AGENTS.md at its root for coding agents working here.
Read the README, the build and packaging files, the test setup and a few central modules first.
Keep it short (under 60 lines) and specific to this repo:
- how to install, build, lint and run the tests (exact commands; how to run a single test)
- the layout: where the main code, tests, notebooks and data live
- code style and conventions that are not obvious from a linter config
- anything surprising: generated files, slow tests, required services or environment variables
If an AGENTS.md (or CLAUDE.md) already exists, improve it instead of replacing what is still true.
"""

HELP = """\
| command | what it does |
|---|---|
| `/help` | this list |
| `/model [provider/name]` | show or switch the model (the history carries over, the prompt cache starts over) |
| `/context` | what the next request is made of, in tokens |
| `/compact [focus]` | summarise the older history now, optionally focused |
| `/cost` | tokens and cost of this session |
| `/sessions` | the sessions of this project |
| `/new` | start a new session |
| `/undo` / `/redo` | revert the last turn's file changes and conversation / put them back |
| `/permissions [mode]` | show the permission mode and rules, or switch mode |
| `/init` | write a starter AGENTS.md for this repo |
| `/memory [add TEXT]` | the memory files loaded, or add a note to AGENTS.md (asks first; also `# note` as a prompt) |
| `/tasks` | the subagent tasks of this session: running and finished, with tokens and cost |
| `/agents` | the agents: primary ones (`--agent NAME`) and subagents (`@name` in a prompt) |
| `/mcp` | the MCP servers: state, tools, prompts, errors (`/mcp__server__prompt` runs a server's prompt) |
"""

Action = Literal["new_session"]


@dataclass
class CommandOutput:
    text: str = ""  # markdown shown to the user
    prompt: str | None = None  # run this as a turn
    events: list[Event] = field(default_factory=list)
    action: Action | None = None


def parse(line: str) -> tuple[str, str]:
    """``/name rest of line`` -> (name, rest)."""
    body = line.strip().removeprefix("/")
    name, _, rest = body.partition(" ")
    return name.strip().lower(), rest.strip()


def expand(template: str, args: str) -> str:
    """$ARGUMENTS is the whole argument string; $1..$N its shell-style words (the last takes the rest)."""
    return expand_args(template, args)


def format_context(report: ContextReport, window_source: str = "") -> str:
    rows = [
        ("System prompt", report.system_prompt),
        ("Tool definitions", report.tools),
        ("Memory files", report.memory),
        ("Compaction summary", report.summary),
        ("Messages", report.messages),
        ("Tool results", report.tool_results),
        ("Free", report.free),
        ("Reserved for the answer", report.reserve),
    ]
    used = sum(v for _, v in rows[:6])
    lines = [
        f"**{report.model}**: about {used:,} of {report.context_limit:,} tokens used"
        + ("" if report.limits_known else " (window unknown: a conservative default)"),
        *([f"Context window from {window_source}."] if window_source else []),
        "",
        "| part | tokens | share |",
        "|---|---:|---:|",
    ]
    lines += [f"| {name} | {value:,} | {value / report.context_limit:.1%} |" for name, value in rows]
    return "\n".join(lines)


def cost_text(session_id: str, model: str, u: Usage, turns: int | None = None) -> str:
    """``/cost``: tokens and cost of a session; ``turns``: over how many recorded turns (a notebook
    counts them from its records, so turns from before a kernel restart count too)."""
    cost = f"${u.cost:.4f}" if u.cost is not None else "unknown (litellm has no prices for this model)"
    over = (
        f" over {turns} turn{'s' if turns != 1 else ''} recorded in the notebook" if turns is not None else ""
    )
    return (
        f"Session `{session_id}` on **{model}**{over}: {u.input_tokens:,} input tokens"
        f" ({u.cache_read_tokens:,} cache reads, {u.cache_write_tokens:,} cache writes), {u.output_tokens:,} output"
        f" tokens; cost {cost}."
    )


def _model_command(session: Session, name: str) -> CommandOutput:
    """``/model [provider/name]``: show the model (and the fallback chain), or switch, across protocols
    too; the switch says that the prompt cache starts over."""
    if not name:
        chain = session.chain.models
        rest = f" (fallback: {', '.join(chain[1:])})" if len(chain) > 1 else ""
        lead = f"; the session's model is {chain[0]}" if session.model != chain[0] else ""
        return CommandOutput(text=f"Model: **{session.model}**{lead}{rest}")
    switched = session.set_model(name)
    if switched is None:
        return CommandOutput(text=f"Already on **{name}**.")
    text = (
        f"Model switched to **{name}**; the conversation carries over. The prompt cache starts over on the"
        " new model: the next request pays for the whole history again."
    )
    return CommandOutput(text=text, events=[switched])


async def run_command(session: Session, line: str) -> CommandOutput:
    name, args = parse(line)
    if name in ("help", "?", ""):
        found = load_commands(session.root, skills=session.setup.skills)
        extra = "".join(
            f"| `/{c.name}{' ' + c.argument_hint if c.argument_hint else ''}` | {c.description} |\n"
            for c in found.commands.values()
        )
        notes = "".join(f"\n- {w}" for w in found.warnings)
        return CommandOutput(text=HELP + extra + notes)
    if name == "model":
        return _model_command(session, args)
    if name == "context":
        report = session.context_report()
        return CommandOutput(text=format_context(report, session.limits.source), events=[report])
    if name == "compact":
        events = [event async for event in session.compact(args or None)]
        done = next((e for e in events if isinstance(e, Compacted)), None)
        if done is None:
            notes = " ".join(e.message for e in events if isinstance(e, Notice))
            return CommandOutput(text=notes or "Nothing to compact yet.", events=events)
        text = f"Compacted: about {done.tokens_before:,} → {done.tokens_after:,} tokens. Summary:\n\n{done.summary}"
        return CommandOutput(text=text, events=events)
    if name == "cost":
        return CommandOutput(text=cost_text(session.id, session.model, session.usage))
    if name in ("undo", "redo"):
        result = session.undo() if name == "undo" else session.redo()
        if result is None:
            return CommandOutput(text=f"Nothing to {name}.")
        cells = await revert_live_edits(session.tool_state, result.turn_id, name)
        files = ", ".join(f"`{session.display_path(p)}`" for p in result.reverted) or "no files"
        text = f"{name.capitalize()}: {files}." + "".join(f" {c}." for c in cells)
        if result.skipped:
            text += " Skipped: " + "; ".join(result.skipped)
        if result.shell_changed:
            text += " Files changed by shell commands were left as they are: " + ", ".join(
                f"`{session.display_path(p)}`" for p in result.shell_changed
            )
        return CommandOutput(text=text)
    if name == "sessions":
        if session.store is None:
            return CommandOutput(text="This session is not stored.")
        rows = session.store.list_sessions(session.root, limit=20)
        lines = [f"- `{i.id}` {i.title or '(untitled)'} ({i.message_count} messages)" for i in rows]
        return CommandOutput(text="\n".join(lines) or "No sessions yet.")
    if name == "new":
        return CommandOutput(text="Started a new session.", action="new_session")
    if name == "init":
        return CommandOutput(prompt=INIT_PROMPT + (f"\nAlso: {args}" if args else ""))
    if name == "permissions":
        return CommandOutput(text=session.describe_permissions(args or None))
    if name == "memory":
        text, prompt = memory_command(session, args)
        return CommandOutput(text=text, prompt=prompt)
    if name == "agents":
        return CommandOutput(text=agents_text(session))
    if name == "tasks":  # subagents of this session: running and finished (core/subagents.py)
        return CommandOutput(text=session.subagents.describe())
    command = load_commands(session.root, skills=session.setup.skills).commands.get(name)
    if command is not None:
        prompt, text, events = custom_output(session, command, args)
        return CommandOutput(text=text, prompt=prompt, events=events)
    plugin = await plugin_command(session, name, args)  # issue 14 (M3): plugins' register_commands
    if plugin is not None:
        return CommandOutput(text=plugin[0], prompt=plugin[1])
    from nbagent.core.mcp_session import mcp_command  # issue 14 (M1): /mcp, /mcp__server__prompt

    found_mcp = await mcp_command(session, name, args)
    if found_mcp is not None:
        return CommandOutput(text=found_mcp[0], prompt=found_mcp[1])
    return CommandOutput(text=f"Unknown command `/{name}`. `/help` lists the commands.")
