"""`nbagent execute` as the notebook front-end of the live-document protocol (``nbagent.notebook`` comms).

The notebooks' cells play the kernel side with ipykernel's Comm: they open the comm, send requests and
await the replies within the cell; the test checks what they got and the notebook ``nbagent execute`` wrote.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import nbformat
import pytest

from tests.jupyter.test_execute import run_execute

pytestmark = pytest.mark.timeout(300)

KERNEL_SIDE = r'''
import asyncio, json, uuid
from ipykernel.comm import Comm

class Doc:
    """The kernel side of the protocol, as the agent speaks it."""

    @classmethod
    async def open(cls):
        doc = cls()
        doc.loop = asyncio.get_running_loop()
        doc.waiting = {}
        doc.ready = doc.loop.create_future()
        doc.comm = Comm(target_name="nbagent.notebook", data={"type": "hello", "protocol": 1}, show_warning=False)
        doc.comm.on_msg(doc._on_msg)
        doc.hello = await asyncio.wait_for(doc.ready, 10)
        return doc

    def _on_msg(self, msg):
        data = msg["content"]["data"]
        if data.get("type") == "ready" and not self.ready.done():
            self.loop.call_soon_threadsafe(self.ready.set_result, data)
        elif data.get("type") == "reply" and data.get("id") in self.waiting:
            fut = self.waiting.pop(data["id"])
            self.loop.call_soon_threadsafe(fut.set_result, data)

    async def request(self, op, to=None, timeout=10, **args):
        rid = uuid.uuid4().hex
        fut = self.waiting[rid] = self.loop.create_future()
        self.comm.send({"type": "request", "id": rid, "to": to or self.hello["client"], "op": op, **args})
        return await asyncio.wait_for(fut, timeout)

    def output(self, cell_id, output):
        self.comm.send({"type": "output", "to": self.hello["client"], "cell_id": cell_id, "output": output})

ran = []
'''

EDIT = r"""
doc = await Doc.open()
got = {"hello": doc.hello}
got["cells"] = await doc.request("cells")
got["top"] = await doc.request("insert", after=None, index=0,
    cell={"id": "top", "cell_type": "markdown", "source": ["# Top\n", "inserted"], "metadata": {}})
got["added"] = await doc.request("insert", after="edit", index=0, cell={
    "id": "added", "cell_type": "code", "source": "ran.append('added')", "metadata": {},
    "outputs": [], "execution_count": None})
got["gone_after"] = await doc.request("insert", after="no-such-cell", index=99, cell={
    "id": "last", "cell_type": "raw", "source": "raw text", "metadata": {}})
got["replace"] = await doc.request("replace", cell_id="target", source="ran.append('target')",
    metadata={"nbagent": {"action": "replace", "turn": "t1"}, "drop": None})
got["to_md"] = await doc.request("replace", cell_id="tomd", source="now *markdown*", cell_type="markdown")
got["to_code"] = await doc.request("replace", cell_id="note", source="1 + 1", cell_type="code")
got["delete"] = await doc.request("delete", cell_id="doomed")
got["missing"] = await doc.request("replace", cell_id="nope", source="x")
got["dup"] = await doc.request("insert", after=None, index=0,
    cell={"id": "edit", "cell_type": "code", "source": "", "metadata": {}})
got["bad_op"] = await doc.request("explode", cell_id="edit")
try:
    await doc.request("cells", to="another-front-end", timeout=0.5)
    got["other"] = "answered"
except asyncio.TimeoutError:
    got["other"] = "ignored"
print(json.dumps(got))
"""

STREAM = r"""
doc = await Doc.open()
got = {"start": await doc.request("run_start", cell_id="early")}
doc.output("early", {"output_type": "stream", "name": "stdout", "text": "one\n"})
doc.output("early", {"output_type": "stream", "name": "stdout", "text": "two\n"})
doc.output("early", {"output_type": "stream", "name": "stderr", "text": "warn\n"})
doc.output("early", {"output_type": "execute_result", "execution_count": 7,
                     "data": {"text/plain": "42"}, "metadata": {}})
doc.output("nope", {"output_type": "stream", "name": "stdout", "text": "lost\n"})
got["end"] = await doc.request("run_end", cell_id="early", execution_count=7, status="ok")
got["early"] = [c for c in (await doc.request("cells"))["result"]["cells"] if c["id"] == "early"][0]
print(json.dumps(got))
"""


def make_notebook(path: Path) -> None:
    nb = nbformat.v4.new_notebook()
    cells: list[tuple[str, str, str, dict[str, Any]]] = [
        ("setup", "code", KERNEL_SIDE, {}),
        ("early", "code", "ran.append('early'); print('early ran')", {}),
        ("note", "markdown", "a note", {}),
        ("edit", "code", EDIT, {}),
        ("target", "code", "ran.append('old target')", {"keep": 1, "drop": 2, "nbagent": {"old": True}}),
        ("doomed", "code", "ran.append('doomed')", {}),
        ("tomd", "code", "ran.append('tomd')", {}),
        ("stream", "code", STREAM, {}),
        ("tail", "code", "ran.append('tail'); print(json.dumps(ran))", {}),
    ]
    for cid, kind, source, metadata in cells:
        cell = nbformat.v4.new_code_cell(source) if kind == "code" else nbformat.v4.new_markdown_cell(source)
        cell["id"] = cid
        cell["metadata"] = metadata
        nb.cells.append(cell)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, str(path))


def printed(cell: Any) -> Any:
    """The JSON a cell printed (its only output: nothing of the comm traffic lands in it)."""
    assert [o["output_type"] for o in cell.outputs] == ["stream"], cell.outputs
    return json.loads(cell.outputs[0]["text"])


def test_execute_serves_the_live_document_protocol(tmp_path: Path) -> None:
    nb_path = tmp_path / "live.ipynb"
    make_notebook(nb_path)
    done = run_execute(str(nb_path))
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    nb = nbformat.read(str(nb_path), as_version=4)
    nbformat.validate(nb)
    cells = {c.id: c for c in nb.cells}
    assert [c.id for c in nb.cells] == [
        "top", "setup", "early", "note", "edit", "added", "target", "tomd", "stream", "tail", "last"
    ]  # fmt: skip

    got = printed(cells["edit"])
    hello = got["hello"]
    assert hello["type"] == "ready" and hello["frontend"] == "nbclient" and hello["client"]
    assert hello["path"] == str(nb_path.resolve())
    listing = got["cells"]
    assert listing["ok"] is True and listing["result"]["dirty"] is False
    assert listing["result"]["path"] == str(nb_path.resolve())
    assert [c["id"] for c in listing["result"]["cells"]][:5] == ["setup", "early", "note", "edit", "target"]
    assert listing["result"]["cells"][1]["outputs"][0]["text"] == "early ran\n"
    assert got["top"] == {
        "type": "reply",
        "id": got["top"]["id"],
        "ok": True,
        "result": {"cell_id": "top", "index": 0},
    }
    assert got["added"]["result"] == {"cell_id": "added", "index": 5}
    assert got["gone_after"]["result"] == {"cell_id": "last", "index": 11}  # `after` is gone: clamped index
    assert got["replace"]["result"] == {"cell_id": "target", "index": 6}
    assert got["delete"]["ok"] and got["delete"]["result"]["index"] == 7
    assert got["delete"]["result"]["cell"]["source"] == "ran.append('doomed')"
    assert got["delete"]["result"]["cell"]["id"] == "doomed"
    for failed, words in [
        ("missing", ["'nope'", "top, setup, early, note, edit, added, target, tomd, stream, tail, last"]),
        ("dup", ["'edit'", "already"]),
        ("bad_op", ["'explode'"]),
    ]:
        assert got[failed]["ok"] is False and "result" not in got[failed]
        for word in words:
            assert word in got[failed]["error"], (failed, got[failed]["error"])
    assert got["other"] == "ignored"  # a request for another front-end gets no answer

    # inserted cells keep their ids and are not run by the execution loop
    assert cells["top"].cell_type == "markdown" and cells["top"].source == "# Top\ninserted"
    assert cells["added"].outputs == [] and cells["added"].execution_count is None
    assert cells["last"].cell_type == "raw" and "outputs" not in cells["last"]
    # cells present at the start run once each, in order, with their current content; deleted ones do not
    assert printed(cells["tail"]) == ["early", "target", "tail"]
    assert cells["target"].source == "ran.append('target')"
    metadata = {k: v for k, v in cells["target"].metadata.items() if k != "execution"}  # nbclient's timing
    assert metadata == {"keep": 1, "nbagent": {"action": "replace", "turn": "t1"}}
    assert cells["target"].execution_count is not None
    assert cells["tomd"].cell_type == "markdown" and cells["tomd"].source == "now *markdown*"
    assert "outputs" not in cells["tomd"] and "execution_count" not in cells["tomd"]
    assert cells["note"].cell_type == "code" and cells["note"].source == "1 + 1"
    assert cells["note"].outputs == [] and cells["note"].execution_count is None

    # outputs streamed into a cell that already ran: cleared, appended, streams merged, count set
    stream = printed(cells["stream"])
    assert stream["start"]["ok"] and stream["end"] == {
        "type": "reply",
        "id": stream["end"]["id"],
        "ok": True,
        "result": {},
    }
    early = cells["early"]
    assert early.execution_count == 7
    assert [o["output_type"] for o in early.outputs] == ["stream", "stream", "execute_result"]
    assert early.outputs[0]["name"] == "stdout" and early.outputs[0]["text"] == "one\ntwo\n"
    assert early.outputs[1]["name"] == "stderr" and early.outputs[2]["data"]["text/plain"] == "42"
    assert stream["early"]["outputs"] == json.loads(json.dumps(early.outputs))  # what `cells` says
    assert "an output the kernel sent was dropped: No cell with id 'nope'" in done.stderr
