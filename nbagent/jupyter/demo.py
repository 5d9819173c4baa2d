"""The notebook demo: a scripted model (over loopback HTTP, reached through litellm like a real one)
and a temporary copy of the sample repo, for ``notebooks/quickstart.ipynb``.

``start_demo()`` points ``%%agent`` at them through ``NBAGENT_MODEL``, ``NBAGENT_API_BASE`` and
``NBAGENT_ROOT``. The scripted replies follow the quickstart's prompts; everything else is real.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nbagent.demo.script import guarded, resolve, stopped
from nbagent.providers.scripted import FunctionScript, Reply, ScriptedModelServer, ToolCallSpec
from nbagent.providers.scripted.script import Answer, Step, tool_results

DATA_PROMPT_KEY = "sales"
CODE_PROMPT_KEY = "--json"

DATA_REPLIES: list[Step] = [
    Reply(
        text="Let me look at the dataframe first.",
        tool_calls=[ToolCallSpec("inspect", {"name": "sales"})],
    ),
    guarded(
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
        )
    ),
    guarded(
        Reply(
            text=(
                "`sales` has one row per order: `region`, `product` and `amount`.\n\n"
                "Total amount per region is now in the variable `totals`; the region that sells the most is "
                "at the top of it."
            )
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

    def answer(request: dict[str, Any], protocol: str) -> Answer:
        prompt, step = _last_user_text(request)
        if CODE_PROMPT_KEY in prompt:
            replies = code_replies
        elif DATA_PROMPT_KEY in prompt:
            replies = DATA_REPLIES
        else:
            return Reply(
                text="(The demo model only knows the quickstart's prompts. Use a real model for others.)"
            )
        return resolve(replies[min(step, len(replies) - 1)], request)

    return FunctionScript(answer)


SIMULATED_USER = "the demo's simulated user"


class SimulatedUser:
    """Stands in for the reader when a demo notebook runs unattended (``nbagent execute --yes``, how the
    shipped notebooks are built): it clicks *Allow once* on each permission prompt, as the reader would,
    and the transcript says who answered. It is no person: what only a person may approve, it refuses."""

    def __init__(self, agent: Any) -> None:
        self.agent = agent

    def __call__(self, event: Any) -> None:
        from nbagent.core.events import PermissionAsked

        session = self.agent.session
        if not isinstance(event, PermissionAsked) or session is None:
            return
        kind = "reject" if event.person_only else "once"

        def answer() -> None:
            with contextlib.suppress(KeyError):  # answered meanwhile (covered by a rule just saved)
                session.broker.reply(event.request_id, kind, by=SIMULATED_USER)

        asyncio.get_running_loop().call_soon(answer)


@dataclass
class Demo:
    project: Path
    server: ScriptedModelServer
    workdir: Path
    user: SimulatedUser | None = None
    headless: str | None = None

    def stop(self) -> None:
        self.server.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)
        for key in ("NBAGENT_MODEL", "NBAGENT_API_BASE", "NBAGENT_ROOT", "PYTEST_DISABLE_PLUGIN_AUTOLOAD"):
            os.environ.pop(key, None)
        if self.user is not None:
            with contextlib.suppress(ValueError):
                self.user.agent.listeners.remove(self.user)
        if self.headless is not None:
            os.environ["NBAGENT_HEADLESS"] = self.headless

    def __repr__(self) -> str:
        # No port and no temporary path: this shows in notebooks that are shipped.
        user = f"; permission prompts are answered by {SIMULATED_USER}" if self.user is not None else ""
        return (
            "nbagent demo: the scripted model openai/nbagent-demo, served on this machine; the project is a"
            f" temporary copy of the sample repo (demo.project){user}"
        )


def _start(script: FunctionScript, prefix: str) -> Demo:
    """Serve ``script``, copy the sample repo, and point ``%%agent`` at both (for this kernel)."""
    from nbagent.demo.run import SAMPLE

    workdir = Path(tempfile.mkdtemp(prefix=prefix))
    project = workdir / "wordcount"
    shutil.copytree(SAMPLE, project, ignore=shutil.ignore_patterns("__pycache__", ".pytest_cache"))
    server = ScriptedModelServer(script).start()
    os.environ["NBAGENT_MODEL"] = "openai/nbagent-demo"
    os.environ["NBAGENT_API_BASE"] = server.openai_base
    os.environ["NBAGENT_ROOT"] = str(project)
    # The shell tool runs `python`: make it this kernel's interpreter, whatever PATH says.
    os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    # The sample project's tests need no pytest plugin: those installed here would only add noise.
    os.environ["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    demo = Demo(project=project, server=server, workdir=workdir)
    if os.environ.get("NBAGENT_HEADLESS") == "allow":  # unattended, prompts allowed: a simulated reader
        from nbagent.jupyter.agent import current_agent

        demo.user = SimulatedUser(current_agent())
        demo.user.agent.listeners.append(demo.user)
        demo.headless = os.environ.pop("NBAGENT_HEADLESS")
    return demo


def start_demo() -> Demo:
    return _start(quickstart_script(), "nbagent-nbdemo-")


# -- feature notebooks (notebooks/permissions.ipynb, context.ipynb, kernel-tools.ipynb) ------------

FeatureStep = Reply | Callable[[dict[str, Any]], Reply]


def _tool_results(request: dict[str, Any]) -> str:
    """The text of the tool results the request ends with."""
    return "\n".join(tool_results(request))


def _system_text(request: dict[str, Any]) -> str:
    messages = request.get("messages") or []
    first = messages[0] if messages else {}
    if first.get("role") != "system":
        return ""
    content = first.get("content")
    if isinstance(content, list):
        content = " ".join(str(c.get("text", "")) for c in content if isinstance(c, dict))
    return str(content or "")


def _keyed_script(table: list[tuple[str, list[FeatureStep]]], *, name: str) -> FunctionScript:
    """Replies chosen by a key word of the last prompt, then by the step within the turn. A step may be a
    function of the request, so the scripted answer can depend on what the tools really returned; a
    fixed step after a refused or failed tool call gives way to an honest stop."""

    def answer(request: dict[str, Any], protocol: str) -> Reply:
        if _system_text(request).startswith("You are summarising a coding session"):
            return _summary_reply(request)
        prompt, step = _last_user_text(request)
        for key, steps in table:
            if key in prompt:
                chosen = steps[min(step, len(steps) - 1)]
                if callable(chosen):
                    return chosen(request)
                return stopped(tool_results(request)) or chosen
        return Reply(text=f"(The demo model only knows the prompts of {name}. Use a real model for others.)")

    return FunctionScript(answer)


def _summary_reply(request: dict[str, Any]) -> Reply:
    """The compaction summary, in the fixed sections, made from the transcript it is given (goals from
    the user's messages, progress from the tool calls) and honouring the focus given to ``/compact``."""
    prompt, _ = _last_user_text(request)
    focus = ""
    goals: list[str] = []
    done: list[str] = []
    for line in prompt.splitlines():
        if line.startswith("Focus the summary on:"):
            focus = line.removeprefix("Focus the summary on:").strip()
        elif line.startswith("USER: "):
            goals.append(f"- {line.removeprefix('USER: ').strip()}")
        elif line.startswith("TOOL CALL "):
            done.append(f"- `{line.removeprefix('TOOL CALL ').strip()[:120]}`")
    sections = [
        ("## Goal", goals or ["- (none stated)"]),
        ("## Constraints and preferences", ["- None stated in these messages."]),
        ("## Progress\n### Done", done or ["- Nothing yet: the work is in the recent messages."]),
        ("## Key decisions", [f"- Keep in detail: {focus}." if focus else "- None."]),
        ("## Next steps", ["- Continue from the recent messages."]),
    ]
    return Reply(text="\n".join(f"{title}\n" + "\n".join(lines) for title, lines in sections))


def _plan_answer(request: dict[str, Any]) -> Reply:
    results = _tool_results(request)
    if "plan mode" in results:
        return Reply(
            text=(
                "The permission mode is **plan** (read-only), so the edit was refused and nothing changed."
                " Here is the plan instead:\n\n"
                "1. `wordcount/cli.py`: rename `def count(` to `def count_text(` and its call in `main()`.\n"
                "2. `tests/test_cli.py`: update the import and `test_count`.\n"
                "3. Run the tests.\n\n"
                "Switch to `default` or `acceptEdits` mode and ask again to apply it."
            )
        )
    return Reply(text=f"The edit was not refused by plan mode; the tool said:\n\n{results[:500]}")


def _rm_answer(request: dict[str, Any]) -> Reply:
    results = _tool_results(request)
    if "denied" in results.lower() or "deny" in results.lower():
        return Reply(
            text=(
                'The project\'s rules deny `rm` (`"rm *": "deny"` in nbagent.json), so I did not delete'
                " `build/`; it is still there. Delete it yourself, or change the rule if the agent may do it."
            )
        )
    return Reply(text=f"The command was not denied; it returned:\n\n{results[:500]}")


PLAN_PROMPT_KEY = "count_text"
RM_PROMPT_KEY = "build folder"

PERMISSIONS_TABLE: list[tuple[str, list[FeatureStep]]] = [
    (
        PLAN_PROMPT_KEY,
        [
            Reply(
                text="Let me read the CLI first.",
                tool_calls=[ToolCallSpec("read", {"file_path": "wordcount/cli.py"})],
            ),
            Reply(
                text="Renaming the function.",
                tool_calls=[
                    ToolCallSpec(
                        "edit",
                        {
                            "file_path": "wordcount/cli.py",
                            "old_string": "def count(text: str)",
                            "new_string": "def count_text(text: str)",
                        },
                    )
                ],
            ),
            _plan_answer,
        ],
    ),
    (
        RM_PROMPT_KEY,
        [
            Reply(
                text="Deleting the build folder.",
                tool_calls=[
                    ToolCallSpec("bash", {"command": "rm -rf build", "description": "Delete build/"})
                ],
            ),
            _rm_answer,
        ],
    ),
]


AGENTS_TEST_COMMAND = "python -m unittest -q"


def _project_answer(request: dict[str, Any]) -> Reply:
    """Answers from the README, and follows AGENTS.md when it is in the system prompt."""
    halt = stopped(tool_results(request))
    if halt is not None:
        return halt
    system = _system_text(request)
    if AGENTS_TEST_COMMAND in system:
        text = (
            "`wordcount` counts the lines, words and characters of text files, like `wc`"
            " (`python -m wordcount FILE ...`).\n\n"
            f"The README says `python -m pytest -q`, but the project's AGENTS.md says to use `{AGENTS_TEST_COMMAND}`,"
            " so run the tests with that."
        )
    else:
        text = (
            "`wordcount` counts the lines, words and characters of text files, like `wc`.\n\n"
            "Run the tests with `python -m pytest -q` (from the README)."
        )
    if "TL;DR" in system:
        text += f"\n\nTL;DR: a tiny `wc` clone; test it with `{AGENTS_TEST_COMMAND}`."
    return Reply(text=text)


DOCSTRING_OLD = '    """Lines, words and characters of ``text``."""\n'
DOCSTRING_NEW = '''    """Lines, words and characters of ``text``.

    >>> count("to be or not to be")
    {'lines': 0, 'words': 6, 'chars': 18}
    """
'''


def _docstring_answer(request: dict[str, Any]) -> Reply:
    halt = stopped(tool_results(request))
    if halt is not None:
        return halt
    results = _tool_results(request)
    ok = "OK" in results
    text = "Added a doctest example to `count()` in `wordcount/cli.py`. " + (
        "The doctest and the unit tests pass." if ok else f"The tests did not pass:\n\n{results[-500:]}"
    )
    if "TL;DR" in _system_text(request):
        text += "\n\nTL;DR: `count()` now documents an example, checked by doctest."
    return Reply(text=text)


CONTEXT_TABLE: list[tuple[str, list[FeatureStep]]] = [
    (
        "run its tests",
        [
            Reply(text="Reading the README.", tool_calls=[ToolCallSpec("read", {"file_path": "README.md"})]),
            _project_answer,
        ],
    ),
    (
        "docstring",
        [
            Reply(
                text="Reading the CLI.", tool_calls=[ToolCallSpec("read", {"file_path": "wordcount/cli.py"})]
            ),
            Reply(
                text="Adding the example.",
                tool_calls=[
                    ToolCallSpec(
                        "edit",
                        {
                            "file_path": "wordcount/cli.py",
                            "old_string": DOCSTRING_OLD,
                            "new_string": DOCSTRING_NEW,
                        },
                    )
                ],
            ),
            Reply(
                text="Checking it, with the test command from AGENTS.md.",
                tool_calls=[
                    ToolCallSpec(
                        "bash",
                        {
                            "command": f"python -m doctest wordcount/cli.py && {AGENTS_TEST_COMMAND}",
                            "description": "Run the doctest and the unit tests",
                        },
                    )
                ],
            ),
            _docstring_answer,
        ],
    ),
]


SPEED_CODE = (
    "speed = (trips.km / (trips.minutes / 60)).groupby(trips.city).mean().round(1).sort_values()\nspeed"
)
CHART_SOURCE = (
    "speed = (trips.km / (trips.minutes / 60)).groupby(trips.city).mean().sort_values()\n"
    'speed.plot.barh(xlabel="km/h", title="Average speed per city")'
)


def _speed_answer(request: dict[str, Any]) -> Reply:
    halt = stopped(tool_results(request))
    if halt is not None:
        return halt
    results = _tool_results(request)
    return Reply(
        text=(
            "`trips` has one row per trip: `city`, `km` and `minutes`.\n\n"
            "The average speed per city (km/h) is now in the variable `speed`, slowest first:\n\n"
            f"```\n{results.strip()[:600]}\n```"
        )
    )


KERNEL_TOOLS_TABLE: list[tuple[str, list[FeatureStep]]] = [
    (
        "trips",
        [
            Reply(
                text="Let me look at `trips` first.", tool_calls=[ToolCallSpec("inspect", {"name": "trips"})]
            ),
            Reply(
                text="Now the average speed per city.",
                tool_calls=[ToolCallSpec("python", {"code": SPEED_CODE})],
            ),
            _speed_answer,
        ],
    ),
    (
        "report.ipynb",
        [
            Reply(
                text="Reading the notebook.", tool_calls=[ToolCallSpec("read", {"file_path": "report.ipynb"})]
            ),
            Reply(
                text="Replacing the `speed` cell with a bar chart.",
                tool_calls=[
                    ToolCallSpec(
                        "notebook_edit",
                        {"notebook_path": "report.ipynb", "cell_id": "speed", "new_source": CHART_SOURCE},
                    )
                ],
            ),
            Reply(
                text=(
                    "Replaced the `speed` cell of `report.ipynb`: it now computes the average speed per city and"
                    " draws it as a horizontal bar chart. The other cells are unchanged; run the notebook to see"
                    " the chart."
                )
            ),
        ],
    ),
]

FEATURES: dict[str, list[tuple[str, list[FeatureStep]]]] = {
    "permissions": PERMISSIONS_TABLE,
    "context": CONTEXT_TABLE,
    "kernel-tools": KERNEL_TOOLS_TABLE,
}


def start_feature_demo(feature: str) -> Demo:
    """Like :func:`start_demo`, for a feature notebook: its scripted model and a temp copy of the sample repo."""
    if feature not in FEATURES:
        raise ValueError(f"Unknown feature {feature!r}; one of {', '.join(FEATURES)}.")
    return _start(_keyed_script(FEATURES[feature], name=f"notebooks/{feature}.ipynb"), f"nbagent-{feature}-")
