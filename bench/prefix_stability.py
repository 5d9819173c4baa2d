"""Prompt-cache friendliness over a 30-step scripted session.

For each request, the fraction of its bytes that are a byte-identical prefix of the next request,
averaged; and the share of prompt tokens the scripted server reported as cache reads.

    .venv/bin/python -m bench.prefix_stability
"""

from __future__ import annotations

import asyncio
import itertools
import os
import statistics
import tempfile
from pathlib import Path

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from nbagent.core.config import Config
from nbagent.core.session import Session
from nbagent.providers.scripted import ListScript, Reply, ScriptedModelServer, ToolCallSpec
from nbagent.providers.scripted.server import common_prefix

STEPS = 30


async def run(protocol: str) -> tuple[float, float, float]:
    replies = [
        Reply(text=f"Step {i}.", tool_calls=[ToolCallSpec("bash", {"command": f"seq 1 {20 + i}"})])
        for i in range(STEPS - 1)
    ]
    replies.append(Reply(text="done"))
    with tempfile.TemporaryDirectory() as tmp, ScriptedModelServer(ListScript(replies)) as server:
        model = "openai/scripted" if protocol == "openai" else "anthropic/claude-sonnet-4-5"
        base = server.openai_base if protocol == "openai" else server.anthropic_base
        session = Session(
            Path(tmp), Config(model=model, api_base=base, max_steps=STEPS + 1), api_key="k", headless="allow"
        )
        async for _ in session.run("Count with seq, one step at a time."):
            pass
        await session.close()
        bodies = [r.raw for r in server.requests]
    fractions = [common_prefix(a, b) / len(a) for a, b in itertools.pairwise(bodies)]
    usage = session.usage
    prompt = usage.input_tokens  # the whole prompt, cached parts included
    return statistics.mean(fractions), min(fractions), usage.cache_read_tokens / max(1, prompt)


def main() -> None:
    for protocol in ("openai", "anthropic"):
        mean, low, share = asyncio.run(run(protocol))
        print(
            f"{protocol:<9} {STEPS} steps: mean prefix stability {mean:.3f} (min {low:.3f}); "
            f"cache-read share of prompt tokens {share:.3f}"
        )


if __name__ == "__main__":
    main()
