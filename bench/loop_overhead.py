"""Harness overhead per step: a 200-step session of `echo` shell calls against a zero-latency scripted model.

Runs the real CLI (`nbagent run --output-format stream-json`) as a child process, timestamps each step as
its event line arrives, and reads the child's peak RSS.

    .venv/bin/python -m bench.loop_overhead [STEPS]
"""

from __future__ import annotations

import itertools
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

from nbagent.providers.scripted import ListScript, Reply, ScriptedModelServer, ToolCallSpec


def main(steps: int = 200) -> None:
    replies = [
        Reply(tool_calls=[ToolCallSpec("bash", {"command": f"echo step {i}"})]) for i in range(steps - 1)
    ]
    replies.append(Reply(text="done"))
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    with tempfile.TemporaryDirectory() as tmp, ScriptedModelServer(ListScript(replies)) as server:
        proc = subprocess.Popen(
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
                "--yes",
                "--max-steps",
                str(steps + 5),
                "--output-format",
                "stream-json",
                "echo a lot",
            ],
            stdout=subprocess.PIPE,
            cwd=tmp,
            env=env,
            text=True,
        )
        assert proc.stdout is not None
        stamps: list[float] = []
        for line in proc.stdout:
            if json.loads(line)["type"] == "step_started":
                stamps.append(time.perf_counter())
        proc.wait()
        served = [r.served * 1000 for r in server.requests]
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    gaps = [(b - a) * 1000 for a, b in itertools.pairwise(stamps)]
    harness = [g - s for g, s in zip(gaps, served, strict=False)]
    print(f"steps: {len(stamps)} (exit {proc.returncode})")
    print(
        f"ms per step, first 20: median {statistics.median(gaps[:20]):.1f}, mean {statistics.mean(gaps[:20]):.1f}"
    )
    print(
        f"ms per step, last 20:  median {statistics.median(gaps[-20:]):.1f}, mean {statistics.mean(gaps[-20:]):.1f}"
    )
    print(f"ms per step, all:      median {statistics.median(gaps):.1f}")
    print(
        f"of which the scripted server's own time: median {statistics.median(served[:20]):.1f} (first 20),"
        f" {statistics.median(served[-20:]):.1f} (last 20)"
    )
    print(
        f"harness overhead (step minus server time): first 20 median {statistics.median(harness[:20]):.1f},"
        f" last 20 median {statistics.median(harness[-20:]):.1f}"
    )
    print(f"peak RSS of the nbagent process: {peak_mb:.0f} MB")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 200)
