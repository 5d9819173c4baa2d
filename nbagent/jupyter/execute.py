"""``nbagent execute [--replay] NOTEBOOK``: run a notebook headless (nbclient), then write ``metadata.nbagent``.

The kernel learns the notebook's path (``NBAGENT_NOTEBOOK``), so ``%%agent`` cells can resume and
replay from it, and each execute request carries the cell id, as JupyterLab sends it. The client is the
notebook's front-end for the agent's live-document requests (:mod:`nbagent.jupyter.headless`). Permission
prompts cannot be answered here: ``--yes`` allows them, otherwise they are denied (and the
transcript says so); the project's own hooks run only with ``--trust-project`` or in a folder trusted
with ``nbagent trust``. With ``--replay`` the recorded model replies drive every ``%%agent`` cell: no
model is called; tool results that differ from the recording are reported (``--strict`` fails on them).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

EXIT_OK, EXIT_ERROR, EXIT_DIVERGED = 0, 1, 4


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "notebook", type=Path, help="the .ipynb to execute (written back in place unless --output)"
    )
    p.add_argument("--replay", action="store_true", help="replay the recorded model replies (no model calls)")
    p.add_argument("--output", "-o", type=Path, default=None, help="write the executed notebook here instead")
    p.add_argument("--yes", "-y", action="store_true", help="allow permission prompts (default: deny them)")
    p.add_argument(
        "--trust-project",
        action="store_true",
        help="run the project's own hooks without asking, for this run (--yes does not do this)",
    )
    p.add_argument("--strict", action="store_true", help="with --replay: exit 4 when a tool result diverges")
    p.add_argument("--timeout", type=float, default=600, help="seconds per cell (default 600)")
    p.add_argument("--kernel", default=None, help="kernel name (default: the notebook's, else python3)")


def run_from_args(args: argparse.Namespace) -> int:
    return execute_notebook(
        args.notebook,
        replay=args.replay,
        output=args.output,
        allow=args.yes,
        trust_project=args.trust_project,
        strict=args.strict,
        timeout=args.timeout,
        kernel_name=args.kernel,
    )


def _install_cell_ids(client: Any) -> None:
    """Make the client's execute requests carry ``metadata.cellId`` (nbclient does not send it)."""
    current: dict[str, str | None] = {"id": None}

    async def on_cell_execute(cell: Any, cell_index: int) -> None:
        current["id"] = cell.get("id")

    async def on_notebook_start(notebook: Any) -> None:
        kc = client.kc

        def execute(
            code: str,
            silent: bool = False,
            store_history: bool = True,
            user_expressions: dict[str, Any] | None = None,
            allow_stdin: bool | None = None,
            stop_on_error: bool = True,
        ) -> str:
            content = {
                "code": code,
                "silent": silent,
                "store_history": store_history,
                "user_expressions": user_expressions or {},
                "allow_stdin": kc.allow_stdin if allow_stdin is None else allow_stdin,
                "stop_on_error": stop_on_error,
            }
            metadata = {"cellId": current["id"]} if current["id"] else {}
            msg = kc.session.msg("execute_request", content, metadata=metadata)
            kc.shell_channel.send(msg)
            return str(msg["header"]["msg_id"])

        kc.execute = execute

    client.on_cell_execute = on_cell_execute
    client.on_notebook_start = on_notebook_start


def execute_notebook(
    path: Path,
    *,
    replay: bool = False,
    output: Path | None = None,
    allow: bool = False,
    trust_project: bool = False,
    strict: bool = False,
    timeout: float = 600,
    kernel_name: str | None = None,
) -> int:
    import importlib

    from nbclient.exceptions import CellExecutionError

    from nbagent.jupyter.headless import FrontendClient
    from nbagent.store.notebook import notebook_turns, write_metadata

    nbformat: Any = importlib.import_module("nbformat")

    path = path.expanduser().resolve()
    if not path.is_file():
        print(f"nbagent execute: no notebook at {path}", file=sys.stderr)
        return EXIT_ERROR
    nb = nbformat.read(str(path), as_version=4)
    env = dict(os.environ)
    env.update(
        {
            "NBAGENT_NOTEBOOK": str(path),
            "NBAGENT_HEADLESS": "allow" if allow else "deny",
            "NBAGENT_NO_WIDGETS": "1",  # nobody watches: the static transcript is what gets saved
            "PYDEVD_DISABLE_FILE_VALIDATION": "1",
        }
    )
    if replay:
        env["NBAGENT_REPLAY"] = "1"
    if trust_project:
        env["NBAGENT_TRUST_PROJECT"] = "1"
    name = kernel_name or (nb.metadata.get("kernelspec") or {}).get("name") or "python3"
    client = FrontendClient(  # the notebook's front-end for the agent (the live-document protocol)
        nb,
        path=str(path),
        timeout=int(timeout),
        kernel_name=name,
        resources={"metadata": {"path": str(path.parent)}},
        store_widget_state=False,
    )
    _install_cell_ids(client)
    code = EXIT_OK
    try:
        client.execute(env=env)
    except CellExecutionError as exc:
        print(f"nbagent execute: a cell failed in {path.name}:\n{str(exc)[-2000:]}", file=sys.stderr)
        code = EXIT_ERROR
    meta = write_metadata(nb)
    nbformat.validate(nb)
    target = (output or path).expanduser().resolve()
    nbformat.write(nb, str(target))
    turns = notebook_turns(nb)
    divergent = [(t, d) for t in turns if t.record.replay for d in t.record.replay.divergent]
    mode = "replayed" if replay else "executed"
    print(
        f"nbagent execute: {mode} {path.name}: {len(turns)} agent turns in {len(meta['sessions'])} session(s)"
        f"{f', {len(divergent)} divergent tool results' if replay else ''}; wrote {target}"
    )
    for turn, d in divergent:
        print(
            f"  cell {turn.index + 1} {d.tool}{f' cell {d.cell_id}' if d.cell_id else ''} ({d.call_id}):\n    recorded: {d.recorded[:300]}\n    now:      {d.replayed[:300]}"
        )
    if code == EXIT_OK and strict and divergent:
        code = EXIT_DIVERGED
    return code
