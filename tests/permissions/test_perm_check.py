"""`nbagent permission check TOOL INPUT...`: one line per input, any input, never a crash."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from nbagent.core.config import Config
from nbagent.permissions.check import permission_check, show_input

ODD_INPUTS = [
    "ls -la",
    'echo "unterminated',
    "cat <<EOF\nline two\nEOF",
    'it\'s "quoted"',
    "tab\there",
    "",
    "   ",
    "$((",
    "\\",
    "é😀 ls",
    "((((((((((",
    "rm -rf / --no-preserve-root",
]


def test_one_line_per_input_with_decision_first(project: Path) -> None:
    config = Config.model_validate({"permission": {"bash": {"rm *": "deny"}}})
    lines = permission_check("bash", ODD_INPUTS, project, config)
    assert len(lines) == len(ODD_INPUTS)
    for line, text in zip(lines, ODD_INPUTS, strict=True):
        assert "\n" not in line
        decision, shown, why = line.split("\t")
        assert decision in ("allow", "ask", "deny")
        assert shown == show_input(text)
        assert why
        if shown.startswith('"'):
            assert json.loads(shown) == text
    by_input = {text: line.split("\t")[0] for text, line in zip(ODD_INPUTS, lines, strict=True)}
    assert by_input["ls -la"] == "allow"
    assert by_input['echo "unterminated'] == "ask"
    assert by_input["rm -rf / --no-preserve-root"] == "deny"
    assert lines[0] == "allow\tls -la\tread-only command: ls"


def test_paths_and_tool_names(project: Path) -> None:
    lines = permission_check("write", ["src/pkg/a.py", ".env"], project, Config())
    assert lines[0].startswith("ask\tsrc/pkg/a.py\tdefault edit: ask")
    assert lines[1].startswith("ask\t.env\tprotected path: .env")
    assert permission_check("read", ["README.md"], project, Config()) == [
        "allow\tREADME.md\tdefault read: allow"
    ]


def test_mode_and_agent_options(project: Path) -> None:
    config = Config.model_validate({"agent": {"ro": {"permission": {"bash": "deny"}}}})
    assert permission_check("edit", ["x.py"], project, config, mode="plan")[0].startswith("deny")
    assert permission_check("bash", ["ls"], project, config, agent="ro")[0].startswith("deny")


def test_real_cli_process(project: Path, tmp_path: Path) -> None:
    (project / "nbagent.json").write_text(
        json.dumps({"permission": {"bash": {"git status*": "allow", "rm *": "deny"}}})
    )
    code = "import sys; from nbagent.permissions.check import main; sys.exit(main(sys.argv[1:]))"
    args = [
        "permission",
        "check",
        "bash",
        "git status --short",
        "git status-all",
        "rm -rf x",
        "a\nb",
        'echo "x',
    ]
    proc = subprocess.run(
        [sys.executable, "-c", code, *args], cwd=project, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    rows = [line.split("\t") for line in proc.stdout.splitlines()]
    assert [r[0] for r in rows] == ["allow", "ask", "deny", "ask", "ask"]
    assert rows[0][2] == 'bash "git status*": allow'
    assert rows[3][1] == '"a\\nb"'


def test_real_cli_reports_bad_config(project: Path) -> None:
    (project / "nbagent.json").write_text(json.dumps({"permission": {"edit": "perhaps"}}))
    code = "import sys; from nbagent.permissions.check import main; sys.exit(main(sys.argv[1:]))"
    proc = subprocess.run(
        [sys.executable, "-c", code, "permission", "check", "edit", "x"], cwd=project, capture_output=True, text=True,
        timeout=60,
    )  # fmt: skip
    assert proc.returncode == 2
    assert "nbagent.json" in proc.stderr and "permission.edit" in proc.stderr
