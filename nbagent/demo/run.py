"""``nbagent demo``: the real stack end to end, against the scripted model, in a temp copy of a sample repo."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from nbagent.demo.script import TASK, demo_script

SAMPLE = Path(__file__).parent / "sample_repo"

BANNER = """\
nbagent demo — the model here is SCRIPTED: nbagent's built-in demo model plays pre-written replies,
served over HTTP on 127.0.0.1 exactly like a real provider. Everything else is real: litellm, the
agent loop, and every tool (reads, edits, the shell) running in a temporary copy of a sample repo.

Task: {task}
Project: {project}
"""

REAL_MODEL = """\
To use a real model, run a task in your own project, for example:
  ANTHROPIC_API_KEY=... nbagent run --model anthropic/claude-sonnet-4-5 "your task"
  OPENAI_API_KEY=...    nbagent run --model openai/gpt-4.1 "your task"
  nbagent run --model openai/<served-name> --api-base http://localhost:8000/v1 "your task"   # vLLM, llama.cpp, ...
  nbagent run --model ollama_chat/qwen2.5-coder "your task"                                 # Ollama
"""


def test_command() -> str:
    return "python -m pytest -q" if importlib.util.find_spec("pytest") else "python -m unittest -v"


def run_demo(*, keep: bool = False, output_format: str = "text") -> int:
    from nbagent.cli_session import run_session
    from nbagent.core.config import Config
    from nbagent.core.session import Session
    from nbagent.providers.scripted import ScriptedModelServer

    workdir = Path(tempfile.mkdtemp(prefix="nbagent-demo-"))
    project = workdir / "wordcount"
    shutil.copytree(SAMPLE, project, ignore=shutil.ignore_patterns("__pycache__", ".pytest_cache"))
    # The shell tool runs `python`: make it this interpreter, whatever the user's PATH says.
    os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    # The sample project's tests need no pytest plugin: those installed here would only add noise.
    os.environ["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    text = output_format == "text"
    if text:
        print(BANNER.format(task=TASK, project=project), flush=True)
    command = test_command()
    try:
        with ScriptedModelServer(demo_script(command)) as server:
            config = Config(model="openai/nbagent-demo", api_base=server.openai_base)
            session = Session(project, config, api_key="scripted-demo", headless="allow")
            code = run_session(session, TASK, output_format)
        check = subprocess.run(command.split(), cwd=project, capture_output=True, text=True, check=False)
        if text:
            print()
            if check.returncode == 0 and code == 0:
                where = str(project) if keep else f"{project} (removed now; pass --keep to keep it)"
                print(f"Demo finished: the tests pass after the agent's edits in {where}.")
            else:
                print(
                    f"Demo FAILED (agent exit {code}, tests exit {check.returncode}):\n{check.stdout}{check.stderr}"
                )
            print()
            print(REAL_MODEL)
        return code or check.returncode
    finally:
        if not keep:
            shutil.rmtree(workdir, ignore_errors=True)
