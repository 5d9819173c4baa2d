"""Model-map figures: time to look up a model's limits in a fresh process, and to load the price map
(moved here from tests/providers/test_models.py, which keeps the "never imports litellm" test).

.venv/bin/python -m bench.model_info

Target: a lookup in a fresh process about 10 ms (well under 250 ms); the map loads in under 100 ms.
"""

from __future__ import annotations

import statistics
import subprocess
import sys

from nbagent.providers import models

RUNS = 5
CODE = (
    "import sys, time; from nbagent.providers import models; "
    "t = time.perf_counter(); models.model_info('anthropic/claude-sonnet-4-5'); "
    "print(time.perf_counter() - t, 'litellm' in sys.modules)"
)


def main() -> None:
    fresh = []
    for _ in range(RUNS):
        out = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, check=True)
        seconds, imported = out.stdout.split()
        assert imported == "False", "model_info imported litellm"
        fresh.append(float(seconds))
    loads = [models.load_seconds() for _ in range(RUNS)]
    print("                                    median      best")
    print(
        f"model_info in a fresh process   {statistics.median(fresh) * 1000:7.1f} ms {min(fresh) * 1000:7.1f} ms"
    )
    print(
        f"price map load (load_seconds)   {statistics.median(loads) * 1000:7.1f} ms {min(loads) * 1000:7.1f} ms"
    )


if __name__ == "__main__":
    main()
