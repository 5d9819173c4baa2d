"""The notebook tools on the open notebook's live document, in process.

The document is the headless front-end's (:class:`HeadlessNotebook`, the code ``nbagent execute`` serves
the live-document protocol with), reached through its message handler as the kernel's link reaches a
front-end; the kernel is a :class:`DictNamespace`. The browser and kernel paths are tested in
``test_live_notebook.py`` and ``tests/e2e``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import nbformat
import pytest

from nbagent.core.events import DiffProduced, Event
from nbagent.jupyter.headless import HeadlessNotebook
from nbagent.tools.base import PermissionQuery, ToolContext, ToolFailure
from nbagent.tools.files import ReadParams, ReadTool
from nbagent.tools.kernel import KERNEL_KEY, DictNamespace
from nbagent.tools.notebook import NotebookEditParams, NotebookEditTool
from nbagent.tools.notebook_live import FRONTEND_KEY, TURN_KEY, revert_live_edits
from nbagent.tools.notebook_run import NotebookRunParams, NotebookRunTool


class Document:
    """A LiveDocument over the headless front-end's handler (the messages the comm would carry)."""

    frontend = "nbclient"

    def __init__(self, doc: HeadlessNotebook) -> None:
        self.doc = doc
        self.ids = 0

    async def request(self, op: str, args: dict[str, Any]) -> dict[str, Any]:
        self.ids += 1
        reply = self.doc.handle({"type": "request", "id": str(self.ids), "op": op, **args})
        assert reply is not None
        if not reply["ok"]:
            raise ToolFailure(reply["error"])
        return dict(reply["result"])

    def output(self, cell_id: str, output: dict[str, Any]) -> None:
        self.doc.handle({"type": "output", "cell_id": cell_id, "output": output})


class Open:
    def __init__(self, path: Path, document: Document) -> None:
        self.path = path
        self.doc = document

    async def is_open(self, path: Path) -> bool:
        return path.resolve() == self.path.resolve()

    async def document(self) -> Document:
        return self.doc

    def next_input(self, source: str) -> str | None:
        return None


@pytest.fixture
def setup(tmp_path: Path) -> tuple[Path, Any, ToolContext, list[PermissionQuery], list[Event]]:
    path = tmp_path / "nb.ipynb"
    nb = nbformat.v4.new_notebook()
    for cid, kind, source in [
        ("title", "markdown", "# Sales"),
        ("load", "code", "rows = [1, 2, 3]"),
        ("mean", "code", "sum(rows) / cont"),
        ("tail", "code", "print('tail')"),
    ]:
        cell = nbformat.v4.new_code_cell(source) if kind == "code" else nbformat.v4.new_markdown_cell(source)
        cell["id"] = cid
        nb.cells.append(cell)
    nbformat.write(nb, str(path))
    saved = path.read_text()
    live = nbformat.reads(saved, as_version=4)
    live.cells[3].source = "print('tail, edited and not saved')"  # the user's unsaved edit
    asks: list[PermissionQuery] = []
    events: list[Event] = []

    async def ask(query: PermissionQuery) -> None:
        asks.append(query)

    namespace = DictNamespace()
    ctx = ToolContext(
        root=tmp_path, ask=ask, emit=events.append, output_dir=tmp_path / ".out", call_id="call-1"
    )
    ctx.state[FRONTEND_KEY] = Open(path, Document(HeadlessNotebook(live, str(path))))
    ctx.state[KERNEL_KEY] = namespace
    ctx.state[TURN_KEY] = "turn_1"
    return path, live, ctx, asks, events


def _sources(nb: Any) -> list[tuple[str, str]]:
    return [(c.id, c.source) for c in nb.cells]


async def test_read_edit_run_undo_on_the_live_document(setup: Any) -> None:
    path, live, ctx, asks, events = setup
    saved = path.read_text()
    before = _sources(live)
    read = await ReadTool().run(ReadParams(file_path="nb.ipynb"), ctx)
    assert "live document" in read.output and "tail, edited and not saved" in read.output
    assert 'id="load" type="code" execution_count=none status="never ran"' in read.output

    edit = NotebookEditTool()
    out = await edit.run(
        NotebookEditParams(notebook_path="nb.ipynb", cell_id="mean", new_source="sum(rows) / len(rows)"), ctx
    )
    assert "live document in nbclient" in out.output
    added = await edit.run(
        NotebookEditParams(
            notebook_path="nb.ipynb",
            cell_id="mean",
            new_source="print('plot')",
            cell_type="code",
            edit_mode="insert",
        ),
        ctx.__class__(**{**ctx.__dict__, "call_id": "call-2"}),
    )
    new_id = added.output.rsplit("cell_id: ", 1)[1].strip()
    assert [c.id for c in live.cells] == ["title", "load", "mean", new_id, "tail"]
    assert live.cells[2].metadata["nbagent"] == {
        "turn": "turn_1",
        "session": "",
        "call": "call-1",
        "action": "replace",
    }
    assert live.cells[3].metadata["nbagent"]["action"] == "insert"
    assert live.cells[4].source == "print('tail, edited and not saved')"  # the user's edit survives
    assert path.read_text() == saved  # never the file behind the editor
    assert [e.path for e in events if isinstance(e, DiffProduced)] == [
        "nb.ipynb (cell mean)",
        f"nb.ipynb (cell {new_id})",
    ]

    run = await NotebookRunTool().run(
        NotebookRunParams(notebook_path="nb.ipynb", cell_ids=["load", "mean", new_id]), ctx
    )
    assert run.metadata["cells"] == [
        {"cell_id": "load", "execution_count": 1, "status": "ok"},
        {"cell_id": "mean", "execution_count": 2, "status": "ok"},
        {"cell_id": new_id, "execution_count": 3, "status": "ok"},
    ]
    assert live.cells[2].execution_count == 2 and live.cells[2].outputs[0]["data"]["text/plain"] == "2.0"
    assert live.cells[3].outputs[0]["text"] == "plot\n"
    assert "2.0" in run.output and "plot" in run.output
    python = [q for q in asks if q.permission == "python"]
    assert python[0].patterns == ["rows = [1, 2, 3]", "sum(rows) / len(rows)", "print('plot')"]
    assert "# cell mean" in python[0].metadata["code"]

    # now read says which cells ran as they are
    again = await ReadTool().run(ReadParams(file_path="nb.ipynb"), ctx)
    assert 'id="mean" type="code" execution_count=2 changed_by_agent="replace">' in again.output

    # /undo reverts the turn's notebook edits in the live document; /redo puts them back
    notes = await revert_live_edits(ctx.state, "turn_1", "undo")
    assert notes == ["2 notebook cell edit(s) undone"]
    assert _sources(live) == before
    assert "nbagent" not in live.cells[2].metadata
    assert await revert_live_edits(ctx.state, "turn_1", "redo") == ["2 notebook cell edit(s) redone"]
    assert [c.id for c in live.cells] == ["title", "load", "mean", new_id, "tail"]


async def test_a_failing_cell_stops_the_run(setup: Any) -> None:
    _path, live, ctx, _asks, _events = setup
    run = await NotebookRunTool().run(
        NotebookRunParams(notebook_path="nb.ipynb", cell_ids=["load", "mean", "tail"]), ctx
    )
    assert [c["status"] for c in run.metadata["cells"]] == ["ok", "error"]
    assert "NameError" in run.output and "Not run (the run stopped at cell mean): tail" in run.output
    assert live.cells[2].outputs[-1]["output_type"] == "error"
    assert live.cells[3].outputs == [] and live.cells[3].execution_count is None


async def test_refusals(setup: Any, tmp_path: Path) -> None:
    _path, _live, ctx, asks, _events = setup
    with pytest.raises(ToolFailure, match="markdown cell: only code cells run"):
        await NotebookRunTool().run(NotebookRunParams(notebook_path="nb.ipynb", cell_ids=["title"]), ctx)
    with pytest.raises(ToolFailure, match="No cell with id 'nope'"):
        await NotebookRunTool().run(NotebookRunParams(notebook_path="nb.ipynb", cell_ids=["nope"]), ctx)
    other = tmp_path / "other.ipynb"
    nbformat.write(nbformat.v4.new_notebook(), str(other))
    with pytest.raises(ToolFailure, match="not the notebook this kernel runs"):
        await NotebookRunTool().run(NotebookRunParams(notebook_path="other.ipynb", cell_ids=["x"]), ctx)
    assert not [q for q in asks if q.permission == "python"]  # nothing was asked, nothing ran


async def test_deleting_a_cell_is_a_destructive_edit(setup: Any) -> None:
    _path, live, ctx, asks, _events = setup
    out = await NotebookEditTool().run(
        NotebookEditParams(notebook_path="nb.ipynb", cell_id="tail", edit_mode="delete"), ctx
    )
    assert "Deleted cell tail" in out.output and [c.id for c in live.cells] == ["title", "load", "mean"]
    assert asks[-1].permission == "edit" and asks[-1].destructive
    await revert_live_edits(ctx.state, "turn_1", "undo")
    assert live.cells[-1].id == "tail" and live.cells[-1].source == "print('tail, edited and not saved')"
