"""The kernel side of ``nbagent mcp serve --notebook NB``: the kernel's MCP server started from a terminal.

``nbagent mcp serve`` (:mod:`nbagent.jupyter.mcp_connect`) awaits :func:`serve_for_terminal` in the
kernel of a notebook open in a running Jupyter server, as a silent execution of its own. The address and
the token go back to the terminal only, in the execution's reply (a user expression reading
:func:`take_info`): no iopub message carries them, so no notebook page sees them. The view of the
served calls and the permission prompts go into a cell of the open notebook, through the live-document
link: a code cell whose source, ``%agent /mcp-serve stop``, stops the server when run (the cell is reused
by the next server). Without a page that shows the notebook (no extension, or no tab open), a question
the rules leave open is refused with the way to allow it.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nbagent.jupyter.cells import CellError
from nbagent.jupyter.mcp_serve import SERVED, KernelMCP, _servers, _tell_sidebars
from nbagent.tools.base import ToolFailure

if TYPE_CHECKING:
    from nbagent.jupyter.agent import NotebookAgent
    from nbagent.jupyter.document import Frontend

ROLE = "mcp-serve"  # metadata.nbagent.role of the notebook cell that shows the served calls
STOP_SOURCE = "%agent /mcp-serve stop"
_info: dict[str, Any] = {}
_cancelled: set[str] = set()  # nonces of terminals that gave up before their server started


class TerminalMCP(KernelMCP):
    """A kernel MCP server whose address went to a terminal; its view is a cell of the live notebook."""

    def __init__(
        self, agent: NotebookAgent, loop: asyncio.AbstractEventLoop, *, port: int, nonce: str
    ) -> None:
        super().__init__(agent, loop, port=port)
        self.nonce = nonce  # names the terminal that started it
        self.frontend: Frontend | None = None
        self.cell_id: str | None = None

    async def open(self) -> dict[str, Any]:
        """Start serving; show the view in the notebook when a page shows it. What the terminal prints."""
        from nbagent.jupyter.agent import _widgets_enabled

        self.http.start()
        shown = ""
        self.frontend = await self.agent.document.document()
        if self.frontend is None:
            shown = (
                "No page shows this notebook with nbagent's extension, so permission prompts cannot be"
                " shown: calls that nbagent's rules do not allow are refused. Open the notebook in"
                " JupyterLab (or Notebook 7), or allow the tools in nbagent.json."
            )
        elif not _widgets_enabled():
            shown = (
                "ipywidgets is missing in the kernel (or NBAGENT_NO_WIDGETS=1), so permission prompts"
                " cannot be shown: calls that nbagent's rules do not allow are refused."
            )
        else:
            try:
                self.cell_id = await self._view_cell(self.frontend)
            except ToolFailure as exc:
                shown = f"The notebook page refused the view's cell ({exc}); prompts cannot be shown."
        path = self.agent.notebook_path
        return {
            "url": self.http.url,
            "token": self.token,
            "tools": list(SERVED),
            "notebook": str(path) if path is not None else "",
            "frontend": self.frontend.frontend if self.frontend is not None else "",
            "cell_id": self.cell_id or "",
            "warning": shown,
        }

    async def _view_cell(self, frontend: Frontend) -> str:
        """The notebook cell that shows the calls (the one an earlier server used, else a new last cell)."""
        from nbagent.jupyter.widgets import TurnView

        cells = (await frontend.request("cells", {})).get("cells") or []
        mine = next((c for c in cells if _is_view_cell(c)), None)
        if mine is None:
            made = await frontend.request(
                "insert",
                {
                    "cell": {
                        "cell_type": "code",
                        "source": STOP_SOURCE,
                        "metadata": {"nbagent": {"role": ROLE}},
                    }
                },
            )
            cell_id = str(made["cell_id"])
        else:
            cell_id = str(mine["id"])
        # As a run does: the outputs cleared and the cell trusted (JupyterLab renders a widget only in a
        # trusted cell's outputs; a cell inserted or loaded from the file is not), no count, not running.
        await frontend.request("run_start", {"cell_id": cell_id})
        await frontend.request("run_end", {"cell_id": cell_id, "execution_count": None})
        self._view = TurnView(model="MCP client", on_reply=self._on_reply, on_stop=self._on_stop)
        intro = (
            f"**nbagent serves this kernel over MCP** at `{self.http.url}` (started by `nbagent mcp serve`;"
            " the token was printed in that terminal). The calls of the MCP client and nbagent's permission"
            " prompts appear below. Run this cell, or press Ctrl+C in the terminal, to stop the server."
        )
        frontend.output(cell_id, _display_output({"text/markdown": intro, "text/plain": intro}))
        frontend.output(cell_id, _display_output(self._view.widget._repr_mimebundle_()))
        return cell_id

    def no_prompt(self) -> str:
        if self.frontend is None:
            return (
                "no page shows this notebook with nbagent's extension to ask in. Open the notebook in"
                " JupyterLab or Notebook 7 and run `nbagent mcp serve` again"
            )
        return super().no_prompt()

    def stop(self) -> None:
        super().stop()
        frontend, cell_id = self.frontend, self.cell_id
        self.frontend = self.cell_id = None
        if frontend is None or cell_id is None:
            return
        from nbagent.jupyter.magic import _state

        if _state.get("cell_id") == cell_id:
            return  # the view's own cell runs the stop: the page cleared it and shows the command's answer
        frontend.output(cell_id, {"output_type": "clear"})
        text = "The MCP server stopped.\n"
        frontend.output(cell_id, {"output_type": "stream", "name": "stdout", "text": text})


def _is_view_cell(cell: dict[str, Any]) -> bool:
    """An earlier server's view cell: marked so, and still only the stop command (a cell that only claims
    the role, with other code, is not reused: the user is told to run this cell)."""
    meta = cell.get("metadata") or {}
    mark = meta.get("nbagent") if isinstance(meta, dict) else None
    source = cell.get("source")
    text = "".join(source) if isinstance(source, list) else source
    return (
        cell.get("cell_type") == "code"
        and isinstance(mark, dict)
        and mark.get("role") == ROLE
        and isinstance(text, str)
        and text.strip() == STOP_SOURCE
    )


def _display_output(data: dict[str, Any]) -> dict[str, Any]:
    return {"output_type": "display_data", "data": data, "metadata": {}}


async def serve_for_terminal(notebook: str, port: int, nonce: str, deadline: float) -> None:
    """Start the kernel's MCP server for ``nbagent mcp serve``; :func:`take_info` tells how it went.

    The request may have waited behind a running cell: past ``deadline`` (the terminal gave up) or after
    the terminal cancelled (:func:`cancel_for_terminal`, queued behind it), nothing starts, since nobody
    would get the token."""
    from nbagent.jupyter.agent import current_agent

    _info.clear()
    if time.time() > deadline or nonce in _cancelled:
        _info.update(error="The terminal stopped waiting before the kernel was free; nothing was started.")
        return
    try:
        agent = current_agent()
        if notebook and agent.notebook_path is None:
            agent.attach(Path(notebook))
        current = _servers.get(id(agent))
        if current is not None and current.http.running:
            _info.update(
                error=f"An MCP server already serves this kernel at {current.http.url}.",
                hint="Stop it first: run `%agent /mcp-serve stop` in the notebook (or Ctrl+C the"
                " `nbagent mcp serve` that started it).",
            )
            return
        server = TerminalMCP(agent, asyncio.get_running_loop(), port=port, nonce=nonce)
        try:
            info = await server.open()
        except Exception as exc:  # nothing half-started stays behind
            server.stop()
            hint = "Try another --port, or leave it out for a free one." if isinstance(exc, OSError) else ""
            _info.update(error=f"The MCP server could not start: {type(exc).__name__}: {exc}", hint=hint)
            return
        _servers[id(agent)] = server
        _tell_sidebars(agent)
        _info.update(info)
    except CellError as exc:
        _info.update(error=str(exc), hint=exc.hint)


def stop_for_terminal(nonce: str) -> str:
    """Stop the server this ``nbagent mcp serve`` started (not one started since in the notebook)."""
    for key, server in list(_servers.items()):
        if isinstance(server, TerminalMCP) and server.nonce == nonce:
            server.stop()
            del _servers[key]
            _tell_sidebars(server.agent)
            return "stopped"
    return "not running"


def cancel_for_terminal(nonce: str) -> str:
    """The terminal gave up while its start request waited: it must not start, or stop now."""
    _cancelled.add(nonce)
    return stop_for_terminal(nonce)


def take_info() -> str:
    """The outcome of :func:`serve_for_terminal` as JSON, read once (it holds the token)."""
    text = json.dumps(_info)
    _info.clear()
    return text
