"""The session kept in the notebook: one turn record per ``%%agent`` cell output, an index in the metadata.

- Each ``%%agent`` cell's output bundle carries a :class:`TurnRecord` under ``TURN_MIME``: the turn's
  messages (tool results bounded, large ones referenced by hash and size), the recorded model replies
  (for replay) and a digest of every tool result (for divergence checks).
- ``metadata.nbagent`` (:func:`build_metadata`, versioned) indexes the sessions: model, agent, usage,
  cost, cells, compaction summaries. The kernel cannot write notebook metadata; ``nbagent execute``
  (and later the JupyterLab extension) does.
- Nothing secret is written: every string goes through the session's scrubber
  (:mod:`nbagent.core.scrub`: API keys, ``.env`` values, auth headers, credential URLs, token shapes,
  values of secret-looking variables, environment dumps).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from nbagent.core.messages import Message, TextPart, Usage
from nbagent.core.scrub import default_scrubber
from nbagent.store.turn_record import (
    DIGEST_EXCERPT_CHARS,
    RECORD_ERROR_CHARS,
    RECORD_IMAGE_CHARS,
    RECORD_META_CHARS,
    RECORD_OUTPUT_CHARS,
    RECORD_TEXT_CHARS,
    SCHEMA_VERSION,
    TURN_MIME,
    Divergence,
    ReplayInfo,
    ToolDigest,
    TurnNote,
    TurnRecord,
    bound_middle,
    compare_results,
    digest,
    make_record,
    normalize_output,
    record_json,
    recorded_replies,
    replies_from_messages,
    scrub,
    scrub_bound,
    scrub_json,
    tool_digests,
)

__all__ = [
    "DIGEST_EXCERPT_CHARS",
    "METADATA_KEY",
    "RECORD_ERROR_CHARS",
    "RECORD_IMAGE_CHARS",
    "RECORD_META_CHARS",
    "RECORD_OUTPUT_CHARS",
    "RECORD_TEXT_CHARS",
    "SCHEMA_VERSION",
    "TURN_MIME",
    "CellTurn",
    "Divergence",
    "ReplayInfo",
    "ToolDigest",
    "TurnNote",
    "TurnRecord",
    "bound_middle",
    "build_metadata",
    "compare_results",
    "digest",
    "find_turn",
    "make_record",
    "merge_turns",
    "normalize_output",
    "notebook_turns",
    "read_notebook_json",
    "record_json",
    "recorded_replies",
    "replies_from_messages",
    "scrub",
    "scrub_bound",
    "scrub_json",
    "session_history",
    "sessions_index",
    "tool_digests",
    "turns_before",
    "write_metadata",
]

METADATA_KEY = "nbagent"


# ---------------------------------------------------------------------------------------------- notebooks


@dataclass
class CellTurn:
    index: int  # of the cell in the notebook
    cell_id: str | None
    source: str
    record: TurnRecord


def _records_in(outputs: Iterable[Mapping[str, Any]]) -> list[TurnRecord]:
    records = []
    for output in outputs:
        data = output.get("data") if isinstance(output, Mapping) else None
        if not isinstance(data, Mapping) or TURN_MIME not in data:
            continue
        raw = data[TURN_MIME]
        if isinstance(raw, str):
            try:
                raw = json.loads(raw)
            except json.JSONDecodeError:
                continue
        if not isinstance(raw, Mapping) or raw.get("schema_version", 0) > SCHEMA_VERSION:
            continue
        try:
            records.append(TurnRecord.model_validate(raw))
        except ValidationError:
            continue
    return records


def notebook_turns(nb: Mapping[str, Any]) -> list[CellTurn]:
    """Every recorded turn of a notebook (a dict or NotebookNode), in cell order."""
    out = []
    for index, cell in enumerate(nb.get("cells") or []):
        if not isinstance(cell, Mapping) or cell.get("cell_type") != "code":
            continue
        source = cell.get("source", "")
        source = "".join(source) if isinstance(source, list) else str(source)
        for record in _records_in(cell.get("outputs") or []):
            out.append(CellTurn(index, cell.get("id"), source, record))
    return out


def read_notebook_json(path: Path) -> dict[str, Any]:
    data = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise ValueError(f"{path} is not a notebook")
    return data


def turns_before(turns: list[CellTurn], cell_id: str | None, source: str | None = None) -> list[CellTurn]:
    """The turns recorded in the cells above the given one (all of them when it cannot be placed)."""
    if cell_id:
        for t in turns:
            if t.cell_id == cell_id:
                return [u for u in turns if u.index < t.index]
    return list(turns)


def find_turn(turns: list[CellTurn], cell_id: str | None, source: str, used: set[str]) -> CellTurn | None:
    """The recorded turn of the cell being run: by cell id, else the first unused one with the same source."""
    if cell_id:
        for t in turns:
            if t.cell_id == cell_id:
                return t
    for t in turns:
        if t.source.strip() == source.strip() and t.record.turn_id not in used:
            return t
    return None


def session_history(turns: list[CellTurn], session_id: str | None = None) -> tuple[str, list[Message], str]:
    """(session id, messages, model) to resume a session from its recorded turns.

    Without ``session_id`` the session of the last recorded turn is taken. A compaction summary in a
    turn replaces the history before it.
    """
    if not turns:
        raise ValueError("no recorded turns")
    sid = session_id or turns[-1].record.session_id
    mine = [t.record for t in turns if t.record.session_id == sid]
    if not mine:
        raise ValueError(f"no recorded turns for session {sid}")
    messages: list[Message] = []
    for record in mine:
        if record.compaction:
            messages = [
                Message(
                    role="user",
                    parts=[TextPart(text=f"Summary of the conversation so far:\n{record.compaction}")],
                    synthetic=True,
                )
            ]
        messages.extend(m.model_copy(deep=True) for m in record.messages)
    return sid, messages, mine[-1].model


def merge_turns(saved: Iterable[CellTurn], produced: Iterable[CellTurn]) -> list[CellTurn]:
    """The notebook's turns as its cells hold them now: the saved file's, where the turns this kernel
    produced since (not saved yet) are added, each replacing the same turn or the older output of its
    cell. The totals of ``/sessions`` and ``/cost`` come from these."""
    out = list(saved)
    for turn in produced:
        out = [
            t
            for t in out
            if t.record.turn_id != turn.record.turn_id and not (turn.cell_id and t.cell_id == turn.cell_id)
        ]
        out.append(turn)
    return out


def build_metadata(nb: Mapping[str, Any]) -> dict[str, Any]:
    """``metadata.nbagent``: the index of the sessions recorded in the notebook's cells, as written
    (fields at their empty value left out: ``cost`` when unknown, zero counts, no summaries)."""
    index = sessions_index(notebook_turns(nb))
    for entry in index["sessions"]:
        entry["usage"] = {k: v for k, v in entry["usage"].items() if v}
        for key in ("agent", "cost", "summaries", "divergent_results"):
            if entry[key] in (None, [], 0):
                del entry[key]
    return index


def sessions_index(turns: Iterable[CellTurn]) -> dict[str, Any]:
    """The index of the sessions of these turns (``metadata.nbagent``): per session its model, turns,
    cells, summed usage and cost, compaction summaries."""
    sessions: dict[str, dict[str, Any]] = {}
    last = None
    for turn in turns:
        r = turn.record
        last = r.session_id
        entry = sessions.setdefault(
            r.session_id,
            {
                "id": r.session_id,
                "model": r.model,
                "agent": r.agent,
                "created": r.started,
                "updated": r.finished,
                "turns": 0,
                "cells": [],
                "usage": Usage().model_dump(exclude={"cost"}),
                "cost": None,
                "summaries": [],
                "divergent_results": 0,
            },
        )
        entry["model"] = r.model
        entry["updated"] = max(entry["updated"], r.finished)
        entry["turns"] += 1
        if turn.cell_id and turn.cell_id not in entry["cells"]:
            entry["cells"].append(turn.cell_id)
        for key in entry["usage"]:
            entry["usage"][key] += getattr(r.usage, key)
        if r.usage.cost is not None:
            entry["cost"] = (entry["cost"] or 0.0) + r.usage.cost
        if r.compaction:
            entry["summaries"].append({"turn_id": r.turn_id, "summary": r.compaction})
        if r.replay is not None:
            entry["divergent_results"] += len(r.replay.divergent)
    meta = {"schema_version": SCHEMA_VERSION, "active_session": last, "sessions": list(sessions.values())}
    return default_scrubber().json(meta)  # type: ignore[no-any-return]


def write_metadata(nb: Any) -> dict[str, Any]:
    """Set ``metadata.nbagent`` on a notebook node; returns it."""
    meta = build_metadata(nb)
    nb.metadata[METADATA_KEY] = meta
    return meta
