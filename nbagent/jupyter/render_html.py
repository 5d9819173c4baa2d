"""A turn's blocks (:mod:`nbagent.jupyter.transcript`) rendered to HTML (live widgets, static output) and text.

The HTML is semantic first: code in ``<code>``/``<pre>``, folded parts in ``<details>``, diff lines in
``<ins>``/``<del>``, lists in ``<ul>``. Inline styles only add colour and spacing, so an untrusted
notebook (whose sanitizer drops them), GitHub, nbviewer and nbconvert still show a readable transcript.
Nothing here holds agent state; the cell widget and the static bundle render the same blocks.
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from functools import cache
from typing import Any

from nbagent.core.events import DiffProduced, PermissionAsked
from nbagent.core.messages import Attachment
from nbagent.core.text import call_summary, strip_ansi, title_extra
from nbagent.jupyter.render_nested import child_html, child_text
from nbagent.jupyter.transcript import (
    LIVE_TAIL_CHARS,
    Block,
    Footer,
    NoticeBlock,
    PermissionBlock,
    TextBlock,
    TodoBlock,
    ToolBlock,
    Transcript,
)

__all__ = [
    "Block",
    "PermissionBlock",
    "TextBlock",
    "ToolBlock",
    "Transcript",
    "always_rules",
    "block_html",
    "footer_html",
    "permission_html",
    "transcript_html",
    "transcript_text",
]

LIVE_OUTPUT_CHARS = 20_000  # a tool result in the live widget
STATIC_OUTPUT_CHARS = 300  # a tool result in the saved notebook: head and tail
STATIC_OUTPUT_LINES = 8
DIFF_SHOWN_LINES = 40  # more diff lines are folded
STATIC_DIFF_LINES = 120  # and past this, dropped from the saved notebook
STATIC_IMAGE_CHARS = 40_000  # base64 characters of an image kept in the static HTML
TEXT_CHARS = 6_000  # the text/plain rendering, in all
MAX_COMMANDS = 20  # commands of a shell permission prompt listed

STATUS_ICON = {"pending": "○", "running": "◐", "completed": "✓", "error": "✗"}
STATUS_COLOR = {"pending": "#999", "running": "#1a73e8", "completed": "#2e7d32", "error": "#c62828"}
TODO_MARK = {"pending": "☐", "in_progress": "◐", "completed": "☑", "cancelled": "☒"}
DECISION = {"allow": ("✓", "allowed"), "ask": ("?", "asks"), "deny": ("✗", "denied")}
MUTED = "var(--jp-ui-font-color2,#666)"
MONO = "var(--jp-code-font-family, monospace)"
PRE_STYLE = "margin:2px 0;font-size:12px;white-space:pre-wrap;overflow:auto"


# ---------------------------------------------------------------------------------------------- helpers


@cache
def _markdown() -> Any:
    from markdown_it import MarkdownIt

    return MarkdownIt("commonmark", {"html": False, "linkify": False}).enable(["table", "strikethrough"])


def markdown_html(text: str) -> str:
    """Markdown to HTML, raw HTML in the text escaped (model output is not trusted)."""
    try:
        return str(_markdown().render(text))
    except Exception:
        return _pre(text)


def _esc(text: str) -> str:
    return html.escape(text, quote=True)


def _clip_middle(text: str, limit: int, max_lines: int = 0) -> str:
    """Head and tail of ``text`` within ``limit`` characters (and ``max_lines`` lines, if given)."""
    lines = text.splitlines()
    if max_lines and len(lines) > max_lines:
        head, tail = lines[: max_lines * 2 // 3], lines[-(max_lines - max_lines * 2 // 3) :]
        omitted = len(lines) - len(head) - len(tail)
        text = "\n".join([*head, f"… [{omitted:,} lines omitted] …", *tail])
    if len(text) <= limit:
        return text
    half = limit // 2
    return f"{text[:half]}\n… [{len(text) - 2 * half:,} characters omitted] …\n{text[-half:]}"


def _pre(text: str, color: str = "", max_height: str = "24em", code: bool = False) -> str:
    style = f"{PRE_STYLE};max-height:{max_height}" + (f";color:{color}" if color else "")
    inner = f"<code>{_esc(text)}</code>" if code else _esc(text)
    return f'<pre style="{style}">{inner}</pre>'


def _folded(summary: str, body: str, open_: bool = False) -> str:
    return (
        f"<details{' open' if open_ else ''}><summary style='cursor:pointer;color:{MUTED}'>{summary}</summary>"
        f"{body}</details>"
    )


def _muted(text: str) -> str:
    return f"<span style='color:{MUTED}'>{text}</span>"


# ---------------------------------------------------------------------------------------------- diffs


def _diff_line(line: str) -> str:
    text = _esc(line)
    if line.startswith(("+++", "---")):
        return f"<b>{text}</b>"
    if line.startswith("+"):
        return f"<ins style='text-decoration:none;background:rgba(46,160,67,0.18)'>{text}</ins>"
    if line.startswith("-"):
        return f"<del style='text-decoration:none;background:rgba(248,81,73,0.18)'>{text}</del>"
    if line.startswith("@@"):
        return _muted(text)
    return text


def _diff_pre(lines: list[str]) -> str:
    style = f"margin:2px 0;padding:4px;font-family:{MONO};font-size:12px;overflow:auto;border:1px solid var(--jp-border-color2, #ddd)"
    return (
        f'<pre class="nbagent-diff" style="{style}">' + "\n".join(_diff_line(ln) for ln in lines) + "</pre>"
    )


def diff_counts(diff: str) -> tuple[int, int]:
    changed = [ln for ln in diff.splitlines() if not ln.startswith(("+++", "---"))]
    return sum(1 for ln in changed if ln.startswith("+")), sum(1 for ln in changed if ln.startswith("-"))


def diff_html(diff: DiffProduced, *, static: bool = False) -> str:
    lines = diff.diff.splitlines()
    if static and len(lines) > STATIC_DIFF_LINES:
        dropped = len(lines) - STATIC_DIFF_LINES
        lines = [*lines[:STATIC_DIFF_LINES], f"… {dropped} more diff lines not kept in the notebook"]
    head = (
        f"<div><b>{_esc(diff.path)}</b> <span style='color:#2e7d32'>+{diff.additions}</span>"
        f" <span style='color:#c62828'>-{diff.deletions}</span></div>"
    )
    shown, rest = lines[:DIFF_SHOWN_LINES], lines[DIFF_SHOWN_LINES:]
    body = _diff_pre(shown) + (_folded(f"{len(rest)} more lines", _diff_pre(rest)) if rest else "")
    return head + body


# ---------------------------------------------------------------------------------------------- tools


def _images_html(attachments: list[Attachment], static: bool) -> str:
    out = []
    for att in attachments:
        if not att.media_type.startswith("image/"):
            continue
        if static and len(att.data) > STATIC_IMAGE_CHARS:
            out.append(f"<p>{_muted(f'[{_esc(att.media_type)} image not kept in the notebook]')}</p>")
            continue
        out.append(
            f'<img style="max-width:480px;display:block" alt="{_esc(att.name or att.media_type)}"'
            f' src="data:{_esc(att.media_type)};base64,{att.data}"/>'
        )
    return "".join(out)


def _hidden(block: ToolBlock) -> bool:
    """A successful todowrite call: the plan block shows it."""
    return block.tool == "todowrite" and block.status == "completed"


def tool_header(block: ToolBlock) -> tuple[str, str]:
    """(summary of the call, what the result's title adds): the path or command is said once."""
    summary = call_summary(block.tool, block.input) if block.input else ""
    if block.shown_in_permission:  # the permission prompt right below shows the code in full
        return "", title_extra(summary, block.title)
    return summary, title_extra(summary, block.title)


def _code_of(block: ToolBlock) -> str | None:
    value = block.input.get("code") or block.input.get("command")
    return value if block.tool in ("python", "bash") and isinstance(value, str) else None


def tool_html(block: ToolBlock, *, static: bool = False, nested: bool = True) -> str:
    """A tool card; ``nested``: with a ``task`` call's child transcript (the live widget draws its own)."""
    if _hidden(block):
        return ""
    color = STATUS_COLOR.get(block.status, "#999")
    summary, extra = tool_header(block)
    head = (
        f"<span style='color:{color}'>{STATUS_ICON.get(block.status, '?')}</span> <b>{_esc(block.tool)}</b>"
        + (f" <code>{_esc(summary)}</code>" if summary else "")
        + (f" {_muted(_esc(extra[:120]))}" if extra else "")
    )
    parts = [f"<div>{head}</div>"]
    code = _code_of(block)
    if code is not None and "\n" in code.strip() and not block.shown_in_permission:
        parts.append(_folded("code", _pre(_clip_middle(code, 4000), code=True)))
    if block.status == "running" and block.live:
        parts.append(_pre(strip_ansi(block.live[-LIVE_TAIL_CHARS:]), max_height="12em"))
    for diff in block.diffs:
        parts.append(diff_html(diff, static=static))
    if nested and block.child is not None:
        parts.append(child_html(block, lambda b: block_html(b, static=static)))
    if block.status == "completed":
        output = strip_ansi(block.output)
        lines = output.count("\n") + 1 if output else 0
        shown = (
            _clip_middle(output, STATIC_OUTPUT_CHARS, STATIC_OUTPUT_LINES)
            if static
            else _clip_middle(output, LIVE_OUTPUT_CHARS)
        )
        parts.append(_folded(f"result ({lines} line{'s' if lines != 1 else ''})", _pre(shown)))
        parts.append(_images_html(block.attachments, static))
    elif block.status == "error":
        parts.append(_pre(_clip_middle(strip_ansi(block.error), 2000), color="#c62828", max_height="10em"))
    return (
        f'<div class="nbagent-tool" style="border-left:3px solid {color};padding:2px 8px;margin:4px 0">'
        + "".join(parts)
        + "</div>"
    )


# ---------------------------------------------------------------------------------------------- permissions


def always_rules(asked: PermissionAsked) -> list[str]:
    """The rules an "always" answer saves, written ``permission: pattern``."""
    raw = asked.details.get("always_rules") if isinstance(asked.details, dict) else None
    if isinstance(raw, list) and raw:
        return [f"{r.get('permission')}: {r.get('pattern')}" for r in raw if isinstance(r, dict)]
    return [a if ":" in a else f"{asked.tool}: {a}" for a in asked.always]


def shell_parts(details: Mapping[str, Any]) -> list[tuple[str, str, str, str]]:
    """The commands and redirects of a shell permission request, as (mark, what, decision, why):
    ``("?", "rm -rf build", "asks", "default bash: ask")``."""
    items = details.get("commands")
    out: list[tuple[str, str, str, str]] = []
    if not isinstance(items, list):
        return out
    for item in items[:MAX_COMMANDS]:
        if not isinstance(item, Mapping):
            out.append(("·", str(item), "", ""))
            continue
        mark, verb = DECISION.get(str(item.get("action", "")), ("·", str(item.get("action", ""))))
        if "redirect" in item:
            what = f"{item['redirect']} (redirect)"
        else:
            what = str(item.get("command", ""))
            via = [str(v) for v in item.get("via") or []]
            if via:
                what += f" (run by {' → '.join(via)})"
            elif item.get("wrapper"):
                what += " (runs the command after it)"
        reason, rule = str(item.get("reason") or ""), str(item.get("rule") or "")
        why = reason if reason and reason != f"run {item.get('command')}" else rule
        out.append((mark, what, verb, why))
    if len(items) > MAX_COMMANDS:
        out.append(("…", f"{len(items) - MAX_COMMANDS} more", "", ""))
    return out


def _title(asked: PermissionAsked) -> str:
    """The request's title, without the excerpt of code the prompt shows in full below it."""
    code = asked.details.get("code")
    head, sep, tail = asked.title.partition(": ")
    if isinstance(code, str) and sep:
        excerpt = tail.removesuffix(" ...").removesuffix("…").strip()
        if excerpt and code.strip().startswith(excerpt):
            return head
    return asked.title


def _why(asked: PermissionAsked) -> str:
    """The reason a request asks, unless it only restates the code the prompt shows."""
    code = asked.details.get("code")
    if isinstance(code, str) and code.strip() and code.strip()[:40] in asked.reason:
        return ""
    return asked.reason


def reply_text(block: PermissionBlock) -> str:
    r, asked = block.replied, block.asked
    if r is None or asked is None:
        return ""
    verb = {"once": "✓ allowed once", "always": "✓ always allowed", "reject": "✗ denied"}[r.reply]
    rules = always_rules(asked)
    extra = f" ({', '.join(rules)})" if r.reply == "always" and rules else ""
    by = f" by {r.by}" if r.by != "user" else ""
    feedback = f": “{r.feedback}”" if r.feedback else ""
    return f"{verb}{extra}{by}{feedback}"


def permission_html(block: PermissionBlock, *, include_reply: bool = True) -> str:
    asked = block.asked
    if asked is None:
        return ""
    details = asked.details if isinstance(asked.details, dict) else {}
    lines = [f"<div><b>⚠ Permission: {_esc(_title(asked))}</b></div>"]
    if _why(asked):
        lines.append(f"<div>{_muted('why: ' + _esc(_why(asked)))}</div>")
    parts = shell_parts(details)
    if parts:
        items = "".join(
            f"<li>{mark} <code>{_esc(what)}</code>"
            + (f" — <b>{_esc(verb)}</b>" if verb else "")
            + (f" {_muted(_esc(why))}" if why else "")
            + "</li>"
            for mark, what, verb, why in parts
        )
        lines.append(f"<ul style='margin:2px 0;padding-left:1.2em;list-style:none'>{items}</ul>")
    elif asked.patterns and asked.tool != "python" and not isinstance(details.get("code"), str):
        lines.append(
            "<div>" + ", ".join(f"<code>{_esc(p[:200])}</code>" for p in asked.patterns[:10]) + "</div>"
        )
    code = details.get("code")
    if isinstance(code, str) and code:
        lines.append(_pre(_clip_middle(code, 4000), max_height="14em", code=True))
    diff = details.get("diff")
    if isinstance(diff, str) and diff:
        adds, dels = diff_counts(diff)
        lines.append(
            diff_html(
                DiffProduced(call_id="", path="proposed change", diff=diff, additions=adds, deletions=dels)
            )
        )
    if include_reply and block.replied is not None:
        lines.append(f"<div><b>{_esc(reply_text(block))}</b></div>")
    border = "#f9a825" if block.replied is None else "#999"
    return (
        f'<div class="nbagent-permission" style="border:1px solid {border};border-radius:4px;padding:4px 8px;'
        f'margin:4px 0">' + "".join(lines) + "</div>"
    )


# ---------------------------------------------------------------------------------------------- other blocks


def todo_html(block: TodoBlock) -> str:
    items = []
    for t in block.todos:
        text = _esc(t.content)
        if t.status in ("completed", "cancelled"):
            text = f"<s style='color:{MUTED}'>{text}</s>"
        elif t.status == "in_progress":
            text = f"<b>{text}</b>"
        items.append(f"<li>{TODO_MARK[t.status]} {text}</li>")
    done = sum(t.status == "completed" for t in block.todos)
    return (
        f"<div class='nbagent-plan' style='margin:4px 0;padding:2px 8px;border-left:3px solid #7e57c2'>"
        f"<div><b>Plan</b> {_muted(f'{done}/{len(block.todos)}')}</div>"
        f"<ul style='margin:2px 0;padding-left:0.4em;list-style:none'>{''.join(items)}</ul></div>"
    )


def notice_html(block: NoticeBlock) -> str:
    color = {"info": "#1a73e8", "warning": "#ef6c00", "error": "#c62828", "stop": "#c62828"}.get(
        block.level, "#1a73e8"
    )
    label = {"error": "<b>Error:</b> ", "warning": "<b>!</b> ", "stop": "<b>■</b> "}.get(block.level, "")
    text = f"<span style='color:{color}'>{label}{_esc(block.message)}</span>"
    if block.hint:
        text += f"<div>{_muted('hint: ' + _esc(block.hint))}</div>"
    if block.detail:
        text += _folded("details", _pre(_clip_middle(block.detail, 8000)))
    return f"<div class='nbagent-notice' style='margin:4px 0'>{text}</div>"


def text_html(block: TextBlock) -> str:
    if block.reasoning:
        body = f"<blockquote style='margin:0;font-style:italic'>{markdown_html(block.text)}</blockquote>"
        return f"<details style='color:{MUTED}'><summary style='cursor:pointer'><i>thinking</i></summary>{body}</details>"
    return f"<div class='nbagent-text'>{markdown_html(block.text)}</div>"


def block_html(block: Block, *, static: bool = False, nested: bool = True) -> str:
    if isinstance(block, TextBlock):
        return text_html(block)
    if isinstance(block, ToolBlock):
        return tool_html(block, static=static, nested=nested)
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
    """Tokens and cost of the turn (live: updated after each step), the session's cost when it differs."""
    u = footer.turn if footer.turn is not None else footer.total
    parts = [
        footer.model or "model ?",
        f"{format_tokens(u.input_tokens)} in",
        f"{format_tokens(u.output_tokens)} out",
    ]
    if u.cache_read_tokens:
        parts.append(f"{format_tokens(u.cache_read_tokens)} cached")
    parts.append(f"${u.cost:.4f}" if u.cost is not None else "cost unknown")
    session = footer.total.cost
    if footer.turn is not None and session is not None and f"{session:.4f}" != f"{u.cost or 0:.4f}":
        parts.append(f"session ${session:.4f}")
    if footer.context_limit:
        pct = 100 * footer.context_tokens / footer.context_limit
        parts.append(
            f"context {format_tokens(footer.context_tokens)}/{format_tokens(footer.context_limit)} ({pct:.0f}%)"
        )
    if footer.steps:
        parts.append(f"{footer.steps} step{'s' if footer.steps != 1 else ''}")
    if footer.budget:
        parts.append(f"stopped: {footer.budget.replace('_', ' ')} budget reached")
    elif footer.reason:
        parts.append(footer.reason)
    elif footer.running:
        parts.append("running…")
    return " · ".join(parts)


def footer_html(footer: Footer) -> str:
    return f"<div style='color:{MUTED};font-size:12px;margin-top:4px'><small>── {_esc(footer_text(footer))}</small></div>"


def transcript_html(transcript: Transcript) -> str:
    """The whole turn as static HTML (what the saved notebook shows without a widget manager)."""
    body = "".join(block_html(b, static=True) for b in transcript.blocks)
    return f"<div class='nbagent-turn' style='font-size:13px;line-height:1.45'>{body}{footer_html(transcript.footer)}</div>"


# ---------------------------------------------------------------------------------------------- text


def tool_text(block: ToolBlock) -> str:
    summary, extra = tool_header(block)
    line = f"{STATUS_ICON.get(block.status, '?')} {block.tool} {summary}".rstrip()
    if extra:
        line += f" · {extra[:160]}"
    if block.status == "error":
        line += f"\n    error: {(strip_ansi(block.error).strip().splitlines() or [''])[0][:200]}"
    for d in block.diffs:
        line += f"\n    {d.path} +{d.additions} -{d.deletions}"
    if block.child is not None:
        line += "\n" + child_text(block, block_text)
    return line


def permission_text(block: PermissionBlock) -> str:
    asked = block.asked
    if asked is None:
        return ""
    line = f"? permission: {_title(asked)}"
    if block.replied is not None:
        r = block.replied
        line += (
            f" → {r.reply}"
            + (f" ({r.by})" if r.by != "user" else "")
            + (f": “{r.feedback}”" if r.feedback else "")
        )
    details = asked.details if isinstance(asked.details, dict) else {}
    for mark, what, verb, why in shell_parts(details):
        line += f"\n    {mark} {what}" + (f" — {verb}" if verb else "") + (f": {why}" if why else "")
    code = details.get("code")
    if isinstance(code, str) and code.strip():
        line += "\n" + "\n".join(f"    | {ln}" for ln in _clip_middle(code, 1200, 12).splitlines())
    return line


def block_text(block: Block) -> str:
    if isinstance(block, TextBlock):
        return ("(thinking) " + " ".join(block.text.split())[:300]) if block.reasoning else block.text.strip()
    if isinstance(block, ToolBlock):
        return "" if _hidden(block) else tool_text(block)
    if isinstance(block, PermissionBlock):
        return permission_text(block)
    if isinstance(block, TodoBlock):
        return "Plan:\n" + "\n".join(f"  {TODO_MARK[t.status]} {t.content}" for t in block.todos)
    if isinstance(block, NoticeBlock):
        prefix = {"error": "Error: ", "warning": "! ", "stop": "■ "}.get(block.level, "")
        return prefix + block.message + (f"\n  hint: {block.hint}" if block.hint else "")
    return ""


def transcript_text(transcript: Transcript) -> str:
    parts = [t for t in (block_text(b) for b in transcript.blocks) if t]
    text = "\n".join(parts) + f"\n── {footer_text(transcript.footer)}"
    return _clip_middle(text, TEXT_CHARS)
