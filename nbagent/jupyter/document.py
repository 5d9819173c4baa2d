"""The kernel's link to the front-end that shows its notebook: the live-document protocol.

The notebook tools (``read`` of the open notebook, ``notebook_edit``, ``notebook_run``) act on the live
document through this link (:class:`DocumentLink`, the tools' ``OpenNotebook``). The kernel opens a comm
with target ``nbagent.notebook`` when a tool first needs the document: it is busy with the ``%%agent``
cell then (Run All), so a probe from the front-end would queue behind it. Every front-end with the
extension (JupyterLab 4 and Notebook 7; the client in ``nbagent execute``) registers the target.

Messages (JSON objects with a ``type``):

kernel -> front-end
    comm_open data ``{"type": "hello", "protocol": 1}``
    ``{"type": "request", "id", "to": client, "op", ...args}``: ops ``cells``, ``insert``, ``replace``,
    ``delete``, ``run_start``, ``run_end``
    ``{"type": "output", "to": client, "cell_id", "output"}``: one nbformat output of a running cell
front-end -> kernel
    ``{"type": "ready", "client", "frontend", "path", "version"}`` (every attached front-end answers;
    the first is used and requests name it in ``to``)
    ``{"type": "reply", "id", "ok": true, "result"}`` or ``{"type": "reply", "id", "ok": false, "error"}``

A front-end without the extension does not answer: after ``READY_TIMEOUT`` the link falls back (new
cells go below the running cell through IPython's ``set_next_input``, other edits are refused) and asks
again after ``RETRY_AFTER`` seconds. A ``comm_close`` does not end the link: every client of the kernel
gets the ``comm_open``, and one without the target (a console on the same kernel, a front-end without
the extension) closes the comm for all; the notebook's own front-end keeps it. A front-end that went
away (a reload) is found by a request that gets no answer: the link opens again and the request is
sent once more.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from nbagent.tools.base import ToolFailure
from nbagent.tools.notebook_live import same_path

TARGET = "nbagent.notebook"
PROTOCOL = 1
READY_TIMEOUT = 1.5  # seconds a front-end has to say it is there
REQUEST_TIMEOUT = 5.0  # seconds for an answer to a request (the front-end answers at once)
RETRY_AFTER = 20.0  # seconds before asking again after no front-end answered
_log = logging.getLogger(__name__)


class _NoAnswer(Exception):
    """The front-end did not answer a request in time."""


class Frontend:
    """The live document in one front-end (a :class:`~nbagent.tools.notebook_live.LiveDocument`)."""

    def __init__(self, link: DocumentLink, client: str, frontend: str, path: str) -> None:
        self.link = link
        self.client = client
        self.frontend = frontend
        self.path = path

    async def request(self, op: str, args: dict[str, Any]) -> dict[str, Any]:
        try:
            return await self.link.request(self, op, args)
        except _NoAnswer:
            fresh = await self.link.document()  # a reload: the page's new front-end answers the new comm
            if fresh is None:
                raise ToolFailure(
                    f"The notebook front-end ({self.frontend}) stopped answering (the page was closed or"
                    " reloaded?). Check the notebook's tab, then retry."
                ) from None
            self.client, self.frontend = fresh.client, fresh.frontend
            return await self.link.request(fresh, op, args)

    def output(self, cell_id: str, output: dict[str, Any]) -> None:
        self.link.send({"type": "output", "to": self.client, "cell_id": cell_id, "output": output})


class DocumentLink:
    """The comm with the front-ends of this kernel's notebook (the tools' ``OpenNotebook``)."""

    def __init__(
        self, shell: Any, notebook: Callable[[], Path | None], attach: Callable[[Path], None] | None = None
    ) -> None:
        self.shell = shell
        self._notebook = notebook
        self._attach = attach  # told the notebook's path when the kernel did not know it
        self._comm: Any = None
        self._frontend: Frontend | None = None
        self._ready: asyncio.Future[Frontend] | None = None
        self._pending: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._ids = itertools.count(1)
        self._missed_at = 0.0  # when no front-end answered last
        self._next_input = False  # set_next_input used in this cell already
        self.loop: asyncio.AbstractEventLoop | None = None

    # -- OpenNotebook -------------------------------------------------------------------------

    async def is_open(self, path: Path) -> bool:
        mine = self._notebook()
        if mine is None and path.suffix.lower() == ".ipynb":
            await self.document()  # the kernel does not know its notebook: its front-end says (ready)
            mine = self._notebook()
        return mine is not None and same_path(path, mine)

    @property
    def mode(self) -> str:
        """Which way the notebook is reached, for the transcript."""
        if self._frontend is not None:
            return f"live document in {self._frontend.frontend}"
        return "no front-end with the nbagent extension"

    async def document(self) -> Frontend | None:
        if self._frontend is not None and self._comm is not None:
            return self._frontend
        if self._missed_at and time.monotonic() - self._missed_at < RETRY_AFTER:
            return None
        try:
            return await self._connect()
        except (TimeoutError, ConnectionError):
            self._missed_at = time.monotonic()
            self._close()
            return None

    def next_input(self, source: str) -> str | None:
        shell = self.shell
        if shell is None or not hasattr(shell, "set_next_input"):
            return None
        if self._next_input:
            return None
        shell.set_next_input(source, replace=False)
        self._next_input = True
        return (
            "No nbagent front-end answers for this notebook, so the cell was handed to the editor through"
            " IPython's set_next_input: it appears below the running cell when the turn ends (front-ends"
            " that support it: JupyterLab, Notebook, VS Code). It has no id yet and cannot be run or"
            " edited in this turn; only one such cell can be added per turn."
        )

    def cell_finished(self) -> None:
        """The running cell ended: a new ``set_next_input`` is possible again."""
        self._next_input = False

    # -- the comm -----------------------------------------------------------------------------

    async def _connect(self) -> Frontend:
        from comm import create_comm

        self.loop = asyncio.get_running_loop()
        self._ready = self.loop.create_future()
        self._comm = create_comm(target_name=TARGET, data={"type": "hello", "protocol": PROTOCOL})
        self._comm.on_msg(self._on_msg)
        self._comm.on_close(self._on_close)
        return await asyncio.wait_for(asyncio.shield(self._ready), READY_TIMEOUT)

    def _close(self) -> None:
        comm, self._comm, self._frontend = self._comm, None, None
        if comm is not None:
            comm.on_close(None)
        for future in self._pending.values():
            if not future.done():
                future.set_exception(ConnectionError("the notebook front-end went away"))
        self._pending.clear()
        if comm is not None:
            with contextlib.suppress(Exception):
                comm.close()

    def send(self, data: dict[str, Any]) -> None:
        if self._comm is None:
            raise ToolFailure("The notebook front-end is not connected any more. Read the notebook again.")
        self._comm.send(data)

    async def request(self, frontend: Frontend, op: str, args: dict[str, Any]) -> dict[str, Any]:
        if frontend is not self._frontend or self._comm is None:
            raise ToolFailure("The notebook front-end changed (a reload?). Read the notebook again.")
        rid = f"r{next(self._ids)}"
        loop = asyncio.get_running_loop()
        future: asyncio.Future[dict[str, Any]] = loop.create_future()
        self._pending[rid] = future
        try:
            self.send({"type": "request", "id": rid, "to": frontend.client, "op": op, **args})
            reply = await asyncio.wait_for(future, REQUEST_TIMEOUT)
        except TimeoutError:
            self._close()
            raise _NoAnswer(op) from None
        except ConnectionError as exc:
            raise ToolFailure(f"{exc}. Reopen the notebook, then retry.") from None
        finally:
            self._pending.pop(rid, None)
        if not reply.get("ok"):
            raise ToolFailure(str(reply.get("error") or f"The notebook front-end refused {op}."))
        result = reply.get("result")
        return result if isinstance(result, dict) else {}

    def _on_msg(self, msg: dict[str, Any]) -> None:
        data = (msg.get("content") or {}).get("data") or {}
        if not isinstance(data, dict):
            return
        self._on_loop(self._handle, data)

    def _on_close(self, _msg: Any) -> None:
        """Keep the comm: the close may come from another client of the kernel (see the module doc)."""
        comm = self._comm
        if comm is None:
            return
        with contextlib.suppress(Exception):
            from comm import get_comm_manager

            comm._closed = False
            get_comm_manager().register_comm(comm)

    def _on_loop(self, fn: Callable[..., None], *args: Any) -> None:
        """Comm handlers may run in a kernel subshell's thread: futures belong to the main loop."""
        loop = self.loop
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if loop is None or running is loop:
            fn(*args)
        else:
            loop.call_soon_threadsafe(fn, *args)

    def _learn(self, shown: str) -> None:
        """The front-end's path for the notebook (JupyterLab's is relative to the server's root; the
        kernel runs in the notebook's folder) -> the kernel's notebook, when it did not know it."""
        if self._attach is None or self._notebook() is not None or not shown.endswith(".ipynb"):
            return
        given = Path(shown).expanduser()
        options = [given] if given.is_absolute() else [Path.cwd() / given, Path.cwd() / given.name]
        for option in options:
            if option.is_file():
                with contextlib.suppress(Exception):
                    self._attach(option)
                return

    def _handle(self, data: dict[str, Any]) -> None:
        kind = data.get("type")
        if kind == "ready":
            if self._frontend is None:
                self._frontend = Frontend(
                    self,
                    str(data.get("client") or ""),
                    str(data.get("frontend") or "front-end"),
                    str(data.get("path") or ""),
                )
                self._missed_at = 0.0
                self._learn(self._frontend.path)
            if self._ready is not None and not self._ready.done():
                self._ready.set_result(self._frontend)
        elif kind == "reply":
            future = self._pending.get(str(data.get("id")))
            if future is not None and not future.done():
                future.set_result(data)
        else:
            _log.debug("nbagent.notebook: unexpected message %r", kind)
