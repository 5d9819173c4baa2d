"""``nbagent permission check TOOL INPUT...``: how the project's rules decide each input.

One line per input: the decision, a tab, the input (JSON-quoted when it holds newlines, tabs, quotes
or other characters that would break the line), a tab, and the rule or reason that decided.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from nbagent.core.config import Config, Mode

# Tool names whose permission key differs from the name.
TOOL_KEYS = {
    "write": "edit",
    "apply_patch": "edit",
    "notebook_edit": "edit",
    "multiedit": "edit",
    "ls": "list",
}


def show_input(text: str) -> str:
    """The input on one line: as is when safe, else JSON-quoted."""
    if text and text.isprintable() and '"' not in text[:1] and "\t" not in text and text.strip() == text:
        return text
    return json.dumps(text, ensure_ascii=False)


def permission_check(
    tool: str,
    inputs: list[str],
    root: Path,
    config: Config,
    *,
    agent: str | None = None,
    mode: Mode | None = None,
) -> list[str]:
    """Lines ``decision<TAB>input<TAB>rule — reason`` for each input."""
    from nbagent.core.permission_types import PermissionQuery
    from nbagent.permissions.policy import RulePolicy

    policy = RulePolicy(root, config, agent=agent, mode=mode)
    key = TOOL_KEYS.get(tool, tool)
    lines: list[str] = []
    for text in inputs:
        decision = policy.evaluate(PermissionQuery(permission=key, patterns=[text]))
        why = decision.rule
        if decision.reason and decision.action != "allow":
            why = f"{why} — {decision.reason}" if why else decision.reason
        if decision.always:
            why += f" (always would save: {', '.join(decision.always)})"
        lines.append(f"{decision.action}\t{show_input(text)}\t{' '.join(why.split())}")
    return lines


def add_cli(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``permission check`` to an argparse sub-command set; the handler is ``args.func(args)``."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "permission", help="Inspect permission decisions."
    )
    sub = parser.add_subparsers(dest="permission_command", required=True)
    check = sub.add_parser(
        "check",
        help="Show how the rules decide each input.",
        description="Print, for each INPUT, the decision (allow, ask or deny), the input and the rule or reason.",
    )
    check.add_argument(
        "tool", help="Tool or permission key: bash, read, edit, write, glob, grep, webfetch, ..."
    )
    check.add_argument(
        "inputs", nargs="+", metavar="INPUT", help="A command (bash), a path (read/edit), a URL, ..."
    )
    check.add_argument("--agent", default=None, help="Apply this agent's permission overrides.")
    check.add_argument("--mode", choices=["default", "acceptEdits", "plan", "bypass"], default=None)
    check.add_argument("--root", type=Path, default=None, help="Project root (default: the current folder).")
    check.set_defaults(func=run_check)
    return parser


def run_check(args: argparse.Namespace) -> int:
    from nbagent.core.config import load_config
    from nbagent.core.errors import NbagentError

    root = (args.root or Path.cwd()).resolve()
    try:
        config = load_config(root)
        lines = permission_check(args.tool, args.inputs, root, config, agent=args.agent, mode=args.mode)
    except NbagentError as exc:
        print(f"error: {exc}" + (f"\n{exc.hint}" if exc.hint else ""), file=sys.stderr)
        return 2
    for line in lines:
        print(line)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="nbagent")
    add_cli(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    raise SystemExit(main())
