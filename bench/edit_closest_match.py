"""Edit-miss figures: time for `edit` to answer a miss in a 20,000-line file, with the closest match or
with "nothing similar" (moved here from tests/tools/test_files.py, which keeps the messages' test).

.venv/bin/python -m bench.edit_closest_match

Target: well under a second each (the model waits on it); the test suite's old bound was 10 s for both.
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from nbagent.tools.base import ToolContext, ToolFailure
from nbagent.tools.files import EditTool, ReadTool

RUNS = 5
LINES = 20_000
NEAR = "value_12345 = compute(12345, 86415)\nvalue_12346 = compute(12346, 0)"
FAR = "\n".join(f"    unrelated_{i}(alpha, beta) -> gamma" for i in range(30))


async def _allow(query: Any) -> None:
    return None


async def _miss_seconds(ctx: ToolContext, old_string: str, expect: str) -> float:
    tool = EditTool()
    args = tool.parse({"file_path": "big.py", "old_string": old_string, "new_string": "x"})
    start = time.perf_counter()
    try:
        await tool.run(args, ctx)
    except ToolFailure as exc:
        assert expect in str(exc), exc
    else:
        raise AssertionError("the edit should have missed")
    return time.perf_counter() - start


async def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "big.py").write_text("".join(f"value_{i} = compute({i}, {i * 7})\n" for i in range(LINES)))
        ctx = ToolContext(root=root, call_id="c", emit=lambda e: None, ask=_allow, output_dir=root / ".out")
        read = ReadTool()
        await read.run(read.parse({"file_path": "big.py"}), ctx)
        print(f"edit miss in a {LINES:,}-line file        median      best")
        for name, old, expect in (
            ("closest match", NEAR, "closest match"),
            ("nothing similar", FAR, "Nothing similar"),
        ):
            took = [await _miss_seconds(ctx, old, expect) for _ in range(RUNS)]
            print(f"  {name:<34} {statistics.median(took) * 1000:7.1f} ms {min(took) * 1000:7.1f} ms")


if __name__ == "__main__":
    asyncio.run(main())
