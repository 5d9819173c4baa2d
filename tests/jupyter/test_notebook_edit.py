"""notebook_edit on real .ipynb files: Claude Code's semantics, validation, the open-editor guard."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import nbformat
import pytest

from nbagent.core.events import DiffProduced, Event
from nbagent.tools.base import PermissionQuery, ToolContext, ToolFailure
from nbagent.tools.files import ReadParams, ReadTool
from nbagent.tools.notebook import OPEN_KEY, NotebookEditParams, NotebookEditTool


def make_notebook(path: Path, minor: int = 5) -> None:
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_markdown_cell("# Title"),
        nbformat.v4.new_code_cell("x = 1\nx"),
        nbformat.v4.new_code_cell("print(x)"),
    ]
    for cell, cid in zip(nb.cells, ["md1", "code1", "code2"], strict=True):
        cell["id"] = cid
    nb.cells[1]["outputs"] = [
        nbformat.v4.new_output("execute_result", data={"text/plain": "1"}, execution_count=1)
    ]
    nb.cells[1]["execution_count"] = 1
    if minor < 5:
        nb.nbformat_minor = 4
        for cell in nb.cells:
            del cell["id"]
    path.write_text(json.dumps(nb), encoding="utf-8")


class Harness:
    def __init__(self, root: Path) -> None:
        self.events: list[Event] = []
        self.asks: list[PermissionQuery] = []
        self.ctx = ToolContext(root=root, emit=self.events.append, ask=self._ask, output_dir=root / ".out")

    async def _ask(self, query: PermissionQuery) -> None:
        self.asks.append(query)

    async def read(self, path: Path) -> str:
        return (await ReadTool().run(ReadParams(file_path=str(path)), self.ctx)).output

    async def edit(self, **kwargs: Any) -> str:
        return (await NotebookEditTool().run(NotebookEditParams(**kwargs), self.ctx)).output


def cells(path: Path) -> list[Any]:
    nb = nbformat.read(str(path), as_version=4)
    nbformat.validate(nb)
    return list(nb.cells)


async def test_replace_clears_outputs(tmp_path: Path) -> None:
    nbp = tmp_path / "a.ipynb"
    make_notebook(nbp)
    h = Harness(tmp_path)
    await h.read(nbp)
    out = await h.edit(notebook_path="a.ipynb", cell_id="code1", new_source="x = 2\nx")
    assert "outputs were cleared" in out
    c = cells(nbp)
    assert c[1].source == "x = 2\nx" and c[1].outputs == [] and c[1].execution_count is None
    assert [q.permission for q in h.asks] == ["read", "edit"]
    diffs = [e for e in h.events if isinstance(e, DiffProduced)]
    assert diffs and "+x = 2" in diffs[0].diff and "-x = 1" in diffs[0].diff


async def test_insert_after_and_at_top_and_delete(tmp_path: Path) -> None:
    nbp = tmp_path / "a.ipynb"
    make_notebook(nbp)
    h = Harness(tmp_path)
    await h.read(nbp)
    out = await h.edit(
        notebook_path=str(nbp), cell_id="code1", new_source="y = 3", cell_type="code", edit_mode="insert"
    )
    assert "after cell code1 (cell 3 of 4)" in out
    assert [c.source for c in cells(nbp)] == ["# Title", "x = 2\nx".replace("2", "1"), "y = 3", "print(x)"]
    await h.edit(notebook_path=str(nbp), new_source="intro", cell_type="markdown", edit_mode="insert")
    c = cells(nbp)
    assert c[0].source == "intro" and c[0].cell_type == "markdown" and len({x.id for x in c}) == 5
    out = await h.edit(notebook_path=str(nbp), cell_id="md1", edit_mode="delete")
    assert "Deleted cell md1" in out and [x.id for x in cells(nbp)].count("md1") == 0


async def test_insert_needs_cell_type_and_unknown_ids_list_the_real_ones(tmp_path: Path) -> None:
    nbp = tmp_path / "a.ipynb"
    make_notebook(nbp)
    h = Harness(tmp_path)
    await h.read(nbp)
    with pytest.raises(ToolFailure, match="cell_type is required"):
        await h.edit(notebook_path=str(nbp), cell_id="code1", new_source="z", edit_mode="insert")
    with pytest.raises(ToolFailure, match=r"No cell with id 'nope'.*md1, code1, code2"):
        await h.edit(notebook_path=str(nbp), cell_id="nope", new_source="z")


async def test_cell_numbers_and_type_conversion(tmp_path: Path) -> None:
    nbp = tmp_path / "a.ipynb"
    make_notebook(nbp)
    h = Harness(tmp_path)
    await h.read(nbp)
    await h.edit(notebook_path=str(nbp), cell_id="3", new_source="Some *text*", cell_type="markdown")
    c = cells(nbp)
    assert c[2].cell_type == "markdown" and "outputs" not in c[2]
    await h.edit(notebook_path=str(nbp), cell_id="cell-0", new_source="a = 1", cell_type="code")
    c = cells(nbp)
    assert c[0].cell_type == "code" and c[0].outputs == []


async def test_old_notebooks_get_cell_ids(tmp_path: Path) -> None:
    nbp = tmp_path / "old.ipynb"
    make_notebook(nbp, minor=4)
    h = Harness(tmp_path)
    await h.read(nbp)
    await h.edit(notebook_path=str(nbp), cell_id="2", new_source="x = 5")
    nb = nbformat.read(str(nbp), as_version=4)
    assert nb.nbformat_minor >= 5 and all(c.get("id") for c in nb.cells)
    assert nb.cells[1].source == "x = 5"


async def test_must_read_first_and_not_stale(tmp_path: Path) -> None:
    nbp = tmp_path / "a.ipynb"
    make_notebook(nbp)
    h = Harness(tmp_path)
    with pytest.raises(ToolFailure, match="read"):
        await h.edit(notebook_path=str(nbp), cell_id="code1", new_source="x")
    await h.read(nbp)
    make_notebook(nbp)  # changed behind our back
    nbp.write_text(nbp.read_text() + "\n")
    with pytest.raises(ToolFailure, match="changed on disk"):
        await h.edit(notebook_path=str(nbp), cell_id="code1", new_source="x")


async def test_insert_into_a_missing_notebook_creates_it(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    out = await h.edit(notebook_path="new.ipynb", new_source="print(1)", cell_type="code", edit_mode="insert")
    assert out.startswith("Created new.ipynb.")
    assert [c.source for c in cells(tmp_path / "new.ipynb")] == ["print(1)"]


async def test_refuses_the_notebook_open_in_the_editor(tmp_path: Path) -> None:
    nbp = tmp_path / "live.ipynb"
    make_notebook(nbp)
    before = nbp.read_text()
    h = Harness(tmp_path)
    h.ctx.state[OPEN_KEY] = {nbp}
    await h.read(nbp)
    with pytest.raises(ToolFailure, match="open in the notebook editor"):
        await h.edit(notebook_path=str(nbp), cell_id="code1", new_source="x = 9")
    assert nbp.read_text() == before


async def test_not_a_notebook(tmp_path: Path) -> None:
    with pytest.raises(ToolFailure, match="not a notebook"):
        await Harness(tmp_path).edit(notebook_path="a.py", new_source="x")
