"""Per-request overhead of the native client against litellm, over a growing history.

The scripted model runs in a child process, so this process's CPU time per request is the
client's own work: building and serializing the request, parsing the stream, usage and cost.
Also prints the time from process start to the first request leaving, for each backend.

    .venv/bin/python -m bench.provider_overhead [MESSAGES] [REQUESTS] [--nagle]

The scripted server normally leaves Nagle's algorithm on; its many small SSE writes then wait for
the client's delayed ACK (~40 ms a request). This bench turns it off unless given --nagle.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from typing import Any

from nbagent.providers.base import ModelRequest, StepDone

SERVER = """
import sys
from nbagent.providers.scripted import ListScript, Reply, ScriptedModelServer, ToolCallSpec
handler_class = ScriptedModelServer._handler_class
def no_nagle(self):  # small SSE writes + Nagle + the client's delayed ACK cost ~40 ms a request
    cls = handler_class(self)
    cls.disable_nagle_algorithm = True
    return cls
if "--nagle" not in sys.argv:
    ScriptedModelServer._handler_class = no_nagle
reply = Reply(text="Running the tests now.", tool_calls=[ToolCallSpec("bash", {"command": "pytest -q"})])
with ScriptedModelServer(ListScript([], fallback=reply)) as server:
    print(server.url, flush=True)
    sys.stdin.read()
"""

FIRST_REQUEST = """
import asyncio, sys, time
start = time.time()
from nbagent.providers.base import ModelRequest
if sys.argv[1] == "native":
    from nbagent.providers.native import NativeProvider as Provider
else:
    from nbagent.providers.litellm_provider import LiteLLMProvider as Provider
async def main():
    provider = Provider()
    request = ModelRequest(model=sys.argv[2], messages=[{"role": "user", "content": "hi"}], tools=[],
                           api_base=sys.argv[3], api_key="k")
    async for _ in provider.stream(request):
        print(time.time() - start, flush=True)
        break
asyncio.run(main())
"""


def history(messages: int) -> list[dict[str, Any]]:
    """A coding session: a long system prompt, then tool calls with their (1-2 KB) results."""
    out: list[dict[str, Any]] = [
        {"role": "system", "content": "You are a coding agent. Follow the rules. " * 200},
        {"role": "user", "content": "Fix the failing tests in the parser module."},
    ]
    i = 0
    while len(out) < messages:
        call_id = f"call_{i}"
        out.append(
            {
                "role": "assistant",
                "content": f"Step {i}: reading the next file.",
                "tool_calls": [
                    {
                        "id": call_id,
                        "type": "function",
                        "function": {
                            "name": "read",
                            "arguments": json.dumps({"file_path": f"src/mod_{i}.py"}),
                        },
                    }
                ],
            }
        )
        out.append(
            {"role": "tool", "tool_call_id": call_id, "content": f"{i:>6}\tdef f_{i}(x): return x\n" * 60}
        )
        i += 1
    return out[:messages]


TOOLS = [
    {
        "type": "function",
        "function": {
            "name": name,
            "description": f"The {name} tool. " * 20,
            "parameters": {"type": "object", "properties": {"file_path": {"type": "string"}}},
        },
    }
    for name in ("read", "write", "edit", "bash", "grep", "glob", "webfetch", "todowrite")
]


async def measure(provider: Any, request: ModelRequest, count: int) -> tuple[float, float]:
    """Median wall ms and median client CPU ms per request."""
    walls, cpus = [], []
    for _ in range(count + 3):
        wall, cpu = time.perf_counter(), time.process_time()
        async for chunk in provider.stream(request):
            if isinstance(chunk, StepDone):
                assert chunk.tool_calls, "the scripted reply has a tool call"
        walls.append((time.perf_counter() - wall) * 1000)
        cpus.append((time.process_time() - cpu) * 1000)
    return statistics.median(walls[3:]), statistics.median(cpus[3:])


def first_request(backend: str, model: str, base: str) -> float:
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    runs = []
    for _ in range(3):
        out = subprocess.run(
            [sys.executable, "-c", FIRST_REQUEST, backend, model, base],
            capture_output=True,
            text=True,
            env=env,
        )
        runs.append(float(out.stdout.split()[0]))
    return statistics.median(runs)


async def compare(url: str, messages: int, count: int) -> None:
    from nbagent.providers.litellm_provider import LiteLLMProvider
    from nbagent.providers.native import NativeProvider

    native = NativeProvider()
    try:
        print(
            f"{'protocol':<10} {'messages':>8} {'KB':>6} | {'native wall':>11} {'cpu':>6} |"
            f" {'litellm wall':>12} {'cpu':>6}"
        )
        for protocol, model, base in (
            ("openai", "openai/gpt-4.1", f"{url}/v1"),
            ("anthropic", "anthropic/claude-sonnet-4-5", url),
        ):
            for size in sorted({10, 50, 100, messages}):
                request = ModelRequest(
                    model=model, messages=history(size), tools=TOOLS, api_base=base, api_key="k"
                )
                kb = len(json.dumps(request.messages)) / 1024
                n_wall, n_cpu = await measure(native, request, count)
                l_wall, l_cpu = await measure(LiteLLMProvider(), request, count)
                print(
                    f"{protocol:<10} {size:>8} {kb:>6.0f} | {n_wall:>9.1f}ms {n_cpu:>4.1f}ms |"
                    f" {l_wall:>10.1f}ms {l_cpu:>4.1f}ms"
                )
    finally:
        await native.close()


def main(messages: int, count: int) -> None:
    from nbagent.providers.litellm_provider import litellm_module

    litellm_module()  # import outside the timings
    server = subprocess.Popen(
        [sys.executable, "-c", SERVER, *sys.argv[3:]],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert server.stdout is not None and server.stdin is not None
    try:
        url = server.stdout.readline().strip()
        asyncio.run(compare(url, messages, count))
        print("\nprocess start -> first chunk of the first request (median of 3):")
        for backend in ("native", "litellm"):
            print(f"  {backend:<8} {first_request(backend, 'openai/gpt-4.1', f'{url}/v1') * 1000:7.0f} ms")
    finally:
        server.stdin.close()
        server.wait(timeout=10)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 200, int(sys.argv[2]) if len(sys.argv) > 2 else 20)
