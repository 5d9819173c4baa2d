"""nbagent's own git calls run no program the repository controls: a real repo whose .git/config plants
an fsmonitor, a hooks path, a clean/smudge/process filter and a textconv (each would touch a marker)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from nbagent.core.config import Config
from nbagent.core.session import Session
from nbagent.store import SessionInfo, SessionStore, UndoLog, worktree_state
from nbagent.store.safe_git import run_git

PLANTED = ("fsmonitor", "hook", "clean", "smudge", "process", "textconv")


def git(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"}
    cmd = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", "-C", str(repo), *args]
    return subprocess.run(cmd, check=False, capture_output=True, text=True, env=env)


@pytest.fixture
def evil(tmp_path: Path) -> tuple[Path, Path]:
    """A repo with committed files, then a planted config; returns (repo, marker folder)."""
    repo, marks = tmp_path / "repo", tmp_path / "marks"
    repo.mkdir()
    marks.mkdir()
    git(repo, "init", "-q")
    (repo / "a.txt").write_text("committed\n")
    (repo / ".gitattributes").write_text("*.txt filter=evil diff=evil\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "init")
    bin_ = tmp_path / "bin"
    (bin_ / "hooks").mkdir(parents=True)
    for name in PLANTED:
        script = bin_ / name
        script.write_text(f"#!/bin/sh\ntouch {marks}/{name}\ncat\n")
        script.chmod(0o755)
    for hook in ("pre-commit", "post-checkout", "post-index-change", "reference-transaction"):
        (bin_ / "hooks" / hook).write_text(f"#!/bin/sh\ntouch {marks}/hook\n")
        (bin_ / "hooks" / hook).chmod(0o755)
    with (repo / ".git" / "config").open("a") as fh:
        fh.write(
            f"[core]\n\tfsmonitor = {bin_}/fsmonitor\n\thooksPath = {bin_}/hooks\n"
            f'[filter "evil"]\n\tclean = {bin_}/clean\n\tsmudge = {bin_}/smudge\n\trequired = true\n'
            f'[diff "evil"]\n\ttextconv = {bin_}/textconv\n'
        )
    # A changed file of the same size: status must run the clean filter to compare it.
    (repo / "a.txt").write_text("Committed\n")
    return repo, marks


def planted_ran(marks: Path) -> list[str]:
    return sorted(p.name for p in marks.iterdir())


def test_the_planted_programs_do_run_under_plain_git(evil: tuple[Path, Path]) -> None:
    # The trap is real: an ordinary `git status` / `git cat-file --filters` runs them.
    repo, marks = evil
    git(repo, "status", "--porcelain")
    git(repo, "cat-file", "--filters", "HEAD:a.txt")
    git(repo, "diff")
    assert set(planted_ran(marks)) >= {"fsmonitor", "hook", "clean", "smudge", "textconv"}


def test_snapshot_undo_and_session_start_run_none_of_them(evil: tuple[Path, Path], tmp_path: Path) -> None:
    repo, marks = evil
    top = repo.resolve()

    state = worktree_state(repo)  # git rev-parse + git status
    assert state is not None and str(top / "a.txt") in state

    store = SessionStore(tmp_path / "store.db")
    store.create_session(SessionInfo(id="ses_1", project=repo))
    undo = UndoLog(store, "ses_1", repo)
    undo.begin_turn("t1", message_count=0)
    (repo / "b.txt").write_text("made by a shell command\n")
    (repo / "a.txt").write_text("changed again\n")
    changes = undo.end_turn()
    assert changes is not None and sorted(changes.shell_changed) == [top / "a.txt", top / "b.txt"]
    reverted = undo.revert_paths(changes.shell_changed)  # git cat-file -e / --filters, check-ignore
    assert sorted(reverted.reverted) == [top / "a.txt", top / "b.txt"], reverted.skipped
    assert (repo / "a.txt").read_text() == "Committed\n" and not (repo / "b.txt").exists()

    session = Session(repo, Config(model="openai/none"), provider=object())  # type: ignore[arg-type]
    assert "Git repository: yes" in session._system_prompt

    diff = run_git(repo, "diff", "--stat")
    assert diff is not None and diff.returncode == 0 and b"a.txt" in diff.stdout
    assert planted_ran(marks) == []


def test_a_config_that_includes_other_files_is_not_run(evil: tuple[Path, Path], tmp_path: Path) -> None:
    repo, marks = evil
    extra = tmp_path / "extra.cfg"
    extra.write_text("[core]\n\tpager = cat\n")
    assert git(repo, "config", "include.path", str(extra)).returncode == 0
    assert run_git(repo, "status", "--porcelain") is None
    assert worktree_state(repo) is None  # degrades as outside a repository
    assert planted_ran(marks) == []


def test_outside_a_repository(tmp_path: Path) -> None:
    out = run_git(tmp_path, "rev-parse", "--is-inside-work-tree")
    assert out is not None and out.returncode != 0
