"""Project hooks run only in a trusted folder: real `nbagent` processes, real hooks, a real trust file."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from nbagent.core.config import load_config, user_config_dir
from nbagent.core.events import Event, Notice, PermissionAsked, PermissionReplied
from nbagent.core.session import Session
from nbagent.ext.trust import TrustStore, project_code_digest, project_code_sources
from nbagent.providers.scripted import ListScript, Reply, ScriptedModelServer
from tests.conftest import _OPEN_SESSIONS, Serve

NBAGENT = [sys.executable, "-m", "nbagent"]
MARKER = "hook-ran.marker"


@pytest.fixture(autouse=True)
def _no_trust_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NBAGENT_TRUST_PROJECT", raising=False)


def session_start(command: str) -> dict[str, Any]:
    return {"SessionStart": [{"hooks": [{"type": "command", "command": command}]}]}


def make_project(tmp_path: Path, command: str = f"touch {MARKER}", **more_hooks: Any) -> Path:
    root = tmp_path / "cloned-repo"
    root.mkdir(exist_ok=True)
    (root / "nbagent.json").write_text(json.dumps({"hooks": {**session_start(command), **more_hooks}}))
    return root


def nbagent(
    args: list[str], cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*NBAGENT, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True", **(env or {})},
        check=False,
    )


def run(
    root: Path, serve: Serve, *flags: str, env: dict[str, str] | None = None
) -> tuple[subprocess.CompletedProcess[str], list[dict[str, Any]]]:
    server = serve(ListScript([Reply(text="done")]))
    out = nbagent(
        ["run", "-m", "openai/scripted", "--api-base", server.openai_base, "--api-key", "k", *flags, "go"],
        root,
        env,
    )
    assert out.returncode == 0, out.stderr
    events = [json.loads(line) for line in out.stdout.splitlines()] if "stream-json" in flags else []
    return out, events


def of_type(events: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [e for e in events if e["type"] == kind]


# -- the CLI, end to end ------------------------------------------------------------------------------


def test_headless_yes_does_not_run_untrusted_project_hooks_and_says_so(tmp_path: Path, serve: Serve) -> None:
    root = make_project(tmp_path)
    _, events = run(root, serve, "--yes", "--mode", "bypass", "--output-format", "stream-json")
    assert not (root / MARKER).exists()
    (asked,) = of_type(events, "permission_asked")
    assert asked["tool"] == "trust" and asked["person_only"] is True
    assert asked["patterns"] == [str(root.resolve())]
    assert "Trust this folder to run its hooks?" in asked["title"] and f"touch {MARKER}" in asked["title"]
    (replied,) = of_type(events, "permission_replied")
    assert replied["reply"] == "reject" and "only a person" in replied["by"]
    notices = " ".join(e["message"] for e in of_type(events, "notice"))
    assert "not trusted" in notices and f"nbagent trust {root.resolve()}" in notices
    assert "--trust-project" in notices
    # The text output says so too.
    out, _ = run(root, serve, "--yes")
    assert "Project hooks were not run" in out.stdout and not (root / MARKER).exists()
    assert not (user_config_dir() / "trust.json").exists()


def test_trust_project_flag_and_env_run_them_for_one_run_without_saving(tmp_path: Path, serve: Serve) -> None:
    root = make_project(tmp_path)
    _, events = run(root, serve, "--yes", "--trust-project", "--output-format", "stream-json")
    assert (root / MARKER).exists()
    assert not of_type(events, "permission_asked")
    (root / MARKER).unlink()
    _, events = run(root, serve, "--output-format", "stream-json", env={"NBAGENT_TRUST_PROJECT": "1"})
    assert (root / MARKER).exists() and not of_type(events, "permission_asked")
    assert not (user_config_dir() / "trust.json").exists()  # nothing saved
    (root / MARKER).unlink()
    run(root, serve, "--yes")
    assert not (root / MARKER).exists()


def test_saved_trust_runs_without_asking_until_the_hooks_change(tmp_path: Path, serve: Serve) -> None:
    root = make_project(tmp_path)
    out = nbagent(["trust", str(root)], tmp_path)
    assert out.returncode == 0, out.stderr
    assert f"Trusted: {root.resolve()}" in out.stdout and f"touch {MARKER}" in out.stdout
    _, events = run(root, serve, "--yes", "--output-format", "stream-json")
    assert (root / MARKER).exists() and not of_type(events, "permission_asked")
    # An edited hook command is new code: the saved trust no longer covers it.
    make_project(tmp_path, command="touch other.marker")
    _, events = run(root, serve, "--yes", "--output-format", "stream-json")
    assert not (root / "other.marker").exists()
    assert of_type(events, "permission_asked")
    # A change outside the code sections keeps the trust.
    nbagent(["trust", str(root)], tmp_path)
    config = json.loads((root / "nbagent.json").read_text())
    (root / "nbagent.json").write_text(json.dumps({**config, "max_steps": 7}))
    run(root, serve, "--yes")
    assert (root / "other.marker").exists()


def test_trust_list_and_revoke(tmp_path: Path, serve: Serve) -> None:
    root = make_project(tmp_path)
    assert nbagent(["trust", "--list"], root).stdout.startswith("No trusted folders")
    assert nbagent(["trust"], root).returncode == 0  # the current folder
    listed = nbagent(["trust", "--list"], tmp_path).stdout
    assert str(root.resolve()) in listed and "changed" not in listed
    make_project(tmp_path, command="touch changed.marker")
    assert "config changed since" in nbagent(["trust", "--list"], tmp_path).stdout
    out = nbagent(["trust", "--revoke", str(root)], tmp_path)
    assert f"No longer trusted: {root.resolve()}" in out.stdout
    assert str(root.resolve()) not in nbagent(["trust", "--list"], tmp_path).stdout
    missing = nbagent(["trust", str(tmp_path / "nowhere")], tmp_path)
    assert missing.returncode == 1 and "no such folder" in missing.stderr


def test_user_level_hooks_run_without_trust(tmp_path: Path, serve: Serve) -> None:
    config_dir = user_config_dir()
    config_dir.mkdir(parents=True)
    (config_dir / "nbagent.json").write_text(json.dumps({"hooks": session_start(f"touch {MARKER}")}))
    root = tmp_path / "plain"
    root.mkdir()
    (root / "nbagent.json").write_text(json.dumps({"max_steps": 5}))  # no hooks of its own
    _, events = run(root, serve, "--output-format", "stream-json")
    assert (root / MARKER).exists()
    assert not of_type(events, "permission_asked")  # a project without hooks is never asked


def test_claude_settings_hooks_need_trust(tmp_path: Path, serve: Serve) -> None:
    # The user turns on Claude settings; the hooks still come from the (cloned) project.
    config_dir = user_config_dir()
    config_dir.mkdir(parents=True)
    (config_dir / "nbagent.json").write_text(json.dumps({"hooks": {"use_claude_settings": True}}))
    root = tmp_path / "claude-repo"
    (root / ".claude").mkdir(parents=True)
    (root / ".claude" / "settings.json").write_text(json.dumps({"hooks": session_start(f"touch {MARKER}")}))
    _, events = run(root, serve, "--yes", "--output-format", "stream-json")
    assert not (root / MARKER).exists()
    (asked,) = of_type(events, "permission_asked")
    assert ".claude/settings.json defines hooks" in asked["title"]
    assert nbagent(["trust", str(root)], tmp_path).returncode == 0
    run(root, serve, "--yes")
    assert (root / MARKER).exists()
    # Editing the Claude hooks asks again.
    (root / MARKER).unlink()
    (root / ".claude" / "settings.json").write_text(json.dumps({"hooks": session_start("touch b.marker")}))
    run(root, serve, "--yes")
    assert not (root / "b.marker").exists()


def test_trust_file_is_private(tmp_path: Path) -> None:
    root = make_project(tmp_path)
    assert nbagent(["trust", str(root)], tmp_path).returncode == 0
    path = user_config_dir() / "trust.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    data = json.loads(path.read_text())
    assert list(data["folders"]) == [str(root.resolve())]
    assert [p.name for p in path.parent.iterdir()] == ["trust.json"]  # no temp file left behind


def test_broken_trust_file_names_the_fix(tmp_path: Path) -> None:
    path = user_config_dir() / "trust.json"
    path.parent.mkdir(parents=True)
    path.write_text("{not json")
    out = nbagent(["trust", "--list"], tmp_path)
    assert out.returncode == 1 and str(path) in out.stderr and "Delete it" in out.stderr


# -- the digest ---------------------------------------------------------------------------------------


def test_digest_covers_the_code_sections_only(tmp_path: Path) -> None:
    root = make_project(tmp_path)
    sources = project_code_sources(root, load_config(root))
    first = project_code_digest(root, sources)
    config = json.loads((root / "nbagent.json").read_text())
    (root / "nbagent.json").write_text(json.dumps({**config, "model": "openai/x"}))
    assert project_code_digest(root, sources) == first
    for key in ("mcp", "plugins"):
        (root / "nbagent.json").write_text(json.dumps({**config, key: {"server": {"command": "x"}}}))
        assert project_code_digest(root, sources) != first
    (root / "nbagent.json").write_text(
        json.dumps({"hooks": {**config["hooks"], "use_claude_settings": True}})
    )
    assert project_code_digest(root, sources) != first


# -- in a session: the person's answers ------------------------------------------------------------------


def interactive_session(root: Path, server: ScriptedModelServer) -> Session:
    config = load_config(root, {"model": "openai/scripted", "api_base": server.openai_base})
    session = Session(root, config, api_key="k", headless=None)
    _OPEN_SESSIONS.append(session)
    return session


async def answer(session: Session, reply: str) -> list[Event]:
    events: list[Event] = []
    async for event in session.run("go"):
        events.append(event)
        if isinstance(event, PermissionAsked):
            session.reply(event.request_id, reply)  # type: ignore[arg-type]
    return events


@pytest.mark.parametrize("reply", ["once", "always", "reject"])
async def test_the_persons_reply(tmp_path: Path, serve: Serve, reply: str) -> None:
    each_prompt = [{"hooks": [{"type": "command", "command": "echo prompt >> prompts.log"}]}]
    root = make_project(tmp_path, UserPromptSubmit=each_prompt)
    session = interactive_session(root, serve(ListScript([Reply(text="a"), Reply(text="b")])))
    events = await answer(session, reply)
    asked = [e for e in events if isinstance(e, PermissionAsked)]
    assert len(asked) == 1 and asked[0].person_only and asked[0].always == [f"trust: {root.resolve()}"]
    assert asked[0].details["commands"] == [f"touch {MARKER}", "echo prompt >> prompts.log"]
    assert (root / MARKER).exists() == (reply != "reject")
    saved = TrustStore().load().folders
    assert (str(root.resolve()) in saved) == (reply == "always")
    assert not (root / ".nbagent" / "permissions.local.json").exists()  # trust is not a permission rule
    notices = [e.message for e in events if isinstance(e, Notice)]
    assert any("Project hooks were not run" in m for m in notices) == (reply == "reject")
    # Asked once per session: the next turn does not ask again, and keeps to the answer.
    later = await answer(session, "once")
    assert not any(isinstance(e, PermissionAsked | PermissionReplied) for e in later)
    log = root / "prompts.log"
    assert (log.read_text().count("prompt") if log.exists() else 0) == (0 if reply == "reject" else 2)


# -- `nbagent execute` (a real kernel running %%agent) -----------------------------------------------------


@pytest.mark.timeout(300)
def test_execute_runs_project_hooks_only_with_trust_project(tmp_path: Path, serve: Serve) -> None:
    nbformat = pytest.importorskip("nbformat")
    root = make_project(tmp_path)
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("%load_ext nbagent"), nbformat.v4.new_code_cell("%%agent\nhello")]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, str(root / "nb.ipynb"))
    server = serve(ListScript([Reply(text="hi"), Reply(text="hi again")]))
    env = {
        "NBAGENT_MODEL": "openai/scripted",
        "NBAGENT_API_BASE": server.openai_base,
        "OPENAI_API_KEY": "k",
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    out = nbagent(["execute", "--yes", "nb.ipynb"], root, env)
    assert out.returncode == 0, out.stderr
    assert not (root / MARKER).exists()
    assert "Project hooks were not run" in (root / "nb.ipynb").read_text()
    out = nbagent(["execute", "--yes", "--trust-project", "nb.ipynb"], root, env)
    assert out.returncode == 0, out.stderr
    assert (root / MARKER).exists()
