"""``/sessions`` and ``/cost`` in a notebook: totals from the notebook's turn records.

The records are the saved file's, merged with the turns this kernel recorded since (see
:meth:`NotebookAgent.notebook_records`), so turns from before a kernel restart count, and a turn
counts once whether or not the notebook was saved after it.
"""

from __future__ import annotations

from collections.abc import Iterable

from nbagent.core.commands import cost_text
from nbagent.core.messages import Usage
from nbagent.core.session import Session
from nbagent.store.notebook import CellTurn, sessions_index


def notebook_cost_text(records: Iterable[CellTurn], session: Session) -> str:
    """Tokens and cost of ``session`` summed over its recorded turns; the live session's counters
    where it has no record yet."""
    entry = next((e for e in sessions_index(records)["sessions"] if e["id"] == session.id), None)
    if entry is None:
        return cost_text(session.id, session.model, session.usage)
    usage = Usage(**entry["usage"], cost=entry["cost"])
    return cost_text(session.id, session.model, usage, turns=int(entry["turns"]))


def sessions_text(records: Iterable[CellTurn], current: Session | None, *, known: bool) -> str:
    """The sessions recorded in the notebook, with their turns, model and cost; ``known``: the kernel
    knows its notebook (or has recorded turns)."""
    lines = [] if known else ["- (this kernel does not know its notebook file: `%agent /attach PATH`)"]
    current_id = current.id if current is not None else None
    sessions = sessions_index(records)["sessions"]
    for s in sessions:
        cost = f", ${s['cost']:.4f}" if s["cost"] is not None else ""
        mark = " (current)" if s["id"] == current_id else ""
        turns = f"{s['turns']} turn{'s' if s['turns'] != 1 else ''}"
        lines.append(f"- `{s['id']}`{mark}: {turns}, model {s['model']}{cost}")
    if current is not None and all(s["id"] != current_id for s in sessions):
        lines.append(f"- `{current_id}` (current): no turn recorded yet, model {current.model}")
    return "**Sessions** (from the notebook's records)\n\n" + ("\n".join(lines) or "No sessions yet.")
