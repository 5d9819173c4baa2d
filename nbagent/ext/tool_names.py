"""Tool names of Claude Code and OpenCode, as nbagent's.

``Read``/``read`` -> ``read``, ``MultiEdit`` -> ``edit``, ``patch`` -> ``apply_patch``, ``LS``/``list``
-> ``glob``, ``Agent``/``Task`` -> ``task`` ... MCP tools (``mcp__server__tool``) and wildcard patterns
(``mymcp_*``) are kept as written. A name neither ecosystem nor nbagent knows is kept lowercased, and
reported so the caller can warn.
"""

from __future__ import annotations

import re

NBAGENT_TOOLS = frozenset(
    {
        "read",
        "write",
        "edit",
        "apply_patch",
        "notebook_edit",
        "notebook_run",
        "glob",
        "grep",
        "bash",
        "bash_output",
        "kill_shell",
        "webfetch",
        "todowrite",
        "python",
        "inspect",
        "task",
        "skill",
    }
)

# lowercased foreign name -> nbagent name
ALIASES: dict[str, str] = {
    # Claude Code
    "multiedit": "edit",
    "notebookedit": "notebook_edit",
    "notebookread": "read",
    "ls": "glob",
    "bashoutput": "bash_output",
    "killshell": "kill_shell",
    "killbash": "kill_shell",
    "todoread": "todowrite",
    "agent": "task",
    # OpenCode
    "list": "glob",
    "patch": "apply_patch",
    "todowrite": "todowrite",
}

# Tools that only make sense with another: allowing bash allows reading and stopping its background jobs.
COMPANIONS: dict[str, tuple[str, ...]] = {"bash": ("bash_output", "kill_shell")}

# OpenCode's ``tools: {write: false}`` turns off every tool that changes files.
EDIT_FAMILY = ("write", "edit", "apply_patch", "notebook_edit")

_SPEC = re.compile(r"^\s*([A-Za-z_][\w.-]*)\s*(?:\((.*)\))?\s*$", re.S)


def is_pattern(name: str) -> bool:
    return any(c in name for c in "*?[")


def nbagent_tool(name: str) -> tuple[str, bool]:
    """``(nbagent name, known)`` for a tool name of either ecosystem."""
    raw = name.strip()
    if raw.startswith("mcp__") or is_pattern(raw):
        return raw, True
    low = raw.lower()
    mapped = ALIASES.get(low, low)
    return mapped, mapped in NBAGENT_TOOLS


def split_spec(spec: str) -> tuple[str, str | None]:
    """``"Bash(git diff:*)"`` -> ``("Bash", "git diff:*")``; a plain name has no argument."""
    m = _SPEC.match(spec)
    if not m:
        return spec.strip(), None
    return m.group(1), m.group(2)


def split_list(value: str) -> list[str]:
    """A comma-separated list, commas inside parentheses kept (``Bash(a, b), Read``)."""
    items: list[str] = []
    depth = 0
    current = ""
    for ch in value:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth = max(0, depth - 1)
        if ch == "," and depth == 0:
            items.append(current)
            current = ""
        else:
            current += ch
    items.append(current)
    return [i.strip() for i in items if i.strip()]
