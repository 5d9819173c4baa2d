"""``nbagent mcp serve --notebook NB``: serve the live kernel of a notebook open in a running Jupyter server.

The command finds the notebook's session on a Jupyter server of this machine (the servers listed in
Jupyter's runtime directory, or ``--url``/``--token``), connects to its kernel through the kernel's
connection file, and has the kernel start its MCP server (:mod:`nbagent.jupyter.mcp_serve_cli`) in a
silent execution. The address and the token come back in the execution's reply and are printed here,
once, with ready-to-paste client configuration; permission prompts appear in the notebook. The command
stays in the foreground while the server runs: Ctrl+C (or SIGTERM) stops the server, and the command
ends by itself when the server stops in the notebook or the kernel goes away.
"""

from __future__ import annotations

import ast
import json
import os
import secrets
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from nbagent.core.errors import NbagentError
from nbagent.ext.mcp_server import client_snippets

POLL = 1.0  # seconds between checks that the server still runs
START_TIMEOUT = 120.0  # seconds to wait for the kernel (a running cell delays the start)
MODULE = "__import__('nbagent.jupyter.mcp_serve_cli', fromlist=['take_info'])"


class ServeError(NbagentError):
    """``nbagent mcp serve`` cannot go on; the message says what to do."""


@dataclass
class OpenNotebook:
    """A notebook with a kernel in a running Jupyter server."""

    server: str  # the server's base URL
    path: str  # the notebook's path on the server
    local: Path | None  # the file on this machine, when the server's root is known
    kernel_id: str


def _servers(url: str | None, token: str | None) -> list[dict[str, Any]]:
    if url:
        token = token if token is not None else os.environ.get("JUPYTER_TOKEN", "")
        return [{"url": url if url.endswith("/") else url + "/", "token": token, "root_dir": None}]
    from jupyter_server.serverapp import list_running_servers

    return list(list_running_servers())


def _sessions(server: dict[str, Any]) -> list[dict[str, Any]]:
    headers = {"Authorization": f"token {server.get('token') or ''}"}
    try:
        with _http() as http:
            reply = http.get(server["url"] + "api/sessions", headers=headers)
    except httpx.HTTPError as exc:
        raise ServeError(
            f"Cannot reach the Jupyter server at {server['url']}: {exc}.",
            "Is it running? Pass its address with --url (and --token).",
        ) from exc
    if reply.status_code in (401, 403):
        raise ServeError(
            f"The Jupyter server at {server['url']} refused the token ({reply.status_code}).",
            "Pass the server's token with --token (or JUPYTER_TOKEN).",
        )
    try:
        reply.raise_for_status()
        found = reply.json()
    except (httpx.HTTPError, ValueError) as exc:
        raise ServeError(
            f"The Jupyter server at {server['url']} did not list its sessions: {exc}.",
            "Check that the address is a Jupyter server (--url).",
        ) from exc
    if not isinstance(found, list):
        raise ServeError(f"The Jupyter server at {server['url']} answered no list of sessions.", "")
    return [s for s in found if isinstance(s, dict)]


def _http() -> httpx.Client:
    """Straight to the server: no proxy from the environment (the token must not go through one, and a
    proxy would answer for a server that is gone)."""
    return httpx.Client(trust_env=False, timeout=10)


def find_notebook(notebook: Path | None, url: str | None = None, token: str | None = None) -> OpenNotebook:
    """The open notebook ``notebook`` names (a path here), or the only open notebook when it is None."""
    servers = _servers(url, token)
    if not servers:
        raise ServeError(
            "No running Jupyter server was found on this machine.",
            "Start JupyterLab and open the notebook, or pass the server with --url and --token.",
        )
    wanted = notebook.expanduser().resolve() if notebook is not None else None
    seen: list[OpenNotebook] = []
    for server in servers:
        root = Path(server["root_dir"]).expanduser() if server.get("root_dir") else None
        for s in _sessions(server):
            path = str(s.get("path") or (s.get("notebook") or {}).get("path") or "")
            kernel = s.get("kernel") or {}
            if not path.endswith(".ipynb") or not kernel.get("id"):
                continue
            local = (root / path).resolve() if root is not None else None
            seen.append(OpenNotebook(server["url"], path, local, str(kernel["id"])))
    if wanted is None:
        if len(seen) == 1:
            return seen[0]
        listing = "\n".join(f"  {o.local or o.path}" for o in seen) or "  (none)"
        raise ServeError(
            f"{len(seen)} notebooks with a kernel are open; say which one to serve:\n{listing}",
            "nbagent mcp serve --notebook PATH",
        )
    for item in seen:
        if item.local == wanted or (item.local is None and _same_tail(item.path, notebook)):
            return item
    listing = "\n".join(f"  {o.local or o.path}" for o in seen) or "  (none)"
    raise ServeError(
        f"{notebook} is not open with a kernel in a running Jupyter server. Open notebooks:\n{listing}",
        "Open the notebook in JupyterLab (its kernel must be running), then run this again.",
    )


def _same_tail(server_path: str, notebook: Path | None) -> bool:
    if notebook is None:
        return False
    given = Path(notebook).parts
    parts = Path(server_path).parts
    return len(given) <= len(parts) and parts[-len(given) :] == given


def _client(kernel_id: str) -> Any:
    from jupyter_client.blocking.client import BlockingKernelClient
    from jupyter_core.paths import jupyter_runtime_dir

    connection = Path(jupyter_runtime_dir()) / f"kernel-{kernel_id}.json"
    if not connection.is_file():
        raise ServeError(
            f"The kernel's connection file {connection} is not on this machine.",
            "Run nbagent mcp serve on the machine (and as the user) that runs the Jupyter server.",
        )
    client = BlockingKernelClient(connection_file=str(connection))
    client.load_connection_file()
    client.start_channels()
    return client


def _execute(client: Any, code: str, expression: str | None, what: str) -> dict[str, Any]:
    """Run ``code`` silently in the kernel; the reply's content (waits while a cell runs)."""
    expressions = {"nbagent": expression} if expression else {}
    msg_id = client.execute(code, silent=True, store_history=False, user_expressions=expressions)
    deadline = time.monotonic() + START_TIMEOUT
    told = False
    while True:
        try:
            reply = client.get_shell_msg(timeout=3)
        except Exception:  # queue.Empty: the kernel is busy
            if time.monotonic() > deadline:
                raise ServeError(
                    f"The kernel did not {what} within {START_TIMEOUT:.0f} s.",
                    "Is a long cell running? Wait for it or interrupt it, then run this again.",
                ) from None
            if not told:
                print("Waiting for the kernel (a cell is running)...", file=sys.stderr, flush=True)
                told = True
            continue
        if reply.get("parent_header", {}).get("msg_id") == msg_id:
            content: dict[str, Any] = reply["content"]
            return content


def _start_code(notebook: Path | None, port: int, nonce: str) -> str:
    deadline = time.time() + START_TIMEOUT  # a request still queued after it starts nothing
    return (
        "get_ipython().run_line_magic('load_ext', 'nbagent')\n"
        f"await {MODULE}.serve_for_terminal({str(notebook or '')!r}, {port}, {nonce!r}, {deadline!r})\n"
    )


def start(client: Any, target: OpenNotebook, port: int, nonce: str) -> dict[str, Any]:
    """Have the kernel start its MCP server; what it said (url, token, view) or a ServeError. Interrupted
    while the kernel is busy, the start is cancelled by a request queued behind it."""
    code = _start_code(target.local, port, nonce)
    try:
        content = _execute(client, code, f"{MODULE}.take_info()", "start the server")
    except (KeyboardInterrupt, ServeError):
        client.execute(f"{MODULE}.cancel_for_terminal({nonce!r})", silent=True, store_history=False)
        time.sleep(0.2)  # the request leaves before the channels close
        raise
    if content.get("status") != "ok":
        name, value = content.get("ename", "Error"), content.get("evalue", "")
        if name in ("ModuleNotFoundError", "ImportError") and "nbagent" in value:
            raise ServeError(
                f"The notebook's kernel cannot import nbagent ({name}: {value}).",
                "Install nbagent in the kernel's environment (`%pip install nbagent` in the notebook).",
            )
        raise ServeError(f"The kernel could not start the MCP server: {name}: {value}", "")
    shown = (content.get("user_expressions") or {}).get("nbagent") or {}
    text = (shown.get("data") or {}).get("text/plain", "")
    try:
        info: dict[str, Any] = json.loads(ast.literal_eval(text))
    except (ValueError, SyntaxError, TypeError) as exc:
        raise ServeError(f"The kernel gave no answer about the MCP server ({shown}).", "") from exc
    if info.get("error"):
        raise ServeError(str(info["error"]), str(info.get("hint") or ""))
    return info


def _running(url: str) -> bool:
    try:
        with _http() as http:
            http.get(url)  # 401 without the token: the server is there
    except httpx.TransportError:
        return False
    return True


def banner(target: OpenNotebook, info: dict[str, Any]) -> str:
    snippets = client_snippets(info["url"], info["token"])
    where = (
        f"Permission prompts appear in the notebook, in the cell `{info['cell_id']}` ({info['frontend']})."
        if info.get("cell_id")
        else f"Warning: {info.get('warning')}"
    )
    opencode = "\n".join("  " + line for line in snippets["opencode"].splitlines())
    codex = "\n".join("  " + line for line in snippets["codex"].splitlines())
    return (
        f"Serving the kernel of {target.local or target.path} over MCP at {info['url']} (127.0.0.1 only).\n"
        f"Tools: {', '.join(info['tools'])}. nbagent's permission rules apply. {where}\n"
        "The bearer token is in the lines below; it is shown once and stored nowhere.\n\n"
        f"Claude Code:\n  {snippets['claude']}\n\nOpenCode (opencode.json):\n{opencode}\n\n"
        f"Codex:\n{codex}\n\n"
        "Press Ctrl+C to stop serving."
    )


def serve(notebook: Path | None, url: str | None, token: str | None, port: int) -> int:
    """``nbagent mcp serve``: start, print, wait; Ctrl+C (or SIGTERM) stops the server."""
    target = find_notebook(notebook, url, token)
    client = _client(target.kernel_id)
    nonce = secrets.token_hex(8)  # names this terminal's server in the kernel
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        info = start(client, target, port, nonce)
        print(banner(target, info), flush=True)
        try:
            while _running(info["url"]):
                time.sleep(POLL)
            print("The MCP server stopped (in the notebook, or the kernel restarted).", flush=True)
        except KeyboardInterrupt:
            print("\nStopping the MCP server...", file=sys.stderr, flush=True)
            _execute(client, f"{MODULE}.stop_for_terminal({nonce!r})", None, "stop the server")
            print("The MCP server stopped.", flush=True)
    finally:
        signal.signal(signal.SIGTERM, previous)
        client.stop_channels()
    return 0


def _raise_interrupt(_signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt
