"""``notebook_edit``: replace, insert or delete one cell of a notebook (Claude Code's semantics).

Where the edit goes: a notebook open in a frontend that has the nbagent extension is edited through
that frontend (a :class:`LiveNotebooks` in the tool state under ``FRONTEND_KEY``: the seam the
JupyterLab extension fills); any other notebook is edited on disk with nbformat. A notebook known to
be open in an editor without that extension (``OPEN_KEY``: the kernel's own notebook) is refused
rather than written behind the editor's back.
"""

from __future__ import annotations

import os
import re
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field

from nbagent.core.events import DiffProduced
from nbagent.tools.base import PermissionQuery, Tool, ToolContext, ToolFailure, ToolResult
from nbagent.tools.screening import path_patterns

FRONTEND_KEY = "notebook_frontend"
OPEN_KEY = "open_notebooks"
CellType = Literal["code", "markdown"]
EditMode = Literal["replace", "insert", "delete"]


@dataclass
class NotebookEdit:
    path: Path
    cell_id: str | None
    new_source: str
    cell_type: CellType | None
    edit_mode: EditMode


class LiveNotebooks(Protocol):
    """Notebooks open in a frontend that can apply edits to the live document."""

    def is_open(self, path: Path) -> bool: ...

    async def apply(self, edit: NotebookEdit) -> str:
        """Apply ``edit`` to the open document; return the message for the model."""
        ...


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


def _load(path: Path, shown: str, edit: NotebookEdit, ctx: ToolContext, live: bool) -> tuple[Any, bool]:
    """The notebook to edit (a new one for an insert into a missing file), and whether it is new."""
    nbformat = _nbformat()

    if not live and path.resolve() in {Path(p).resolve() for p in ctx.state.get(OPEN_KEY, ())}:
        raise ToolFailure(
            f"{shown} is open in the notebook editor, and writing its file would race the editor (the user's"
            " next save would overwrite the change, or theirs would be lost). Without the nbagent JupyterLab"
            " extension, edit another notebook, or show the user the cell to change."
        )
    if path.exists():
        ctx.files.check_fresh(path)
        try:
            return nbformat.read(str(path), as_version=4), False
        except Exception as exc:
            raise ToolFailure(f"Cannot read {shown} as a notebook: {exc}") from exc
    if edit.edit_mode == "insert" and not live:
        return nbformat.v4.new_notebook(), True
    raise ToolFailure(
        f"Notebook not found: {shown}. Insert a cell to create it, or check the path with glob."
    )


class NotebookEditTool(Tool[NotebookEditParams]):
    name = "notebook_edit"
    params = NotebookEditParams

    async def run(self, args: NotebookEditParams, ctx: ToolContext) -> ToolResult:
        from nbagent.tools.files import make_diff

        path = ctx.resolve(args.notebook_path)
        shown = ctx.display(path)
        if path.suffix.lower() != ".ipynb":
            raise ToolFailure(f"{shown} is not a notebook (.ipynb). Use edit or write for other files.")
        edit = NotebookEdit(path, args.cell_id, args.new_source, args.cell_type, args.edit_mode)
        frontend: LiveNotebooks | None = ctx.state.get(FRONTEND_KEY)
        live = frontend is not None and frontend.is_open(path)
        nb, created = _load(path, shown, edit, ctx, live)
        message, label, old, new = apply_edit(nb, edit)
        diff, additions, deletions = make_diff(old, new, f"{shown} {label}")
        await ctx.ask(
            PermissionQuery(
                permission="edit",
                patterns=path_patterns(ctx, path),
                title=f"{args.edit_mode.capitalize()} {label} in {shown}",
                metadata={"diff": diff},
            )
        )
        if live and frontend is not None:
            message = await frontend.apply(edit)
        else:
            write_notebook(nb, path)
            ctx.files.record(path)
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
        if created:
            message = f"Created {shown}. " + message
        return ToolResult(
            output=message,
            title=f"{shown} {label}",
            metadata={
                "diff": diff,
                "additions": additions,
                "deletions": deletions,
                "edit_mode": args.edit_mode,
            },
        )
