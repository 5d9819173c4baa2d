"""The notebook demo: a scripted model (over loopback HTTP, reached through litellm like a real one)
and a temporary copy of the sample repo, for ``notebooks/quickstart.ipynb``.

``start_demo()`` points ``%%agent`` at them through ``NBAGENT_MODEL``, ``NBAGENT_API_BASE`` and
``NBAGENT_ROOT``. The scripted replies follow the quickstart's prompts; everything else is real.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nbagent.providers.scripted import FunctionScript, Reply, ScriptedModelServer, ToolCallSpec

DATA_PROMPT_KEY = "sales"
CODE_PROMPT_KEY = "--json"

DATA_REPLIES = [
    Reply(
        text="Let me look at the dataframe first.",
        tool_calls=[ToolCallSpec("inspect", {"name": "sales"})],
    ),
    Reply(
        text="Now the total amount per region.",
        tool_calls=[
            ToolCallSpec(
                "python",
                {
                    "code": "totals = sales.groupby('region')['amount'].sum().sort_values(ascending=False)\ntotals"
                },
            )
        ],
    ),
    Reply(
        text=(
            "`sales` has one row per order: `region`, `product` and `amount`.\n\n"
            "Total amount per region is now in the variable `totals`; the region that sells the most is "
            "at the top of it."
        )
    ),
]


def _last_user_text(request: dict[str, Any]) -> tuple[str, int]:
    """The last user prompt and how many assistant messages came after it."""
    messages = request.get("messages") or []
    after = 0
    for message in reversed(messages):
        role = message.get("role")
        if role == "assistant":
            after += 1
        elif role == "user":
            content = message.get("content")
            if isinstance(content, list):
                content = " ".join(str(c.get("text", "")) for c in content if isinstance(c, dict))
            return str(content or ""), after
    return "", after


def quickstart_script() -> FunctionScript:
    from nbagent.demo.run import test_command
    from nbagent.demo.script import demo_replies

    code_replies = demo_replies(test_command())

    def answer(request: dict[str, Any], protocol: str) -> Reply:
        prompt, step = _last_user_text(request)
        if CODE_PROMPT_KEY in prompt:
            replies = code_replies
        elif DATA_PROMPT_KEY in prompt:
            replies = DATA_REPLIES
        else:
            return Reply(
                text="(The demo model only knows the quickstart's prompts. Use a real model for others.)"
            )
        return replies[min(step, len(replies) - 1)]

    return FunctionScript(answer)


@dataclass
class Demo:
    project: Path
    server: ScriptedModelServer
    workdir: Path

    def stop(self) -> None:
        self.server.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)
        for key in ("NBAGENT_MODEL", "NBAGENT_API_BASE", "NBAGENT_ROOT"):
            os.environ.pop(key, None)

    def __repr__(self) -> str:
        return (
            f"nbagent demo: scripted model at {self.server.openai_base} (model openai/nbagent-demo);"
            f" project {self.project}"
        )


def start_demo() -> Demo:
    from nbagent.demo.run import SAMPLE

    workdir = Path(tempfile.mkdtemp(prefix="nbagent-nbdemo-"))
    project = workdir / "wordcount"
    shutil.copytree(SAMPLE, project, ignore=shutil.ignore_patterns("__pycache__", ".pytest_cache"))
    server = ScriptedModelServer(quickstart_script()).start()
    os.environ["NBAGENT_MODEL"] = "openai/nbagent-demo"
    os.environ["NBAGENT_API_BASE"] = server.openai_base
    os.environ["NBAGENT_ROOT"] = str(project)
    # The shell tool runs `python`: make it this kernel's interpreter, whatever PATH says.
    os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    return Demo(project=project, server=server, workdir=workdir)
