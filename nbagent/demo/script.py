"""The scripted demo model: the replies a good model would give for the demo task, step by step."""

from __future__ import annotations

import re
from typing import Any

from nbagent.providers.scripted import FunctionScript, Reply, ToolCallSpec
from nbagent.providers.scripted.script import Answer, OnToolResults, Step

TASK = "Add a --json flag to the word-count CLI, update the tests, and run them."

PLAN = [
    "Read the CLI and its tests",
    "Add a --json flag to wordcount/cli.py",
    "Add a test for --json",
    "Run the tests",
]

CLI_PATCH = """*** Begin Patch
*** Update File: wordcount/cli.py
@@
 import argparse
+import json
 from pathlib import Path
@@
     parser.add_argument("files", nargs="+", type=Path)
+    parser.add_argument("--json", action="store_true", help="print one JSON object per file")
     args = parser.parse_args(argv)
     for path in args.files:
         counts = count(path.read_text(encoding="utf-8"))
-        print(f"{counts['lines']:>7} {counts['words']:>7} {counts['chars']:>7} {path}")
+        if args.json:
+            print(json.dumps({"file": str(path), **counts}))
+        else:
+            print(f"{counts['lines']:>7} {counts['words']:>7} {counts['chars']:>7} {path}")
     return 0
*** End Patch"""

TEST_ANCHOR = '            self.assertEqual(run([str(path)]).split(), ["1", "2", "12", str(path)])\n'
NEW_TEST = """
    def test_json_flag(self) -> None:
        with TemporaryDirectory() as tmp:
            path = Path(tmp) / "a.txt"
            path.write_text("hello world\\n", encoding="utf-8")
            record = json.loads(run(["--json", str(path)]))
            self.assertEqual(record, {"file": str(path), "lines": 1, "words": 2, "chars": 12})
"""


def _todos(done: int) -> ToolCallSpec:
    items = []
    for i, content in enumerate(PLAN):
        status = "completed" if i < done else ("in_progress" if i == done else "pending")
        items.append({"id": str(i + 1), "content": content, "status": status, "priority": "high"})
    return ToolCallSpec("todowrite", {"todos": items})


def stopped(results: list[str]) -> Reply | None:
    """The honest answer when a tool call of the last step was refused or failed: say so and stop
    (None when every call went through)."""
    failed = [r.removeprefix("Error: ").strip() for r in results if r.startswith("Error: ")]
    if not failed:
        return None
    first = failed[0]
    said = first.partition("\nThe user said: ")[2].strip()
    if said:
        return Reply(
            text=(
                f"You declined that step and said: “{said}”. I stopped there; the steps before it stay"
                " as they are. Tell me how you want to go on."
            )
        )
    reason = first.splitlines()[0] if first else "a tool call failed"
    return Reply(
        text=f"I stopped: {reason} The steps before it stay as they are. Tell me how you want to go on."
    )


def guarded(reply: Reply) -> OnToolResults:
    """``reply`` when the previous step's tool calls went through, else the honest stop."""
    return OnToolResults(lambda results: stopped(results) or reply)


def tests_passed(output: str) -> bool:
    """Did a pytest or unittest run pass? (its summary says so, and no failure or exit code shows)"""
    passed = re.search(r"\b\d+ passed\b|^OK\b", output, re.MULTILINE) is not None
    return passed and re.search(r"\bfailed\b|^FAILED|exit code [1-9]", output, re.MULTILINE) is None


def _after_tests(results: list[str]) -> Reply:
    halt = stopped(results)
    if halt is not None:
        return halt
    output = results[-1] if results else ""
    if tests_passed(output):
        return Reply(text="All tests pass.", tool_calls=[_todos(len(PLAN))])
    tail = "\n".join(output.strip().splitlines()[-15:])
    return Reply(
        text=f"The tests do not pass yet, so I stopped here to show you:\n\n```\n{tail}\n```\n\nTell me how to go on."
    )


DONE = (
    "Done. `wordcount --json FILE...` now prints one JSON object per file "
    '(`{"file": ..., "lines": ..., "words": ..., "chars": ...}`); the table output is unchanged.\n\n'
    "- `wordcount/cli.py`: new `--json` flag\n"
    "- `tests/test_cli.py`: `test_json_flag` checks the JSON output\n\n"
    "The test suite passes."
)


def demo_replies(test_command: str) -> list[Step]:
    """The demo's steps. Each one after a tool call looks at what the tools returned: a refusal or a
    failure gets an honest answer that stops, never the next step of the happy path."""
    return [
        Reply(
            text="I'll look at the project first and plan the change.",
            tool_calls=[_todos(0), ToolCallSpec("glob", {"pattern": "**/*.py"})],
        ),
        guarded(
            Reply(
                text="Reading the CLI and its tests.",
                tool_calls=[
                    ToolCallSpec("read", {"file_path": "wordcount/cli.py"}),
                    ToolCallSpec("read", {"file_path": "tests/test_cli.py"}),
                ],
            )
        ),
        guarded(
            Reply(
                text="The CLI prints a fixed-width table. I'll add `--json`, printing one JSON object per file.",
                tool_calls=[_todos(1), ToolCallSpec("apply_patch", {"patch": CLI_PATCH})],
            )
        ),
        guarded(
            Reply(
                text="Now a test for the new flag.",
                tool_calls=[
                    _todos(2),
                    ToolCallSpec(
                        "edit",
                        {
                            "file_path": "tests/test_cli.py",
                            "old_string": "import unittest\n",
                            "new_string": "import json\nimport unittest\n",
                        },
                    ),
                    ToolCallSpec(
                        "edit",
                        {
                            "file_path": "tests/test_cli.py",
                            "old_string": TEST_ANCHOR,
                            "new_string": TEST_ANCHOR + NEW_TEST,
                        },
                    ),
                ],
            )
        ),
        guarded(
            Reply(
                text="Running the test suite.",
                tool_calls=[
                    _todos(3),
                    ToolCallSpec("bash", {"command": test_command, "description": "Run the tests"}),
                ],
            )
        ),
        OnToolResults(_after_tests),
        guarded(Reply(text=DONE)),
    ]


def resolve(step: Step, request: dict[str, Any]) -> Answer:
    return step.resolve(request) if isinstance(step, OnToolResults) else step


def demo_script(test_command: str) -> FunctionScript:
    """Answers by the number of assistant turns so far, so each request gets the next step."""
    steps = demo_replies(test_command)

    def answer(request: dict[str, Any], protocol: str) -> Answer:
        step = sum(1 for m in request.get("messages", []) if m.get("role") == "assistant")
        return resolve(steps[min(step, len(steps) - 1)], request)

    return FunctionScript(answer)
