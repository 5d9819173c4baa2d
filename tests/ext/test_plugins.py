"""Plugins: a real installed distribution (a ``.dist-info`` with an entry point in group ``nbagent``) on
the path of a real ``nbagent`` process, talking HTTP to the scripted model."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from nbagent.core.commands import run_command
from nbagent.core.config import Config
from nbagent.core.events import Compacted, TurnFinished
from nbagent.core.session import Session
from nbagent.providers.scripted import ListScript, Reply, ScriptedModelServer, ToolCallSpec
from tests.conftest import Serve, collect, make_session

PLUGIN = '''
import os
from nbagent.ext.custom_tools import tool
from nbagent.ext.plugins import Refuse, hookimpl

@tool
def shout(text: str, times: int = 1) -> str:
    """Return the text in capitals, repeated."""
    return " ".join([text.upper()] * times)

@hookimpl
def register_tools():
    return [shout]

@hookimpl
def tool_before(tool, tool_input):
    if tool == "bash" and "forbidden" in tool_input.get("command", ""):
        return Refuse("no forbidden commands")
    if tool == "shout":
        return {**tool_input, "text": tool_input["text"] + "!"}
    return None

@hookimpl
def tool_after(tool, output):
    return output + " [seen by plugin]" if tool == "shout" else None

@hookimpl
def system_prompt():
    return "PLUGIN-PROMPT-MARKER: answer politely."

@hookimpl
def register_agents():
    return [{"name": "shouter", "description": "Shouts things.", "prompt": "You shout."}]

@hookimpl
def register_commands():
    return {"loud": "Say $ARGUMENTS loudly.", "count": lambda session, args: f"{len(session.tools)} tools"}

class EchoProvider:
    async def stream(self, request):
        from nbagent.core.messages import Usage
        from nbagent.providers.base import StepDone, TextChunk

        yield TextChunk(f"echo from {request.model}")
        yield StepDone(tool_calls=[], usage=Usage(), finish_reason="stop")

    async def close(self):
        pass

@hookimpl
def register_providers():
    return {"echo": lambda model, config: EchoProvider()}

@hookimpl
def compaction(session_id):
    return "PLUGIN-COMPACTION-NOTE"

@hookimpl
def on_event(event):
    with open(os.environ["PLUG_LOG"], "a") as fh:
        fh.write(event.type + "\\n")
'''

FLAKY = """
from nbagent.ext.plugins import hookimpl

@hookimpl
def tool_after(tool, output):
    raise RuntimeError("flaky plugin bug")
"""


def install(site: Path, dist: str, modules: dict[str, str], entry_points: dict[str, str]) -> None:
    """A distribution as pip leaves it: the modules and ``<dist>-1.0.dist-info`` with its entry points."""
    for name, body in modules.items():
        (site / f"{name}.py").write_text(textwrap.dedent(body))
    info = site / f"{dist}-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n")
    lines = "".join(f"{k} = {v}\n" for k, v in entry_points.items())
    (info / "entry_points.txt").write_text(f"[nbagent]\n{lines}")
    (info / "RECORD").write_text("")


def make_site(tmp_path: Path) -> Path:
    site = tmp_path / "site"
    site.mkdir()
    install(site, "nbagent_shout", {"nbagent_shout": PLUGIN}, {"shout": "nbagent_shout"})
    install(site, "nbagent_broken", {"nbagent_broken": "raise ImportError('needs libfoo')"}, {"broken": "nbagent_broken"})  # fmt: skip
    install(site, "nbagent_flaky", {"nbagent_flaky": FLAKY}, {"flaky": "nbagent_flaky"})
    return site


def run_nbagent(args: list[str], cwd: Path, site: Path, log: Path) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "PYTHONPATH": str(site),
        "PLUG_LOG": str(log),
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
    }
    return subprocess.run(
        [sys.executable, "-m", "nbagent", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )


def run_task(server: ScriptedModelServer, cwd: Path, site: Path, log: Path) -> list[dict[str, object]]:
    args = ["run", "-m", "openai/scripted", "--api-base", server.openai_base, "--api-key", "k", "--yes"]
    out = run_nbagent([*args, "--output-format", "stream-json", "go"], cwd, site, log)
    assert out.returncode == 0, out.stderr
    return [json.loads(line) for line in out.stdout.splitlines()]


def test_installed_plugin_adds_a_tool_and_hooks(tmp_path: Path, serve: Serve) -> None:
    site = make_site(tmp_path)
    project = tmp_path / "project"
    project.mkdir()
    log = tmp_path / "events.log"
    server = serve(
        ListScript(
            [
                Reply(tool_calls=[ToolCallSpec("shout", {"text": "hi", "times": 2})]),
                Reply(tool_calls=[ToolCallSpec("bash", {"command": "echo forbidden > made.txt"})]),
                Reply(text="done"),
            ]
        )
    )
    events = run_task(server, project, site, log)

    # the tool: offered with its signature's schema, its input rewritten before, its output after
    first = server.requests[0].body
    tools = {t["function"]["name"]: t["function"] for t in first["tools"]}
    assert tools["shout"]["description"] == "Return the text in capitals, repeated."
    assert tools["shout"]["parameters"]["required"] == ["text"]
    assert tools["shout"]["parameters"]["properties"]["times"]["type"] == "integer"
    assert "PLUGIN-PROMPT-MARKER" in json.dumps(first["messages"][0])
    done = [e for e in events if e["type"] == "tool_completed"]
    assert [e["tool"] for e in done] == ["shout"]
    assert done[0]["input"] == {"text": "hi!", "times": 2}
    # the flaky plugin's tool_after raised: it is disabled, the shout plugin's rewrite still applies
    assert str(done[0]["output"]).startswith("HI! HI! [seen by plugin]")

    # the refusal: bash never ran
    errors = [e for e in events if e["type"] == "tool_error"]
    assert [e["tool"] for e in errors] == ["bash"]
    assert "no forbidden commands (plugin shout)" in str(errors[0]["error"])
    assert not (project / "made.txt").exists()

    # on_event saw every event of the turn
    seen = log.read_text().split()
    assert seen[0] == "turn_started" and seen[-1] == "turn_finished"
    assert "tool_completed" in seen and "tool_error" in seen


def test_failing_plugins_are_reported_by_name_and_the_session_goes_on(tmp_path: Path, serve: Serve) -> None:
    site = make_site(tmp_path)
    project = tmp_path / "project"
    project.mkdir()
    log = tmp_path / "events.log"
    server = serve(
        ListScript(
            [
                Reply(tool_calls=[ToolCallSpec("shout", {"text": "a"})]),
                Reply(text="done"),
            ]
        )
    )
    events = run_task(server, project, site, log)
    notices = " ".join(str(e.get("message", "")) for e in events if e["type"] == "notice")
    assert "Plugin 'broken' disabled" in notices and "needs libfoo" in notices
    assert events[-1]["type"] == "turn_finished"
    # the flaky one failed during the turn (its tool_after raised): named, disabled, the turn went on
    assert "Plugin 'flaky' disabled: tool_after raised RuntimeError('flaky plugin bug')" in notices
    done = [e for e in events if e["type"] == "tool_completed"]
    assert done[0]["output"] == "A! [seen by plugin]"
    listing = run_nbagent(["plugins"], project, site, log)
    assert listing.returncode == 0, listing.stderr
    lines = listing.stdout.splitlines()
    shout = next(line for line in lines if line.strip().startswith("shout"))
    assert "nbagent_shout 1.0" in shout and "register_tools" in shout and "tool_before" in shout
    broken = next(line for line in lines if line.strip().startswith("broken"))
    assert "DISABLED" in broken and "needs libfoo" in broken


def test_a_plugin_can_be_disabled_in_the_config(tmp_path: Path, serve: Serve) -> None:
    site = make_site(tmp_path)
    project = tmp_path / "project"
    project.mkdir()
    (project / "nbagent.json").write_text(json.dumps({"plugins": {"disabled": ["shout"]}}))
    server = serve(ListScript([Reply(text="done")]))
    run_task(server, project, site, tmp_path / "events.log")
    names = {t["function"]["name"] for t in server.requests[0].body["tools"]}
    assert "shout" not in names and "bash" in names
    assert not (tmp_path / "events.log").exists()


async def test_plugin_agents_commands_and_compaction_in_process(
    tmp_path: Path, serve: Serve, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(make_site(tmp_path)))  # the dist-infos are found on sys.path
    monkeypatch.setenv("PLUG_LOG", str(tmp_path / "events.log"))
    server = serve(ListScript([Reply(text="done"), Reply(text="SUMMARY OF WORK")]))
    session = make_session(tmp_path, server)
    shouter = session.setup.agents.agents["shouter"]
    assert shouter.is_subagent and shouter.prompt == "You shout." and shouter.source == "plugin shout"
    assert (await run_command(session, "/loud hello there")).prompt == "Say hello there loudly."
    assert (await run_command(session, "/count")).text == f"{len(session.tools)} tools"
    await collect(session, "go")
    events = [e async for e in session.compact()]
    assert any(isinstance(e, Compacted) for e in events)
    assert session.summary is not None and "PLUGIN-COMPACTION-NOTE" in session.summary


async def test_plugin_provider_serves_its_models(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(make_site(tmp_path)))
    monkeypatch.setenv("PLUG_LOG", str(tmp_path / "events.log"))
    session = Session(tmp_path, Config(model="echo/any"), headless="allow")
    events = await collect(session, "hi")
    await session.close()
    assert session.messages[-1].text == "echo from echo/any"
    assert isinstance(events[-1], TurnFinished)
