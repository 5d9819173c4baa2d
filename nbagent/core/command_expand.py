"""A custom command's template made into a prompt: arguments, then ``!`cmd``` output and ``@file`` contents.

- ``$ARGUMENTS``: the whole argument string; ``$1`` … ``$N``: its shell-style words, the highest
  placeholder taking the rest of the words (``/fix $1 $2`` with ``a b c``: ``$2`` is ``b c``); no
  placeholder at all: the arguments are appended after a blank line.
- ``!`cmd```: the command runs as the ``bash`` tool would (the same permission check through the
  session's policy and prompts, sandbox, environment and output bounds); its output replaces it.
- ``@path``: an existing file's contents (permission-checked as ``read``, at most ``MAX_FILE_CHARS``).

Arguments are substituted first (``expand_args``, no side effects); the other two need a running turn
(a permission prompt must reach a front-end) and happen at its start (``resolve_inline``).
"""

from __future__ import annotations

import dataclasses
import re
import shlex
from pathlib import Path
from typing import TYPE_CHECKING

from nbagent.core.events import Event, Notice, ToolCallOutput
from nbagent.core.messages import new_id
from nbagent.core.permission_types import PermissionQuery
from nbagent.tools.base import ToolContext, ToolFailure

if TYPE_CHECKING:
    from nbagent.core.session import Session

MAX_FILE_CHARS = 20_000
MAX_SHELL_CHARS = 20_000
_POSITIONAL = re.compile(r"\$([1-9][0-9]?)(?![0-9])")
SHELL = re.compile(r"!`([^`\n]+)`")
FILE = re.compile(r"(?<![\w`@/])@((?:~|\.{1,2})?/?[\w.\-/]*[\w\-/][\w.\-/]*)")


def expand_args(template: str, args: str) -> str:
    """``$ARGUMENTS`` and ``$1``…``$N`` (the highest takes the rest); appended when there is none."""
    try:
        words = shlex.split(args)
    except ValueError:
        words = args.split()
    numbers = [int(m.group(1)) for m in _POSITIONAL.finditer(template)]
    highest = max(numbers, default=0)

    def positional(match: re.Match[str]) -> str:
        n = int(match.group(1))
        if n == highest:
            return " ".join(words[n - 1 :])
        return words[n - 1] if n <= len(words) else ""

    text = _POSITIONAL.sub(positional, template)
    has_arguments = "$ARGUMENTS" in template
    text = text.replace("$ARGUMENTS", args)
    if not has_arguments and not numbers and args:
        text = f"{text.rstrip()}\n\n{args}"
    return text


def has_inline(text: str) -> bool:
    """Whether ``text`` holds a ``!`cmd``` or an ``@file`` to resolve at the turn's start."""
    return bool(SHELL.search(text) or FILE.search(text))


async def resolve_inline(session: Session, text: str) -> str:
    """``text`` with each ``!`cmd``` replaced by its output and each ``@file`` (that exists) by its
    contents; refused ones are replaced by a note saying so (and a notice tells the user)."""
    out: list[str] = []
    pos = 0
    for match in SHELL.finditer(text):
        out.append(text[pos : match.start()])
        out.append(await _shell(session, match.group(1)))
        pos = match.end()
    out.append(text[pos:])
    text = "".join(out)
    return await _files(session, text)


def _quiet(session: Session, call_id: str) -> ToolContext:
    """The session's tool context for an inline command: its output chunks are not streamed (no tool
    card holds them); permission prompts and notices still reach the front-end."""
    ctx = session.tool_context(call_id)

    def emit(event: Event) -> None:
        if not isinstance(event, ToolCallOutput):
            ctx.emit(event)

    return dataclasses.replace(ctx, emit=emit)


def _notice(session: Session, message: str) -> None:
    session._emit(Notice(session_id=session.id, level="warning", message=message))


async def _shell(session: Session, command: str) -> str:
    from nbagent.tools.shell import BashParams, BashTool

    tool = session.tools_by_name.get("bash")
    if not isinstance(tool, BashTool):
        tool = BashTool()
    ctx = _quiet(session, new_id("cmd"))
    try:
        result = await tool.run(BashParams(command=command, description=f"command: {command}"), ctx)
    except ToolFailure as exc:  # PermissionRejected too
        _notice(session, f"`!{command}` did not run: {exc}")
        return f"[`{command}` was not run: {exc}]"
    output = result.output
    if len(output) > MAX_SHELL_CHARS:
        output = output[:MAX_SHELL_CHARS] + f"\n[… cut at {MAX_SHELL_CHARS} characters]"
    return output.rstrip("\n")


async def _files(session: Session, text: str) -> str:
    from nbagent.core.errors import PermissionRejected
    from nbagent.tools.screening import path_patterns

    ctx = _quiet(session, new_id("cmd"))
    pieces: list[str] = []
    done: set[Path] = set()
    for match in FILE.finditer(text):
        path = ctx.resolve(match.group(1))
        if not path.is_file() or path in done:
            continue
        done.add(path)
        shown = ctx.display(path)
        try:
            await ctx.ask(
                PermissionQuery(permission="read", patterns=path_patterns(ctx, path), title=f"Read {shown}")
            )
        except PermissionRejected as exc:
            _notice(session, f"@{shown} was not included: {exc}")
            pieces.append(f'<file path="{shown}">[not included: {exc}]</file>')
            continue
        try:
            raw = path.read_bytes()[: MAX_FILE_CHARS * 4]
        except OSError as exc:
            pieces.append(f'<file path="{shown}">[cannot be read: {exc.strerror or exc}]</file>')
            continue
        if b"\0" in raw[:8192]:
            pieces.append(f'<file path="{shown}">[a binary file: not included]</file>')
            continue
        body = raw.decode("utf-8", errors="replace")
        cut = ""
        if len(body) > MAX_FILE_CHARS:
            body, cut = body[:MAX_FILE_CHARS], f"\n[… cut at {MAX_FILE_CHARS} characters: read the rest]"
        pieces.append(f'<file path="{shown}">\n{body}{cut}\n</file>')
    if not pieces:
        return text
    return text.rstrip() + "\n\n" + "\n\n".join(pieces)
