"""``notebook_edit``: replace, insert or delete one cell of a notebook (Claude Code's semantics).

Where the edit goes: the notebook open in the editor (the kernel's own) is edited in its live document
through the front-end (:mod:`nbagent.tools.notebook_live`), so the user's unsaved changes in other cells
survive and the editor's undo reverts the edit; when no front-end with the extension answers, a new
cell goes below the running cell through IPython's ``set_next_input`` and other edits are refused, never
written behind the editor's back. Any other notebook is edited on disk with nbformat.
"""

from __future__ import annotations

import os
import re
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from nbagent.core.events import DiffProduced
from nbagent.tools.base import PermissionQuery, Tool, ToolContext, ToolFailure, ToolResult
from nbagent.tools.notebook_live import (
    FRONTEND_KEY,
    OPEN_KEY,
    TURN_KEY,
    LiveDocument,
    OpenNotebook,
    live_cells,
    live_edits,
    open_notebook,
    provenance,
)
from nbagent.tools.screening import path_patterns

__all__ = [
    "FRONTEND_KEY",
    "OPEN_KEY",
    "CellType",
    "EditMode",
    "NotebookEdit",
    "NotebookEditParams",
    "NotebookEditTool",
    "apply_edit",
    "find_cell",
    "write_notebook",
]

CellType = Literal["code", "markdown"]
EditMode = Literal["replace", "insert", "delete"]


@dataclass
class NotebookEdit:
    path: Path
    cell_id: str | None
    new_source: str
    cell_type: CellType | None
    edit_mode: EditMode


def _nbformat() -> Any:
    import nbformat

    return nbformat


class NotebookEditParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    notebook_path: str = Field(description="Path of the .ipynb (absolute, or relative to the project root)")
    cell_id: str | None = Field(
        default=None,
        description="Cell id from read (or its number). Insert goes after it; omitted: at the top",
    )
    new_source: str = Field(default="", description="The cell's new source (unused for delete)")
    cell_type: CellType | None = Field(
        default=None, description="Required for insert; replace keeps the type if omitted"
    )
    edit_mode: EditMode = Field(default="replace", description="replace, insert or delete")


def find_cell(cells: list[Any], cell_id: str) -> int:
    """The index of the cell with id ``cell_id``; ``N`` (as read numbers cells) or ``cell-N`` (0-based) also work."""
    for i, cell in enumerate(cells):
        if cell.get("id") == cell_id:
            return i
    match = re.fullmatch(r"(cell-)?(\d+)", cell_id.strip())
    if match:
        n = int(match.group(2))
        index = n if match.group(1) else n - 1
        if 0 <= index < len(cells):
            return index
    ids = ", ".join(str(c.get("id", "?")) for c in cells[:30])
    raise ToolFailure(
        f"No cell with id {cell_id!r}. The notebook has {len(cells)} cells"
        + (f" (ids: {ids}{' ...' if len(cells) > 30 else ''})" if cells else "")
        + ". Read the notebook to see them."
    )


def _new_id(cells: list[Any]) -> str:
    used = {c.get("id") for c in cells}
    while True:
        candidate = uuid.uuid4().hex[:8]
        if candidate not in used:
            return candidate


def _set_type(cell: Any, cell_type: str) -> None:
    if cell.get("cell_type") == cell_type:
        return
    cell["cell_type"] = cell_type
    if cell_type == "code":
        cell["outputs"] = []
        cell["execution_count"] = None
    else:
        cell.pop("outputs", None)
        cell.pop("execution_count", None)


def write_notebook(nb: Any, path: Path) -> None:
    """Validate and write atomically (a reader never sees half a file)."""
    nbformat = _nbformat()

    try:
        nbformat.validate(nb)
    except nbformat.ValidationError as exc:
        raise ToolFailure(f"The edit would make the notebook invalid: {exc.message}") from exc
    text = nbformat.writes(nb)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text if text.endswith("\n") else text + "\n")
        if path.exists():
            os.chmod(tmp, path.stat().st_mode & 0o777)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def apply_edit(nb: Any, edit: NotebookEdit) -> tuple[str, str, str, str]:
    """Apply ``edit`` to a notebook node in place. Returns (message, cell label, old source, new source)."""
    nbformat = _nbformat()

    cells: list[Any] = nb.cells
    if nb.nbformat_minor < 5 or any("id" not in c for c in cells):  # give every cell an id (nbformat 4.5)
        nb.nbformat_minor = max(nb.nbformat_minor, 5)
        for cell in cells:
            if "id" not in cell:
                cell["id"] = _new_id(cells)
    if edit.edit_mode == "insert":
        if edit.cell_type is None:
            raise ToolFailure("cell_type is required for insert: 'code' or 'markdown'.")
        index = 0 if edit.cell_id is None else find_cell(cells, edit.cell_id) + 1
        maker = nbformat.v4.new_code_cell if edit.cell_type == "code" else nbformat.v4.new_markdown_cell
        cell = maker(source=edit.new_source)
        cell["id"] = _new_id(cells)
        cells.insert(index, cell)
        where = f"after cell {cells[index - 1]['id']}" if index else "at the top"
        return (
            f"Inserted {edit.cell_type} cell {cell['id']} {where} (cell {index + 1} of {len(cells)}).",
            f"cell {cell['id']}",
            "",
            edit.new_source,
        )
    if edit.cell_id is None:
        raise ToolFailure(f"cell_id is required for {edit.edit_mode}. Read the notebook to see the cell ids.")
    index = find_cell(cells, edit.cell_id)
    cell = cells[index]
    old = cell.get("source", "")
    old = "".join(old) if isinstance(old, list) else str(old)
    label = f"cell {cell.get('id', index + 1)}"
    if edit.edit_mode == "delete":
        del cells[index]
        return (
            f"Deleted {label} ({cell.get('cell_type')}); the notebook has {len(cells)} cells.",
            label,
            old,
            "",
        )
    if edit.cell_type is not None:
        _set_type(cell, edit.cell_type)
    cell["source"] = edit.new_source
    note = ""
    if cell.get("cell_type") == "code":
        had = bool(cell.get("outputs"))
        cell["outputs"] = []
        cell["execution_count"] = None
        note = "; its outputs were cleared" if had else ""
    return f"Replaced the source of {label} ({cell.get('cell_type')}){note}.", label, old, edit.new_source


def _load(path: Path, shown: str, edit: NotebookEdit, ctx: ToolContext) -> tuple[Any, bool]:
    """The notebook to edit on disk (a new one for an insert into a missing file), and whether it is new."""
    nbformat = _nbformat()

    if path.exists():
        ctx.files.check_fresh(path)
        try:
            return nbformat.read(str(path), as_version=4), False
        except Exception as exc:
            raise ToolFailure(f"Cannot read {shown} as a notebook: {exc}") from exc
    if edit.edit_mode == "insert":
        return nbformat.v4.new_notebook(), True
    raise ToolFailure(
        f"Notebook not found: {shown}. Insert a cell to create it, or check the path with glob."
    )


def _cell_json(cell_id: str, cell_type: str, source: str, metadata: dict[str, Any]) -> dict[str, Any]:
    cell: dict[str, Any] = {"id": cell_id, "cell_type": cell_type, "source": source, "metadata": metadata}
    if cell_type == "code":
        cell.update(outputs=[], execution_count=None)
    return cell


def _source(cell: dict[str, Any]) -> str:
    value = cell.get("source", "")
    return "".join(value) if isinstance(value, list) else str(value)


def _agent_meta(cell: dict[str, Any]) -> Any:
    meta = cell.get("metadata")
    return meta.get("nbagent") if isinstance(meta, dict) else None


@dataclass
class _LivePlan:
    """A live edit worked out against the document as it is now: the request, its undo, the diff."""

    op: str
    args: dict[str, Any]
    undo_op: str
    undo_args: dict[str, Any]
    label: str
    old: str
    new: str
    message: str


def _plan_live(cells: list[dict[str, Any]], edit: NotebookEdit, ctx: ToolContext) -> _LivePlan:
    if edit.edit_mode == "insert":
        if edit.cell_type is None:
            raise ToolFailure("cell_type is required for insert: 'code' or 'markdown'.")
        made = _made_by_this_call(cells, ctx)
        if made is not None:  # a replay of this turn: the cell this call inserted is there already
            return _redo_insert(cells, made, edit, ctx)
        index = 0 if edit.cell_id is None else find_cell(cells, edit.cell_id) + 1
        new_id = _new_id(cells)
        cell = _cell_json(new_id, edit.cell_type, edit.new_source, {"nbagent": provenance(ctx, "insert")})
        after = str(cells[index - 1].get("id")) if index else None
        where = f"after cell {after}" if after else "at the top"
        return _LivePlan(
            "insert",
            {"after": after, "index": index, "cell": cell},
            "delete",
            {"cell_id": new_id},
            f"cell {new_id}",
            "",
            edit.new_source,
            f"Inserted {edit.cell_type} cell {new_id} {where} (cell {index + 1} of {len(cells) + 1}).",
        )
    if edit.cell_id is None:
        raise ToolFailure(f"cell_id is required for {edit.edit_mode}. Read the notebook to see the cell ids.")
    index = find_cell(cells, edit.cell_id)
    cell = cells[index]
    cell_id = str(cell.get("id") or edit.cell_id)
    label = f"cell {cell_id}"
    old = _source(cell)
    if edit.edit_mode == "delete":
        after = str(cells[index - 1].get("id")) if index else None
        return _LivePlan(
            "delete",
            {"cell_id": cell_id},
            "insert",
            {"after": after, "index": index, "cell": cell},
            label,
            old,
            "",
            f"Deleted {label} ({cell.get('cell_type')}); the notebook has {len(cells) - 1} cells.",
        )
    meta = _agent_meta(cell)
    mark = {**(meta if isinstance(meta, dict) else {}), **provenance(ctx, "replace")}
    kind = str(cell.get("cell_type") or "code")
    return _replace_plan(
        cell,
        edit,
        mark,
        {"nbagent": meta},
        f"Replaced the source of {label} ({edit.cell_type or kind}) in the open notebook; its outputs are"
        " those of its last run until it runs again (notebook_run).",
    )


def _replace_plan(
    cell: dict[str, Any], edit: NotebookEdit, mark: Any, undo_meta: dict[str, Any], message: str
) -> _LivePlan:
    """Set a cell's source (and type) in place, marked ``mark``; the undo puts back its source, type and
    ``undo_meta``."""
    cell_id = str(cell.get("id"))
    old = _source(cell)
    new = {
        "cell_id": cell_id,
        "source": edit.new_source,
        "cell_type": edit.cell_type,
        "metadata": {"nbagent": mark},
    }
    kind = str(cell.get("cell_type") or "code")
    undo = {"cell_id": cell_id, "source": old, "cell_type": kind, "metadata": undo_meta}
    return _LivePlan("replace", new, "replace", undo, f"cell {cell_id}", old, edit.new_source, message)


def _made_by_this_call(cells: list[dict[str, Any]], ctx: ToolContext) -> int | None:
    for i, cell in enumerate(cells):
        meta = _agent_meta(cell)
        if (
            isinstance(meta, dict)
            and meta.get("action") == "insert"
            and meta.get("call") == ctx.call_id
            and meta.get("session") == ctx.session_id
        ):
            return i
    return None


def _redo_insert(cells: list[dict[str, Any]], index: int, edit: NotebookEdit, ctx: ToolContext) -> _LivePlan:
    """An insert replayed (``nbagent execute --replay``, a re-run of the same recorded cell): the cell it
    made is updated in place and keeps its id, so the recorded calls that name it still find it."""
    cell = cells[index]
    return _replace_plan(
        cell,
        edit,
        _agent_meta(cell),
        {},
        f"Inserted {edit.cell_type} cell {cell.get('id')} (cell {index + 1} of {len(cells)}; this call made"
        " it before, in the recording being replayed: updated in place).",
    )


class NotebookEditTool(Tool[NotebookEditParams]):
    name = "notebook_edit"
    params = NotebookEditParams

    async def run(self, args: NotebookEditParams, ctx: ToolContext) -> ToolResult:
        path = ctx.resolve(args.notebook_path)
        shown = ctx.display(path)
        if path.suffix.lower() != ".ipynb":
            raise ToolFailure(f"{shown} is not a notebook (.ipynb). Use edit or write for other files.")
        edit = NotebookEdit(path, args.cell_id, args.new_source, args.cell_type, args.edit_mode)
        opened = await open_notebook(ctx, path)
        if opened is not None:
            doc = await opened.document()
            if doc is None:
                return await self._without_frontend(opened, edit, shown, ctx)
            return await self._live(doc, edit, shown, ctx)
        nb, created = _load(path, shown, edit, ctx)
        message, label, old, new = apply_edit(nb, edit)
        await self._ask(ctx, path, shown, edit, label, old, new)
        write_notebook(nb, path)
        ctx.files.record(path)
        if created:
            message = f"Created {shown}. " + message
        return self._result(ctx, shown, label, old, new, message, edit, "file")

    async def _ask(
        self, ctx: ToolContext, path: Path, shown: str, edit: NotebookEdit, label: str, old: str, new: str
    ) -> str:
        from nbagent.tools.files import make_diff

        diff = make_diff(old, new, f"{shown} {label}")[0]
        await ctx.ask(
            PermissionQuery(
                permission="edit",
                patterns=path_patterns(ctx, path),
                title=f"{edit.edit_mode.capitalize()} {label} in {shown}",
                metadata={"diff": diff},
                destructive=edit.edit_mode == "delete",
            )
        )
        return diff

    async def _live(self, doc: LiveDocument, edit: NotebookEdit, shown: str, ctx: ToolContext) -> ToolResult:
        plan = _plan_live(await live_cells(doc), edit, ctx)
        await self._ask(ctx, edit.path, shown, edit, plan.label, plan.old, plan.new)
        reply = await doc.request(plan.op, plan.args)
        if plan.op == "insert" and reply.get("cell_id") and reply["cell_id"] != plan.undo_args["cell_id"]:
            got = str(reply["cell_id"])  # the front-end gave the cell another id
            plan.message = plan.message.replace(plan.undo_args["cell_id"], got)
            plan.label, plan.undo_args["cell_id"] = f"cell {got}", got
        live_edits(ctx.state).add(
            str(ctx.state.get(TURN_KEY) or ""), plan.undo_op, plan.undo_args, plan.op, plan.args
        )
        message = plan.message + f" (live document in {doc.frontend}; the editor's undo reverts it)"
        return self._result(ctx, shown, plan.label, plan.old, plan.new, message, edit, doc.frontend)

    async def _without_frontend(
        self, opened: OpenNotebook, edit: NotebookEdit, shown: str, ctx: ToolContext
    ) -> ToolResult:
        if edit.edit_mode != "insert":
            raise ToolFailure(
                f"{shown} is open in the notebook editor, and no nbagent front-end answers for it (VS Code,"
                " classic Notebook, or JupyterLab without the nbagent extension), so its cells cannot be"
                " changed live; writing its file would race the editor (the user's next save would"
                " overwrite the change). Show the user the new source of the cell instead, insert a new"
                " cell (it appears below the running cell), or ask them to install the nbagent extension"
                " (`pip install nbagent` in the Jupyter server's environment) and reload the page."
            )
        if edit.cell_type is None:
            raise ToolFailure("cell_type is required for insert: 'code' or 'markdown'.")
        await self._ask(ctx, edit.path, shown, edit, "a new cell", "", edit.new_source)
        told = opened.next_input(edit.new_source)
        if told is None:
            raise ToolFailure(
                f"{shown} is open in the notebook editor and no nbagent front-end answers for it, so no"
                " cell can be added to it now. Show the user the cell's source instead."
            )
        return self._result(ctx, shown, "a new cell", "", edit.new_source, told, edit, "set_next_input")

    def _result(
        self,
        ctx: ToolContext,
        shown: str,
        label: str,
        old: str,
        new: str,
        message: str,
        edit: NotebookEdit,
        mode: str,
    ) -> ToolResult:
        from nbagent.tools.files import make_diff

        diff, additions, deletions = make_diff(old, new, f"{shown} {label}")
        ctx.emit(
            DiffProduced(
                session_id=ctx.session_id,
                call_id=ctx.call_id,
                path=f"{shown} ({label})",
                diff=diff,
                additions=additions,
                deletions=deletions,
            )
        )
        if edit.edit_mode == "insert" and label.startswith("cell "):
            message += f"\ncell_id: {label.removeprefix('cell ')}"
        return ToolResult(
            output=message,
            title=f"{shown} {label}",
            metadata={
                "diff": diff,
                "additions": additions,
                "deletions": deletions,
                "edit_mode": edit.edit_mode,
                "via": mode,
            },
        )
