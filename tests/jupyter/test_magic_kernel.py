"""The %%agent magic in a real IPython kernel, driven over ZMQ as JupyterLab drives it.

The model is the scripted server (loopback HTTP, reached through litellm); button clicks and text
edits are real comm messages; interrupts are real SIGINTs sent by the kernel manager.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from nbagent.providers.scripted import ListScript, Reply, ToolCallSpec
from nbagent.store.notebook import TURN_MIME
from tests.conftest import Serve
from tests.jupyter.conftest import StartKernel
from tests.jupyter.harness import Kernel, Message, clicker, record_of, save_notebook, text_of

pytestmark = pytest.mark.timeout(240)


def test_load_ext_is_fast_and_imports_nothing_heavy(start_kernel: StartKernel) -> None:
    kernel = start_kernel()
    code = (
        "import sys, time\n"
        "get_ipython().run_line_magic('unload_ext', 'nbagent')\n"
        "t = time.perf_counter(); get_ipython().run_line_magic('reload_ext', 'nbagent'); dt = time.perf_counter() - t\n"
        "heavy = [m for m in ('litellm', 'rich', 'httpx', 'nbagent.core.session', 'nbagent.jupyter.agent') if m in sys.modules]\n"
        "print(dt, heavy)"
    )
    ex = kernel.run(code)
    seconds, heavy = ex.stdout.split(" ", 1)
    assert heavy.strip() == "[]"
    assert float(seconds) < 0.5


def test_a_turn_waits_for_a_permission_click(serve: Serve, start_kernel: StartKernel) -> None:
    server = serve(
        ListScript(
            [
                Reply(
                    text="Computing.",
                    tool_calls=[ToolCallSpec("python", {"code": "y = x * 2\nprint('y is', y)"})],
                ),
                Reply(text="**y** is 42."),
            ]
        )
    )
    kernel = start_kernel(server)
    kernel.run("x = 21")
    seen: dict[str, str] = {}

    def note_always(k: Kernel) -> None:
        for comm_id in k.find_widgets("ButtonModel", description="Always"):
            seen["always"] = k.widgets[comm_id]["description"]

    ex = kernel.run("%%agent\nDouble x", on_message=clicker("Allow once", note_always), timeout=120)
    assert ex.status == "ok", ex.errors
    assert seen["always"] == "Always: python: *"  # the scoped rule an "always" answer saves
    assert "→ once" in text_of(ex) and "is 42." in text_of(ex)
    assert kernel.run("print(y)").stdout.strip() == "42"
    record = record_of(ex)
    assert record["prompt"] == "Double x" and record["reason"] == "stop"
    tool = next(p for m in record["messages"] for p in m["parts"] if p["type"] == "tool")
    assert "[stdout]\ny is 42" in tool["state"]["output"]
    html = ex.final_bundle(TURN_MIME)["text/html"]  # type: ignore[index]
    assert "<strong>y</strong> is 42." in html
    # the live widgets were closed once the static transcript replaced them
    assert not list(kernel.find_widgets("ButtonModel"))


def test_deny_sends_the_whole_typed_feedback_to_the_model(serve: Serve, start_kernel: StartKernel) -> None:
    """The feedback is typed key by key as the ipywidgets frontend syncs it (one update in flight per
    widget, the next held until the kernel says idle): the model gets all of it, not its first letter."""
    server = serve(
        ListScript(
            [
                Reply(text="Deleting.", tool_calls=[ToolCallSpec("python", {"code": "del x"})]),
                Reply(text="OK, I will keep x."),
            ]
        )
    )
    kernel = start_kernel(server)
    kernel.run("x = 1")
    feedback = "Don't run code in my kernel; print x instead"
    typed: dict[str, bool] = {}

    def type_feedback(k: Kernel) -> None:
        text_id = next(k.find_widgets("TextModel"))
        typed["all sent"] = k.type_text(text_id, feedback)

    ex = kernel.run("%%agent\nRemove x", on_message=clicker("Deny", type_feedback), timeout=120)
    assert ex.status == "ok", ex.errors
    assert kernel.run("print(x)").stdout.strip() == "1"
    results = [m for m in server.requests[-1].body["messages"] if m["role"] == "tool"]
    assert len(results) == 1 and f"The user said: {feedback}" in str(results[0]["content"])
    assert typed["all sent"]  # no keystroke was left waiting in the frontend
    assert f"→ reject: “{feedback}”" in text_of(ex)


def test_kernel_interrupt_cancels_the_turn_cleanly(serve: Serve, start_kernel: StartKernel) -> None:
    server = serve(
        ListScript(
            [
                Reply(
                    text="Waiting.",
                    tool_calls=[ToolCallSpec("bash", {"command": "sleep 30", "description": "wait"})],
                ),
                Reply(text="after the interrupt"),
            ]
        )
    )
    kernel = start_kernel(server, NBAGENT_HEADLESS="allow")
    state = {"sent": 0.0}

    def interrupt_when_running(k: Kernel, _m: Message) -> None:
        running = any("◐" in str(st.get("value", "")) for st in k.widgets.values())
        if running and not state["sent"]:
            state["sent"] = time.time()
            k.interrupt()

    t0 = time.time()
    ex = kernel.run("%%agent\nwait a bit", on_message=interrupt_when_running, timeout=60)
    assert state["sent"], "the tool never showed as running"
    assert time.time() - t0 < 20
    # the cell fails (Run All stops) but saves no error output: the transcript says it, once
    assert ex.status == "error" and ex.reply is not None
    assert ex.reply["content"]["ename"] == "TurnInterrupted"
    assert ex.errors == [] and ex.stdout == ""
    assert text_of(ex).count("Turn interrupted") == 1
    html = ex.final_bundle(TURN_MIME)["text/html"]  # type: ignore[index]
    assert html.count("Turn interrupted") == 1
    record = record_of(ex)
    assert record["reason"] == "cancelled"
    tool = next(p for m in record["messages"] for p in m["parts"] if p["type"] == "tool")
    assert tool["state"]["status"] == "error" and "Interrupted" in tool["state"]["error"]
    # the kernel is fine and the session goes on, its history valid
    assert kernel.run("print('alive')").stdout.strip() == "alive"
    ex2 = kernel.run("%%agent\ncontinue", timeout=60)
    assert ex2.status == "ok" and "after the interrupt" in text_of(ex2)


def test_interrupt_stops_kernel_code_run_by_the_python_tool(serve: Serve, start_kernel: StartKernel) -> None:
    server = serve(
        ListScript([Reply(tool_calls=[ToolCallSpec("python", {"code": "import time\ntime.sleep(60)"})])])
    )
    kernel = start_kernel(server, NBAGENT_HEADLESS="allow")
    state = {"sent": False}

    def on(k: Kernel, _m: Message) -> None:
        if not state["sent"] and any("◐" in str(st.get("value", "")) for st in k.widgets.values()):
            state["sent"] = True
            time.sleep(0.5)  # inside time.sleep(60) by now
            k.interrupt()

    t0 = time.time()
    ex = kernel.run("%%agent\nsleep", on_message=on, timeout=60)
    assert time.time() - t0 < 20
    assert ex.status == "error" and ex.reply["content"]["ename"] == "TurnInterrupted"  # type: ignore[index]
    assert ex.errors == []
    assert kernel.run("print('alive')").stdout.strip() == "alive"


def test_stop_button_ends_the_turn_without_failing_the_cell(serve: Serve, start_kernel: StartKernel) -> None:
    server = serve(ListScript([Reply(tool_calls=[ToolCallSpec("bash", {"command": "sleep 30"})])]))
    kernel = start_kernel(server, NBAGENT_HEADLESS="allow")
    state = {"clicked": False}

    def on(k: Kernel, _m: Message) -> None:
        if not state["clicked"] and any("◐" in str(st.get("value", "")) for st in k.widgets.values()):
            state["clicked"] = True
            k.click(next(k.find_widgets("ButtonModel", description="Stop")))

    t0 = time.time()
    ex = kernel.run("%%agent\nwait", on_message=on, timeout=60)
    assert state["clicked"] and time.time() - t0 < 20
    assert ex.status == "ok"
    assert "Turn interrupted" in text_of(ex) and record_of(ex)["reason"] == "cancelled"


def test_resume_after_a_kernel_restart_from_the_saved_notebook(
    tmp_path: Path, serve: Serve, start_kernel: StartKernel
) -> None:
    server = serve(
        ListScript([Reply(text="Noted: the codeword is PELICAN."), Reply(text="ok"), Reply(text="PELICAN")])
    )
    nb_path = tmp_path / "analysis.ipynb"
    kernel = start_kernel(server, JPY_SESSION_NAME=str(nb_path))
    ex1 = kernel.run("%%agent\nRemember the codeword PELICAN.", cell_id="c1")
    ex2 = kernel.run("%%agent\nThanks.", cell_id="c2")
    save_notebook(
        nb_path,
        [
            ("c0", "%load_ext nbagent", None),
            ("c1", "%%agent\nRemember the codeword PELICAN.", ex1),
            ("c2", "%%agent\nThanks.", ex2),
            ("c3", "%%agent\nWhat was the codeword?", None),
        ],
    )
    sid = record_of(ex1)["session_id"]
    assert record_of(ex2)["session_id"] == sid

    kernel.restart()
    assert kernel.run("%load_ext nbagent").status == "ok"
    ex3 = kernel.run("%%agent\nWhat was the codeword?", cell_id="c3")
    assert ex3.status == "ok", ex3.errors
    sent = [m for m in server.requests[-1].body["messages"] if m["role"] != "system"]
    contents = [m.get("content") for m in sent]
    assert contents[:4] == [
        "Remember the codeword PELICAN.",
        "Noted: the codeword is PELICAN.",
        "Thanks.",
        "ok",
    ]
    assert f"Resumed session {sid} from the notebook (2 earlier turns)" in text_of(ex3)
    assert record_of(ex3)["session_id"] == sid


def test_replay_with_a_changed_repo_reports_the_divergence(
    tmp_path: Path, serve: Serve, start_kernel: StartKernel
) -> None:
    (tmp_path / "data.txt").write_text("alpha\n")
    server = serve(
        ListScript(
            [
                Reply(text="Reading.", tool_calls=[ToolCallSpec("bash", {"command": "cat data.txt"})]),
                Reply(text="It says alpha."),
            ]
        )
    )
    nb_path = tmp_path / "r.ipynb"
    kernel = start_kernel(server, NBAGENT_HEADLESS="allow", NBAGENT_NOTEBOOK=str(nb_path))
    source = "%%agent\nWhat is in data.txt?"
    ex = kernel.run(source, cell_id="c1")
    save_notebook(nb_path, [("c1", source, ex)])
    requests = len(server.requests)

    same = kernel.run("%%agent --replay\nWhat is in data.txt?", cell_id="c1")
    assert same.status == "ok", same.errors
    assert "1 tool results match" in text_of(same)
    (tmp_path / "data.txt").write_text("beta\n")
    kernel.restart()
    kernel.run("%load_ext nbagent")
    changed = kernel.run("%%agent --replay\nWhat is in data.txt?", cell_id="c1")
    assert len(server.requests) == requests  # replay calls no model
    text = text_of(changed)
    assert "Replay: 1 of 1 tool results differ from the recording." in text
    record = record_of(changed)
    div = record["replay"]["divergent"][0]
    assert div["tool"] == "bash" and "alpha" in div["recorded"] and "beta" in div["replayed"]
    assert "It says alpha." in text  # the recorded reply, replayed


def test_slash_commands(serve: Serve, start_kernel: StartKernel) -> None:
    server = serve(ListScript([Reply(text="hi"), Reply(text="hi")]))
    kernel = start_kernel(server)
    assert "/sessions" in kernel.run("%agent /help").final_bundle("text/markdown")["text/markdown"]  # type: ignore[index]
    kernel.run("%%agent\nhello")
    cost = kernel.run("%agent /cost").final_bundle("text/markdown")
    assert cost is not None and "input tokens" in cost["text/markdown"]
    model = kernel.run("%agent /model openai/other").final_bundle("text/markdown")
    assert model is not None and "openai/other" in model["text/markdown"]
    assert "openai/other" in kernel.run("%agent /model").final_bundle("text/markdown")["text/markdown"]  # type: ignore[index]
    new = kernel.run("%agent /new").final_bundle("text/markdown")
    assert new is not None and "new session" in new["text/markdown"]
    kernel.run("%%agent\nhello again")
    context = kernel.run("%agent /context").final_bundle("text/markdown")
    assert context is not None and "Tool definitions" in context["text/markdown"]
    unknown = kernel.run("%agent /frobnicate").final_bundle("text/markdown")
    assert unknown is not None and "Unknown command" in unknown["text/markdown"]
    prose = kernel.run("%agent do something")
    assert (
        prose.status == "error" and "write prompts in a %%agent cell" in prose.errors[0]["content"]["evalue"]
    )
    usage = kernel.run("%%agent --mode nonsense\nhi")
    assert usage.status == "error" and "invalid choice" in usage.errors[0]["content"]["evalue"]


def test_without_a_model_the_error_says_how_to_set_one(start_kernel: StartKernel) -> None:
    kernel = start_kernel(NBAGENT_MODEL="", NBAGENT_CONFIG_DIR="/nonexistent")
    ex = kernel.run("%%agent\nhi")
    assert ex.status == "error"
    err = ex.errors[0]["content"]
    assert "No model configured" in err["evalue"] and len(err["traceback"]) == 2
    assert "--model" in err["traceback"][1]


def test_background_fallback_on_kernels_that_cannot_await(serve: Serve, start_kernel: StartKernel) -> None:
    server = serve(ListScript([Reply(text="done in the background")]))
    kernel = start_kernel(server, NBAGENT_BACKGROUND="1")
    ex = kernel.run("%%agent\nhi")
    assert ex.status == "ok"
    notes = [
        m
        for m in ex.of_type("display_data", "update_display_data")
        if "application/vnd.jupyter.widget-view+json" in m["content"]["data"]
    ]
    assert notes  # the view is shown in this cell
    assert any("runs in the background" in str(st.get("value", "")) for st in kernel.widgets.values())
    deadline = time.time() + 60
    while time.time() < deadline:
        probe = kernel.run("import nbagent.jupyter.agent as a; print(a.current_agent().session.busy)")
        if probe.stdout.strip() == "False":
            break
        time.sleep(0.3)
    assert server.requests


def test_python_tool_captures_figures_and_displays(serve: Serve, start_kernel: StartKernel) -> None:
    pytest.importorskip("matplotlib")
    pytest.importorskip("pandas")
    code = (
        "import matplotlib.pyplot as plt\nimport pandas as pd\nfrom IPython.display import display\n"
        "df = pd.DataFrame({'a': [1, 2, 3]})\ndisplay(df)\nplt.plot(df['a'])\ndf.describe()"
    )
    server = serve(
        ListScript([Reply(tool_calls=[ToolCallSpec("python", {"code": code})]), Reply(text="plotted")])
    )
    kernel = start_kernel(server, NBAGENT_HEADLESS="allow")
    ex = kernel.run("%%agent\nplot a", timeout=120)
    assert ex.status == "ok", ex.errors
    # nothing leaked into the cell besides the agent's own output (no stray figure, no stray display)
    shown = [m for m in ex.of_type("display_data", "execute_result", "stream")]
    assert len(shown) == 1, shown  # the cell's one display, which the view and then the transcript replace
    display_id = shown[0]["content"]["transient"]["display_id"]
    updates = ex.of_type("update_display_data")
    assert updates and all(m["content"]["transient"]["display_id"] == display_id for m in updates)
    record = record_of(ex)
    state = next(p for m in record["messages"] for p in m["parts"] if p["type"] == "tool")["state"]
    assert state["attachments"] and state["attachments"][0]["media_type"] == "image/png"
    assert "[display]" in state["output"] and "[result: pandas.DataFrame]" in state["output"]
    assert "shape (8, 1)" in state["output"]
    assert "<img" in ex.final_bundle(TURN_MIME)["text/html"]  # type: ignore[index]
    # the model saw the figure as an image
    sent = json.dumps(server.requests[-1].body["messages"])
    assert "image/png" in sent or "image_url" in sent


def test_a_store_that_cannot_open_is_shown_and_the_turn_goes_on(
    serve: Serve, start_kernel: StartKernel, tmp_path: Path
) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the data folder should be\n")
    server = serve(ListScript([Reply(text="Still here.")]))
    kernel = start_kernel(server, NBAGENT_DATA_DIR=str(blocker / "data"), NBAGENT_NO_STORE="0")
    ex = kernel.run("%%agent\nhi")
    assert ex.status == "ok"
    text = text_of(ex)
    assert "Still here." in text
    assert "session store could not be opened" in text and "notebook only" in text
