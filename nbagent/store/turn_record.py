"""A turn's record as the notebook keeps it (``TURN_MIME`` in the cell's output bundle).

:func:`make_record` bounds and scrubs what a turn added: its messages (tool results bounded, large
ones referenced by hash, the session store keeping them whole), the model replies a replay uses (when
the assistant messages do not already say them), a digest of every tool result (for divergence
checks), usage, and the notes a renderer needs besides the messages (permission prompts, notices).
Nothing secret is written: every string goes through the session's scrubber (:mod:`nbagent.core.scrub`),
before any cut, so a cut never leaves a piece of a secret behind.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from nbagent.core.messages import Message, TextPart, ToolCompleted, ToolError, ToolPart, Usage
from nbagent.core.scrub import Scrubber, default_scrubber
from nbagent.providers.replay import RecordedCall, RecordedStep

TURN_MIME = "application/vnd.nbagent.turn+json"
SCHEMA_VERSION = 1
RECORD_OUTPUT_CHARS = 300  # per tool result kept in the notebook (head + tail); the store keeps it all
RECORD_TEXT_CHARS = 20_000  # per text part
RECORD_ERROR_CHARS = 2_000
RECORD_META_CHARS = 2_000  # a tool result's metadata, serialised
RECORD_IMAGE_CHARS = 64_000  # base64 characters of images kept inline per turn
DIGEST_EXCERPT_CHARS = 80  # of a tool result digest: shown when a replay diverges


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
    (re.compile(r"\bexecution_count=\d+"), "execution_count=<n>"),  # a re-run gets other counts
]
# a cell's block in a notebook_run result: compared on its own in a replay
CELL_BLOCK = re.compile(r'<cell \d+ id="([^"]*)"[^>]*>.*?</cell>', re.S)
CELL_EXCERPT_CHARS = 600


def normalize_output(text: str, root: Path | str | None = None) -> str:
    """A tool output with what changes from run to run (paths of temp dirs, times, ids) masked."""
    if root:
        text = text.replace(str(root), "<root>")
    for pattern, repl in _VOLATILE:
        text = pattern.sub(repl, text)
    return text


def digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "replace")).hexdigest()[:16]


def scrub_bound(text: str, limit: int, scrubber: Scrubber, note: str = "") -> str:
    """``text`` scrubbed, then bounded: a cut never leaves a piece of a secret its scrubber would not
    recognise any more (only a window around each end is scrubbed when the text is long)."""
    window = max(4 * limit, 8_000)
    return bound_middle(scrubber.text(bound_middle(text, 2 * window)), limit, note)


def bound_middle(text: str, limit: int, note: str = "") -> str:
    if len(text) <= limit:
        return text
    half = limit // 2
    omitted = len(text) - 2 * half
    return f"{text[:half]}\n... [{omitted:,} characters not kept in the notebook{note}] ...\n{text[-half:]}"


class CellDigest(BaseModel):
    """One notebook cell's part of a ``notebook_run`` result (its status and outputs)."""

    sha256: str
    excerpt: str = ""


class ToolDigest(BaseModel):
    call_id: str
    tool: str
    status: Literal["completed", "error", "pending", "running"]
    chars: int = 0
    sha256: str = ""  # of the normalised output (or error)
    excerpt: str = ""  # bounded, normalised: shown when a replay diverges
    cells: dict[str, CellDigest] = Field(default_factory=dict)  # notebook_run: per cell id


class Divergence(BaseModel):
    call_id: str
    tool: str
    cell_id: str | None = None  # notebook_run: the cell whose outputs differ
    recorded: str  # "completed: <excerpt>" / "error: ..." / "missing"
    replayed: str


class ReplayInfo(BaseModel):
    of_turn: str
    divergent: list[Divergence] = Field(default_factory=list)
    compared: int = 0


class TurnNote(BaseModel):
    """What a turn's messages do not say, for a renderer to show where it happened: a permission
    prompt and its answer (after the call ``call_id``), or a notice (interrupted, replay, error)."""

    kind: Literal["permission", "notice", "subagent"]  # subagent: a ``task`` call's child (call_id)
    call_id: str | None = None
    title: str = ""  # permission: what was asked
    reply: str = ""  # permission: once | always | reject ("" when unanswered)
    by: str = ""  # permission: who answered when not the user (a headless policy, a saved rule)
    feedback: str = ""  # permission: what the user said with a refusal
    level: str = ""  # notice: info | warning | error
    message: str = ""  # notice; subagent: the child's final text (bounded)
    agent: str = ""  # subagent: the child agent's name
    session: str = ""  # subagent: the child session's id
    steps: list[str] = Field(default_factory=list)  # subagent: a bounded digest of the child's steps


class TurnRecord(BaseModel):
    """What a ``%%agent`` cell output records of its turn (``TURN_MIME``): the bounded messages a
    session resumes from, the model replies a replay uses, digests of the tool results, usage, and the
    notes a renderer needs besides the messages."""

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
    notes: list[TurnNote] = Field(default_factory=list)


def _bounded_message(message: Message, scrubber: Scrubber, budget: list[int]) -> Message:
    m = message.model_copy(deep=True)
    for part in m.parts:
        if isinstance(part, TextPart):
            part.text = scrub_bound(part.text, RECORD_TEXT_CHARS, scrubber)
        elif isinstance(part, ToolPart):
            state = part.state
            if isinstance(state, ToolCompleted):
                full = state.output
                if len(full) > RECORD_OUTPUT_CHARS:  # a reference, not the output: the store has it
                    note = f"; sha256 {digest(full)}, in full in the session store"
                    state.output = scrub_bound(full, RECORD_OUTPUT_CHARS, scrubber, note)
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
                state.error = scrub_bound(state.error, RECORD_ERROR_CHARS, scrubber)
                state.raw_input = scrub_bound(state.raw_input, RECORD_TEXT_CHARS, scrubber)
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
                    excerpt=scrub_bound(text, DIGEST_EXCERPT_CHARS, scrubber),
                    cells=_cell_digests(text, scrubber) if part.tool == "notebook_run" else {},
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
    notes: Iterable[TurnNote] = (),
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
        prompt=scrub_bound(prompt, RECORD_TEXT_CHARS, scrubber),
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
        notes=[TurnNote.model_validate(scrubber.json(n.model_dump())) for n in notes],
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


def _cell_digests(text: str, scrubber: Scrubber) -> dict[str, CellDigest]:
    return {
        m.group(1): CellDigest(
            sha256=digest(m.group(0)), excerpt=scrub_bound(m.group(0), CELL_EXCERPT_CHARS, scrubber)
        )
        for m in CELL_BLOCK.finditer(text)
    }


def _compare_cells(old: ToolDigest, new: ToolDigest) -> list[Divergence]:
    """A notebook run's cells one by one: which cell's outputs differ."""
    out = []
    for cell_id, cell in old.cells.items():
        now = new.cells.get(cell_id)
        if now is None or now.sha256 != cell.sha256:
            out.append(
                Divergence(
                    call_id=old.call_id,
                    tool=old.tool,
                    cell_id=cell_id,
                    recorded=cell.excerpt,
                    replayed=now.excerpt if now is not None else "(not run)",
                )
            )
    return out


def compare_results(recorded: list[ToolDigest], replayed: list[ToolDigest]) -> list[Divergence]:
    """Tool results of a replay that differ from the recording, matched by call id (then by position);
    a notebook run's cells are compared one by one."""
    by_id = {d.call_id: d for d in replayed}
    out = []
    for i, old in enumerate(recorded):
        new = by_id.get(old.call_id) or (replayed[i] if i < len(replayed) else None)
        if new is None:
            out.append(
                Divergence(call_id=old.call_id, tool=old.tool, recorded=_show(old), replayed="(not run)")
            )
        elif old.cells and new.status == old.status:
            out.extend(_compare_cells(old, new))
        elif (new.status, new.sha256) != (old.status, old.sha256):
            out.append(
                Divergence(call_id=old.call_id, tool=old.tool, recorded=_show(old), replayed=_show(new))
            )
    return out


def _show(d: ToolDigest) -> str:
    return f"{d.status}: {d.excerpt}"


_DROP_WHEN_EMPTY = frozenset(
    {
        "title",
        "metadata",
        "attachments",
        "synthetic",
        "raw_input",
        "started",
        "ended",
        "reasoning",
        "calls",
        "cells",
    }
    | {
        "notes",
        "call_id",
        "reply",
        "by",
        "feedback",
        "level",
        "message",
        "replies",
        "timed_out",
        "output_capped",
    }
    | {"cache_read_tokens", "cache_write_tokens", "reasoning_tokens", "cost"}
)


_TIMES = frozenset({"created", "started", "ended", "finished"})


def _compact(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            k: round(v, 3) if k in _TIMES and isinstance(v, float) else _compact(v)
            for k, v in value.items()
            if not (k in _DROP_WHEN_EMPTY and v in ("", {}, [], 0, None, False))
        }
    if isinstance(value, list):
        return [_compact(v) for v in value]
    return value


def record_json(record: TurnRecord) -> dict[str, Any]:
    """The record as stored in the output bundle: fields left at their defaults are not written."""
    return _compact(record.model_dump(mode="json", exclude_none=True))  # type: ignore[no-any-return]
