"""The JSON schemas the model sees for the search, shell, web and todo tools, against snapshots.

Regenerate with NBAGENT_UPDATE_SNAPSHOTS=1 after a deliberate change.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from nbagent.tools.base import Tool
from nbagent.tools.search import GlobTool, GrepTool
from nbagent.tools.shell import BashOutputTool, BashTool, KillShellTool
from nbagent.tools.todo import TodoWriteTool
from nbagent.tools.web import WebFetchTool

SNAPSHOTS = Path(__file__).parent / "snapshots"
TOOLS: list[Tool[Any]] = [
    GlobTool(),
    GrepTool(),
    BashTool(),
    BashOutputTool(),
    KillShellTool(),
    WebFetchTool(),
    TodoWriteTool(),
]


@pytest.mark.parametrize("tool", TOOLS, ids=lambda t: t.name)
def test_schema_snapshot(tool: Tool[Any]) -> None:
    path = SNAPSHOTS / f"{tool.name}.json"
    schema = tool.schema()
    if os.environ.get("NBAGENT_UPDATE_SNAPSHOTS") == "1":
        path.write_text(json.dumps(schema, indent=2) + "\n")
    assert path.exists(), f"missing snapshot {path}; run with NBAGENT_UPDATE_SNAPSHOTS=1"
    assert json.loads(path.read_text()) == schema
    assert schema["function"]["parameters"]["additionalProperties"] is False


def test_descriptions_stay_short() -> None:
    # Every token of a description is paid on every model step.
    for tool in TOOLS:
        assert len(tool.description) < 700, tool.name
    assert sum(len(json.dumps(tool.schema())) for tool in TOOLS) < 9_000
