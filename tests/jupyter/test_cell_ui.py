"""What a user sees in a ``%%agent`` cell, in a real kernel driven over ZMQ as JupyterLab drives it:
the shell permission prompt, colour codes, counters after a kernel restart, the first output."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from nbagent.providers.scripted import ListScript, Reply, ToolCallSpec
from nbagent.store.notebook import TURN_MIME
from tests.conftest import Serve
from tests.jupyter.conftest import StartKernel
from tests.jupyter.harness import Kernel, clicker, record_of, save_notebook, text_of

pytestmark = pytest.mark.timeout(240)


def test_the_shell_prompt_lists_each_command_with_its_decision(
    serve: Serve, start_kernel: StartKernel
) -> None:
    command = "git status && rm -rf build > out.txt"
    server = serve(
        ListScript(
            [Reply(tool_calls=[ToolCallSpec("bash", {"command": command})])]
        )  # a bare Deny ends the turn
    )
    kernel = start_kernel(server)
    seen: list[str] = []

    def read_prompt(k: Kernel) -> None:
        seen.extend(
            str(st.get("value", "")) for st in k.widgets.values() if "Permission" in str(st.get("value"))
        )

    ex = kernel.run("%%agent\nclean up", on_message=clicker("Deny", read_prompt), timeout=120)
    assert ex.status == "ok", ex.errors
    bundle = ex.final_bundle(TURN_MIME)
    assert bundle is not None and len(seen) == 1
    for rendering in (seen[0], bundle["text/html"], bundle["text/plain"]):
        assert "{'" not in rendering and "'via'" not in rendering, rendering
    live = seen[0]
    assert "<code>git status</code> — <b>allowed</b>" in live
    assert "<code>rm -rf build</code> — <b>asks</b>" in live
    assert "<code>&gt; out.txt (redirect)</code> — <b>asks</b>" in live
    assert "? rm -rf build — asks: default bash: ask" in text_of(ex)
    # the record keeps the question and its answer for the notebook's renderer
    (note,) = record_of(ex)["notes"]
    assert note["kind"] == "permission" and note["reply"] == "reject" and note["call_id"]


def test_colour_codes_reach_neither_the_model_nor_the_notebook(
    serve: Serve, start_kernel: StartKernel
) -> None:
    command = r"printf '\033[1;31mred\033[0m plain\n'"
    server = serve(
        ListScript(
            [Reply(tool_calls=[ToolCallSpec("bash", {"command": command})]), Reply(text="It printed red.")]
        )
    )
    kernel = start_kernel(server, NBAGENT_HEADLESS="allow")
    ex = kernel.run("%%agent\nprint in colour", timeout=120)
    assert ex.status == "ok", ex.errors
    (result,) = [m for m in server.requests[-1].body["messages"] if m["role"] == "tool"]
    assert "red plain" in str(result["content"]) and "\x1b" not in str(result["content"])
    bundle = ex.final_bundle(TURN_MIME)
    assert bundle is not None
    saved = json.dumps(bundle, ensure_ascii=False)
    assert "\x1b" not in saved and "\\u001b" not in saved
    assert "red plain" in bundle["text/html"]
    # nor did the live widgets ever show one
    assert not any("\x1b" in str(st.get("value", "")) for st in kernel.widgets.values())


def _usage_sum(records: list[dict[str, Any]], key: str) -> int:
    return sum(int(r["usage"].get(key, 0)) for r in records)


def test_counters_after_a_kernel_restart_count_the_notebook_records(
    tmp_path: Path, serve: Serve, start_kernel: StartKernel
) -> None:
    server = serve(ListScript([Reply(text="one"), Reply(text="two"), Reply(text="three")]))
    nb_path = tmp_path / "counted.ipynb"
    kernel = start_kernel(server, JPY_SESSION_NAME=str(nb_path))
    ex1 = kernel.run("%%agent\nfirst", cell_id="c1")
    ex2 = kernel.run("%%agent\nsecond", cell_id="c2")
    cells = [("c0", "%load_ext nbagent", None), ("c1", "%%agent\nfirst", ex1), ("c2", "%%agent\nsecond", ex2)]
    save_notebook(nb_path, [*cells, ("c3", "%%agent --mode plan\nthird", None)])
    sid = record_of(ex1)["session_id"]

    kernel.restart()
    assert kernel.run("%load_ext nbagent").status == "ok"
    ex3 = kernel.run("%%agent --mode plan\nthird", cell_id="c3")  # resumes the session; not saved yet
    assert ex3.status == "ok", ex3.errors
    records = [record_of(ex) for ex in (ex1, ex2, ex3)]
    assert records[2]["session_id"] == sid
    # the record says the mode the cell really ran in
    assert [r["mode"] for r in records] == ["default", "default", "plan"]

    sessions = str(kernel.run("%agent /sessions").final_bundle("text/markdown")["text/markdown"])  # type: ignore[index]
    assert f"`{sid}` (current): 3 turns" in sessions
    cost = str(kernel.run("%agent /cost").final_bundle("text/markdown")["text/markdown"])  # type: ignore[index]
    assert "over 3 turns recorded in the notebook" in cost
    total_in, total_out = _usage_sum(records, "input_tokens"), _usage_sum(records, "output_tokens")
    assert total_in > 0
    assert f"{total_in:,} input tokens" in cost and f"{total_out:,} output tokens" in cost

    # once saved, the same turns are not counted twice
    save_notebook(nb_path, [*cells, ("c3", "%%agent --mode plan\nthird", ex3)])
    sessions = str(kernel.run("%agent /sessions").final_bundle("text/markdown")["text/markdown"])  # type: ignore[index]
    assert f"`{sid}` (current): 3 turns" in sessions


def test_the_cell_shows_a_first_line_before_the_agent_loads(serve: Serve, start_kernel: StartKernel) -> None:
    server = serve(ListScript([Reply(text="hello")]))
    kernel = start_kernel(server)
    ex = kernel.run("%%agent\nsay hello")
    assert ex.status == "ok", ex.errors
    kinds = [m["header"]["msg_type"] for m in ex.messages]
    first = kinds.index("display_data")
    assert ex.messages[first]["content"]["data"] == {"text/plain": "nbagent: starting…"}
    assert "comm_open" not in kinds[:first]  # shown before the turn's widgets exist
    display_id = ex.messages[first]["content"]["transient"]["display_id"]
    updates = ex.of_type("update_display_data")
    assert updates and updates[-1]["content"]["transient"]["display_id"] == display_id
    assert "hello" in str(updates[-1]["content"]["data"]["text/plain"])
    assert ex.of_type("display_data") == [ex.messages[first]]  # one output in the cell


def test_a_cell_that_cannot_start_shows_only_its_error(start_kernel: StartKernel) -> None:
    kernel = start_kernel(NBAGENT_MODEL="", NBAGENT_CONFIG_DIR="/nonexistent")
    ex = kernel.run("%%agent\nhi")
    assert ex.status == "error" and "No model configured" in ex.errors[0]["content"]["evalue"]
    cleared = ex.of_type("clear_output")
    assert cleared and ex.messages.index(cleared[0]) < ex.messages.index(ex.errors[0])
    assert not re.search("starting", json.dumps([m["content"] for m in ex.errors]))
