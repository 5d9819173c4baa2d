"""The notebook front-end of ``nbagent execute``: the nbclient client serves the live-document protocol.

While a ``%%agent`` cell runs, the kernel opens a comm with target ``nbagent.notebook`` (see
``notes/doc-protocol.md``); :class:`FrontendClient` answers ``ready`` and serves the requests on the
notebook being executed, through :class:`HeadlessNotebook` (the ops, pure logic on the nbformat node).
Its execution loop runs the cells that were in the notebook when execution started, in order, skipping
the ones deleted meanwhile: cells the agent inserts are the agent's to run (as Run All in JupyterLab).
"""

from __future__ import annotations

import copy
import importlib
import json
import sys
import uuid
from collections.abc import Callable
from typing import Any, Literal

from jupyter_core.utils import run_sync
from nbclient import NotebookClient
from nbclient.util import ensure_async
from pydantic import BaseModel, ConfigDict, ValidationError

nbformat: Any = importlib.import_module("nbformat")
_exceptions: Any = importlib.import_module("nbclient.exceptions")

TARGET = "nbagent.notebook"
PROTOCOL = 1
FRONTEND = "nbclient"


def _stderr(message: str) -> None:
    print(message, file=sys.stderr)


class DocumentError(Exception):
    """A request the document cannot serve; its message goes back to the kernel (``ok: false``)."""


class _Args(BaseModel):
    model_config = ConfigDict(extra="ignore")


class _CellRef(_Args):
    cell_id: str


class _InsertArgs(_Args):
    after: str | None = None
    index: int = 0
    cell: dict[str, Any]


class _ReplaceArgs(_CellRef):
    source: str | list[str] | None = None
    cell_type: Literal["code", "markdown", "raw"] | None = None
    metadata: dict[str, Any] | None = None


class _RunEndArgs(_CellRef):
    execution_count: int | None = None
    status: str = "ok"


class _OutputArgs(_CellRef):
    output: dict[str, Any]


def _text(source: str | list[str]) -> str:
    return source if isinstance(source, str) else "".join(source)


def _plain(node: Any) -> dict[str, Any]:
    """A JSON copy of a cell (no NotebookNode, nothing shared with the document)."""
    data: dict[str, Any] = json.loads(json.dumps(node))
    return data


def _check_cells(cells: list[Any], what: str) -> None:
    """Raise :class:`DocumentError` unless ``cells`` are valid nbformat 4.5 cells."""
    doc = {"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": cells}
    try:
        nbformat.validate(copy.deepcopy(doc))
    except nbformat.ValidationError as exc:
        raise DocumentError(f"{what} is not valid nbformat 4.5: {str(exc).splitlines()[0]}") from None


def ensure_cell_ids(nb: Any) -> None:
    """Make ``nb`` nbformat 4.5: every cell gets a unique ``id`` (cells without one, or duplicates)."""
    nb["nbformat"] = 4
    nb["nbformat_minor"] = max(5, int(nb.get("nbformat_minor") or 0))
    seen: set[str] = set()
    for cell in nb["cells"]:
        cid = cell.get("id")
        if not isinstance(cid, str) or not cid or cid in seen:
            cid = _new_id(seen)
            cell["id"] = cid
        seen.add(cid)


def _new_id(taken: set[str]) -> str:
    while True:
        cid = uuid.uuid4().hex[:8]
        if cid not in taken:
            return cid


class HeadlessNotebook:
    """The live document of a headless run: the notebook node, edited in place by the protocol's ops."""

    def __init__(
        self, nb: Any, path: str, client_id: str | None = None, warn: Callable[[str], None] | None = None
    ) -> None:
        ensure_cell_ids(nb)
        self.nb = nb
        self.path = path
        self.client_id = client_id or uuid.uuid4().hex
        self.warn = warn or _stderr  # what cannot be answered (a streamed output for a missing cell)

    def ready(self) -> dict[str, Any]:
        """The handshake's answer to the kernel's ``hello``."""
        from nbagent import __version__

        return {
            "type": "ready",
            "client": self.client_id,
            "frontend": FRONTEND,
            "path": self.path,
            "version": __version__,
        }

    # --- lookup -------------------------------------------------------------------------------------

    def index_of(self, cell_id: str) -> int:
        for i, cell in enumerate(self.nb.cells):
            if cell.get("id") == cell_id:
                return i
        ids = ", ".join(str(c.get("id")) for c in self.nb.cells[:200])
        more = f" and {len(self.nb.cells) - 200} more" if len(self.nb.cells) > 200 else ""
        raise DocumentError(
            f"No cell with id {cell_id!r} in {self.path}; its cells are: {ids or '(none)'}{more}. "
            "Read the notebook again for the current ids."
        )

    def _code_cell(self, cell_id: str) -> Any:
        cell = self.nb.cells[self.index_of(cell_id)]
        if cell.cell_type != "code":
            raise DocumentError(f"Cell {cell_id!r} is a {cell.cell_type} cell; only code cells run.")
        return cell

    # --- ops ----------------------------------------------------------------------------------------

    def cells(self) -> dict[str, Any]:
        return {"path": self.path, "dirty": False, "cells": [_plain(c) for c in self.nb.cells]}

    def insert(self, after: str | None, index: int, cell: dict[str, Any]) -> dict[str, Any]:
        node = self._new_cell(cell)
        if after is None:
            at = 0
        else:
            try:
                at = self.index_of(after) + 1
            except DocumentError:
                at = min(max(index, 0), len(self.nb.cells))
        self.nb.cells.insert(at, node)
        return {"cell_id": node.id, "index": at}

    def _new_cell(self, cell: dict[str, Any]) -> Any:
        node = nbformat.from_dict(copy.deepcopy(cell))
        kind = node.get("cell_type")
        if kind not in ("code", "markdown", "raw"):
            raise DocumentError(f"A cell's cell_type is 'code', 'markdown' or 'raw', not {kind!r}.")
        ids = {c.get("id") for c in self.nb.cells}
        if not isinstance(node.get("id"), str) or not node.id:
            node.id = _new_id({str(i) for i in ids})
        elif node.id in ids:
            raise DocumentError(f"A cell with id {node.id!r} is already in {self.path}; give a new id.")
        node.source = _text(node.get("source", ""))
        node.setdefault("metadata", nbformat.from_dict({}))
        if kind == "code":
            node.setdefault("outputs", [])
            node.setdefault("execution_count", None)
        else:
            node.pop("outputs", None)
            node.pop("execution_count", None)
        _check_cells([node], f"Cell {node.id!r}")
        return node

    def replace(
        self,
        cell_id: str,
        source: str | list[str] | None = None,
        cell_type: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        index = self.index_of(cell_id)
        cell = self.nb.cells[index]
        before = copy.deepcopy(cell)
        if source is not None:
            cell.source = _text(source)
        if cell_type is not None and cell_type != cell.cell_type:
            cell.cell_type = cell_type
            if cell_type == "code":
                cell.outputs = []
                cell.execution_count = None
                cell.pop("attachments", None)  # markdown and raw cells only
            else:
                cell.pop("outputs", None)
                cell.pop("execution_count", None)
        for key, value in (metadata or {}).items():
            if value is None:
                cell.metadata.pop(key, None)
            else:
                cell.metadata[key] = nbformat.from_dict(copy.deepcopy(value))
        try:
            _check_cells([cell], f"Cell {cell_id!r} after this change")
        except DocumentError:
            cell.clear()
            cell.update(before)
            raise
        return {"cell_id": cell_id, "index": index}

    def delete(self, cell_id: str) -> dict[str, Any]:
        index = self.index_of(cell_id)
        cell = self.nb.cells.pop(index)
        return {"cell": _plain(cell), "index": index}

    def run_start(self, cell_id: str) -> dict[str, Any]:
        cell = self._code_cell(cell_id)
        cell.outputs = []
        cell.execution_count = None
        return {}

    def run_end(self, cell_id: str, execution_count: int | None, status: str = "ok") -> dict[str, Any]:
        self._code_cell(cell_id).execution_count = execution_count
        return {}

    def output(self, cell_id: str, output: dict[str, Any]) -> None:
        """Append one output; a stream output after one of the same name is merged into it."""
        cell = self._code_cell(cell_id)
        if output.get("output_type") == "clear":  # not an nbformat output: the code called clear_output()
            cell.outputs = []
            return
        out = nbformat.from_dict(copy.deepcopy(output))
        if out.get("output_type") == "stream" and "text" in out:
            out.text = _text(out.text)
        holder: dict[str, Any] = {
            "id": "x",
            "cell_type": "code",
            "source": "",
            "metadata": {},
            "execution_count": None,
        }
        _check_cells([{**holder, "outputs": [out]}], f"An output for cell {cell_id!r}")
        last = cell.outputs[-1] if cell.outputs else None
        if (
            last is not None
            and out.output_type == "stream"
            and last.get("output_type") == "stream"
            and last.get("name") == out.get("name")
        ):
            last.text = _text(last.text) + out.text
        else:
            cell.outputs.append(out)

    # --- messages -----------------------------------------------------------------------------------

    def handle(self, data: dict[str, Any]) -> dict[str, Any] | None:
        """One message from the kernel; the reply to send back, if any."""
        kind = data.get("type")
        to = data.get("to")
        if kind not in ("request", "output") or (to is not None and to != self.client_id):
            return None
        if kind == "output":
            try:
                args = _OutputArgs.model_validate(data)
                self.output(args.cell_id, args.output)
            except (DocumentError, ValidationError) as exc:
                self.warn(f"nbagent execute: an output the kernel sent was dropped: {exc}")
            return None
        op = data.get("op")
        reply: dict[str, Any] = {"type": "reply", "id": data.get("id")}
        try:
            reply["result"] = self._serve(str(op), data)
        except DocumentError as exc:
            return {**reply, "ok": False, "error": str(exc)}
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
            return {**reply, "ok": False, "error": f"Bad {op!r} request: {problems}."}
        return {**reply, "ok": True}

    def _serve(self, op: str, data: dict[str, Any]) -> dict[str, Any]:
        serve = self._ops().get(op)
        if serve is None:
            raise DocumentError(
                f"The {FRONTEND} front-end has no op {op!r}; it serves {', '.join(self._ops())}."
            )
        return serve(data)

    def _ops(self) -> dict[str, Callable[[dict[str, Any]], dict[str, Any]]]:
        def insert(d: dict[str, Any]) -> dict[str, Any]:
            a = _InsertArgs.model_validate(d)
            return self.insert(a.after, a.index, a.cell)

        def replace(d: dict[str, Any]) -> dict[str, Any]:
            a = _ReplaceArgs.model_validate(d)
            return self.replace(a.cell_id, a.source, a.cell_type, a.metadata)

        def run_end(d: dict[str, Any]) -> dict[str, Any]:
            a = _RunEndArgs.model_validate(d)
            return self.run_end(a.cell_id, a.execution_count, a.status)

        return {
            "cells": lambda d: self.cells(),
            "insert": insert,
            "replace": replace,
            "delete": lambda d: self.delete(_CellRef.model_validate(d).cell_id),
            "run_start": lambda d: self.run_start(_CellRef.model_validate(d).cell_id),
            "run_end": run_end,
        }


class FrontendClient(NotebookClient):
    """An nbclient client that is the notebook's front-end for the kernel's ``nbagent.notebook`` comms."""

    def __init__(self, nb: Any, *, path: str, **kw: Any) -> None:
        super().__init__(nb, **kw)
        self.document = HeadlessNotebook(nb, path)
        self.document_comms: set[str] = set()

    # --- comm glue ----------------------------------------------------------------------------------

    def handle_document_message(self, msg: dict[str, Any]) -> bool:
        """Serve ``msg`` if it belongs to an ``nbagent.notebook`` comm (True), else leave it (False)."""
        kind = msg.get("msg_type") or msg.get("header", {}).get("msg_type")
        content = msg.get("content") or {}
        comm_id = str(content.get("comm_id"))
        if kind == "comm_open" and content.get("target_name") == TARGET:
            self.document_comms.add(comm_id)
            self._send(comm_id, self.document.ready())
            return True
        if kind == "comm_msg" and comm_id in self.document_comms:
            data = content.get("data")
            reply = self.document.handle(data) if isinstance(data, dict) else None
            if reply is not None:
                self._send(comm_id, reply)
            return True
        if kind == "comm_close" and comm_id in self.document_comms:
            self.document_comms.discard(comm_id)
            return True
        return False

    def _send(self, comm_id: str, data: dict[str, Any]) -> None:
        assert self.kc is not None
        msg = self.kc.session.msg("comm_msg", {"comm_id": comm_id, "data": data})
        self.kc.shell_channel.send(msg)

    def process_message(self, msg: dict[str, Any], cell: Any, cell_index: int) -> Any:
        if self.handle_document_message(msg):
            return None
        return super().process_message(msg, cell, cell_index)

    async def _async_poll_output_msg(self, parent_msg_id: str, cell: Any, cell_index: int) -> None:
        # nbclient drops IOPub messages of other parents; the kernel may send on our comm from the
        # handler of one of our replies (its parent is then our comm_msg), so serve those first.
        assert self.kc is not None
        while True:
            msg = await ensure_async(self.kc.iopub_channel.get_msg(timeout=None))
            if self.handle_document_message(msg):
                continue
            if msg["parent_header"].get("msg_id") == parent_msg_id:
                try:
                    self.process_message(msg, cell, cell_index)
                except _exceptions.CellExecutionComplete:
                    return

    # --- the execution loop -------------------------------------------------------------------------

    async def async_execute(self, reset_kc: bool = False, **kwargs: Any) -> Any:
        """nbclient's ``async_execute``, over the cells present when it starts (see the module doc)."""
        if reset_kc and self.owns_km:
            await self._async_cleanup_kernel()
        self.reset_execution_trackers()
        ensure_cell_ids(self.nb)
        async with self.async_setup_kernel(**kwargs):
            assert self.kc is not None
            msg_id = await ensure_async(self.kc.kernel_info())
            info_msg = await self.async_wait_for_reply(msg_id)
            if info_msg is not None:
                if "language_info" not in info_msg["content"]:
                    raise RuntimeError(f"Kernel info reply has no 'language_info': {info_msg['content']}")
                self.nb.metadata["language_info"] = info_msg["content"]["language_info"]
            for cell in list(self.nb.cells):
                index = next((i for i, c in enumerate(self.nb.cells) if c is cell), None)
                if index is None:  # deleted by the agent meanwhile
                    continue
                await self.async_execute_cell(cell, index, execution_count=self.code_cells_executed + 1)
            self.set_widgets_metadata()
        return self.nb

    execute = run_sync(async_execute)

    async def async_execute_cell(self, cell: Any, cell_index: int, *args: Any, **kwargs: Any) -> Any:
        nb = self.nb
        try:
            return await super().async_execute_cell(cell, cell_index, *args, **kwargs)
        finally:
            self.nb = nb

    execute_cell = run_sync(async_execute_cell)

    async def _check_raise_for_error(self, cell: Any, cell_index: int, exec_reply: Any) -> None:
        await super()._check_raise_for_error(cell, cell_index, exec_reply)
        # nbclient then stores ``self.nb["cells"][cell_index] = cell``: the cell object is already in
        # place, and the index is stale when the agent inserted or deleted cells during the cell, so
        # that write goes to a scratch notebook (async_execute_cell puts the real one back).
        self.nb = nbformat.from_dict({"cells": {}})
