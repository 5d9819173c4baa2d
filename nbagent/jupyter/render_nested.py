"""A ``task`` card's nested block: the child agent's transcript inside its parent's tool card.

The child's blocks are drawn by the caller's own renderer (passed in), so a nested transcript looks
like a turn: text, tool cards, permission prompts. The block is open while the child runs (or waits
for an answer) and folded once it is done; its summary names the agent.
"""

from __future__ import annotations

import html
from collections.abc import Callable

from nbagent.jupyter.transcript import Block, ChildRun, ToolBlock

NESTED_TEXT_LINES = 40  # lines of a child's transcript in the text/plain rendering (head and tail)
MUTED = "var(--jp-ui-font-color2,#666)"


def child_label(block: ToolBlock) -> str:
    """``explore · find the parser · 3 steps · stop``: the agent, what it was asked, how far it got."""
    run = block.child
    if run is None:
        return ""
    footer = run.transcript.footer
    parts = [run.agent]
    description = block.input.get("description")
    if isinstance(description, str) and description.strip():
        parts.append(description.strip()[:80])
    if footer.steps:
        parts.append(f"{footer.steps} step{'s' if footer.steps != 1 else ''}")
    if run.pending():
        parts.append("waiting for your answer")
    elif run.running:
        parts.append("running…")
    elif footer.reason and footer.reason != "stop":
        parts.append(footer.reason)
    else:
        parts.append("done")
    return " · ".join(parts)


def child_open(run: ChildRun) -> bool:
    """Shown unfolded: while the child runs or one of its prompts waits."""
    return run.running or bool(run.pending())


def child_html(block: ToolBlock, render: Callable[[Block], str]) -> str:
    """The nested block of a ``task`` card as HTML (``<details>``: readable without styles)."""
    run = block.child
    if run is None:
        return ""
    body = "".join(render(b) for b in run.transcript.blocks) or (
        f"<div style='color:{MUTED}'>(no output yet)</div>"
    )
    return (
        f"<details class='nbagent-subagent' data-agent='{html.escape(run.agent, quote=True)}'"
        f"{' open' if child_open(run) else ''} style='margin:4px 0'>"
        f"<summary style='cursor:pointer;color:{MUTED}'>↳ agent <b>{html.escape(child_label(block))}</b>"
        "</summary>"
        f"<div style='margin-left:6px;padding-left:8px;border-left:2px dashed #7e57c2'>{body}</div></details>"
    )


def child_text(block: ToolBlock, render: Callable[[Block], str]) -> str:
    """The nested block as indented text lines under the card's line (bounded: head and tail)."""
    run = block.child
    if run is None:
        return ""
    lines = [f"  ↳ agent {child_label(block)}"]
    body = [ln for b in run.transcript.blocks for ln in render(b).splitlines()]
    if len(body) > NESTED_TEXT_LINES:
        head, tail = body[: NESTED_TEXT_LINES // 2], body[-NESTED_TEXT_LINES // 2 :]
        body = [*head, f"… [{len(body) - len(head) - len(tail)} lines omitted] …", *tail]
    lines.extend(f"  │ {ln}" for ln in body)
    return "\n".join(lines)
