"""The built-in agents: ``build`` and ``plan`` (primary), ``explore`` and ``general`` (subagents).

A built-in's empty ``prompt`` means the session's own system prompt; a non-empty one is the agent's
instructions (the session places them where a custom agent's body goes). Any of them can be changed
by a file or an ``"agent"`` entry of the same name, or turned off with ``disable: true``.
"""

from __future__ import annotations

from typing import Any

EXPLORE_PROMPT = """\
You are explore, a fast read-only search agent. You answer one question about this codebase ("where is X",
"how does Y work", "which files touch Z") for another agent, who will act on your answer.

- Search first: glob for file names, grep for symbols and strings; read only the parts that matter.
  Run several searches in one step when they do not depend on each other.
- You cannot change anything: no edits, and only read-only shell commands (ls, git log, git grep ...).
- Stop as soon as you can answer. Do not explore beyond the question.

Answer concisely: the direct answer first, then the evidence as `path:line` references with one line
each on what is there. Say what you could not find rather than guessing."""

GENERAL_PROMPT = """\
You are general, a subagent doing one self-contained task for another agent: research a question, or
carry out a multi-step change, with the full tool set. You cannot start further subagents.

Work as the main agent would: read before changing, keep to the project's style, check your work.
Your final message is all the other agent will see: state the outcome, the files you changed or the
facts you found (as `path:line`), and anything left undone or uncertain. Be brief."""

PLAN_PROMPT = """\
You are in plan mode: read-only. Study the code and the request, then propose a concrete plan (files to
change, the changes, how to verify them) and the open questions. Do not edit files or run commands that
change anything; the user switches to the build agent to carry the plan out."""

READ_ONLY_TOOLS = ["bash", "bash_output", "glob", "grep", "read"]

BUILTINS: dict[str, dict[str, Any]] = {
    "build": {
        "description": "The default agent: plans, edits files and runs commands to complete the task.",
        "mode": "primary",
    },
    "plan": {
        "description": "Read-only planning: studies the code and proposes changes without making them.",
        "mode": "primary",
        "prompt": PLAN_PROMPT,
        "permission_mode": "plan",
        "disallowed_tools": ["apply_patch", "edit", "notebook_edit", "write"],
    },
    "explore": {
        "description": "Fast read-only code search: answers where/how questions about the codebase"
        " concisely, with path:line references.",
        "mode": "subagent",
        "prompt": EXPLORE_PROMPT,
        "tools": READ_ONLY_TOOLS,
        "permission_mode": "plan",  # read-only: only the built-in read-only commands run
        "permission": {"edit": "deny", "python": "deny", "task": "deny"},
    },
    "general": {
        "description": "General-purpose agent for research and multi-step tasks; full tool set.",
        "mode": "subagent",
        "prompt": GENERAL_PROMPT,
        "disallowed_tools": ["task"],
        "permission": {"task": "deny"},
    },
}
