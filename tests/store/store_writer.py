"""A child process for the store tests: writes agent-like steps to one session, printing each commit.

    python -m tests.store.store_writer DB SESSION_ID STEPS [--start-at EPOCH] [--payload N]

Step ``i`` appends a user message ``u{i}`` and an assistant message ``a{i}`` carrying a completed
tool call ``c{i}`` whose output is ``payload(i)``; it also prunes the output of step ``i - 5``
(as the live history does) to exercise updates of old messages. Resumes an existing session.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from nbagent.core.messages import Message, TextPart, ToolCompleted, ToolPart, Usage
from nbagent.store.db import SessionInfo, SessionStore, StoreError

PRUNED = "[output pruned]"
KEEP_RECENT = 5


def payload(i: int, size: int) -> str:
    line = f"output line of step {i}\n"
    return (line * (size // len(line) + 1))[:size]


def step_messages(i: int, size: int) -> list[Message]:
    tool = ToolPart(
        call_id=f"c{i}",
        tool="bash",
        state=ToolCompleted(input={"command": f"echo {i}"}, output=payload(i, size), started=1.0, ended=2.0),
    )
    return [
        Message(id=f"u{i}", role="user", parts=[TextPart(text=f"step {i}")]),
        Message(id=f"a{i}", role="assistant", parts=[TextPart(text=f"answer {i}"), tool], model="m"),
    ]


def prune(message: Message) -> None:
    for part in message.tool_parts():
        if isinstance(part.state, ToolCompleted):
            part.state.output = PRUNED


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("db", type=Path)
    parser.add_argument("session_id")
    parser.add_argument("steps", type=int)
    parser.add_argument("--start-at", type=float, default=0.0)
    parser.add_argument("--payload", type=int, default=2000)
    args = parser.parse_args()
    if args.start_at:
        time.sleep(max(0.0, args.start_at - time.time()))
    store = SessionStore(args.db)
    try:
        _, messages = store.load_session(args.session_id)
    except StoreError:
        store.create_session(SessionInfo(id=args.session_id, project=Path.cwd(), model="m"))
        messages = []
    first = len(messages) // 2
    for i in range(first, first + args.steps):
        messages += step_messages(i, args.payload)
        if i >= KEEP_RECENT:
            prune(messages[2 * (i - KEEP_RECENT) + 1])
        store.save_step(args.session_id, messages, usage=Usage(input_tokens=i + 1), title=f"steps to {i}")
        print(f"committed {i}", flush=True)
    store.close()


if __name__ == "__main__":
    main()
