"""A real parent session delegating to a child over the scripted model (HTTP): the cell widget nests
the child's transcript in the task card, its permission prompt is answered there (the child's
request reaches the child), and the notebook record and static HTML keep the nested block."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import ipywidgets as w
import pytest

from nbagent.core.events import SubagentEvent
from nbagent.core.permission import ReplyKind
from nbagent.jupyter.recorder import TurnRecorder
from nbagent.jupyter.widgets import TurnView
from nbagent.providers.scripted import FunctionScript, Reply, ToolCallSpec
from nbagent.store.notebook import TURN_MIME
from tests.conftest import Serve, make_session

Body = dict[str, Any]


def answer(body: Body) -> Reply:
    system = "".join(str(m.get("content")) for m in body["messages"] if m.get("role") == "system")
    results = [m for m in body["messages"] if m.get("role") == "tool"]
    if "You are general" in system:
        if not results:
            return Reply(tool_calls=[ToolCallSpec("write", {"file_path": "note.txt", "content": "hi\n"})])
        return Reply(text="wrote note.txt")
    if not results:
        task = {"description": "write the note", "prompt": "write note.txt", "subagent_type": "general"}
        return Reply(tool_calls=[ToolCallSpec("task", task)])
    return Reply(text="The subagent wrote it.")


@pytest.mark.filterwarnings("ignore:on_submit is deprecated:DeprecationWarning")  # ipywidgets 8
async def test_a_delegated_turn_in_the_cell_widget_and_the_record(tmp_path: Path, serve: Serve) -> None:
    session = make_session(tmp_path, serve(FunctionScript(lambda body, _p: answer(body))), headless=None)
    view = TurnView(
        model=session.model,
        on_reply=lambda rid, kind, text: session.reply(rid, cast(ReplyKind, kind), text),
        on_stop=session.cancel,
    )
    recorder = TurnRecorder(session, "write a note through a subagent")
    recorder.start()
    asked: list[str] = []
    try:
        async for event in session.run("write a note through a subagent"):
            view.apply(event)
            recorder.observe(event)
            if isinstance(event, SubagentEvent) and event.event["type"] == "permission_asked":
                view.flush()
                prompt = view.prompt_for(event.event["request_id"])
                assert prompt is not None, "the child's prompt has its buttons in the cell"
                asked.append(prompt.request_id)
                prompt.once.click()  # through the turn's on_reply: session.reply with the child's id
    finally:
        recorder.stop()
    view.flush()
    assert (tmp_path / "note.txt").read_text() == "hi\n" and len(asked) == 1
    (nested,) = [x for x in _walk(view.widget) if isinstance(x, w.Accordion)]
    assert nested.titles[0].startswith("↳ agent general · write the note") and nested.selected_index is None
    record = recorder.record(recorder.reason())
    (note,) = [n for n in record.notes if n.kind == "subagent"]
    assert note.agent == "general" and note.message == "wrote note.txt"
    assert any(step.startswith("● write") for step in note.steps)
    assert note.session and note.session != session.id
    bundle = recorder.bundle(record, view.transcript)
    assert "class='nbagent-subagent'" in bundle["text/html"] and "wrote note.txt" in bundle["text/html"]
    assert "↳ agent general · write the note" in bundle["text/plain"]
    assert bundle[TURN_MIME]["notes"][0]["kind"] == "subagent"
    view.close()


def _walk(widget: w.Widget) -> list[w.Widget]:
    out = [widget]
    for child in getattr(widget, "children", ()):
        out.extend(_walk(child))
    return out
