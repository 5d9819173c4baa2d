"""Start-up figures: `import nbagent` time and the time for `nbagent run` to send its first request.

.venv/bin/python -m bench.startup
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time

from nbagent.providers.scripted import ListScript, Reply, ScriptedModelServer

RUNS = 7


def _time(cmd: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True)
    return time.perf_counter() - start


def import_time() -> tuple[float, float]:
    bare = statistics.median(_time([sys.executable, "-c", "pass"]) for _ in range(RUNS))
    full = statistics.median(_time([sys.executable, "-c", "import nbagent"]) for _ in range(RUNS))
    return bare, full


def first_request_time() -> float:
    samples = []
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(3):
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
                    env=env,
                )
                samples.append(server.requests[0].received - start)
    return statistics.median(samples)


def main() -> None:
    bare, full = import_time()
    print(f"python -c pass:                 {bare * 1000:7.1f} ms (median of {RUNS})")
    print(
        f"python -c 'import nbagent':     {full * 1000:7.1f} ms  -> import nbagent costs {max(0.0, full - bare) * 1000:.1f} ms"
    )
    print(
        f"nbagent run -> first request:   {first_request_time() * 1000:7.1f} ms (median of 3, process start to request received)"
    )


if __name__ == "__main__":
    main()
