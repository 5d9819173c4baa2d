"""Bytes a `%%agent` turn adds to the .ipynb when a tool prints about 1 MB, by output mimetype.

Two figures per case: the whole file's growth when a new notebook runs its first turn (which also
writes the kernel's ``language_info``, nbclient's timing metadata and the session's entry in
``metadata.nbagent``), and the bytes a later turn of the same session adds (its cell output and what
it adds to ``metadata.nbagent``): the per-turn growth.

.venv/bin/python -m bench.notebook_turn_size
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import nbformat

from nbagent.providers.scripted import ListScript, Reply, ScriptedModelServer, ToolCallSpec
from nbagent.store.notebook import METADATA_KEY, build_metadata

CASES = {
    "bash: seq 1 200000 (1.3 MB)": ToolCallSpec("bash", {"command": "seq 1 200000"}),
    "python: print 1 MB": ToolCallSpec(
        "python", {"code": "print('x' * 100 + '\\n' * 0, end='')\nfor i in range(10_000): print('y' * 100)"}
    ),
}


def _without_last_turn(nb: Any) -> Any:
    """The notebook as it was before its last cell's turn: no outputs there, the index without it."""
    before = copy.deepcopy(nb)
    before.cells[-1]["outputs"] = []
    before.metadata[METADATA_KEY] = build_metadata(before)
    return before


def _size(nb: Any) -> int:
    return len(nbformat.writes(nb).encode())


def measure(name: str, call: ToolCallSpec, tmp: Path) -> None:
    nb_path = tmp / "size.ipynb"
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell("%load_ext nbagent"),
        nbformat.v4.new_code_cell("%%agent\nshow me"),
        nbformat.v4.new_code_cell("%%agent\nshow me again"),
    ]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, str(nb_path))
    first_only = copy.deepcopy(nb)
    first_only.cells = first_only.cells[:2]
    script = ListScript(
        [
            Reply(text="Running it.", tool_calls=[call]),
            Reply(text="That was a lot of output."),
            Reply(text="Once more.", tool_calls=[call]),
            Reply(text="The same again."),
        ]
    )
    with ScriptedModelServer(script) as server:
        env = {
            **os.environ,
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
            "NBAGENT_MODEL": "openai/scripted",
            "NBAGENT_API_BASE": server.openai_base,
        }
        subprocess.run(
            [sys.executable, "-m", "nbagent", "execute", "--yes", str(nb_path)],
            env=env,
            check=True,
            capture_output=True,
        )
    done = nbformat.read(str(nb_path), as_version=4)
    later = _size(done) - _size(_without_last_turn(done))
    one_turn = _without_last_turn(done)
    one_turn.cells = one_turn.cells[:2]
    first = _size(one_turn) - _size(first_only)
    data = done.cells[2]["outputs"][0]["data"]
    parts = ", ".join(f"{k} {len(json.dumps(v)):,}" for k, v in data.items())
    meta = len(json.dumps(done.metadata.get(METADATA_KEY, {})))
    print(f"{name}:")
    print(f"  first turn of a new notebook: +{first:,} bytes in the .ipynb (nbclient metadata included)")
    print(f"  a later turn:                 +{later:,} bytes ({parts}; metadata.nbagent now {meta:,})")


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        for name, call in CASES.items():
            measure(name, call, Path(tmp))


if __name__ == "__main__":
    main()
