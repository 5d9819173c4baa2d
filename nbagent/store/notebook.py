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

import hashlib
import json
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError

from nbagent.core.messages import Message, TextPart, ToolCompleted, ToolError, ToolPart, Usage
from nbagent.core.scrub import Scrubber, default_scrubber
from nbagent.providers.replay import RecordedCall, RecordedStep

TURN_MIME = "application/vnd.nbagent.turn+json"
SCHEMA_VERSION = 1
METADATA_KEY = "nbagent"
RECORD_OUTPUT_CHARS = 800  # per tool result kept in the notebook (head + tail)
RECORD_TEXT_CHARS = 20_000  # per text part
RECORD_ERROR_CHARS = 2_000
RECORD_META_CHARS = 2_000  # a tool result's metadata, serialised
RECORD_IMAGE_CHARS = 64_000  # base64 characters of images kept inline per turn


# ---------------------------------------------------------------------------------------------- secrets


def scrub(text: str, extra_secrets: Iterable[str] | Scrubber = ()) -> str:
    """``text`` with secrets replaced by ``[redacted]`` (:mod:`nbagent.core.scrub`): those of the
    environment, the shapes of known tokens, and ``extra_secrets`` (values, or a session's scrubber)."""
    return _scrubber(extra_secrets).text(text)


def scrub_json(value: Any, extra_secrets: Iterable[str] | Scrubber = ()) -> Any:
    return _scrubber(extra_secrets).json(value)


def _scrubber(extra: Iterable[str] | Scrubber) -> Scrubber:
    if isinstance(extra, Scrubber):
        return extra
    return default_scrubber().with_values(extra)


# ---------------------------------------------------------------------------------------------- records

_VOLATILE = [
    (re.compile(r"\b0x[0-9a-fA-F]{6,}\b"), "0x?"),
    (re.compile(r"\b(?:call|msg|ses|turn|perm|toolu|chatcmpl)_[0-9A-Za-z]{8,}\b"), "<id>"),
    (re.compile(r"\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:?\d\d)?"), "<time>"),
    (re.compile(r"\b\d+(?:\.\d+)?\s?(?:s|ms|us|µs|sec|secs|seconds)\b"), "<dur>"),
    (re.compile(r"/(?:tmp|var/folders)/[^\s'\"():,]+"), "<tmp>"),
]


def normalize_output(text: str, root: Path | str | None = None) -> str:
    """A tool output with what changes from run to run (paths of temp dirs, times, ids) masked."""
    if root:
        text = text.replace(str(root), "<root>")
    for pattern, repl in _VOLATILE:
        text = pattern.sub(repl, text)
    return text


def digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "replace")).hexdigest()[:16]


def bound_middle(text: str, limit: int, note: str = "") -> str:
    if len(text) <= limit:
        return text
    half = limit // 2
    omitted = len(text) - 2 * half
    return f"{text[:half]}\n... [{omitted:,} characters not kept in the notebook{note}] ...\n{text[-half:]}"


class ToolDigest(BaseModel):
    call_id: str
    tool: str
    status: Literal["completed", "error", "pending", "running"]
    chars: int = 0
    sha256: str = ""  # of the normalised output (or error)
    excerpt: str = ""  # bounded, normalised: shown when a replay diverges


class Divergence(BaseModel):
    call_id: str
    tool: str
    recorded: str  # "completed: <excerpt>" / "error: ..." / "missing"
    replayed: str


class ReplayInfo(BaseModel):
    of_turn: str
    divergent: list[Divergence] = Field(default_factory=list)
    compared: int = 0


class TurnRecord(BaseModel):
    """What a ``%%agent`` cell output records of its turn."""

    schema_version: int = SCHEMA_VERSION
    session_id: str
    turn_id: str
    cell_id: str | None = None
    prompt: str
    model: str
    agent: str | None = None
    mode: str = "default"
    started: float = 0.0
    finished: float = 0.0
    reason: str = "stop"
    messages: list[Message] = Field(default_factory=list)
    replies: list[RecordedStep] = Field(default_factory=list)
    results: list[ToolDigest] = Field(default_factory=list)
    usage: Usage = Field(default_factory=Usage)
    context_tokens: int = 0
    context_limit: int = 0
    compaction: str | None = None
    replay: ReplayInfo | None = None


def _bounded_message(message: Message, scrubber: Scrubber, budget: list[int]) -> Message:
    m = message.model_copy(deep=True)
    for part in m.parts:
        if isinstance(part, TextPart):
            part.text = bound_middle(part.text, RECORD_TEXT_CHARS)
        elif isinstance(part, ToolPart):
            state = part.state
            if isinstance(state, ToolCompleted):
                full = state.output
                if len(full) > RECORD_OUTPUT_CHARS:
                    state.output = bound_middle(
                        full, RECORD_OUTPUT_CHARS, f"; {len(full):,} in all, sha256 {digest(full)}"
                    )
                meta = json.dumps(state.metadata, default=str)
                if len(meta) > RECORD_META_CHARS:
                    state.metadata = {
                        k: v for k, v in state.metadata.items() if len(json.dumps(v, default=str)) <= 200
                    }
                kept = []
                for att in state.attachments:
                    if len(att.data) <= budget[0]:
                        budget[0] -= len(att.data)
                        kept.append(att)
                    else:
                        state.output += f"\n[{att.media_type} attachment not kept in the notebook: too large]"
                state.attachments = kept
            elif isinstance(state, ToolError):
                state.error = bound_middle(state.error, RECORD_ERROR_CHARS)
                state.raw_input = bound_middle(state.raw_input, RECORD_TEXT_CHARS)
    return Message.model_validate(scrubber.json(m.model_dump(mode="json")))


def tool_digests(
    messages: Iterable[Message], root: Path | str | None = None, scrubber: Scrubber | None = None
) -> list[ToolDigest]:
    scrubber = scrubber or default_scrubber()
    out = []
    for message in messages:
        for part in message.tool_parts():
            state = part.state
            if isinstance(state, ToolCompleted):
                text = normalize_output(state.output, root)
            elif isinstance(state, ToolError):
                text = normalize_output(state.error, root)
            else:
                text = ""
            out.append(
                ToolDigest(
                    call_id=part.call_id,
                    tool=part.tool,
                    status=state.status,
                    chars=len(text),
                    sha256=digest(text),
                    excerpt=scrubber.text(bound_middle(text, 160)),
                )
            )
    return out


def replies_from_messages(messages: Iterable[Message]) -> list[RecordedStep]:
    """The model's replies, one per assistant message (used when no recording was made)."""
    steps = []
    for m in messages:
        if m.role != "assistant":
            continue
        calls = []
        for part in m.tool_parts():
            raw = getattr(part.state, "raw_input", "") or json.dumps(getattr(part.state, "input", {}) or {})
            calls.append(RecordedCall(id=part.call_id, name=part.tool, arguments=raw))
        reasoning = "".join(p.text for p in m.parts if p.type == "reasoning")
        steps.append(
            RecordedStep(
                text=m.text,
                reasoning=reasoning,
                calls=calls,
                usage=m.usage or Usage(),
                finish_reason=m.finish_reason or ("tool_calls" if calls else "stop"),
            )
        )
    return steps


def make_record(
    *,
    session_id: str,
    turn_id: str,
    prompt: str,
    model: str,
    messages: list[Message],
    replies: list[RecordedStep],
    usage: Usage,
    reason: str,
    started: float,
    root: Path | str | None = None,
    cell_id: str | None = None,
    agent: str | None = None,
    mode: str = "default",
    context_tokens: int = 0,
    context_limit: int = 0,
    compaction: str | None = None,
    replay: ReplayInfo | None = None,
    secrets: Iterable[str] = (),
    scrubber: Scrubber | None = None,
) -> TurnRecord:
    """A bounded, scrubbed record of one turn (``messages``: the ones the turn added). ``scrubber``:
    the session's (default: one that knows the environment's secrets), plus ``secrets``."""
    scrubber = (scrubber or default_scrubber()).with_values(s for s in secrets if s)
    budget = [RECORD_IMAGE_CHARS]
    bounded = [_bounded_message(m, scrubber, budget) for m in messages]
    recorded = [
        RecordedStep.model_validate(scrubber.json(step.model_dump(mode="json")))
        for step in (replies or replies_from_messages(messages))
    ]
    for step in recorded:
        step.text = bound_middle(step.text, RECORD_TEXT_CHARS)
    if _same_replies(recorded, replies_from_messages(bounded)):
        recorded = []  # the assistant messages say it all: replay derives the replies from them
    return TurnRecord(
        session_id=session_id,
        turn_id=turn_id,
        cell_id=cell_id,
        prompt=scrubber.text(bound_middle(prompt, RECORD_TEXT_CHARS)),
        model=model,
        agent=agent,
        mode=mode,
        started=started,
        finished=time.time(),
        reason=reason,
        messages=bounded,
        replies=recorded,
        results=tool_digests(messages, root, scrubber),
        usage=usage,
        context_tokens=context_tokens,
        context_limit=context_limit,
        compaction=scrubber.text(compaction) if compaction else None,
        replay=replay,
    )


def _same_replies(a: list[RecordedStep], b: list[RecordedStep]) -> bool:
    if len(a) != len(b):
        return False
    for x, y in zip(a, b, strict=True):
        if (x.text, x.reasoning, x.usage, x.finish_reason) != (y.text, y.reasoning, y.usage, y.finish_reason):
            return False
        if [(c.id, c.name) for c in x.calls] != [(c.id, c.name) for c in y.calls]:
            return False
        for cx, cy in zip(x.calls, y.calls, strict=True):
            try:
                same = json.loads(cx.arguments) == json.loads(cy.arguments)
            except json.JSONDecodeError:
                same = cx.arguments == cy.arguments
            if not same:
                return False
    return True


def recorded_replies(record: TurnRecord) -> list[RecordedStep]:
    """The model replies to replay a turn with (stored, or derived from its assistant messages)."""
    return list(record.replies) or replies_from_messages(record.messages)


def compare_results(recorded: list[ToolDigest], replayed: list[ToolDigest]) -> list[Divergence]:
    """Tool results of a replay that differ from the recording, matched by call id (then by position)."""
    by_id = {d.call_id: d for d in replayed}
    out = []
    for i, old in enumerate(recorded):
        new = by_id.get(old.call_id) or (replayed[i] if i < len(replayed) else None)
        if new is None:
            out.append(
                Divergence(call_id=old.call_id, tool=old.tool, recorded=_show(old), replayed="(not run)")
            )
        elif (new.status, new.sha256) != (old.status, old.sha256):
            out.append(
                Divergence(call_id=old.call_id, tool=old.tool, recorded=_show(old), replayed=_show(new))
            )
    return out


def _show(d: ToolDigest) -> str:
    return f"{d.status}: {d.excerpt}"


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


def build_metadata(nb: Mapping[str, Any]) -> dict[str, Any]:
    """``metadata.nbagent``: the index of the sessions recorded in the notebook's cells."""
    sessions: dict[str, dict[str, Any]] = {}
    last = None
    for turn in notebook_turns(nb):
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


_DROP_WHEN_EMPTY = frozenset(
    {"title", "metadata", "attachments", "synthetic", "raw_input", "started", "ended", "reasoning", "calls"}
    | {"cache_read_tokens", "cache_write_tokens", "reasoning_tokens", "cost"}
)


def _compact(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            k: _compact(v)
            for k, v in value.items()
            if not (k in _DROP_WHEN_EMPTY and v in ("", {}, [], 0, None, False))
        }
    if isinstance(value, list):
        return [_compact(v) for v in value]
    return value


def record_json(record: TurnRecord) -> dict[str, Any]:
    """The record as stored in the output bundle: fields left at their defaults are not written."""
    return _compact(record.model_dump(mode="json", exclude_none=True))  # type: ignore[no-any-return]


def write_metadata(nb: Any) -> dict[str, Any]:
    """Set ``metadata.nbagent`` on a notebook node; returns it."""
    meta = build_metadata(nb)
    nb.metadata[METADATA_KEY] = meta
    return meta
