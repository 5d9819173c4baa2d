"""Start-up figures: `import nbagent` time and the time for `nbagent run` to send its first request.

.venv/bin/python -m bench.startup

The processes run with bytecode caching on (in a temporary ``PYTHONPYCACHEPREFIX``, after a warm-up
run), as an installed nbagent does: with ``PYTHONDONTWRITEBYTECODE=1`` every module would be compiled
from source on each start, which is not what users see. Medians and minimums are reported: on a busy
machine the minimum is the steadier figure.
"""

from __future__ import annotations

import atexit
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

from nbagent.providers.scripted import ListScript, Reply, ScriptedModelServer

RUNS = 7
REQUEST_RUNS = 7
_PYCACHE = tempfile.mkdtemp(prefix="nbagent-bench-pycache-")
atexit.register(shutil.rmtree, _PYCACHE, True)
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
ENV.update({"PYTHONPYCACHEPREFIX": _PYCACHE, "LITELLM_LOCAL_MODEL_COST_MAP": "True"})


def _time(cmd: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True, env=ENV)
    return time.perf_counter() - start


def import_time() -> tuple[float, float]:
    _time([sys.executable, "-c", "import nbagent.cli"])  # warm-up: writes the bytecode cache
    bare = statistics.median(_time([sys.executable, "-c", "pass"]) for _ in range(RUNS))
    full = statistics.median(_time([sys.executable, "-c", "import nbagent"]) for _ in range(RUNS))
    return bare, full


def first_request_times() -> list[float]:
    """Seconds from process start to the first request, per run (after one warm-up run)."""
    samples = []
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(REQUEST_RUNS + 1):
            with ScriptedModelServer(ListScript([], fallback=Reply(text="ok"))) as server:
                start = time.time()
                subprocess.run(
                    [
                        sys.executable,
                        "-m",
                        "nbagent",
                        "run",
                        "-m",
                        "openai/scripted",
                        "--api-base",
                        server.openai_base,
                        "--api-key",
                        "k",
                        "--output-format",
                        "json",
                        "hi",
                    ],
                    check=True,
                    capture_output=True,
                    cwd=tmp,
                    env=ENV,
                )
                samples.append(server.requests[0].received - start)
    return samples[1:]


def main() -> None:
    bare, full = import_time()
    print(f"python -c pass:                 {bare * 1000:7.1f} ms (median of {RUNS})")
    print(
        f"python -c 'import nbagent':     {full * 1000:7.1f} ms  -> import nbagent costs {max(0.0, full - bare) * 1000:.1f} ms"
    )
    samples = first_request_times()
    print(
        f"nbagent run -> first request:   {statistics.median(samples) * 1000:7.1f} ms median,"
        f" {min(samples) * 1000:.1f} ms min (of {len(samples)}, process start to request received)"
    )


if __name__ == "__main__":
    main()
