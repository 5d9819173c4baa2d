"""The live cell widget of a turn: blocks rendered from events, permission buttons, a footer with Stop.

The view holds no agent state: it folds events into a :class:`Transcript` and calls back ``on_reply``
(a permission answer) and ``on_stop``. Streaming updates are throttled: text and live output are
flushed at most every ``interval`` seconds; any other event flushes at once.

While an awaited ``%%agent`` cell runs, ipykernel (>= 7.4) handles comm messages concurrently with it and
publishes no busy/idle status for them. The ipywidgets frontend sends a model's next state update only
once the kernel said "idle" for the previous one, so a text field would reach the kernel with its first
keystroke only ("D" for "Don't run code in my kernel") and Deny would send that. The feedback field
therefore acknowledges each update itself (:class:`FeedbackText`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import ipywidgets as w

from nbagent.core.events import (
    Event,
    ReasoningDelta,
    SubagentEvent,
    TextDelta,
    ToolCallOutput,
)
from nbagent.jupyter.render_html import always_rules, footer_html, permission_html
from nbagent.jupyter.transcript import Block, PermissionBlock, Transcript
from nbagent.jupyter.widget_blocks import BlockList, agent_label

Reply = Callable[[str, str, str], None]  # (request_id, "once" | "always" | "reject", feedback)
STREAMING = (TextDelta, ReasoningDelta, ToolCallOutput)
STREAMING_TYPES = frozenset({"text_delta", "reasoning_delta", "tool_output"})


def streaming(event: Event | dict[str, Any]) -> bool:
    """Text or live output (flushed on a timer), a child's included."""
    if isinstance(event, SubagentEvent):
        return streaming(event.event)
    if isinstance(event, dict):
        inner = event.get("event")
        return (
            streaming(inner)
            if event.get("type") == "subagent" and isinstance(inner, dict)
            else (event.get("type") in STREAMING_TYPES)
        )
    return isinstance(event, STREAMING)


def _kernel() -> Any:
    try:
        from ipykernel.kernelbase import Kernel
    except ImportError:
        return None
    return Kernel.instance() if Kernel.initialized() else None


def cell_parent() -> dict[str, Any] | None:
    """The request the running cell answers (its execute_request), where there is a kernel."""
    kernel = _kernel()
    if kernel is None:
        return None
    try:
        parent = kernel.get_parent("shell")
    except Exception:
        return None
    return parent if isinstance(parent, dict) and parent.get("header") else None


def acknowledge(msg: dict[str, Any], cell: dict[str, Any] | None) -> None:
    """Publish the "idle" status ipykernel leaves out for a comm message handled during an awaited
    cell, so the frontend sends the widget's next update; then "busy" again for the cell (JupyterLab's
    kernel indicator follows the last status)."""
    kernel = _kernel()
    if kernel is None or not msg.get("header") or msg["header"].get("subshell_id"):
        return  # a subshell's messages get their statuses from ipykernel
    topic = getattr(kernel, "_topic", None)
    ident = topic("status") if callable(topic) else None
    kernel.session.send(kernel.iopub_socket, "status", {"execution_state": "idle"}, parent=msg, ident=ident)
    if cell is not None:
        kernel.session.send(
            kernel.iopub_socket, "status", {"execution_state": "busy"}, parent=cell, ident=ident
        )


class FeedbackText(w.Text):  # type: ignore[misc]
    """The feedback field of a permission prompt: a Text that acknowledges each state update it gets
    while an awaited cell runs (see the module's docstring)."""

    def __init__(
        self, *, cell: dict[str, Any] | None = None, acknowledge: bool = False, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self._cell = cell
        self._acknowledge = acknowledge

    def _handle_msg(self, msg: dict[str, Any]) -> None:
        super()._handle_msg(msg)
        data = (msg.get("content") or {}).get("data") or {}
        if self._acknowledge and data.get("method") == "update":
            acknowledge(msg, self._cell)


@dataclass
class UpdateStats:
    """How quickly events reach the widgets: the wait of the oldest pending event at each flush."""

    events: int = 0
    flushes: int = 0
    widget_updates: int = 0
    bytes_sent: int = 0
    latencies: list[float] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        lat = sorted(self.latencies) or [0.0]
        return {
            "events": self.events,
            "flushes": self.flushes,
            "widget_updates": self.widget_updates,
            "bytes_sent": self.bytes_sent,
            "latency_mean_ms": 1000 * sum(lat) / len(lat),
            "latency_p95_ms": 1000 * lat[min(len(lat) - 1, int(0.95 * len(lat)))],
            "latency_max_ms": 1000 * lat[-1],
        }


class PermissionPrompt:
    """Allow once / Always (the scoped rule) / Deny, with a feedback field; ``agent``: the child agent
    that asks (named above the question), "" for the turn's own agent."""

    def __init__(
        self,
        block: PermissionBlock,
        on_reply: Reply,
        *,
        cell: dict[str, Any] | None = None,
        acknowledge: bool = False,
        agent: str = "",
    ) -> None:
        asked = block.asked
        assert asked is not None
        self.request_id = asked.request_id
        self.question = w.HTML(permission_html(block, include_reply=False))
        always = ", ".join(always_rules(asked)) or "this session"
        self.once = w.Button(description="Allow once", button_style="success", tooltip="Run this call")
        self.always = w.Button(
            description=f"Always: {always}"[:60],
            tooltip=f"Allow and save the rule: {always}",
            layout=w.Layout(width="auto"),
        )
        self.deny = w.Button(
            description="Deny", button_style="danger", tooltip="Refuse; the feedback goes to the model"
        )
        self.feedback = FeedbackText(
            placeholder="Optional: tell the agent what to do instead (sent with Deny)",
            layout=w.Layout(width="auto", align_self="stretch"),  # the box's width, not 100% + margins
            cell=cell,
            acknowledge=acknowledge,
        )
        self.once.on_click(lambda _b: self._answer(on_reply, "once"))
        self.always.on_click(lambda _b: self._answer(on_reply, "always"))
        self.deny.on_click(lambda _b: self._answer(on_reply, "reject"))
        self.feedback.on_submit(lambda _t: self._answer(on_reply, "reject"))
        self.label = agent_label(agent)
        self.widget = w.VBox(
            [*self.label, self.question, w.HBox([self.once, self.always, self.deny]), self.feedback],
            layout=w.Layout(max_width="100%", overflow="hidden"),
        )

    def _answer(self, on_reply: Reply, kind: str) -> None:
        for b in (self.once, self.always, self.deny):
            b.disabled = True
        on_reply(self.request_id, kind, self.feedback.value.strip() if kind == "reject" else "")

    def widgets(self) -> list[w.Widget]:
        return [self.once, self.always, self.deny, self.feedback, self.question, *self.label, self.widget]


def _clicks_where_sent(button: w.Button) -> None:
    """Handle the button's clicks on the kernel subshell the front-end sent them to.

    ipykernel (7.4) routes a front-end message on a comm to the subshell the comm last published from
    (for replies awaited in a cell): the turn's widgets were made by the ``%%agent`` cell, so a click
    would queue behind the main shell, which user code a tool runs (notebook_run, python) may hold for
    minutes. Stop must get through then: it is handled where JupyterLab sent it (a subshell's thread).
    """
    comm = getattr(button, "comm", None)
    if comm is not None and hasattr(comm, "_reply_subshell_for"):
        comm._reply_subshell_for = lambda _data, default: default


class TurnView:
    def __init__(
        self,
        *,
        model: str = "",
        on_reply: Reply,
        on_stop: Callable[[], None],
        interval: float = 0.1,
        note: str = "",
        acknowledge: bool = False,
    ) -> None:
        """``acknowledge``: the view lives in an awaited cell (see :class:`FeedbackText`)."""
        self.transcript = Transcript(model=model)
        self._acknowledge = acknowledge
        self._cell = cell_parent() if acknowledge else None
        self.on_reply = on_reply
        self.interval = interval
        self.stats = UpdateStats()
        self._dirty: dict[Block, float] = {}
        self._handle: asyncio.TimerHandle | None = None
        self.blocks = BlockList(self.transcript, self._prompt, self.stats)
        self.body = self.blocks.box
        self.footer = w.HTML(footer_html(self.transcript.footer))
        self.stop = w.Button(description="Stop", button_style="warning", icon="stop", tooltip="Stop the turn")
        self.stop.layout = w.Layout(width="auto")
        self.stop.on_click(lambda _b: self._stop(on_stop))
        _clicks_where_sent(self.stop)
        header = [w.HTML(f"<div style='color:#ef6c00'>{note}</div>")] if note else []
        self.widget = w.VBox([*header, self.body, w.HBox([self.footer, self.stop])])
        self._closed = False

    # -- events ----------------------------------------------------------------------------

    def apply(self, event: Event) -> None:
        if self._closed:
            return
        now = time.perf_counter()
        self.stats.events += 1
        for block in self.transcript.apply(event):
            self._dirty.setdefault(block, now)
        if streaming(event):
            if self._handle is None:
                try:
                    loop = asyncio.get_running_loop()
                except RuntimeError:
                    self.flush()
                    return
                self._handle = loop.call_later(self.interval, self.flush)
        else:
            self.flush()

    def add_notice(self, message: str, level: str = "info", detail: str = "") -> None:
        block = self.transcript.add_notice(message, level, detail)
        self._dirty.setdefault(block, time.perf_counter())
        self.flush()

    def flush(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        if self._closed:
            return
        now = time.perf_counter()
        if self._dirty:
            self.stats.latencies.append(now - min(self._dirty.values()))
        self.stats.flushes += 1
        self._dirty.clear()
        self.blocks.sync()
        footer = footer_html(self.transcript.footer)
        if self.footer.value != footer:
            self.footer.value = footer
        if not self.transcript.footer.running:
            self.stop.disabled = True

    def _prompt(self, block: PermissionBlock, agent: str) -> PermissionPrompt:
        return PermissionPrompt(
            block, self.on_reply, cell=self._cell, acknowledge=self._acknowledge, agent=agent
        )

    def _stop(self, on_stop: Callable[[], None]) -> None:
        self.stop.disabled = True
        self.stop.description = "Stopping…"
        on_stop()

    # -- lookup (tests, benches) ----------------------------------------------------------------

    @property
    def _html(self) -> dict[Block, w.HTML]:
        """The turn's block widgets (the nested children's aside)."""
        return self.blocks.html

    def prompt_for(self, request_id: str) -> PermissionPrompt | None:
        for prompt in self.blocks.prompts():
            if prompt.request_id == request_id and isinstance(prompt, PermissionPrompt):
                return prompt
        return None

    def close(self) -> None:
        """Close every widget comm (the static rendering replaces the view)."""
        self.flush()
        self._closed = True
        self.blocks.close()
        for widget in (self.footer, self.stop, self.widget):
            widget.close()
