"""`nbagent` with no arguments in a terminal: the interactive chat, through a real pty, against the
scripted model over HTTP."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from nbagent.providers.scripted import ListScript, Reply, ScriptedModelServer, ToolCallSpec
from tests.conftest import Serve
from tests.terminal import CTRL_C, CTRL_D, Terminal

pytestmark = pytest.mark.timeout(180)
SLOW = " ".join(f"word{i}" for i in range(200))


def user_texts(server: ScriptedModelServer) -> list[str]:
    """The user's prompts in the last request, as the model received them."""
    out = []
    for m in server.requests[-1].body["messages"]:
        if m["role"] == "user":
            content = m["content"]
            if isinstance(content, list):
                content = "".join(c.get("text", "") for c in content)
            out.append(content)
    return out


def configure(server: ScriptedModelServer) -> dict[str, str]:
    """The user's nbagent.json names the scripted model; the key comes from the environment."""
    config_dir = Path(os.environ["NBAGENT_CONFIG_DIR"])
    config_dir.mkdir(parents=True, exist_ok=True)
    (config_dir / "nbagent.json").write_text(
        json.dumps({"model": "openai/scripted", "api_base": server.openai_base})
    )
    return {**os.environ, "OPENAI_API_KEY": "sk-test-chat", "LITELLM_LOCAL_MODEL_COST_MAP": "True"}


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    root.mkdir()
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    return root


@pytest.fixture
def terminals() -> Iterator[list[Terminal]]:
    made: list[Terminal] = []
    yield made
    for t in made:
        t.close()


def test_chat_answers_runs_commands_stops_a_turn_and_exits(
    project: Path, serve: Serve, terminals: list[Terminal]
) -> None:
    server = serve(
        ListScript(
            [
                Reply(text="Hello from the scripted model."),
                Reply(tool_calls=[ToolCallSpec("bash", {"command": "touch made.txt"})]),
                Reply(text="Made it."),
                Reply(text=SLOW, delay=0.2),
                Reply(text="Still here."),
            ]
        )
    )
    term = Terminal([], project, configure(server))
    terminals.append(term)
    term.expect("/help")  # the welcome says how to get help
    term.expect("> ")

    term.line("say hi")
    term.expect("Hello from the scripted model.")
    term.expect("> ")

    term.line("/help")
    shown = term.expect("> ")
    assert "/compact" in shown and "/undo" in shown

    # A permission prompt: the choices are printed as typed ([y], [a], [n] are not eaten as markup).
    term.line("make a file")
    asked = term.expect("(or type feedback): ")
    assert "[y]es once / [a]lways" in asked and "/ [n]o" in asked
    term.line("a")
    done = term.expect("> ")
    assert "Made it." in done and (project / "made.txt").exists()
    # Saving the "always" rule wrote .nbagent/: nbagent's own file is not blamed on the shell.
    assert (project / ".nbagent" / ".gitignore").exists()
    assert "Shell commands changed made.txt." in done
    assert ".nbagent" not in done

    # Ctrl-C during a slow reply stops the turn; the prompt comes back and the session goes on.
    term.line("tell me a long story")
    term.expect("word3 ")
    term.send(CTRL_C)
    stopped = term.expect("> ")
    assert "Turn interrupted" in stopped and "word199" not in stopped
    term.line("are you there?")
    term.expect("Still here.")
    term.expect("> ")
    # The interrupted turn's request and the next one are one conversation.
    assert user_texts(server)[-2:] == ["tell me a long story", "are you there?"]

    term.key_at_prompt(CTRL_D)
    assert term.wait() == 0

    history = Path(os.environ["NBAGENT_DATA_DIR"]) / "chat_history"
    assert stat.S_IMODE(history.stat().st_mode) == 0o600
    assert "say hi" in history.read_text() and "/help" in history.read_text()


def test_ctrl_c_twice_at_the_prompt_exits_and_history_is_recalled(
    project: Path, serve: Serve, terminals: list[Terminal]
) -> None:
    server = serve(ListScript([Reply(text="first answer"), Reply(text="second answer")]))
    env = configure(server)
    term = Terminal([], project, env)
    terminals.append(term)
    term.expect("> ")
    term.line("remember this line")
    term.expect("first answer")
    term.expect("> ")
    term.key_at_prompt(CTRL_C)
    term.expect("Ctrl-C again")
    term.expect("> ")
    term.key_at_prompt(CTRL_C)
    assert term.wait() == 0

    # A new chat recalls the previous one's lines with the up arrow.
    again = Terminal([], project, env)
    terminals.append(again)
    again.expect("> ")
    again.send("\x1b[A\r")  # up arrow, Enter
    again.expect("second answer")
    again.expect("> ")
    assert user_texts(server)[-1] == "remember this line"
    again.key_at_prompt(CTRL_D)
    assert again.wait() == 0


def test_without_a_terminal_nbagent_prints_its_usage(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "nbagent"],
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 2 and "chat" in out.stdout and "run" in out.stdout
