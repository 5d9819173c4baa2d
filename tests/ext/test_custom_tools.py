"""Custom Python tools: files in ``~/.config/nbagent/tools`` and (trusted) ``.nbagent/tools``, run by a
real session against the scripted model."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from nbagent.core.config import user_config_dir
from nbagent.core.events import Notice, ToolCallCompleted, ToolCallError
from nbagent.ext.custom_tools import load_custom_tools, make_tool, tool
from nbagent.ext.trust import TrustStore, project_code_digest
from nbagent.providers.scripted import ListScript, Reply, ToolCallSpec
from tests.conftest import Serve, collect, make_session

USER_TOOL = '''
import asyncio
from typing import Annotated, Literal
from pydantic import Field
from nbagent.ext.custom_tools import tool

@tool
async def stars(count: Annotated[int, Field(ge=1, le=10, description="How many")], char: Literal["*", "+"] = "*") -> str:
    """Draw a row of stars."""
    await asyncio.sleep(0)
    return char * count

@tool(name="sum-up")
def total(values: list[float]) -> dict:
    """Add numbers up."""
    return {"total": sum(values)}

def helper(x):  # not a tool: no decorator
    return x
'''

PROJECT_TOOL = '''
from nbagent.ext.custom_tools import tool

@tool
def touch(name: str) -> str:
    """Pretend to create a file."""
    return f"created {name}"
'''


def write(path: Path, body: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(body))
    return path


def test_signature_and_docstring_become_the_schema(tmp_path: Path) -> None:
    file = write(tmp_path / "t.py", USER_TOOL)
    tools, problems = load_custom_tools([file], set())
    assert problems == []
    by_name = {t.name: t for t in tools}
    assert set(by_name) == {"stars", "sum-up"}
    fn = by_name["stars"].schema()["function"]
    assert fn["description"] == "Draw a row of stars."
    params = fn["parameters"]
    assert params["required"] == ["count"]
    assert params["properties"]["count"] == {
        "type": "integer",
        "minimum": 1,
        "maximum": 10,
        "description": "How many",
    }
    assert params["properties"]["char"]["enum"] == ["*", "+"]
    assert params["additionalProperties"] is False


def test_bad_definitions_say_what_to_fix(tmp_path: Path) -> None:
    def no_doc(x: int) -> int:
        return x

    def untyped(x):  # type: ignore[no-untyped-def]
        """Doc."""

    with pytest.raises(ValueError, match="no docstring"):
        make_tool(no_doc)
    with pytest.raises(ValueError, match="needs a type annotation"):
        make_tool(untyped)
    broken = write(tmp_path / "broken.py", "import not_a_module_anywhere\n")
    good = write(tmp_path / "good.py", USER_TOOL)
    tools, problems = load_custom_tools([broken, good], {"stars"})
    assert [t.name for t in tools] == ["sum-up"]
    assert any("broken.py not loaded: ModuleNotFoundError" in p for p in problems)
    assert any("'stars'" in p and "exists" in p for p in problems)
    assert tool(no_doc) is no_doc  # the decorator leaves the function usable


async def test_user_tools_run_in_a_session_sync_and_async(tmp_path: Path, serve: Serve) -> None:
    write(user_config_dir() / "tools" / "mine.py", USER_TOOL)
    server = serve(
        ListScript(
            [
                Reply(
                    tool_calls=[
                        ToolCallSpec("stars", {"count": 3, "char": "+"}),
                        ToolCallSpec("sum-up", {"values": [1, 2.5]}),
                        ToolCallSpec("stars", {"count": 99}),
                    ]
                ),
                Reply(text="done"),
            ]
        )
    )
    session = make_session(tmp_path, server)
    events = await collect(session, "go")
    done = {e.call_id: e for e in events if isinstance(e, ToolCallCompleted)}
    outputs = sorted(str(e.output) for e in done.values())
    assert outputs == ["+++", json.dumps({"total": 3.5})]
    errors = [e for e in events if isinstance(e, ToolCallError)]
    assert len(errors) == 1 and "less than or equal to 10" in errors[0].error


async def test_permission_key_is_the_tool_name(tmp_path: Path, serve: Serve) -> None:
    write(user_config_dir() / "tools" / "mine.py", USER_TOOL)
    (tmp_path / "nbagent.json").write_text(json.dumps({"permission": {"sum-up": "deny"}}))
    server = serve(
        ListScript([Reply(tool_calls=[ToolCallSpec("sum-up", {"values": [1]})]), Reply(text="ok")])
    )
    from nbagent.core.config import load_config
    from nbagent.core.session import Session

    config = load_config(tmp_path).model_copy(
        update={"model": "openai/scripted", "api_base": server.openai_base}
    )
    session = Session(tmp_path, config, api_key="k", headless="allow")
    events = await collect(session, "go")
    await session.close()
    errors = [e for e in events if isinstance(e, ToolCallError)]
    assert len(errors) == 1 and errors[0].tool == "sum-up"
    assert not any(isinstance(e, ToolCallCompleted) for e in events)


async def test_project_tools_load_only_in_a_trusted_folder(tmp_path: Path, serve: Serve) -> None:
    project = tmp_path / "project"
    write(project / ".nbagent" / "tools" / "touch.py", PROJECT_TOOL)
    server = serve(ListScript([Reply(text="first"), Reply(tool_calls=[ToolCallSpec("touch", {"name": "x"})]), Reply(text="ok")]))  # fmt: skip

    untrusted = make_session(project, server)
    assert "touch" not in untrusted.tools_by_name
    events = await collect(untrusted, "go")
    notices = " ".join(e.message for e in events if isinstance(e, Notice))
    assert "Custom tools in" in notices and "not trusted" in notices and "nbagent trust" in notices

    # trusted (as `nbagent trust` saves it): the tool loads; the digest covers the tool file
    TrustStore().trust(project, project_code_digest(project, [project / ".nbagent" / "tools" / "touch.py"]))
    trusted = make_session(project, server)
    assert "touch" in trusted.tools_by_name
    events = await collect(trusted, "go")
    assert any(isinstance(e, ToolCallCompleted) and e.output == "created x" for e in events)

    # a changed tool file is not trusted any more
    write(project / ".nbagent" / "tools" / "touch.py", PROJECT_TOOL + "\n# changed\n")
    again = make_session(project, server)
    assert "touch" not in again.tools_by_name

    # --trust-project: loads for this run without saving
    forced = make_session(project, server, trust_project=True)
    assert "touch" in forced.tools_by_name
