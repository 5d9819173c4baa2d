"""A turn as blocks folded from its events, rendered to HTML (live widgets, static output) and text.

:class:`Transcript` holds only what the events said (a view model: no agent state); the cell
widget and the static output bundle both render its blocks with the functions here, so the notebook
shows the same transcript with or without a widget manager (nbconvert, GitHub, nbviewer).
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from nbagent.cli_render import summarize_input
from nbagent.core.events import (
    Compacted,
    DiffProduced,
    ErrorEvent,
    Event,
    Notice,
    PermissionAsked,
    PermissionReplied,
    ReasoningDelta,
    Retrying,
    TextDelta,
    TodoItem,
    TodoUpdated,
    ToolCallCompleted,
    ToolCallError,
    ToolCallOutput,
    ToolCallPending,
    ToolCallRunning,
    TurnFinished,
    TurnStarted,
    UsageUpdated,
)
from nbagent.core.messages import Attachment, Usage

LIVE_TAIL_CHARS = 4_000  # live output of a running tool, kept as a tail
LIVE_OUTPUT_CHARS = 20_000  # a tool result in the live widget
STATIC_OUTPUT_CHARS = 800  # a tool result in the saved notebook
DIFF_SHOWN_LINES = 40  # more diff lines are folded
STATIC_DIFF_LINES = 120  # and past this, dropped from the saved notebook
STATIC_IMAGE_CHARS = 40_000  # base64 characters of an image kept in the static HTML
TEXT_CHARS = 6_000  # the text/plain rendering, in all

STATUS_ICON = {"pending": "○", "running": "◐", "completed": "✓", "error": "✗"}
STATUS_COLOR = {"pending": "#999", "running": "#1a73e8", "completed": "#2e7d32", "error": "#c62828"}
TODO_MARK = {"pending": "☐", "in_progress": "◐", "completed": "☑", "cancelled": "☒"}
MUTED = "var(--jp-ui-font-color2, #666)"
MONO = "var(--jp-code-font-family, monospace)"


# ---------------------------------------------------------------------------------------------- blocks


@dataclass(eq=False)
class Block:
    key: str
    version: int = 0

    def touch(self) -> None:
        self.version += 1


@dataclass(eq=False)
class TextBlock(Block):
    message_id: str = ""
    text: str = ""
    reasoning: bool = False


@dataclass(eq=False)
class ToolBlock(Block):
    call_id: str = ""
    tool: str = ""
    status: str = "pending"
    input: dict[str, Any] = field(default_factory=dict)
    title: str = ""
    live: str = ""
    output: str = ""
    error: str = ""
    diffs: list[DiffProduced] = field(default_factory=list)
    attachments: list[Attachment] = field(default_factory=list)


@dataclass(eq=False)
class PermissionBlock(Block):
    asked: PermissionAsked | None = None
    replied: PermissionReplied | None = None


@dataclass(eq=False)
class TodoBlock(Block):
    todos: list[TodoItem] = field(default_factory=list)


@dataclass(eq=False)
class NoticeBlock(Block):
    level: str = "info"  # info, warning, error
    message: str = ""
    hint: str = ""
    detail: str = ""  # preformatted text, folded


@dataclass
class Footer:
    model: str = ""
    total: Usage = field(default_factory=Usage)
    context_tokens: int = 0
    context_limit: int = 0
    steps: int = 0
    reason: str = ""
    running: bool = True


class Transcript:
    """The blocks of one turn, folded from its events."""

    def __init__(self, model: str = "") -> None:
        self.blocks: list[Block] = []
        self.footer = Footer(model=model)
        self.tools: dict[str, ToolBlock] = {}
        self.permissions: dict[str, PermissionBlock] = {}
        self.todo: TodoBlock | None = None
        self.turn_id = ""
        self.compaction: str | None = None
        self._counter = 0
        self.removed: list[Block] = []

    def _add(self, block: Block) -> Block:
        self.blocks.append(block)
        return block

    def _key(self, prefix: str) -> str:
        self._counter += 1
        return f"{prefix}{self._counter}"

    def apply(self, event: Event) -> list[Block]:
        """Fold one event in; returns the blocks it changed (new ones included)."""
        changed = self._apply(event)
        for block in changed:
            block.touch()
        return changed

    def _apply(self, event: Event) -> list[Block]:
        if isinstance(event, TextDelta | ReasoningDelta):
            reasoning = isinstance(event, ReasoningDelta)
            last = self.blocks[-1] if self.blocks else None
            if (
                isinstance(last, TextBlock)
                and last.message_id == event.message_id
                and last.reasoning == reasoning
            ):
                last.text += event.text
                return [last]
            block = TextBlock(
                self._key("r" if reasoning else "t"),
                message_id=event.message_id,
                text=event.text,
                reasoning=reasoning,
            )
            return [self._add(block)]
        if isinstance(event, ToolCallPending | ToolCallRunning):
            tool = self.tools.get(event.call_id)
            if tool is None:
                tool = ToolBlock(self._key("c"), call_id=event.call_id, tool=event.tool)
                self.tools[event.call_id] = tool
                self._add(tool)
            if isinstance(event, ToolCallRunning):
                tool.status, tool.input, tool.title = "running", event.input, event.title
            return [tool]
        if isinstance(event, ToolCallOutput):
            tool = self.tools.get(event.call_id)
            if tool is None:
                return []
            tool.live = (tool.live + event.chunk)[-LIVE_TAIL_CHARS:]
            return [tool]
        if isinstance(event, ToolCallCompleted | ToolCallError):
            tool = self.tools.get(event.call_id)
            if tool is None:
                tool = ToolBlock(self._key("c"), call_id=event.call_id, tool=event.tool)
                self.tools[event.call_id] = tool
                self._add(tool)
            tool.input = event.input or tool.input
            tool.live = ""
            if isinstance(event, ToolCallCompleted):
                tool.status, tool.output, tool.title = "completed", event.output, event.title
                tool.attachments = list(event.attachments)
            else:
                tool.status, tool.error = "error", event.error
            return [tool]
        if isinstance(event, DiffProduced):
            tool = self.tools.get(event.call_id)
            if tool is None:
                return []
            tool.diffs.append(event)
            return [tool]
        if isinstance(event, PermissionAsked):
            prompt = PermissionBlock(self._key("p"), asked=event)
            self.permissions[event.request_id] = prompt
            owner = self.tools.get(event.call_id or "")
            if owner is not None and owner in self.blocks:  # right below the call it is about
                at = self.blocks.index(owner) + 1
                while at < len(self.blocks) and isinstance(self.blocks[at], PermissionBlock):
                    at += 1
                self.blocks.insert(at, prompt)
                return [prompt]
            return [self._add(prompt)]
        if isinstance(event, PermissionReplied):
            perm = self.permissions.get(event.request_id)
            if perm is None:
                return []
            perm.replied = event
            return [perm]
        if isinstance(event, TodoUpdated):
            if self.todo is None:
                self.todo = TodoBlock(self._key("todo"))
                self._add(self.todo)
            self.todo.todos = list(event.todos)
            return [self.todo]
        if isinstance(event, Notice):
            return [self._add(NoticeBlock(self._key("n"), level=event.level, message=event.message))]
        if isinstance(event, ErrorEvent):
            return [
                self._add(NoticeBlock(self._key("e"), level="error", message=event.message, hint=event.hint))
            ]
        if isinstance(event, Retrying):
            gone = [
                b
                for b in self.blocks
                if (isinstance(b, TextBlock) and b.message_id == event.discard_message_id)
                or (isinstance(b, ToolBlock) and b.status == "pending")
            ]
            for b in gone:
                self.blocks.remove(b)
                if isinstance(b, ToolBlock):
                    self.tools.pop(b.call_id, None)
            self.removed.extend(gone)
            note = NoticeBlock(
                self._key("n"),
                level="warning",
                message=f"Retry {event.attempt}/{event.max_attempts - 1} in {event.wait:.1f}s: {event.reason[:300]}",
            )
            return [self._add(note)]
        if isinstance(event, Compacted):
            self.compaction = event.summary
            note = NoticeBlock(
                self._key("n"),
                message=f"Context compacted ({event.tokens_before:,} → {event.tokens_after:,} tokens).",
                detail=event.summary,
            )
            return [self._add(note)]
        if isinstance(event, TurnStarted):
            self.turn_id = event.turn_id
            self.footer.model = event.model
            return []
        if isinstance(event, UsageUpdated):
            self.footer.total = event.total
            self.footer.model = event.model
            self.footer.context_tokens = event.context_tokens
            self.footer.context_limit = event.context_limit
            self.footer.steps = event.step
            return []
        if isinstance(event, TurnFinished):
            self.footer.steps = event.steps
            self.footer.reason = event.reason
            self.footer.running = False
            return []
        return []

    def add_notice(self, message: str, level: str = "info", detail: str = "") -> NoticeBlock:
        block = NoticeBlock(self._key("n"), level=level, message=message, detail=detail)
        block.touch()
        self.blocks.append(block)
        return block


# ---------------------------------------------------------------------------------------------- HTML


@cache
def _markdown() -> Any:
    from markdown_it import MarkdownIt

    return MarkdownIt("commonmark", {"html": False, "linkify": False}).enable(["table", "strikethrough"])


def markdown_html(text: str) -> str:
    """Markdown to HTML, raw HTML in the text escaped (model output is not trusted)."""
    try:
        return str(_markdown().render(text))
    except Exception:
        return f"<pre>{html.escape(text)}</pre>"


def _esc(text: str) -> str:
    return html.escape(text, quote=True)


def _clip_middle(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    half = limit // 2
    return f"{text[:half]}\n… [{len(text) - 2 * half:,} characters omitted] …\n{text[-half:]}"


def _pre(text: str, color: str = "", max_height: str = "24em") -> str:
    style = (
        f"margin:2px 0;padding:4px;font-size:12px;white-space:pre-wrap;max-height:{max_height};overflow:auto"
    )
    if color:
        style += f";color:{color}"
    return f'<pre style="{style}">{_esc(text)}</pre>'


def diff_html(diff: DiffProduced, *, static: bool = False) -> str:
    lines = diff.diff.splitlines()
    if static and len(lines) > STATIC_DIFF_LINES:
        dropped = len(lines) - STATIC_DIFF_LINES
        lines = [*lines[:STATIC_DIFF_LINES], f"… {dropped} more diff lines not kept in the notebook"]

    def line_html(line: str) -> str:
        if line.startswith(("+++", "---")):
            style = "font-weight:bold"
        elif line.startswith("+"):
            style = "background:rgba(46,160,67,0.18)"
        elif line.startswith("-"):
            style = "background:rgba(248,81,73,0.18)"
        elif line.startswith("@@"):
            style = f"color:{MUTED}"
        else:
            style = ""
        return f'<div style="{style}">{_esc(line) or "&nbsp;"}</div>'

    shown = "".join(line_html(ln) for ln in lines[:DIFF_SHOWN_LINES])
    rest = lines[DIFF_SHOWN_LINES:]
    folded = (
        f"<details><summary style='cursor:pointer;color:{MUTED}'>{len(rest)} more lines</summary>"
        + "".join(line_html(ln) for ln in rest)
        + "</details>"
        if rest
        else ""
    )
    head = (
        f"<div><b>{_esc(diff.path)}</b> <span style='color:#2e7d32'>+{diff.additions}</span>"
        f" <span style='color:#c62828'>-{diff.deletions}</span></div>"
    )
    body = (
        f'<div style="font-family:{MONO};font-size:12px;white-space:pre;overflow:auto;'
        f'border:1px solid var(--jp-border-color2, #ddd);margin:2px 0">{shown}{folded}</div>'
    )
    return head + body


def _images_html(attachments: list[Attachment], static: bool) -> str:
    out = []
    for att in attachments:
        if not att.media_type.startswith("image/"):
            continue
        if static and len(att.data) > STATIC_IMAGE_CHARS:
            out.append(
                f"<div style='color:{MUTED}'>[{_esc(att.media_type)} image not kept in the notebook]</div>"
            )
            continue
        out.append(
            f'<img style="max-width:480px;display:block" src="data:{_esc(att.media_type)};base64,{att.data}"/>'
        )
    return "".join(out)


def _hidden(block: ToolBlock) -> bool:
    """A successful todowrite call: the plan block shows it."""
    return block.tool == "todowrite" and block.status == "completed"


def tool_html(block: ToolBlock, *, static: bool = False) -> str:
    if _hidden(block):
        return ""
    color = STATUS_COLOR.get(block.status, "#999")
    summary = summarize_input(block.tool, block.input) if block.input else ""
    head = (
        f"<span style='color:{color}'>{STATUS_ICON.get(block.status, '?')}</span> <b>{_esc(block.tool)}</b>"
        + (f" <code style='font-size:12px'>{_esc(summary)}</code>" if summary else "")
        + (f" <span style='color:{MUTED}'>{_esc(block.title[:120])}</span>" if block.title else "")
    )
    parts = [f"<div>{head}</div>"]
    if block.tool in ("python", "bash") and isinstance(
        block.input.get("code") or block.input.get("command"), str
    ):
        code = str(block.input.get("code") or block.input.get("command"))
        if "\n" in code.strip():
            parts.append(
                f"<details><summary style='cursor:pointer;color:{MUTED}'>code</summary>{_pre(_clip_middle(code, 4000))}</details>"
            )
    if block.status == "running" and block.live:
        parts.append(_pre(block.live[-LIVE_TAIL_CHARS:], max_height="12em"))
    for diff in block.diffs:
        parts.append(diff_html(diff, static=static))
    if block.status == "completed":
        limit = STATIC_OUTPUT_CHARS if static else LIVE_OUTPUT_CHARS
        lines = block.output.count("\n") + 1 if block.output else 0
        parts.append(
            f"<details><summary style='cursor:pointer;color:{MUTED}'>result ({lines} lines)</summary>"
            f"{_pre(_clip_middle(block.output, limit))}</details>"
        )
        parts.append(_images_html(block.attachments, static))
    elif block.status == "error":
        parts.append(_pre(_clip_middle(block.error, 2000), color="#c62828", max_height="10em"))
    return (
        f'<div style="border-left:3px solid {color};padding:2px 8px;margin:4px 0">'
        + "".join(parts)
        + "</div>"
    )


def always_rules(asked: PermissionAsked) -> list[str]:
    """The rules an "always" answer saves, written ``permission: pattern``."""
    raw = asked.details.get("always_rules") if isinstance(asked.details, dict) else None
    if isinstance(raw, list) and raw:
        return [f"{r.get('permission')}: {r.get('pattern')}" for r in raw if isinstance(r, dict)]
    return [a if ":" in a else f"{asked.tool}: {a}" for a in asked.always]


def permission_html(block: PermissionBlock, *, include_reply: bool = True) -> str:
    asked = block.asked
    if asked is None:
        return ""
    lines = [f"<div><b>⚠ Permission: {_esc(asked.title)}</b></div>"]
    if asked.reason:
        lines.append(f"<div style='color:{MUTED}'>why: {_esc(asked.reason)}</div>")
    commands = asked.details.get("commands") if isinstance(asked.details, dict) else None
    if isinstance(commands, list) and commands:
        lines.append(
            "<div>commands: " + ", ".join(f"<code>{_esc(str(c))}</code>" for c in commands[:20]) + "</div>"
        )
    elif asked.patterns and asked.tool != "python":
        lines.append(
            "<div>" + ", ".join(f"<code>{_esc(p[:200])}</code>" for p in asked.patterns[:10]) + "</div>"
        )
    code = asked.details.get("code") if isinstance(asked.details, dict) else None
    if isinstance(code, str) and code:
        lines.append(_pre(_clip_middle(code, 4000), max_height="14em"))
    diff = asked.details.get("diff") if isinstance(asked.details, dict) else None
    if isinstance(diff, str) and diff:
        changed = [ln for ln in diff.splitlines() if not ln.startswith(("+++", "---"))]
        adds = sum(1 for ln in changed if ln.startswith("+"))
        dels = sum(1 for ln in changed if ln.startswith("-"))
        proposed = DiffProduced(call_id="", path="proposed change", diff=diff, additions=adds, deletions=dels)
        lines.append(diff_html(proposed))
    if include_reply and block.replied is not None:
        r = block.replied
        verb = {"once": "✓ allowed once", "always": "✓ always allowed", "reject": "✗ denied"}[r.reply]
        rules = always_rules(asked)
        extra = f" ({_esc(', '.join(rules))})" if r.reply == "always" and rules else ""
        by = f" by {_esc(r.by)}" if r.by != "user" else ""
        feedback = f": “{_esc(r.feedback)}”" if r.feedback else ""
        lines.append(f"<div><b>{verb}</b>{extra}{by}{feedback}</div>")
    border = "#f9a825" if block.replied is None else "#999"
    return (
        f'<div style="border:1px solid {border};border-radius:4px;padding:4px 8px;margin:4px 0">'
        + "".join(lines)
        + "</div>"
    )


def todo_html(block: TodoBlock) -> str:
    items = []
    for t in block.todos:
        style = (
            "text-decoration:line-through;color:" + MUTED if t.status in ("completed", "cancelled") else ""
        )
        if t.status == "in_progress":
            style = "font-weight:bold"
        items.append(f"<div style='{style}'>{TODO_MARK[t.status]} {_esc(t.content)}</div>")
    done = sum(t.status == "completed" for t in block.todos)
    return (
        f"<div style='margin:4px 0;padding:2px 8px;border-left:3px solid #7e57c2'>"
        f"<div><b>Plan</b> <span style='color:{MUTED}'>{done}/{len(block.todos)}</span></div>{''.join(items)}</div>"
    )


def notice_html(block: NoticeBlock) -> str:
    color = {"info": "#1a73e8", "warning": "#ef6c00", "error": "#c62828"}.get(block.level, "#1a73e8")
    text = f"<span style='color:{color}'>{'Error: ' if block.level == 'error' else ''}{_esc(block.message)}</span>"
    if block.hint:
        text += f"<div style='color:{MUTED}'>hint: {_esc(block.hint)}</div>"
    if block.detail:
        text += f"<details><summary style='cursor:pointer;color:{MUTED}'>details</summary>{_pre(_clip_middle(block.detail, 8000))}</details>"
    return f"<div style='margin:4px 0'>{text}</div>"


def text_html(block: TextBlock) -> str:
    if block.reasoning:
        return (
            f"<details style='color:{MUTED}'><summary style='cursor:pointer'><i>thinking</i></summary>"
            f"<div style='white-space:pre-wrap;font-style:italic'>{_esc(block.text)}</div></details>"
        )
    return f"<div class='nbagent-text'>{markdown_html(block.text)}</div>"


def block_html(block: Block, *, static: bool = False) -> str:
    if isinstance(block, TextBlock):
        return text_html(block)
    if isinstance(block, ToolBlock):
        return tool_html(block, static=static)
    if isinstance(block, PermissionBlock):
        return permission_html(block)
    if isinstance(block, TodoBlock):
        return todo_html(block)
    if isinstance(block, NoticeBlock):
        return notice_html(block)
    return ""


def format_tokens(n: int) -> str:
    return f"{n / 1000:.1f}k" if n >= 10_000 else f"{n:,}"


def footer_text(footer: Footer) -> str:
    u = footer.total
    parts = [
        footer.model or "model ?",
        f"{format_tokens(u.input_tokens)} in",
        f"{format_tokens(u.output_tokens)} out",
    ]
    if u.cache_read_tokens:
        parts.append(f"{format_tokens(u.cache_read_tokens)} cached")
    parts.append(f"${u.cost:.4f}" if u.cost is not None else "cost unknown")
    if footer.context_limit:
        pct = 100 * footer.context_tokens / footer.context_limit
        parts.append(
            f"context {format_tokens(footer.context_tokens)}/{format_tokens(footer.context_limit)} ({pct:.0f}%)"
        )
    if footer.steps:
        parts.append(f"{footer.steps} step{'s' if footer.steps != 1 else ''}")
    if footer.reason:
        parts.append(footer.reason)
    elif footer.running:
        parts.append("running…")
    return " · ".join(parts)


def footer_html(footer: Footer) -> str:
    return f"<div style='color:{MUTED};font-size:12px;margin-top:4px'>── {_esc(footer_text(footer))}</div>"


def transcript_html(transcript: Transcript) -> str:
    """The whole turn as static HTML (what the saved notebook shows without a widget manager)."""
    body = "".join(block_html(b, static=True) for b in transcript.blocks)
    return f"<div class='nbagent-turn' style='font-size:13px;line-height:1.45'>{body}{footer_html(transcript.footer)}</div>"


# ---------------------------------------------------------------------------------------------- text


def block_text(block: Block) -> str:
    if isinstance(block, TextBlock):
        return ("(thinking) " + " ".join(block.text.split())[:300]) if block.reasoning else block.text.strip()
    if isinstance(block, ToolBlock):
        if _hidden(block):
            return ""
        summary = summarize_input(block.tool, block.input) if block.input else ""
        line = f"{STATUS_ICON.get(block.status, '?')} {block.tool} {summary}".rstrip()
        if block.status == "completed":
            first = block.title or (block.output.strip().splitlines() or [""])[0]
            line += f"\n    {first[:160]}"
        elif block.status == "error":
            line += f"\n    error: {(block.error.strip().splitlines() or [''])[0][:200]}"
        for d in block.diffs:
            line += f"\n    {d.path} +{d.additions} -{d.deletions}"
        return line
    if isinstance(block, PermissionBlock) and block.asked is not None:
        line = f"? permission: {block.asked.title}"
        if block.replied is not None:
            line += f" → {block.replied.reply}" + (
                f" ({block.replied.by})" if block.replied.by != "user" else ""
            )
        return line
    if isinstance(block, TodoBlock):
        return "Plan:\n" + "\n".join(f"  {TODO_MARK[t.status]} {t.content}" for t in block.todos)
    if isinstance(block, NoticeBlock):
        prefix = {"error": "Error: ", "warning": "! "}.get(block.level, "")
        return prefix + block.message + (f"\n  hint: {block.hint}" if block.hint else "")
    return ""


def transcript_text(transcript: Transcript) -> str:
    parts = [t for t in (block_text(b) for b in transcript.blocks) if t]
    text = "\n".join(parts) + f"\n── {footer_text(transcript.footer)}"
    return _clip_middle(text, TEXT_CHARS)


def dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)
