"""First visible output after Run, and widget update latency while a reply streams.

First output: the time from sending a ``%%agent`` cell's execute request to the first display message
in that cell, for the first turn of a fresh kernel (the agent's modules load then) and a later one.
Streaming: how long an event waits before the widgets are updated (kernel side), how many updates
reach the frontend, and the gap between them (client side).

.venv/bin/python -m bench.notebook_widget_latency
"""

from __future__ import annotations

import itertools
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from nbagent.providers.scripted import ListScript, Reply, ScriptedModelServer
from tests.jupyter.harness import Kernel, python_env

WORDS = 3000


def _time_displays(kernel: Kernel) -> dict[str, float]:
    """Seconds from Run to the cell's first display and first display update."""
    shown: dict[str, float] = {}
    start = time.perf_counter()

    def on(_k: Kernel, m: dict[str, Any]) -> None:
        kind = m["header"]["msg_type"]
        if kind in ("display_data", "update_display_data") and kind not in shown:
            shown[kind] = time.perf_counter() - start

    kernel.run("%%agent\nsay hi", on_message=on, timeout=60)
    return shown


def first_output() -> None:
    script = ListScript([Reply(text="hi"), Reply(text="hi again")])
    with tempfile.TemporaryDirectory() as tmp, ScriptedModelServer(script) as server:
        env = python_env() | {"NBAGENT_MODEL": "openai/scripted", "NBAGENT_API_BASE": server.openai_base}
        kernel = Kernel(Path(tmp), env)
        try:
            kernel.run("%load_ext nbagent")
            for label in ("first turn of the kernel", "a later turn"):
                shown = _time_displays(kernel)
                view = shown.get("update_display_data")
                print(
                    f"first visible output, {label}: {1000 * shown['display_data']:.0f} ms after Run"
                    + (f", the turn's view {1000 * view:.0f} ms" if view is not None else "")
                )
        finally:
            kernel.close()


def main() -> None:
    first_output()
    text = " ".join(f"word{i}" + ("\n\n" if i % 50 == 49 else "") for i in range(WORDS))
    reply = Reply(text=text, delay=0.002)
    with tempfile.TemporaryDirectory() as tmp, ScriptedModelServer(ListScript([reply])) as server:
        env = python_env() | {"NBAGENT_MODEL": "openai/scripted", "NBAGENT_API_BASE": server.openai_base}
        kernel = Kernel(Path(tmp), env)
        try:
            kernel.run("%load_ext nbagent")
            updates: list[float] = []

            def on(_k: Kernel, m: dict[str, Any]) -> None:
                if m["header"]["msg_type"] == "comm_msg" and "value" in m["content"]["data"].get("state", {}):
                    updates.append(time.perf_counter())

            start = time.perf_counter()
            kernel.run("%%agent\nwrite a lot", on_message=on, timeout=180)
            wall = time.perf_counter() - start
            stats = json.loads(
                kernel.run(
                    "import json, nbagent.jupyter.agent as a; print(json.dumps(a.current_agent().last_stats))"
                ).stdout
            )
        finally:
            kernel.close()
    gaps = [b - a for a, b in itertools.pairwise(updates)]
    print(f"streamed {WORDS} words in {wall:.2f} s: {stats['events']} events, {stats['flushes']} flushes,")
    print(
        f"  kernel side: an event waits {stats['latency_mean_ms']:.1f} ms on average before the widgets update"
        f" (p95 {stats['latency_p95_ms']:.1f} ms, max {stats['latency_max_ms']:.1f} ms)"
    )
    if gaps:
        print(
            f"  client side: {len(updates)} widget value updates received, median gap {1000 * statistics.median(gaps):.0f} ms,"
            f" {stats['bytes_sent'] / 1e6:.2f} MB of widget values sent"
        )


if __name__ == "__main__":
    main()
