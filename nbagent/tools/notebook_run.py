"""``notebook_run(notebook_path, cell_ids)``: run cells of the open notebook in the live kernel.

The cells run in order, in the user's namespace, while the agent's own cell is still running (the code
runs the way the python tool runs it; see :mod:`nbagent.jupyter.cell_run`). Their outputs go into those
cells as they come, through the front-end, exactly where the user would see them had they run the cells;
the model gets them back bounded, images attached. A cell that fails stops the run (as Run All does); a
kernel interrupt or Stop stops it and the turn; a cell that runs past ``timeout`` is stopped.

Without a front-end (VS Code, a front-end without the extension), the saved source of the cells runs and
the outputs come back to the model only: the cells themselves cannot be changed behind the editor.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from nbagent.core.messages import Attachment
from nbagent.tools.base import PermissionQuery, Tool, ToolContext, ToolFailure, ToolResult, bound_output
from nbagent.tools.kernel import kernel_of
from nbagent.tools.kernel_exec import CellRun
from nbagent.tools.notebook import find_cell
from nbagent.tools.notebook_live import LiveDocument, live_cells, open_notebook
from nbagent.tools.notebook_view import join_source, render_outputs

DEFAULT_TIMEOUT = 600.0
MAX_CELLS = 50


class NotebookRunParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    notebook_path: str = Field(
        description="Path of the notebook open in this kernel (the one the agent runs in)"
    )
    cell_ids: list[str] = Field(
        min_length=1, max_length=MAX_CELLS, description="Ids of the cells to run, in the order to run them"
    )
    timeout: float | None = Field(
        default=None,
        gt=0,
        le=3600,
        description=f"Seconds per cell before it is stopped (default {DEFAULT_TIMEOUT:g})",
    )


def _code_cells(cells: list[dict[str, Any]], ids: list[str]) -> list[tuple[str, str, int]]:
    """(cell id, source, cell number) of the code cells asked for; markdown cells are refused."""
    chosen = []
    for raw in ids:
        index = find_cell(cells, raw)
        cell = cells[index]
        cell_id = str(cell.get("id") or raw)
        if cell.get("cell_type") != "code":
            raise ToolFailure(
                f"Cell {cell_id} is a {cell.get('cell_type')} cell: only code cells run. Leave it out of cell_ids."
            )
        chosen.append((cell_id, join_source(cell.get("source")), index + 1))
    return chosen


def _saved_cells(path: Path, shown: str) -> list[dict[str, Any]]:
    import json

    try:
        nb = json.loads(path.read_text(encoding="utf-8"))
        cells = nb["cells"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ToolFailure(f"Cannot read {shown} as a notebook: {exc}") from exc
    return [c if isinstance(c, dict) else {} for c in cells]


class NotebookRunTool(Tool[NotebookRunParams]):
    name = "notebook_run"
    params = NotebookRunParams

    async def run(self, args: NotebookRunParams, ctx: ToolContext) -> ToolResult:
        namespace = kernel_of(ctx)
        path = ctx.resolve(args.notebook_path)
        shown = ctx.display(path)
        opened = await open_notebook(ctx, path)
        if opened is None:
            raise ToolFailure(
                f"{shown} is not the notebook this kernel runs, and notebook_run runs cells of that one only"
                " (in its live kernel). To execute another notebook, use bash: `nbagent execute NOTEBOOK`"
                " or `jupyter nbconvert --to notebook --execute NOTEBOOK`."
            )
        doc = await opened.document()
        cells = await live_cells(doc) if doc is not None else _saved_cells(path, shown)
        chosen = _code_cells(cells, args.cell_ids)
        lines = [f"# cell {cell_id}\n{source}" for cell_id, source, _ in chosen]
        ids = ", ".join(cell_id for cell_id, _, _ in chosen)
        await ctx.ask(
            PermissionQuery(
                permission="python",
                patterns=[source for _, source, _ in chosen],
                title=f"Run {len(chosen)} cell{'s' if len(chosen) > 1 else ''} of {shown} in the kernel: {ids}",
                metadata={"code": "\n\n".join(lines)},
            )
        )
        limit = args.timeout or DEFAULT_TIMEOUT
        parts: list[str] = []
        runs: list[tuple[str, CellRun]] = []
        attachments: list[Attachment] = []
        stopped: str | None = None
        for position, (cell_id, source, number) in enumerate(chosen):
            run = await self._run_one(doc, namespace, cell_id, source, limit)
            runs.append((cell_id, run))
            parts.append(self._describe(cell_id, number, run, attachments, shown))
            if run.status != "ok":
                rest = [c[0] for c in chosen[position + 1 :]]
                stopped = run.status
                if rest:
                    parts.append(f"Not run (the run stopped at cell {cell_id}): {', '.join(rest)}")
                break
        if stopped == "interrupted":
            raise asyncio.CancelledError("kernel interrupt")
        mode = (
            f"Ran in the live kernel; the outputs are in the cells (live document in {doc.frontend})."
            if doc is not None
            else f"No nbagent front-end answers for {shown}: ran the saved source of the cells (the editor may"
            " have unsaved changes); the outputs are shown here only, not in the cells."
        )
        output = bound_output("\n\n".join([mode, *parts]), ctx, label="notebook_run")
        failed = sum(1 for _, r in runs if r.status != "ok")
        return ToolResult(
            output=output,
            title=f"{shown}: {len(runs)} cell{'s' if len(runs) != 1 else ''} run"
            + (", failed" if failed else ""),
            attachments=attachments,
            metadata={
                "cells": [
                    {"cell_id": cid, "execution_count": r.execution_count, "status": r.status}
                    for cid, r in runs
                ],
                "error": bool(failed),
                "live": doc is not None,
            },
        )

    async def _run_one(
        self, doc: LiveDocument | None, namespace: Any, cell_id: str, source: str, limit: float
    ) -> CellRun:
        if doc is None:
            return await namespace.run_cell(source, cell_id, lambda _o: None, limit)  # type: ignore[no-any-return]
        await doc.request("run_start", {"cell_id": cell_id})
        run: CellRun | None = None
        try:
            run = await namespace.run_cell(source, cell_id, lambda o: doc.output(cell_id, o), limit)
        finally:
            status = run.status if run is not None else "interrupted"
            count = run.execution_count if run is not None else None
            await asyncio.shield(
                doc.request("run_end", {"cell_id": cell_id, "execution_count": count, "status": status})
            )
        return run

    def _describe(
        self, cell_id: str, number: int, run: CellRun, attachments: list[Attachment], shown: str
    ) -> str:
        count = run.execution_count if run.execution_count is not None else " "
        head = f'<cell {number} id="{cell_id}" execution_count={count} status="{run.status}">'
        body = render_outputs(run.outputs, attachments, f"{shown} cell {number}") or ["(no output)"]
        if run.status == "timeout":
            body.append(run.error)
        return "\n".join([head, *body, "</cell>"])
