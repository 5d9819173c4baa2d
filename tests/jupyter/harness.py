"""A real IPython kernel driven over ZMQ the way a frontend drives it (execute, comm messages, interrupt)."""

from __future__ import annotations

import os
import queue
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jupyter_client.manager import KernelManager

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

    def close(self) -> None:
        self.kc.stop_channels()
        self.km.shutdown_kernel(now=True)

    def restart(self) -> None:
        self.km.restart_kernel(now=True)
        self.kc.wait_for_ready(timeout=60)
        self.widgets.clear()

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
            try:
                m = self.kc.get_iopub_msg(timeout=0.2)
            except queue.Empty:
                continue
            self._track(m)
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

    def click(self, comm_id: str) -> None:
        """What the frontend sends when a Button is clicked."""
        self.send_comm(comm_id, {"method": "custom", "content": {"event": "click"}})

    def set_state(self, comm_id: str, state: dict[str, Any]) -> None:
        """What the frontend sends when the user edits a widget (a Text's value)."""
        self.send_comm(comm_id, {"method": "update", "state": state, "buffer_paths": []})

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
