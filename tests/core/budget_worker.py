"""A child process for the budget tests: one session, stored, runs one turn against a scripted server.

    python tests/core/budget_worker.py ROOT OPENAI_BASE PROMPT

The session's store is the default one (``NBAGENT_DATA_DIR``), so its spend lands in the daily ledger
the parent process reads. Prints the session's tokens (input + output) as the last line.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from nbagent.core.config import Config, RetryConfig
from nbagent.core.session import Session
from nbagent.store.db import SessionStore


async def main(root: Path, base: str, prompt: str) -> int:
    store = SessionStore()
    config = Config(model="openai/scripted", api_base=base, retry=RetryConfig(base_delay=0.0))
    session = Session(root, config, api_key="test-key", headless="allow", store=store)
    try:
        async for _event in session.run(prompt):
            pass
    finally:
        await session.close()
        store.close()
    return session.usage.input_tokens + session.usage.output_tokens


if __name__ == "__main__":
    print(asyncio.run(main(Path(sys.argv[1]), sys.argv[2], sys.argv[3])))
