"""`%load_ext nbagent` time in a fresh kernel, and the wall time of the first and second `%%agent` turns.

.venv/bin/python -m bench.notebook_load_ext
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

from nbagent.providers.scripted import ListScript, Reply, ScriptedModelServer
from tests.jupyter.harness import Kernel, python_env

RUNS = 3


def main() -> None:
    load, first, second = [], [], []
    with (
        tempfile.TemporaryDirectory() as tmp,
        ScriptedModelServer(ListScript([], fallback=Reply(text="ok"))) as server,
    ):
        env = python_env() | {"NBAGENT_MODEL": "openai/scripted", "NBAGENT_API_BASE": server.openai_base}
        for _ in range(RUNS):
            kernel = Kernel(Path(tmp), env)
            try:
                ex = kernel.run(
                    "import time\nt = time.perf_counter()\nget_ipython().run_line_magic('load_ext', 'nbagent')\n"
                    "print(time.perf_counter() - t)"
                )
                load.append(float(ex.stdout))
                for bucket in (first, second):
                    start = time.perf_counter()
                    assert kernel.run("%%agent\nhello", timeout=120).status == "ok"
                    bucket.append(time.perf_counter() - start)
            finally:
                kernel.close()
    print(
        f"%load_ext nbagent: median {1000 * statistics.median(load):.1f} ms (runs: {', '.join(f'{1000 * x:.1f}' for x in load)})"
    )
    print(f"first %%agent turn (imports litellm): median {statistics.median(first):.2f} s")
    print(f"second %%agent turn: median {1000 * statistics.median(second):.0f} ms")


if __name__ == "__main__":
    main()
