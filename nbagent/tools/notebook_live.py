"""The open notebook as the agent's workspace: the seams the notebook tools reach it through.

The kernel's own notebook is open in an editor. When a front-end with nbagent's extension is attached
(JupyterLab 4, Notebook 7; the client itself in ``nbagent execute``), the tools read and edit its *live*
document and route cell outputs into it (:class:`LiveDocument`, the requests of the live-document
protocol, see :mod:`nbagent.jupyter.document`). Without one, the file is never written behind the
editor's back. :class:`OpenNotebook` (in the tool state under ``FRONTEND_KEY``) says which notebook is
open and finds its front-end; the Jupyter side provides it, tests provide their own.

Notebook edits of a turn are logged (:class:`LiveEdits`, under ``LIVE_EDITS_KEY``) as the requests that
undo them, so ``/undo`` reverts them with the turn's file edits.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from nbagent.tools.base import ToolContext, ToolFailure

FRONTEND_KEY = "notebook_frontend"
OPEN_KEY = "open_notebooks"
LIVE_EDITS_KEY = "notebook_live_edits"
TURN_KEY = "turn_id"
KERNEL_KEY = "kernel"  # as nbagent.tools.kernel names it  # the running turn's id (provenance of the cells the agent changes)


class LiveDocument(Protocol):
    """The open notebook's document in a front-end."""

    frontend: str  # "jupyterlab", "notebook7", "nbclient", ...

    async def request(self, op: str, args: dict[str, Any]) -> dict[str, Any]:
        """One request of the live-document protocol; raises :class:`ToolFailure` with the front-end's
        message when it refuses (a missing cell...), or when it does not answer."""
        ...

    def output(self, cell_id: str, output: dict[str, Any]) -> None:
        """Append one nbformat output to a running cell (streamed: no answer)."""
        ...


class OpenNotebook(Protocol):
    """The notebook this kernel runs in, and the front-end that shows it."""

    async def is_open(self, path: Path) -> bool:
        """``path`` is the notebook open in the editor (the kernel's own; when the kernel does not know
        which that is, the front-end that answers says)."""
        ...

    async def document(self) -> LiveDocument | None:
        """The live document, or None when no front-end with the extension answers."""
        ...

    def next_input(self, source: str) -> str | None:
        """Without a front-end: have the editor add a cell with ``source`` below the running cell when
        it finishes (IPython's ``set_next_input``). Returns what to tell the model, None if impossible."""
        ...


async def open_notebook(ctx: ToolContext, path: Path) -> OpenNotebook | None:
    """The :class:`OpenNotebook` when ``path`` is the notebook open in the editor, else None."""
    frontend: OpenNotebook | None = ctx.state.get(FRONTEND_KEY)
    if frontend is not None and await frontend.is_open(path):
        return frontend
    if any(same_path(path, Path(p)) for p in ctx.state.get(OPEN_KEY, ())):
        return _NoFrontend()
    return None


def same_path(a: Path, b: Path) -> bool:
    return a.resolve() == b.resolve()


class _NoFrontend:
    """The kernel's notebook is open in an editor nbagent cannot reach (a front-end without the seam)."""

    async def is_open(self, path: Path) -> bool:
        return True

    async def document(self) -> LiveDocument | None:
        return None

    def next_input(self, source: str) -> str | None:
        return None


def ran_source_of(ctx: ToolContext) -> Any:
    """What the kernel ran for an execution count (``ran_source(count, cell_id)``), when it knows."""
    return getattr(ctx.state.get(KERNEL_KEY), "ran_source", None)


async def live_cells(doc: LiveDocument) -> list[dict[str, Any]]:
    reply = await doc.request("cells", {})
    cells = reply.get("cells")
    if not isinstance(cells, list):
        raise ToolFailure(f"The notebook front-end ({doc.frontend}) sent no cells. Try again.")
    return [c if isinstance(c, dict) else {} for c in cells]


def provenance(ctx: ToolContext, action: str) -> dict[str, Any]:
    """``metadata.nbagent`` of a cell the agent inserts or changes."""
    return {
        "turn": ctx.state.get(TURN_KEY) or "",
        "session": ctx.session_id,
        "call": ctx.call_id,
        "action": action,
    }


@dataclass
class LiveEdits:
    """Per turn, the requests that undo its notebook edits (newest last), and those that redo them."""

    undo: dict[str, list[tuple[str, dict[str, Any]]]] = field(default_factory=dict)
    redo: dict[str, list[tuple[str, dict[str, Any]]]] = field(default_factory=dict)

    def add(self, turn: str, undo_op: str, undo_args: dict[str, Any], op: str, args: dict[str, Any]) -> None:
        self.undo.setdefault(turn, []).append((undo_op, undo_args))
        self.redo.setdefault(turn, []).append((op, args))


def live_edits(state: dict[str, Any]) -> LiveEdits:
    edits = state.get(LIVE_EDITS_KEY)
    if not isinstance(edits, LiveEdits):
        edits = state[LIVE_EDITS_KEY] = LiveEdits()
    return edits


async def revert_live_edits(state: dict[str, Any], turn_id: str, action: str) -> list[str]:
    """Undo (or redo) the notebook edits of ``turn_id`` in the live document; what happened, for the user."""
    edits = state.get(LIVE_EDITS_KEY)
    frontend: OpenNotebook | None = state.get(FRONTEND_KEY)
    if not isinstance(edits, LiveEdits):
        return []
    ops = edits.undo.get(turn_id, []) if action == "undo" else edits.redo.get(turn_id, [])
    if not ops:
        return []
    doc = await frontend.document() if frontend is not None else None
    if doc is None:
        return [f"{len(ops)} notebook cell edit(s) not {action}ne: no notebook front-end answers"]
    done, failed = 0, []
    for op, args in reversed(ops) if action == "undo" else ops:
        try:
            await doc.request(op, args)
            done += 1
        except ToolFailure as exc:
            failed.append(str(exc))
    notes = [f"{done} notebook cell edit(s) {action}ne"] if done else []
    return notes + failed
