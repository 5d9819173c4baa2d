"""Bytes a `%%agent` turn adds to the .ipynb when a tool prints about 1 MB, by output mimetype.

.venv/bin/python -m bench.notebook_turn_size
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import nbformat

from nbagent.providers.scripted import ListScript, Reply, ScriptedModelServer, ToolCallSpec

CASES = {
    "bash: seq 1 200000 (1.3 MB)": ToolCallSpec("bash", {"command": "seq 1 200000"}),
    "python: print 1 MB": ToolCallSpec(
        "python", {"code": "print('x' * 100 + '\\n' * 0, end='')\nfor i in range(10_000): print('y' * 100)"}
    ),
}


def measure(name: str, call: ToolCallSpec, tmp: Path) -> None:
    nb_path = tmp / "size.ipynb"
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("%load_ext nbagent"), nbformat.v4.new_code_cell("%%agent\nshow me")]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, str(nb_path))
    before = nb_path.stat().st_size
    script = ListScript(
        [Reply(text="Running it.", tool_calls=[call]), Reply(text="That was a lot of output.")]
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
    after = nb_path.stat().st_size
    done = json.loads(nb_path.read_text())
    data = done["cells"][1]["outputs"][0]["data"]
    parts = ", ".join(f"{k} {len(json.dumps(v)):,}" for k, v in data.items())
    meta = len(json.dumps(done["metadata"].get("nbagent", {})))
    print(f"{name}: +{after - before:,} bytes in the .ipynb ({parts}; metadata.nbagent {meta:,})")


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        for name, call in CASES.items():
            measure(name, call, Path(tmp))


if __name__ == "__main__":
    main()
