"""The scripted demo model: the replies a good model would give for the demo task, step by step."""

from __future__ import annotations

from typing import Any

from nbagent.providers.scripted import FunctionScript, Reply, ToolCallSpec

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


def demo_replies(test_command: str) -> list[Reply]:
    return [
        Reply(
            text="I'll look at the project first and plan the change.",
            tool_calls=[_todos(0), ToolCallSpec("glob", {"pattern": "**/*.py"})],
        ),
        Reply(
            text="Reading the CLI and its tests.",
            tool_calls=[
                ToolCallSpec("read", {"file_path": "wordcount/cli.py"}),
                ToolCallSpec("read", {"file_path": "tests/test_cli.py"}),
            ],
        ),
        Reply(
            text="The CLI prints a fixed-width table. I'll add `--json`, printing one JSON object per file.",
            tool_calls=[_todos(1), ToolCallSpec("apply_patch", {"patch": CLI_PATCH})],
        ),
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
        ),
        Reply(
            text="Running the test suite.",
            tool_calls=[
                _todos(3),
                ToolCallSpec("bash", {"command": test_command, "description": "Run the tests"}),
            ],
        ),
        Reply(text="All tests pass.", tool_calls=[_todos(len(PLAN))]),
        Reply(
            text=(
                "Done. `wordcount --json FILE...` now prints one JSON object per file "
                '(`{"file": ..., "lines": ..., "words": ..., "chars": ...}`); the table output is unchanged.\n\n'
                "- `wordcount/cli.py`: new `--json` flag\n"
                "- `tests/test_cli.py`: `test_json_flag` checks the JSON output\n\n"
                "The test suite passes."
            )
        ),
    ]


def demo_script(test_command: str) -> FunctionScript:
    """Answers by the number of assistant turns so far, so each request gets the next step."""
    replies = demo_replies(test_command)

    def answer(request: dict[str, Any], protocol: str) -> Reply:
        step = sum(1 for m in request.get("messages", []) if m.get("role") == "assistant")
        return replies[min(step, len(replies) - 1)]

    return FunctionScript(answer)
