"""The three pattern languages of rules."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from nbagent.permissions.patterns import PathPattern, match_command, match_plain, static_prefix


@pytest.mark.parametrize(
    ("pattern", "command", "expected"),
    [
        ("git status*", "git status", True),
        ("git status*", "git status --short", True),
        ("git status*", "git status-all", False),
        ("ls*", "ls", True),
        ("ls*", "ls -la", True),
        ("ls*", "lsblk", False),
        ("git commit *", "git commit", True),
        ("git commit *", "git commit -m x", True),
        ("git commit *", "git commitx", False),
        ("git * --force", "git push origin --force", True),
        ("git * --force", "git push", False),
        ("npm run test", "npm run test", True),
        ("npm run test", "npm run test x", False),
        ("rm -?f *", "rm -rf build", True),
        ("*", "anything at all", True),
        ("echo  a", "echo a", True),
    ],
)
def test_command_patterns(pattern: str, command: str, expected: bool) -> None:
    assert match_command(pattern, command) is expected


def test_plain_patterns() -> None:
    assert match_plain("https://docs.python.org/*", "https://docs.python.org/3/x.html")
    assert not match_plain("https://docs.python.org/*", "https://evil.example/https://docs.python.org/")
    assert match_plain("mcp__github__*", "mcp__github__create_issue")
    assert match_plain("print(?)", "print(1)")


@pytest.mark.parametrize(
    ("pattern", "rel", "expected"),
    [
        ("*.py", "a.py", True),
        ("*.py", "src/pkg/a.py", True),
        ("*.py", "a.pyc", False),
        ("src/**", "src/pkg/a.py", True),
        ("src/**", "src", True),
        ("src/**", "lib/src/a.py", False),
        ("src", "src/pkg/a.py", True),  # gitignore: a folder's name covers what is inside
        ("src", "lib/src/a.py", True),
        ("/src", "lib/src/a.py", False),
        ("./src", "lib/src/a.py", False),
        ("./src", "src/a.py", True),
        ("**/test_*.py", "tests/unit/test_x.py", True),
        ("a/**/b", "a/b", True),
        ("a/**/b", "a/x/y/b", True),
        ("docs/*.md", "docs/x.md", True),
        ("docs/*.md", "docs/sub/x.md", False),
        ("[ab].txt", "a.txt", True),
        ("[!ab].txt", "a.txt", False),
    ],
)
def test_gitignore_path_patterns(tmp_path: Path, pattern: str, rel: str, expected: bool) -> None:
    assert PathPattern(pattern, tmp_path).match(rel, str(tmp_path / rel)) is expected


def test_absolute_and_home_patterns(tmp_path: Path) -> None:
    etc = PathPattern("/etc/**", tmp_path)
    assert etc.absolute and etc.match(None, "/etc/hosts") and not etc.match(None, "/var/etc/x")
    home = PathPattern("~/.ssh/**", tmp_path)
    assert home.absolute and home.match(None, os.path.expanduser("~/.ssh/id_rsa"))
    inside = PathPattern(str(tmp_path / "src") + "/**", tmp_path)
    assert inside.absolute and inside.match("src/a.py", str(tmp_path / "src" / "a.py"))
    assert PathPattern("*", tmp_path).match(None, "/anything")
    assert not PathPattern("*.py", tmp_path).match(
        None, "/elsewhere/a.py"
    )  # relative rules stay in the project


def test_static_prefix() -> None:
    assert static_prefix("src/**/*.py") == "src"
    assert static_prefix("*.py") == "."
    assert static_prefix("/etc/*.conf") == "/etc"
    assert static_prefix("/*") == "/"
    assert static_prefix("README.md") == "README.md"
