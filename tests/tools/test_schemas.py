"""The JSON schema of every tool the model can see, against snapshots (it is what the model reads).

Regenerate with NBAGENT_UPDATE_SNAPSHOTS=1 after a deliberate change.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from nbagent.jupyter.agent import notebook_tools
from nbagent.tools import default_tools
from nbagent.tools.base import Tool

SNAPSHOTS = Path(__file__).parent / "snapshots"


def _session_tools() -> list[Tool[Any]]:
    """Tools a session adds to the default set when it needs them: task (with the built-in subagents
    listed), skill (skills exist), memory (auto-memory on)."""
    from nbagent.core.config import Config
    from nbagent.ext.agents import load_agents
    from nbagent.tools.memory_tool import MemoryTool
    from nbagent.tools.skill import SkillTool
    from nbagent.tools.task import TaskTool

    agents = load_agents(Path("/nonexistent-project"), Config(), home=Path("/nonexistent-home"))
    return [TaskTool(agents.listing()), SkillTool(), MemoryTool()]


TOOLS: list[Tool[Any]] = notebook_tools() + _session_tools()  # default set, kernel tools, session tools


@pytest.mark.parametrize("tool", TOOLS, ids=lambda t: t.name)
def test_schema_snapshot(tool: Tool[Any]) -> None:
    path = SNAPSHOTS / f"{tool.name}.json"
    schema = tool.schema()
    if os.environ.get("NBAGENT_UPDATE_SNAPSHOTS") == "1":
        path.write_text(json.dumps(schema, indent=2) + "\n")
    assert path.exists(), f"missing snapshot {path}; run with NBAGENT_UPDATE_SNAPSHOTS=1"
    assert json.loads(path.read_text()) == schema
    assert schema["function"]["parameters"]["additionalProperties"] is False


def test_every_snapshot_belongs_to_a_tool() -> None:
    assert {p.stem for p in SNAPSHOTS.glob("*.json")} == {t.name for t in TOOLS}


def test_descriptions_stay_short() -> None:
    # Every token of a description is paid on every model step.
    for tool in TOOLS:  # the task tool's listing of subagents grows with the project's agents
        assert len(tool.description) - len(getattr(tool, "listing", "")) < 700, tool.name
    assert sum(len(json.dumps(tool.schema())) for tool in default_tools()) < 12_000


def test_read_only_flags() -> None:
    read_only = {t.name for t in TOOLS if t.read_only}
    assert read_only == {"read", "glob", "grep", "webfetch", "bash_output", "inspect"}
