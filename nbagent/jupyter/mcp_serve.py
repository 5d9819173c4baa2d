"""``%agent /mcp-serve``: the notebook's live kernel served to other agents over MCP.

Claude Code, OpenCode or Codex connect to ``http://127.0.0.1:PORT/mcp`` with the bearer token printed
once in the cell and call the notebook tools (``python``, ``inspect``, ``read``, ``notebook_edit``,
``notebook_run``): nbagent's own tool objects, run on the kernel's event loop (the main thread, where
the user's code lives) with the notebook session's tool context. Its permission rules apply; a question
appears as a prompt in the cell that started the server (the session's broker and the usual widget),
with each call the other agent made. ``%agent /mcp-serve stop`` stops the server.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from nbagent.core.errors import PermissionRejected, ToolFailure
from nbagent.core.events import Event, ToolCallCompleted, ToolCallError, ToolCallRunning
from nbagent.core.messages import new_id
from nbagent.core.tool_steps import Prepared, Refused, finish_call, prepare_call
from nbagent.ext.mcp_server import HttpServer, ToolOutcome, ToolServer, client_snippets, new_token
from nbagent.jupyter.cells import CellError, CellOptions
from nbagent.tools.base import PermissionQuery, Tool, ToolContext

if TYPE_CHECKING:
    from nbagent.core.session import Session
    from nbagent.jupyter.agent import NotebookAgent

SERVED = ("python", "inspect", "read", "notebook_edit", "notebook_run")
NO_MODEL = "none/mcp-serve"  # the session only runs tools here: no model is called
CALL_TIMEOUT = 24 * 3600.0


class _Forward(asyncio.Queue[Event]):
    """Where the session's events go during a served call: the serve cell's view."""

    def __init__(self, sink: Any) -> None:
        super().__init__()
        self._sink = sink

    def put_nowait(self, item: Event) -> None:
        self._sink(item)


class KernelMCP:
    """One kernel's MCP server: tools run on the kernel's loop; prompts show in the serve cell."""

    def __init__(self, agent: NotebookAgent, loop: asyncio.AbstractEventLoop, *, port: int = 0) -> None:
        self.agent = agent
        self.loop = loop
        self.token = new_token()
        self._own_session: Session | None = None
        self._view: Any = None
        self._calls: set[asyncio.Task[Any]] = set()
        tools = [t for t in _notebook_tools() if t.name in SERVED]
        self.http = HttpServer(
            ToolServer(tools, self._from_http), self.token, port=port, on_first_use=self._connected
        )
        self._closing: asyncio.Future[None] | None = None
        self._banner: Any = None  # the display showing the token: masked once a client used it

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the server; show the address and the token (only until a client first uses it: the
        notebook keeps no secret) and the view of the calls."""
        from nbagent.jupyter.agent import _display

        self.http.start()
        text = self.banner(self.token)
        self._banner = _display({"text/markdown": text, "text/plain": text}, raw=True, display_id=True)
        self.show_view()

    def _connected(self) -> None:
        """On the server's thread, at the first request with the token."""
        self.loop.call_soon_threadsafe(self._mask, "A client connected; the token is no longer shown.")

    def _mask(self, why: str) -> None:
        if self._banner is None:
            return
        text = self.banner("<token hidden>") + f"\n{why}\n"
        self._banner.update({"text/markdown": text, "text/plain": text}, raw=True)
        self._banner = None

    def show_view(self) -> None:
        """The view of the served calls and their permission prompts, shown in the running cell."""
        from nbagent.jupyter.agent import _display, _widgets_enabled

        if not _widgets_enabled():
            return
        from nbagent.jupyter.widgets import TurnView

        self._view = TurnView(model="MCP client", on_reply=self._on_reply, on_stop=self._on_stop)
        _display(self._view.widget)

    def stop(self) -> None:
        self.http.stop()
        self._mask("The server stopped.")
        for fut in list(self._calls):
            fut.cancel()
        if self._view is not None:
            self._view.close()
            self._view = None
        own, self._own_session = self._own_session, None
        if own is not None:  # the tools' session of a notebook without a model: its shells end here
            self._closing = asyncio.ensure_future(own.close())

    def banner(self, token: str) -> str:
        snippets = client_snippets(self.http.url, token)
        return (
            f"Serving this kernel over MCP at `{self.http.url}` (127.0.0.1 only) with the tools"
            f" {', '.join(f'`{n}`' for n in SERVED)}. The bearer token is shown until a client uses it; "
            "`%agent /mcp-serve stop` ends it. Permission prompts appear below.\n\n"
            f"Claude Code:\n\n```\n{snippets['claude']}\n```\n\n"
            f"OpenCode (`opencode.json`):\n\n```json\n{snippets['opencode']}\n```\n\n"
            f"Codex:\n\n```\n{snippets['codex']}\n```\n"
        )

    # -- calls ----------------------------------------------------------------------------------

    async def _from_http(self, name: str, data: dict[str, Any]) -> ToolOutcome:
        """On the server's thread: the call runs on the kernel's loop (the main thread)."""
        fut = asyncio.run_coroutine_threadsafe(self.run(name, data), self.loop)
        try:
            return await asyncio.wait_for(asyncio.wrap_future(fut), CALL_TIMEOUT)
        except asyncio.CancelledError:
            if fut.cancelled() and not _cancelling():  # stopped in the notebook, not by the client
                return ToolOutcome(error="The call was stopped in the notebook (Stop or a kernel interrupt).")
            fut.cancel()
            raise
        except BaseException as exc:
            return ToolOutcome(error=f"The call failed in the kernel: {type(exc).__name__}: {exc}")

    def session(self) -> Session:
        agent = self.agent
        if agent.session is not None:
            return agent.session
        if self._own_session is not None:
            return self._own_session
        try:
            return agent.session_for(CellOptions(), None, None)[0]
        except CellError as exc:
            if "No model configured" not in str(exc):
                raise
        # No model: a session of the notebook's own (tools, rules, kernel) that never calls one.
        self._own_session = agent.tools_session(NO_MODEL)
        return self._own_session

    async def run(self, name: str, data: dict[str, Any]) -> ToolOutcome:
        """One served call, on the kernel's loop, as the agent loop runs a tool: hooks, plugins, rules,
        scrubbing (``core/tool_steps.py``); its card and any question show in the serve cell."""
        try:
            session = self.session()
        except CellError as exc:
            return ToolOutcome(error=f"{exc} {exc.hint}".strip())
        tool: Tool[Any] | None = session.tools_by_name.get(name)
        if tool is None:
            return ToolOutcome(error=f"The notebook session has no tool '{name}'.")
        call_id = new_id("mcp")
        show = self._sink()
        show(ToolCallRunning(session_id=session.id, call_id=call_id, tool=name, input=data))
        task = asyncio.current_task()
        if task is not None:
            self._calls.add(task)  # Stop in the cell cancels it, a slow hook included
        try:
            with contextlib.ExitStack() as forward:
                if not session.busy:  # questions and hook notices reach the serve cell (in a turn: its view)
                    forward.enter_context(session.event_target(_Forward(show)))
                return await self._run(session, tool, call_id, data)
        except asyncio.CancelledError:
            self._failed(session, call_id, name, data, "Stopped in the notebook.")
            raise
        finally:
            if task is not None:
                self._calls.discard(task)

    async def _run(
        self, session: Session, tool: Tool[Any], call_id: str, data: dict[str, Any]
    ) -> ToolOutcome:
        name = tool.name
        prepared = await prepare_call(session, tool, data)
        if isinstance(prepared, Refused):
            return self._failed(session, call_id, name, prepared.data, prepared.reason)
        data = prepared.data
        try:
            ctx = self._context(session, call_id, prepared)
            result = await tool.run(prepared.args, ctx)
        except (PermissionRejected, ToolFailure) as exc:
            return self._failed(session, call_id, name, data, str(exc))
        except Exception as exc:
            return self._failed(session, call_id, name, data, f"The tool failed: {type(exc).__name__}: {exc}")
        done = await finish_call(session, tool, data, result, ctx, memory_note=False)
        result = result.model_copy(
            update={"output": done.output, "title": done.title, "metadata": done.metadata}
        )
        self._sink()(
            ToolCallCompleted(
                session_id=session.id,
                call_id=call_id,
                tool=name,
                input=data,
                output=done.output,
                title=done.title,
                metadata=done.metadata,
                attachments=result.attachments,
            )
        )
        return ToolOutcome(result=result)

    def _context(self, session: Session, call_id: str, prepared: Prepared) -> ToolContext:
        """The session's tool context (a PreToolUse hook's decision applies); without a view to ask in,
        a question the rules leave open is refused with the way to allow it."""
        ctx = session.tool_context(call_id, prepared.decision, prepared.reason)
        if self._view is not None or session.busy:
            return ctx

        async def ask(query: PermissionQuery) -> None:
            action = session.policy.evaluate(query).action
            if prepared.decision == "allow" or (action == "allow" and prepared.decision != "ask"):
                return
            if action == "deny":
                await ctx.ask(query)  # raises with the broker's own message (the rule that denies)
            target = ", ".join(query.patterns) or query.permission
            raise PermissionRejected(
                f"{query.permission} {target} needs a permission prompt, and {self.no_prompt()}, or allow"
                f' "{query.permission}" in nbagent.json ("permission").'
            )

        return replace(ctx, ask=ask)

    def no_prompt(self) -> str:
        """Why no prompt can be shown, and the first fix."""
        return "this notebook cannot show one (ipywidgets is missing or NBAGENT_NO_WIDGETS=1). Install ipywidgets"

    def _failed(
        self, session: Session, call_id: str, name: str, data: dict[str, Any], error: str
    ) -> ToolOutcome:
        error = session.scrub(error)
        self._sink()(
            ToolCallError(session_id=session.id, call_id=call_id, tool=name, input=data, error=error)
        )
        return ToolOutcome(error=error)

    # -- the serve cell -------------------------------------------------------------------------

    def _sink(self) -> Any:
        """Applies an event to the serve cell's view (nothing without widgets)."""
        view = self._view
        return view.apply if view is not None else (lambda _e: None)

    def _on_reply(self, request_id: str, kind: str, feedback: str) -> None:
        def reply() -> None:
            with contextlib.suppress(KeyError):  # answered already
                self.session().reply(request_id, kind, feedback)  # type: ignore[arg-type]

        self.loop.call_soon_threadsafe(reply)

    def _on_stop(self) -> None:
        from nbagent.jupyter.kernel import stop_running_code

        stop_running_code()
        for fut in list(self._calls):
            self.loop.call_soon_threadsafe(fut.cancel)


def _cancelling() -> bool:
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


def _notebook_tools() -> list[Tool[Any]]:
    from nbagent.jupyter.agent_sessions import notebook_tools

    return notebook_tools()


_servers: dict[int, KernelMCP] = {}


def serving(agent: NotebookAgent) -> str | None:
    """The URL this kernel is served at over MCP (``/mcp-serve``), or None."""
    server = _servers.get(id(agent))
    return server.http.url if server is not None and server.http.running else None


def mcp_serve_command(agent: NotebookAgent, arg: str, show: Callable[[str], None]) -> None:
    """``%agent /mcp-serve [stop]``: start (or stop) this kernel's MCP server."""
    current = _servers.get(id(agent))
    if arg.strip() == "stop":
        if current is None:
            show("No MCP server runs in this kernel.")
            return
        current.stop()
        del _servers[id(agent)]
        _tell_sidebars(agent)
        show("The MCP server stopped.")
        return
    if arg.strip():
        raise CellError(
            f"Unknown /mcp-serve argument: {arg}", "Use `%agent /mcp-serve` or `/mcp-serve stop`."
        )
    if current is not None and current.http.running:
        show(
            f"An MCP server already serves this kernel at `{current.http.url}` (its token was shown when it"
            " started). `%agent /mcp-serve stop`, then `%agent /mcp-serve` for a new token."
        )
        return
    server = KernelMCP(agent, asyncio.get_event_loop())
    try:
        server.start()
    except OSError as exc:
        raise CellError(str(exc), "Try again (a free port is picked each time).") from exc
    _servers[id(agent)] = server
    _tell_sidebars(agent)


def _tell_sidebars(agent: NotebookAgent) -> None:
    """The sidebar's MCP section shows whether this kernel is served."""
    bridge = sys.modules.get("nbagent.jupyter.bridge")
    if bridge is not None:
        bridge.status_changed(agent.shell)
