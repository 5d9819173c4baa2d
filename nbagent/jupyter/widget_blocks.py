"""A transcript's blocks as live widgets: HTML per block, permission prompts with their buttons, and a
``task`` card's child transcript nested in a collapsible block (recursively, for grandchildren).

Used by the cell widget (:class:`nbagent.jupyter.widgets.TurnView`) for the turn and for each child
agent under it. A child's permission prompt gets the same buttons as the parent's, labelled with the
child's agent name; the answer goes through the same callback with the child's request id.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from typing import Any, Protocol

import ipywidgets as w

from nbagent.jupyter.render_html import block_html, footer_html
from nbagent.jupyter.render_nested import child_label, child_open
from nbagent.jupyter.transcript import Block, ChildRun, PermissionBlock, ToolBlock, Transcript


class Prompt(Protocol):
    request_id: str
    widget: w.Widget

    def widgets(self) -> list[w.Widget]: ...


MakePrompt = Callable[[PermissionBlock, str], Prompt]  # (the request, the asking agent's name or "")


class Counter(Protocol):
    widget_updates: int
    bytes_sent: int


class BlockList:
    """The blocks of one transcript in a VBox, kept in sync by :meth:`sync` (changed blocks only)."""

    def __init__(
        self, transcript: Transcript, make_prompt: MakePrompt, stats: Counter, agent: str = ""
    ) -> None:
        self.transcript = transcript
        self.agent = agent
        self.box = w.VBox([])
        self._make_prompt = make_prompt
        self._stats = stats
        self.html: dict[Block, w.HTML] = {}
        self._prompts: dict[Block, Prompt] = {}
        self._nested: dict[Block, NestedView] = {}
        self._rendered: dict[Block, int] = {}

    def sync(self) -> None:
        structure = False
        for block in self.transcript.blocks:
            if self._rendered.get(block) == block.version:
                continue
            self._rendered[block] = block.version
            if isinstance(block, PermissionBlock) and block.replied is None:
                if block not in self._prompts:
                    self._prompts[block] = self._make_prompt(block, self.agent)
                    structure = True
                continue
            structure |= self._render(block)
            if isinstance(block, ToolBlock) and block.child is not None:
                view = self._nested.get(block)
                if view is None or view.run is not block.child:
                    if view is not None:
                        view.close()
                    view = self._nested[block] = NestedView(block.child, self._make_prompt, self._stats)
                    structure = True
                view.sync(block)
        children: list[w.Widget] = []
        for block in self.transcript.blocks:
            if block in self._prompts:
                children.append(self._prompts[block].widget)
            elif block in self.html:
                children.append(self.html[block])
                if block in self._nested:
                    children.append(self._nested[block].widget)
        if structure or tuple(children) != tuple(self.box.children):
            self.box.children = tuple(children)

    def _render(self, block: Block) -> bool:
        """Update the block's HTML; True when a widget came or went."""
        value = block_html(block, nested=False)
        widget = self.html.get(block)
        structure = False
        if widget is None:
            self.html[block] = w.HTML(value)
            structure = True
        elif widget.value != value:
            widget.value = value
        else:
            return False
        self._stats.widget_updates += 1
        self._stats.bytes_sent += len(value)
        if block in self._prompts:  # answered: the buttons give way to the answer
            for child in self._prompts.pop(block).widgets():
                child.close()
            structure = True
        return structure

    def prompts(self) -> list[Prompt]:
        """The prompts waiting for an answer, the nested children's included."""
        out = list(self._prompts.values())
        for view in self._nested.values():
            out.extend(view.blocks.prompts())
        return out

    def close(self) -> None:
        for prompt in self._prompts.values():
            for child in prompt.widgets():
                child.close()
        for view in self._nested.values():
            view.close()
        for html_widget in self.html.values():
            html_widget.close()
        self.box.close()


class NestedView:
    """A child agent's transcript in its ``task`` card: an accordion titled with the agent's name,
    open while the child runs or asks, folded when it is done (the user's own toggling is kept)."""

    def __init__(self, run: ChildRun, make_prompt: MakePrompt, stats: Counter) -> None:
        self.run = run
        self.blocks = BlockList(run.transcript, make_prompt, stats, agent=run.agent)
        self.footer = w.HTML("")
        self.widget = w.Accordion(children=[w.VBox([self.blocks.box, self.footer])])
        self.widget.add_class("nbagent-subagent")
        self._open: bool | None = None

    def sync(self, block: ToolBlock) -> None:
        self.blocks.sync()
        title = f"↳ agent {child_label(block)}"
        if tuple(self.widget.titles) != (title,):
            self.widget.titles = (title,)
        footer = footer_html(self.run.transcript.footer)
        if self.footer.value != footer:
            self.footer.value = footer
        opened = child_open(self.run)
        if opened != self._open:  # only on a change: a fold or unfold by the user stays
            self._open = opened
            self.widget.selected_index = 0 if opened else None

    def close(self) -> None:
        self.blocks.close()
        for widget in (self.footer, self.widget):
            widget.close()


def agent_label(agent: str) -> list[Any]:
    """The line above a child's permission prompt naming the agent that asks."""
    if not agent:
        return []
    return [w.HTML(f"<div style='color:#7e57c2'>↳ agent <b>{html.escape(agent)}</b> asks:</div>")]
