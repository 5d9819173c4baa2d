"""Custom commands: markdown files (Claude Code's and OpenCode's format), and skills the user may invoke.

Read from, first found wins for a name:

1. the project: ``.nbagent/commands/``, ``.claude/commands/``, ``.opencode/command/``, ``.opencode/commands/``;
2. the user: ``~/.config/nbagent/commands/``, ``~/.claude/commands/``, ``~/.config/opencode/command/``,
   ``~/.config/opencode/commands/``;
3. each user-invocable skill (``ext.skills``) not shadowed by a command.

A file's name (sub-folders joined by ``:``) is the command's name; its body the template
(``command_expand``); frontmatter ``description``, ``agent``, ``model``, ``subtask`` (run as a subagent),
``argument-hint``. A file that does not parse is left out with a warning, never a crash.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from nbagent.core.config import user_config_dir
from nbagent.core.errors import ConfigError
from nbagent.ext.frontmatter import parse_file
from nbagent.ext.skills import SkillSet, load_skills

COMMAND_DIRS = (".nbagent/commands", ".claude/commands", ".opencode/command", ".opencode/commands")
MAX_COMMANDS = 500


@dataclass
class CustomCommand:
    name: str
    path: Path
    description: str
    template: str
    model: str | None = None
    agent: str | None = None
    subtask: bool = False
    argument_hint: str = ""
    kind: Literal["command", "skill"] = "command"


@dataclass
class CommandSet:
    commands: dict[str, CustomCommand] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def command_dirs(root: Path, home: Path | None = None) -> list[Path]:
    """Folders searched, highest precedence first."""
    h = home if home is not None else Path.home()
    user = [
        user_config_dir() / "commands",
        h / ".claude/commands",
        h / ".config/opencode/command",
        h / ".config/opencode/commands",
    ]
    return [root / d for d in COMMAND_DIRS] + user


def _text(value: object) -> str:
    return " ".join(str(value).split()) if isinstance(value, str | int | float) else ""


def _read(path: Path, name: str) -> CustomCommand:
    doc = parse_file(path)
    meta = doc.data
    first = next((ln.strip() for ln in doc.body.splitlines() if ln.strip()), "")
    subtask = meta.get("subtask", False)
    if not isinstance(subtask, bool):
        raise ConfigError(f"{doc.where('subtask')}: key 'subtask': must be true or false, got {subtask!r}")
    model = _text(meta.get("model")) or None
    return CustomCommand(
        name=name,
        path=path,
        description=_text(meta.get("description")) or first[:80],
        template=doc.body + "\n",
        model=None if model == "inherit" else model,
        agent=_text(meta.get("agent")) or None,
        subtask=subtask,
        argument_hint=_text(meta.get("argument-hint")),
    )


def load_commands(root: Path, home: Path | None = None, skills: SkillSet | None = None) -> CommandSet:
    out = CommandSet()
    for directory in command_dirs(root, home):
        if not directory.is_dir():
            continue
        for path in sorted(directory.rglob("*.md"))[:MAX_COMMANDS]:
            name = ":".join(path.relative_to(directory).with_suffix("").parts).lower()
            if name in out.commands or not path.is_file():
                continue
            try:
                out.commands[name] = _read(path, name)
            except ConfigError as exc:
                out.warnings.append(f"Command /{name} left out: {exc}" + (f" {exc.hint}" if exc.hint else ""))
    out.warnings += _cc_plugin_commands(root, out)  # issue 14 (M3)
    if skills is None:
        try:
            skills = load_skills(root, home=home)
        except ConfigError as exc:
            out.warnings.append(f"Skills left out: {exc}")
            skills = SkillSet()
    for skill in skills.user_invocable():
        if skill.name in out.commands:
            continue
        out.commands[skill.name] = CustomCommand(
            name=skill.name,
            path=skill.file,
            description=f"(skill) {skill.description}",
            template="",
            argument_hint=skill.argument_hint,
            kind="skill",
        )
    return out


def _cc_plugin_commands(root: Path, out: CommandSet) -> list[str]:
    """issue 14 (M3): the commands of Claude Code plugin folders (plugins.dirs), as /plugin:command."""
    from nbagent.core.config import load_config
    from nbagent.ext.cc_plugins import load_cc_plugins

    try:
        found = load_cc_plugins(root, load_config(root))
    except ConfigError as exc:
        return [f"Plugin commands left out: {exc}"]
    warnings: list[str] = []
    for command in found.commands():
        try:
            out.commands.setdefault(command.name, _read(command.path, command.name))
        except ConfigError as exc:
            warnings.append(f"Command /{command.name} left out: {exc}")
    return warnings


def custom_commands(root: Path, home: Path | None = None) -> dict[str, CustomCommand]:
    """The commands of a project rooted at ``root`` (user-invocable skills included)."""
    return load_commands(root, home).commands
