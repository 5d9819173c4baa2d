"""A session as a readable markdown transcript or a JSON document (``nbagent export ID [--json]``).

What leaves the store is scrubbed: known secrets and secret shapes become ``[redacted]``
(:mod:`nbagent.core.scrub`; pass the session's scrubber, else one that knows the environment's).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from nbagent.core.messages import Message, ReasoningPart, TextPart, ToolCompleted, ToolError, ToolPart, Usage
from nbagent.core.scrub import Scrubber, default_scrubber
from nbagent.core.text import KEY_PARAMS, strip_ansi, title_extra
from nbagent.store.db import SessionInfo, SummaryRecord

EXPORT_SCHEMA_VERSION = 1

MAX_RESULT_LINES = 40
MAX_RESULT_CHARS = 4000
MAX_INPUT_CHARS = 200


def _when(ts: float) -> str:
    return datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M")


def _fence(text: str, lang: str = "text") -> str:
    """A fenced block whose fence is longer than any backtick run inside."""
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}{lang}\n{text.rstrip()}\n{fence}"


def _code_span(text: str) -> str:
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    ticks = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{ticks}{pad}{text}{pad}{ticks}"


def bound(text: str, max_lines: int = MAX_RESULT_LINES, max_chars: int = MAX_RESULT_CHARS) -> str:
    """Head and tail of a long text with a count of what was left out."""
    lines = text.splitlines()
    if len(lines) <= max_lines and len(text) <= max_chars:
        return text
    half = max_lines // 2
    head = "\n".join(lines[:half])[: max_chars // 2]
    tail = "\n".join(lines[-half:])[-(max_chars // 2) :]
    omitted_lines = max(0, len(lines) - 2 * half)
    omitted_chars = max(0, len(text) - len(head) - len(tail))
    return f"{head}\n... [{omitted_lines} lines, {omitted_chars} characters omitted] ...\n{tail}"


def input_summary(args: dict[str, Any]) -> str:
    for key in KEY_PARAMS:
        value = args.get(key)
        if isinstance(value, str) and value:
            first = value.strip().splitlines()[0] if value.strip() else value
            more = " …" if "\n" in value.strip() or len(first) > MAX_INPUT_CHARS else ""
            return first[:MAX_INPUT_CHARS] + more
    text = json.dumps(args, ensure_ascii=False, default=str)
    return text if len(text) <= MAX_INPUT_CHARS else text[:MAX_INPUT_CHARS] + " …"


def _usage_line(usage: Usage) -> str:
    parts = [f"input {usage.input_tokens:,}", f"output {usage.output_tokens:,}"]
    if usage.cache_read_tokens:
        parts.append(f"cache read {usage.cache_read_tokens:,}")
    if usage.cache_write_tokens:
        parts.append(f"cache write {usage.cache_write_tokens:,}")
    if usage.cost is not None:
        parts.append(f"cost ${usage.cost:.4f}")
    return ", ".join(parts)


def _tool(part: ToolPart) -> str:
    state = part.state
    args = getattr(state, "input", {}) or {}
    summary = input_summary(args) if args else getattr(state, "raw_input", "")[:MAX_INPUT_CHARS]
    head = f"**Tool `{part.tool}`**" + (f" {_code_span(summary)}" if summary.strip() else "")
    if isinstance(state, ToolCompleted):
        extra = title_extra(summary, state.title)  # the path or command is said once
        title = f" ({extra})" if extra else ""
        return f"{head}{title}\n\n{_fence(bound(strip_ansi(state.output)))}"
    if isinstance(state, ToolError):
        return f"{head} **failed:**\n\n{_fence(bound(strip_ansi(state.error)))}"
    return f"{head} _(did not finish: {state.status})_"


def _message(message: Message) -> str:
    if message.role == "user":
        who = "Note (harness)" if message.synthetic else "User"
    else:
        who = "Assistant" + (f" ({message.model})" if message.model else "")
    blocks = [f"## {who} · {_when(message.created)}"]
    for part in message.parts:
        if isinstance(part, TextPart) and part.text.strip():
            blocks.append(part.text.strip())
        elif isinstance(part, ReasoningPart) and part.text.strip():
            quoted = "\n".join("> " + line for line in bound(part.text.strip(), 20, 2000).splitlines())
            blocks.append(f"> _Thinking_\n>\n{quoted}")
        elif isinstance(part, ToolPart):
            blocks.append(_tool(part))
    if message.finish_reason in ("error", "length", "cancelled", "interrupted"):
        blocks.append(f"_Stopped: {message.finish_reason}_")
    return "\n\n".join(blocks)


def export_markdown(
    info: SessionInfo,
    messages: Sequence[Message],
    summaries: Sequence[SummaryRecord] = (),
    scrubber: Scrubber | None = None,
) -> str:
    """The whole session, scrubbed: header, compaction summaries, then every message in order."""
    return (scrubber or default_scrubber()).text(_markdown(info, messages, summaries))


def export_json(
    info: SessionInfo,
    messages: Sequence[Message],
    summaries: Sequence[SummaryRecord] = (),
    scrubber: Scrubber | None = None,
) -> dict[str, Any]:
    """The whole session as one JSON document (the stored models), every string scrubbed."""
    document = {
        "schema_version": EXPORT_SCHEMA_VERSION,
        "session": info.model_dump(mode="json"),
        "summaries": [s.model_dump(mode="json") for s in summaries],
        "messages": [m.model_dump(mode="json") for m in messages],
    }
    scrubbed: dict[str, Any] = (scrubber or default_scrubber()).json(document)
    return scrubbed


def _markdown(info: SessionInfo, messages: Sequence[Message], summaries: Sequence[SummaryRecord]) -> str:
    out = [f"# {info.title or 'Session ' + info.id}", ""]
    facts = [f"- Session: `{info.id}`"]
    if info.parent_id:
        facts.append(f"- Parent session: `{info.parent_id}`")
    if info.project:
        facts.append(f"- Project: `{info.project}`")
    if info.model:
        facts.append(f"- Model: `{info.model}`" + (f", agent `{info.agent}`" if info.agent else ""))
    facts.append(f"- Started {_when(info.created)}, last updated {_when(info.updated)}")
    facts.append(f"- Usage: {_usage_line(info.usage)}")
    out += [*facts, ""]
    for record in summaries:
        covers = (
            f", covers up to `{record.covers_until_message_id}`" if record.covers_until_message_id else ""
        )
        tokens = (
            f" ({record.tokens_before:,} → {record.tokens_after:,} tokens)" if record.tokens_before else ""
        )
        out += [f"## Compaction summary {record.seq} · {_when(record.created)}{covers}{tokens}", ""]
        out += [record.summary.strip(), ""]
    for message in messages:
        out += [_message(message), ""]
    return "\n".join(out).rstrip() + "\n"
