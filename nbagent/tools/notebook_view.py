"""How the model sees a notebook's cells: in full (source and bounded outputs) or as a summary.

Used by ``read`` (a file on disk, or the live document of the open notebook) and ``notebook_run`` (the
outputs a run produced). Images in outputs become attachments (at most ``NB_MAX_IMAGES`` per call). A
cell's *status* says what the model cannot see in the JSON: that a cell was edited since it last ran,
never ran, or ran in an earlier kernel (its outputs are stale and its variables are gone).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

from nbagent.core.messages import Attachment

NB_OUTPUT_CHARS = 2000  # per notebook output
NB_MAX_IMAGES = 3
MAX_IMAGE_BYTES = 5 * 1024 * 1024
SUMMARY_LINE_CHARS = 100
# a notebook whose full rendering is larger than this is shown as a summary unless offset/limit ask
# for cells: the ids, first lines and output kinds keep big notebooks cheap
SUMMARY_ABOVE_CHARS = 40_000
IMAGE_TYPES = ("image/png", "image/jpeg", "image/gif", "image/webp")

# (execution_count, cell id) -> the source that ran as that count, None when this kernel does not know
RanSource = Callable[[int, str], "str | None"]


def join_source(value: Any) -> str:
    if isinstance(value, list):
        return "".join(str(v) for v in value)
    return "" if value is None else str(value)


def clip(text: str, limit: int = NB_OUTPUT_CHARS) -> str:
    if len(text) <= limit:
        return text
    return text[:limit] + f"\n... [output truncated: {len(text) - limit} more characters]"


def cell_status(cell: dict[str, Any], ran_source: RanSource | None) -> str:
    """``never ran``, ``edited since it ran``, ``ran in an earlier kernel`` or "" (ran as it is)."""
    if cell.get("cell_type") != "code" or not join_source(cell.get("source")).strip():
        return ""
    count = cell.get("execution_count")
    if not isinstance(count, int):
        return "never ran"
    if ran_source is None:
        return ""
    ran = ran_source(count, str(cell.get("id") or ""))
    if ran is None:
        return "ran in an earlier kernel: its outputs may be stale and its variables gone"
    if ran.rstrip() != join_source(cell.get("source")).rstrip():
        return "edited since it ran"
    return ""


def render_cells(
    cells: Sequence[Any],
    shown: str,
    attachments: list[Attachment],
    ran_source: RanSource | None = None,
    start: int = 1,
    end: int | None = None,
) -> list[str]:
    """Cells ``start``..``end`` (1-based, inclusive) in full."""
    end = len(cells) if end is None else end
    parts = []
    for index in range(start - 1, end):
        cell = cells[index] if isinstance(cells[index], dict) else {}
        parts.append(render_cell(index + 1, cell, attachments, shown, cell_status(cell, ran_source)))
    return parts


def render_cell(
    number: int, cell: dict[str, Any], attachments: list[Attachment], shown: str, status: str = ""
) -> str:
    kind = cell.get("cell_type", "?")
    head = f'<cell {number} id="{cell.get("id", "")}" type="{kind}"'
    if kind == "code":
        count = cell.get("execution_count")
        head += f" execution_count={count if count is not None else 'none'}"
    if status:
        head += f' status="{status}"'
    agent = (cell.get("metadata") or {}).get("nbagent") if isinstance(cell.get("metadata"), dict) else None
    if isinstance(agent, dict) and agent.get("action"):
        head += f' changed_by_agent="{agent.get("action")}"'
    lines = [head + ">", join_source(cell.get("source")).rstrip("\n")]
    lines.extend(render_outputs(cell.get("outputs") or [], attachments, f"{shown} cell {number}"))
    lines.append("</cell>")
    return "\n".join(lines)


def render_outputs(outputs: Sequence[Any], attachments: list[Attachment], name: str) -> list[str]:
    return [render_output(o, attachments, name) for o in outputs if isinstance(o, dict)]


def render_output(output: dict[str, Any], attachments: list[Attachment], name: str) -> str:
    kind = output.get("output_type", "")
    if kind == "stream":
        return f"[{output.get('name', 'stdout')}]\n" + clip(join_source(output.get("text")).rstrip("\n"))
    if kind == "error":
        head = f"[error] {output.get('ename', 'Error')}: {output.get('evalue', '')}"
        trace = "\n".join(_plain(str(line)) for line in output.get("traceback") or [])
        return head + ("\n" + clip(trace, 3000) if trace else "")
    data = output.get("data") or {}
    if not isinstance(data, dict):
        return f"[{kind}]"
    notes = []
    for media in IMAGE_TYPES:
        if media in data:
            payload = "".join(join_source(data[media]).split())
            if len(attachments) >= NB_MAX_IMAGES:
                notes.append(f"[{media} output not attached: at most {NB_MAX_IMAGES} images per call]")
            elif len(payload) * 3 // 4 > MAX_IMAGE_BYTES:
                notes.append(f"[{media} output too large to attach]")
            else:
                attachments.append(Attachment(media_type=media, data=payload, name=name))
                notes.append(f"[{media} output attached as image {len(attachments)}]")
            break
    for media in ("text/plain", "text/markdown", "text/html", "application/json"):
        if media in data:
            value = data[media]
            text = (
                json.dumps(value)
                if media == "application/json" and not isinstance(value, str)
                else join_source(value)
            )
            notes.append(f"[{kind} {media}]\n" + clip(text.rstrip("\n")))
            break
    if not notes:
        notes.append(f"[{kind}: {', '.join(data) or 'no data'}]")
    return "\n".join(notes)


def output_kinds(outputs: Sequence[Any]) -> str:
    kinds: list[str] = []
    for output in outputs:
        if not isinstance(output, dict):
            continue
        kind = output.get("output_type", "?")
        if kind == "stream":
            label = str(output.get("name", "stdout"))
        elif kind == "error":
            label = f"error {output.get('ename', 'Error')}"
        else:
            data = output.get("data") if isinstance(output.get("data"), dict) else {}
            image = next((m for m in IMAGE_TYPES if m in (data or {})), None)
            label = image or ("html" if "text/html" in (data or {}) else "text")
        if label not in kinds:
            kinds.append(label)
    return ", ".join(kinds)


def summary_lines(cells: Sequence[Any], ran_source: RanSource | None = None) -> list[str]:
    """One line per cell: number, id, type, execution count, status, first line, output kinds."""
    lines = []
    for number, raw in enumerate(cells, 1):
        cell = raw if isinstance(raw, dict) else {}
        source = join_source(cell.get("source"))
        first = next((line.strip() for line in source.splitlines() if line.strip()), "")
        if len(first) > SUMMARY_LINE_CHARS:
            first = first[: SUMMARY_LINE_CHARS - 3] + "..."
        more = len(source.splitlines()) - 1
        kind = cell.get("cell_type", "?")
        count = cell.get("execution_count")
        line = f"{number}. id={cell.get('id', '')} {kind}"
        if kind == "code":
            line += f" [{count if count is not None else ' '}]"
        status = cell_status(cell, ran_source)
        if status:
            line += f" ({status.split(':')[0]})"
        line += f": {first or '(empty)'}" + (f" (+{more} lines)" if more > 0 else "")
        kinds = output_kinds(cell.get("outputs") or [])
        if kinds:
            line += f" -> {kinds}"
        lines.append(line)
    return lines


def render_notebook(
    cells: Sequence[Any],
    shown: str,
    header: str,
    offset: int | None,
    limit: int | None,
    ran_source: RanSource | None = None,
) -> tuple[str, list[Attachment]]:
    """The text ``read`` returns for a notebook: the cells asked for, or a summary when it is big."""
    from nbagent.tools.base import ToolFailure

    start = offset or 1
    if cells and start > len(cells):
        raise ToolFailure(f"offset {start} is past the last cell of {shown}, which has {len(cells)} cells.")
    end = min(len(cells), start - 1 + (limit or len(cells)))
    attachments: list[Attachment] = []
    parts = render_cells(cells, shown, attachments, ran_source, start, end)
    if offset is None and limit is None and sum(len(p) for p in parts) > SUMMARY_ABOVE_CHARS:
        lines = summary_lines(cells, ran_source)
        text = "\n".join(
            [
                f"{header} It is large, so this is a summary: one line per cell (number, id, type,"
                " [execution count], status, first line -> output kinds).",
                *lines,
                "Read cells in full with offset (the first cell's number) and limit (how many cells).",
            ]
        )
        return text, []
    if end < len(cells):
        parts.append(f"(Showing cells {start}-{end}. Use offset={end + 1} to read more.)")
    return "\n\n".join([header, *parts]), attachments


def _plain(line: str) -> str:
    """A traceback line without ANSI colour codes."""
    import re

    return re.sub(r"\x1b\[[0-9;]*m", "", line)
