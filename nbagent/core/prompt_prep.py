"""What happens to a prompt before its turn's first request (run inside the turn, so permission
prompts reach the front-end):

- ``# note``: appended to the project's AGENTS.md once the user confirms (a permission prompt that is
  always asked); no model request;
- a custom command's prompt (``commands.run_command`` marks it): its ``!`cmd``` and ``@file``
  resolved (``command_expand``);
- ``@name`` of a subagent: a reminder asking the model to delegate to it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from nbagent.core.agent_setup import mention_note
from nbagent.core.command_expand import has_inline, resolve_inline
from nbagent.core.context import memory
from nbagent.core.errors import PermissionRejected
from nbagent.core.events import Notice, TurnFinished, TurnStarted
from nbagent.core.messages import Usage, new_id
from nbagent.core.permission_types import PermissionQuery

if TYPE_CHECKING:
    from nbagent.core.loop import TurnRunner
    from nbagent.core.session import Session

PENDING_KEY = "pending_command_prompt"  # tool_state: the expanded prompt of the last custom command


def note_text(prompt: str) -> str | None:
    """The note of a one-line ``# note`` prompt (one ``#`` then a space); None for any other prompt (a
    markdown heading over more lines is a prompt)."""
    text = prompt.strip()
    if text.startswith("# ") and text[2:].strip() and "\n" not in text:
        return text[2:].strip()
    return None


def mark_command_prompt(session: Session, prompt: str) -> None:
    """The next turn of exactly ``prompt`` resolves its ``!`cmd``` and ``@file`` (only a custom
    command's template does: a typed prompt never runs commands by itself)."""
    if has_inline(prompt):
        session.tool_state[PENDING_KEY] = prompt


async def run_turn(session: Session, runner: TurnRunner, prompt: str) -> None:
    note = None if session.setup.child else note_text(prompt)
    if note is not None:
        await add_note(session, runner, note)
        return
    if session.tool_state.pop(PENDING_KEY, None) == prompt:
        prompt = await resolve_inline(session, prompt)
    prompt += mention_note(session.setup.agents, prompt, "task" in session.tools_by_name)
    await runner.run(prompt)


async def add_note(session: Session, runner: TurnRunner, note: str) -> None:
    """A turn without a model request: confirm, then append ``note`` to the project's AGENTS.md."""
    from nbagent.tools.screening import path_patterns

    emit = runner.emit
    emit(TurnStarted(session_id=session.id, turn_id=runner.turn_id, prompt=f"# {note}", model=session.model))
    path = memory.project_memory_path(session.root)
    shown = session.display_path(path)
    ctx = session.tool_context(new_id("note"))
    level: str = "info"
    try:
        clean = memory.clean_note(note)
        query = PermissionQuery(
            permission="edit",
            patterns=path_patterns(ctx, path),
            title=f"Add to {shown}: {clean}",
            metadata={"diff": f"+ - {clean}"},
        )
        await session.broker.check(query, force_ask="adding a note to the project's memory file")
        memory.append_note(path, clean)
        text = f"Added to `{shown}`: {clean} (sessions started from now on load it)."
    except (PermissionRejected, ValueError) as exc:
        level, text = "warning", f"Not added to `{shown}`: {exc}"
    except OSError as exc:
        level, text = "warning", f"Not added: `{path}` cannot be written ({exc.strerror or exc})."
    emit(Notice(session_id=session.id, level="warning" if level == "warning" else "info", message=text))
    emit(
        TurnFinished(
            session_id=session.id, turn_id=runner.turn_id, reason="stop", steps=0, usage=Usage(), text=text
        )
    )
