"""Added time per request of the provider normalization (:mod:`nbagent.providers.normalize`).

Per request, both paths run :func:`prepare` on the outgoing request (ids, tool schemas, fields the
target does not take) and fold the reply's deltas through :func:`flatten_delta` and
:class:`CallAssembler`. The wire form of the history is cached per message (and rebuilt once after a
model change), so its model-dependent part (:func:`assistant_extras`) is measured apart, as a one-off.

    .venv/bin/python -m bench.normalize [MESSAGES] [REPEATS]

Target: under 1 ms per request for a 200-message history.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from functools import partial
from typing import Any

from nbagent.core.messages import Message, ReasoningPart, TextPart, ToolCompleted, ToolPart, user_message
from nbagent.providers.base import ModelRequest
from nbagent.providers.normalize import CallAssembler, flatten_delta, prepare
from nbagent.providers.wire import to_openai

TARGETS = {
    "openai (nothing to change)": "openai/gpt-4.1",
    "mistral (every id remapped)": "mistral/devstral-medium",
    "gemini (schemas sanitized)": "openai/gemini-3-pro-preview",
    "anthropic (thinking blocks)": "anthropic/claude-sonnet-4-5",
    "deepseek (reasoning back)": "deepseek/deepseek-reasoner",
}
SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "properties": {"path": {"type": "string", "format": "uri"}, "n": {"type": "integer", "enum": [1, 2]}},
    "required": ["path"],
}


def history(n: int, model: str) -> list[Message]:
    out: list[Message] = [user_message("Fix the failing test in app.py, then run the suite.")]
    i = 0
    while len(out) < n:
        call = ToolPart(
            call_id=f"toolu_01{i:022d}",
            tool="bash",
            state=ToolCompleted(input={"command": f"pytest -q tests/test_{i}.py"}, output="1 passed\n" * 20),
            extra={"extra_content": {"google": {"thought_signature": "c2ln" * 20}}},
        )
        parts: list[Any] = [
            ReasoningPart(text="I should run the tests. " * 5, signature="EqQBCkgIARABGAIiQ" * 4),
            TextPart(text="Running them."),
            call,
        ]
        out.append(Message(role="assistant", model=model, parts=parts))
        i += 1
    return out[:n]


def per_call(fn: Callable[[], object], repeats: int, rounds: int = 5) -> float:
    """Microseconds a call, the best of ``rounds`` (the machine may be shared: the least disturbed)."""
    fn()  # warm caches, as every request after the first does
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(repeats):
            fn()
        best = min(best, (time.perf_counter() - start) / repeats * 1e6)
    return best


def stream_events() -> list[dict[str, Any]]:
    events = [{"choices": [{"delta": {"content": f"word{i} "}, "index": 0}]} for i in range(60)]
    events += [{"choices": [{"delta": {"reasoning_content": f"think{i} "}, "index": 0}]} for i in range(40)]
    for c in range(2):
        events.append(
            {
                "choices": [
                    {
                        "delta": {
                            "tool_calls": [
                                {"index": 0, "id": f"call_{c}", "function": {"name": "bash", "arguments": ""}}
                            ]
                        },
                        "index": 0,
                    }
                ]
            }
        )
        events += [
            {
                "choices": [
                    {
                        "delta": {
                            "tool_calls": [{"index": 0, "function": {"arguments": '{"c": 1}'[k : k + 3]}}]
                        },
                        "index": 0,
                    }
                ]
            }
            for k in range(0, 8, 3)
        ]
    return events


def fold(events: list[dict[str, Any]]) -> None:
    calls = CallAssembler()
    for event in events:
        delta = flatten_delta(event["choices"][0]["delta"])
        for call in delta.get("tool_calls") or ():
            calls.add_openai(call)
    calls.calls()


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    repeats = int(sys.argv[2]) if len(sys.argv) > 2 else 300
    tools = [
        {"type": "function", "function": {"name": f"t{i}", "description": "d", "parameters": SCHEMA}}
        for i in range(12)
    ]
    print(f"normalization per request, {n}-message history, {len(tools)} tools (microseconds)")
    worst = 0.0
    for label, model in TARGETS.items():
        messages = history(n, "anthropic/claude-sonnet-4-5")
        wire = [{"role": "system", "content": "You are a coding agent."}, *to_openai(messages, model=model)]
        request = ModelRequest(model=model, messages=wire, tools=tools)
        out = per_call(partial(prepare, request), repeats)
        inbound = per_call(partial(fold, stream_events()), repeats)
        plain = per_call(partial(to_openai, messages), max(10, repeats // 10))
        shaped = per_call(partial(to_openai, messages, model=model), max(10, repeats // 10))
        worst = max(worst, out + inbound)
        print(
            f"  {label:32} prepare {out:7.1f}  reply folding {inbound:6.1f}  = {out + inbound:7.1f} per request"
            f" | one-off history conversion after a model change: +{shaped - plain:7.1f}"
            f" ({len(json.dumps(wire)) // 1024} KiB)"
        )
    verdict = "under" if worst < 1000 else "OVER"
    print(f"worst added time per request: {worst / 1000:.3f} ms ({verdict} the 1 ms target)")


if __name__ == "__main__":
    main()
