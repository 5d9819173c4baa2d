"""A real IPython kernel driven over ZMQ the way a frontend drives it (execute, comm messages, interrupt)."""

from __future__ import annotations

import os
import queue
import sys
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nbformat
from jupyter_client.manager import KernelManager

from nbagent.store.notebook import TURN_MIME

Message = dict[str, Any]


@dataclass
class Execution:
    msg_id: str
    messages: list[Message] = field(default_factory=list)
    reply: Message | None = None

    @property
    def status(self) -> str:
        return str(self.reply["content"]["status"]) if self.reply else "unknown"

    def of_type(self, *types: str) -> list[Message]:
        return [m for m in self.messages if m["header"]["msg_type"] in types]

    @property
    def stdout(self) -> str:
        return "".join(
            m["content"]["text"] for m in self.of_type("stream") if m["content"]["name"] == "stdout"
        )

    @property
    def errors(self) -> list[Message]:
        return self.of_type("error")

    def final_bundle(self, mime: str) -> dict[str, Any] | None:
        """The last display (or display update) carrying ``mime``."""
        for m in reversed(self.of_type("display_data", "update_display_data", "execute_result")):
            if mime in m["content"]["data"]:
                return dict(m["content"]["data"])
        return None


class Kernel:
    def __init__(self, cwd: Path, env: dict[str, str] | None = None) -> None:
        self.km = KernelManager(kernel_name="python3")
        full = dict(os.environ)
        full.update(env or {})
        self.km.start_kernel(cwd=str(cwd), env=full, extra_arguments=[])
        self.kc = self.km.client()
        self.kc.start_channels()
        self.kc.wait_for_ready(timeout=60)
        self.widgets: dict[str, dict[str, Any]] = {}  # comm_id -> state (as a frontend would track it)
        # The ipywidgets frontend's throttle (WidgetModel.sync): while one state update of a model is
        # in flight (no "idle" status for it yet), its next changes wait, merged, and go out once it is.
        self._in_flight: dict[str, str] = {}  # update msg_id -> comm_id
        self._held: dict[str, dict[str, Any]] = {}  # comm_id -> state waiting to be sent
        self._backlog: deque[Message] = deque()  # messages read while pumping, for run() to see

    def close(self) -> None:
        self.kc.stop_channels()
        self.km.shutdown_kernel(now=True)

    def restart(self) -> None:
        self.km.restart_kernel(now=True)
        self.kc.wait_for_ready(timeout=60)
        self.widgets.clear()
        self._in_flight.clear()
        self._held.clear()
        self._backlog.clear()

    def _track(self, msg: Message) -> None:
        kind = msg["header"]["msg_type"]
        content = msg["content"]
        if kind == "comm_open" and content.get("target_name") == "jupyter.widget":
            self.widgets[content["comm_id"]] = dict(content["data"].get("state", {}))
        elif kind == "comm_msg" and content["comm_id"] in self.widgets:
            data = content["data"]
            if data.get("method") in ("update", "echo_update"):
                self.widgets[content["comm_id"]].update(data.get("state", {}))
        elif kind == "comm_close":
            self.widgets.pop(content["comm_id"], None)
        elif kind == "status" and content["execution_state"] == "idle":
            comm_id = self._in_flight.pop(msg["parent_header"].get("msg_id", ""), None)
            if comm_id is not None and comm_id in self._held and comm_id not in self._in_flight.values():
                self._send_update(comm_id, self._held.pop(comm_id))

    def _next(self, timeout: float) -> Message | None:
        """The next IOPub message: one read while pumping first (already tracked), else a new one."""
        if self._backlog:
            return self._backlog.popleft()
        try:
            m = self.kc.get_iopub_msg(timeout=timeout)
        except queue.Empty:
            return None
        self._track(m)
        return m

    def pump(self, seconds: float, until: Callable[[], bool] = lambda: False) -> bool:
        """Read IOPub messages (kept for run()) for up to ``seconds`` or until ``until()``."""
        deadline = time.time() + seconds
        while not until() and time.time() < deadline:
            try:
                m = self.kc.get_iopub_msg(timeout=0.05)
            except queue.Empty:
                continue
            self._track(m)
            self._backlog.append(m)
        return until()

    def run(
        self,
        code: str,
        timeout: float = 60,
        on_message: Callable[[Kernel, Message], None] | None = None,
        cell_id: str | None = None,
    ) -> Execution:
        content = {
            "code": code,
            "silent": False,
            "store_history": True,
            "user_expressions": {},
            "allow_stdin": False,
            "stop_on_error": True,
        }
        msg = self.kc.session.msg("execute_request", content, metadata={"cellId": cell_id} if cell_id else {})
        self.kc.shell_channel.send(msg)
        ex = Execution(msg["header"]["msg_id"])
        deadline = time.time() + timeout
        idle = False
        while time.time() < deadline and not idle:
            m = self._next(0.2)
            if m is None:
                continue
            if m["parent_header"].get("msg_id") != ex.msg_id:
                continue
            ex.messages.append(m)
            if on_message is not None:
                on_message(self, m)
            if m["header"]["msg_type"] == "status" and m["content"]["execution_state"] == "idle":
                idle = True
        if not idle:
            raise TimeoutError(f"cell did not finish in {timeout}s:\n{code}")
        while ex.reply is None:
            reply = self.kc.get_shell_msg(timeout=10)
            if reply["parent_header"].get("msg_id") == ex.msg_id:
                ex.reply = reply
        return ex

    def send_comm(self, comm_id: str, data: dict[str, Any]) -> None:
        self.kc.shell_channel.send(self.kc.session.msg("comm_msg", {"comm_id": comm_id, "data": data}))

    def click(self, comm_id: str, subshell: str | None = None) -> None:
        """What the frontend sends when a Button is clicked (over a kernel subshell, as JupyterLab 4.4+
        sends comm messages, when ``subshell`` is given)."""
        msg = self.kc.session.msg(
            "comm_msg", {"comm_id": comm_id, "data": {"method": "custom", "content": {"event": "click"}}}
        )
        if subshell is not None:
            msg["header"]["subshell_id"] = subshell
        self.kc.shell_channel.send(msg)

    def create_subshell(self) -> str:
        """A kernel subshell (ipykernel 7): its own thread, where comm messages are handled while the
        main thread is busy."""
        msg = self.kc.session.msg("create_subshell_request", {})
        self.kc.control_channel.send(msg)
        while True:
            reply = self.kc.control_channel.get_msg(timeout=10)
            if reply["parent_header"].get("msg_id") == msg["header"]["msg_id"]:
                return str(reply["content"]["subshell_id"])

    def set_state(self, comm_id: str, state: dict[str, Any]) -> None:
        """A state update sent at once (as a frontend would with nothing in flight)."""
        self.send_comm(comm_id, {"method": "update", "state": state, "buffer_paths": []})

    def _send_update(self, comm_id: str, state: dict[str, Any]) -> None:
        msg = self.kc.session.msg(
            "comm_msg", {"comm_id": comm_id, "data": {"method": "update", "state": state, "buffer_paths": []}}
        )
        self._in_flight[msg["header"]["msg_id"]] = comm_id
        self.kc.shell_channel.send(msg)

    def sync(self, comm_id: str, state: dict[str, Any]) -> None:
        """A state change as the ipywidgets frontend sends it: at once when no update of the model is in
        flight, else held (merged) until the kernel says "idle" for the one in flight."""
        if comm_id in self._in_flight.values():
            self._held.setdefault(comm_id, {}).update(state)
        else:
            self._send_update(comm_id, state)

    def type_text(self, comm_id: str, text: str, settle: float = 3.0) -> bool:
        """Type ``text`` into a Text widget key by key (its value synced at each key, as with
        continuous_update), then wait up to ``settle`` seconds for every update to be sent; False when
        some are still held (the kernel never acknowledged one)."""
        for i in range(1, len(text) + 1):
            self.sync(comm_id, {"value": text[:i]})
            self.pump(0.01)
        return self.pump(
            settle, lambda: comm_id not in self._held and comm_id not in self._in_flight.values()
        )

    def find_widgets(self, model: str, **state: Any) -> Iterator[str]:
        for comm_id, st in self.widgets.items():
            if st.get("_model_name") == model and all(
                str(st.get(k, "")).startswith(str(v)) for k, v in state.items()
            ):
                yield comm_id

    def interrupt(self) -> None:
        self.km.interrupt_kernel()


def python_env() -> dict[str, str]:
    """PATH with this interpreter first, so the kernel (and `python` in tools) is this venv's."""
    return {"PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}


def record_of(ex: Execution) -> dict[str, Any]:
    bundle = ex.final_bundle(TURN_MIME)
    assert bundle is not None, [m["content"] for m in ex.messages if m["header"]["msg_type"] != "status"]
    return dict(bundle[TURN_MIME])


def text_of(ex: Execution) -> str:
    bundle = ex.final_bundle(TURN_MIME)
    assert bundle is not None
    return str(bundle["text/plain"])


def clicker(label: str, before: Callable[[Kernel], None] | None = None) -> Callable[[Kernel, Message], None]:
    """An on_message hook that clicks each new button whose label starts with ``label``."""
    clicked: set[str] = set()

    def on(kernel: Kernel, _m: Message) -> None:
        if not list(kernel.find_widgets("TextModel", placeholder="Optional")):
            return  # the prompt is complete once its feedback field (created last) exists
        for comm_id in list(kernel.find_widgets("ButtonModel", description=label)):
            if comm_id not in clicked:
                clicked.add(comm_id)
                if before is not None:
                    before(kernel)
                kernel.click(comm_id)

    return on


def save_notebook(path: Path, cells: list[tuple[str, str, Execution | None]]) -> None:
    """Write the notebook as the frontend would save it: each cell with its final outputs."""
    nb = nbformat.v4.new_notebook()
    for cell_id, source, ex in cells:
        cell = nbformat.v4.new_code_cell(source)
        cell["id"] = cell_id
        if ex is not None:
            bundle = ex.final_bundle(TURN_MIME)
            if bundle is not None:
                cell["outputs"] = [nbformat.v4.new_output("display_data", data=bundle)]
        nb.cells.append(cell)
    nbformat.validate(nb)
    nbformat.write(nb, str(path))
