"""The file tools check every path they touch, judged by the real policy (``RulePolicy``).

Real files in tmp folders, a fake home with secrets, real ripgrep and the pure-Python fallback (rg
taken off PATH). ``ask`` raises unless the policy allows, or, with ``approve``, records the question and
says yes once, as a user would; ``screen`` is the policy's answer, as the session wires it.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest

from nbagent.core.config import Config, Mode
from nbagent.core.permission import Decision
from nbagent.permissions.policy import RulePolicy
from nbagent.tools.base import PermissionQuery, PermissionRejected, Tool, ToolContext, ToolResult
from nbagent.tools.files import EditTool, ReadTool, WriteTool
from nbagent.tools.notebook import NotebookEditTool
from nbagent.tools.patch import ApplyPatchTool
from nbagent.tools.search import GlobTool, GrepTool

SECRET = "sk-secret-123"
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    h = tmp_path / "home"
    (h / ".ssh").mkdir(parents=True)
    (h / ".ssh" / "id_rsa").write_text(f"PRIVATE KEY {SECRET}\n")
    (h / ".ssh" / "key.png").write_bytes(PNG)
    (h / "notes.txt").write_text(f"KEY in home {SECRET}\n")
    monkeypatch.setenv("HOME", str(h))
    return h


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    out = tmp_path / "outside"
    out.mkdir()
    (out / "secret.txt").write_text(f"KEY={SECRET}\n")
    return out


@pytest.fixture
def root(tmp_path: Path, home: Path) -> Path:
    root = tmp_path / "proj"
    (root / "src").mkdir(parents=True)
    (root / "src" / "app.py").write_text("import config\nKEY = config.load()\n")
    (root / ".env").write_text(f"KEY={SECRET}\n")
    (root / ".env.example").write_text("KEY=\n")
    return root.resolve()


class Harness:
    """Tools run with the real policy; ``asked`` holds every question the policy did not answer alone."""

    def __init__(
        self,
        root: Path,
        out: Path,
        *,
        approve: bool = False,
        permission: dict[str, Any] | None = None,
        mode: Mode = "default",
    ) -> None:
        self.policy = RulePolicy(root, Config.model_validate({"permission": permission or {}}), mode=mode)
        self.approve = approve
        self.asked: list[tuple[PermissionQuery, Decision]] = []
        self.ctx = ToolContext(
            root=root, ask=self._ask, screen=lambda q: self.policy.evaluate(q).action, output_dir=out
        )

    async def _ask(self, query: PermissionQuery) -> None:
        decision = self.policy.evaluate(query)
        if decision.action == "allow":
            return
        self.asked.append((query, decision))
        if decision.action == "deny" or not self.approve:
            raise PermissionRejected(f"{decision.action}: {decision.reason or decision.rule}")

    async def run(self, tool: Tool[Any], **args: Any) -> ToolResult:
        return await tool.run(tool.parse(args), self.ctx)

    async def refused(self, tool: Tool[Any], **args: Any) -> Decision:
        """Run a call the policy must not allow silently; the decision that stopped it."""
        with pytest.raises(PermissionRejected):
            await self.run(tool, **args)
        return self.asked[-1][1]


@pytest.fixture
def h(root: Path, tmp_path: Path) -> Harness:
    return Harness(root, tmp_path / "out")


@pytest.fixture
def yes(root: Path, tmp_path: Path) -> Harness:
    return Harness(root, tmp_path / "out", approve=True)


# ---------------------------------------------------------------------------------------------- grep


@pytest.mark.parametrize("mode", ["files_with_matches", "content", "count"])
async def test_grep_never_returns_env_and_says_it_was_skipped(h: Harness, engine: str, mode: str) -> None:
    # by default hidden files are not searched at all: .env is not even a candidate
    result = await h.run(GrepTool(), pattern="KEY", output_mode=mode)
    assert SECRET not in result.output and ".env" not in result.output
    assert "src/app.py" in result.output
    # a dot-file glob turns hidden files on: .env is reached, screened, left out
    for glob in (".env*", ".*"):
        result = await h.run(GrepTool(), pattern="KEY", output_mode=mode, glob=glob)
        assert SECRET not in result.output
        assert "1 protected file was not searched (.env): reading it asks." in result.output
        assert "read tool" in result.output
        assert result.metadata["left_out"] == 1
        assert not any(line.startswith(".env:") or line == ".env" for line in result.output.splitlines())
    assert h.asked == []  # searching the project itself asks nothing


async def test_grep_note_does_not_depend_on_the_secret(h: Harness, engine: str) -> None:
    # A note that named only the protected files that matched would let the model guess a key letter
    # by letter; it names every left-out file whatever the pattern.
    hit = await h.run(GrepTool(), pattern=SECRET, glob=".env*")
    miss = await h.run(GrepTool(), pattern="sk-not-it", glob=".env*")
    assert hit.output == miss.output
    assert hit.output.startswith("No matches found")


async def test_grep_leaves_out_protected_files_with_glob_characters_in_their_name(
    h: Harness, root: Path, engine: str
) -> None:
    name = "keys/we[i]rd*{a,b}, x.pem"
    (root / "keys").mkdir()
    (root / name).write_text(f"KEY={SECRET}\n")
    result = await h.run(GrepTool(), pattern="KEY", output_mode="content")
    assert SECRET not in result.output
    assert f"1 protected file was not searched ({name})" in result.output


async def test_grep_gitignore_negation_does_not_bring_env_back(h: Harness, root: Path, engine: str) -> None:
    (root / ".gitignore").write_text("!.env\n!/.env\n")
    result = await h.run(GrepTool(), pattern=SECRET, glob=".env", output_mode="content")
    assert SECRET not in result.output


async def test_grep_a_protected_file_by_name_asks(h: Harness, yes: Harness, engine: str) -> None:
    decision = await h.refused(GrepTool(), pattern="KEY", path=".env")
    assert decision.action == "ask" and "protected" in decision.rule
    # the user may say yes to that very file: then it is searched
    result = await yes.run(GrepTool(), pattern="KEY", path=".env", output_mode="content")
    assert f".env:1:KEY={SECRET}" in result.output
    assert yes.asked[0][0].patterns == [".env"]


async def test_grep_in_home_ssh_asks(h: Harness, yes: Harness, home: Path, engine: str) -> None:
    for path in ("~/.ssh", str(home / ".ssh"), str(home)):
        decision = await h.refused(GrepTool(), pattern="KEY", path=path)
        assert decision.action == "ask"
        assert h.asked[-1][0].permission == "grep"
        assert "outside the project" in decision.reason
    # approved once, the folder is searched, but every file in it asks by itself: none is opened
    for path, left_out in (("~/.ssh", "2 files"), (str(home), "1 file")):
        result = await yes.run(GrepTool(), pattern="PRIVATE|KEY", path=path, output_mode="content")
        assert result.output.startswith("No matches found")
        assert SECRET not in result.output
        assert f"{left_out} outside the project" in result.output
        assert ("id_rsa" in result.output) == (path == "~/.ssh")


async def test_grep_rule_denied_files_are_left_out(root: Path, tmp_path: Path, engine: str) -> None:
    (root / "private").mkdir()
    (root / "private" / "plan.md").write_text("KEY plan\n")
    h = Harness(root, tmp_path / "out", permission={"read": {"private/**": "deny"}})
    result = await h.run(GrepTool(), pattern="KEY", output_mode="content")
    assert "KEY plan" not in result.output
    assert "1 file was not searched (private/plan.md): a permission rule denies reading it." in result.output


async def test_grep_in_bypass_mode_still_skips_secrets(root: Path, tmp_path: Path, engine: str) -> None:
    h = Harness(root, tmp_path / "out", mode="bypass")
    result = await h.run(GrepTool(), pattern="KEY", output_mode="content", glob=".env*")
    assert SECRET not in result.output and ".env" in result.output


# ---------------------------------------------------------------------------------------------- symlinks


async def test_link_to_a_folder_outside_does_not_leak(
    h: Harness, root: Path, outside: Path, engine: str
) -> None:
    (root / "notes").symlink_to(outside, target_is_directory=True)
    result = await h.run(GrepTool(), pattern="KEY", output_mode="content")
    assert SECRET not in result.output
    assert "notes/" not in result.output
    result = await h.run(GlobTool(), pattern="**/*")
    assert "notes/secret.txt" not in result.output
    # named directly, the link is judged where it leads
    decision = await h.refused(GrepTool(), pattern="KEY", path="notes")
    assert "outside the project" in decision.reason
    assert h.asked[-1][0].patterns == ["notes", str(outside)]
    decision = await h.refused(GlobTool(), pattern="*", path="notes")
    assert "outside the project" in decision.reason
    decision = await h.refused(ReadTool(), file_path="notes/secret.txt")
    assert "outside the project" in decision.reason


async def test_links_to_env_and_to_a_file_outside(h: Harness, root: Path, outside: Path, engine: str) -> None:
    (root / "k").symlink_to(root / ".env")
    (root / "lf").symlink_to(outside / "secret.txt")
    result = await h.run(GrepTool(), pattern="KEY", output_mode="content")
    assert SECRET not in result.output
    assert not any(line.startswith(("k:", "lf:")) for line in result.output.splitlines())

    decision = await h.refused(GrepTool(), pattern="KEY", path="k")
    assert "protected" in decision.rule
    decision = await h.refused(ReadTool(), file_path="k")
    assert "protected" in decision.rule
    assert h.asked[-1][0].patterns == ["k", ".env"]
    decision = await h.refused(ReadTool(), file_path="lf")
    assert "outside the project" in decision.reason


# ---------------------------------------------------------------------------------------------- glob


async def test_glob_outside_the_project_asks(h: Harness, root: Path, outside: Path, engine: str) -> None:
    calls: list[dict[str, str]] = [
        {"pattern": "**/*", "path": "/etc"},
        {"pattern": "/etc/*.conf"},
        {"pattern": "../outside/*"},
        {"pattern": "*", "path": str(outside)},
        {"pattern": "*", "path": "~/.ssh"},
    ]
    for args in calls:
        decision = await h.refused(GlobTool(), **args)
        assert decision.action == "ask", args
        assert "outside the project" in decision.reason, args
        assert h.asked[-1][0].permission == "glob"


async def test_glob_lists_names_of_protected_files_not_their_content(h: Harness, engine: str) -> None:
    # Decision: names are fine to list (the model must know .env exists to ask for it); contents are not.
    result = await h.run(GlobTool(), pattern=".*")
    assert sorted(result.output.splitlines()) == [".env", ".env.example"]
    assert SECRET not in result.output
    assert h.asked == []


async def test_glob_in_an_approved_folder_outside_lists_it(yes: Harness, outside: Path, engine: str) -> None:
    result = await yes.run(GlobTool(), pattern="*.txt", path=str(outside))
    assert result.output.splitlines() == [str(outside / "secret.txt")]
    assert len(yes.asked) == 1


async def test_glob_leaves_out_what_a_rule_denies(root: Path, tmp_path: Path, engine: str) -> None:
    (root / "private").mkdir()
    (root / "private" / "plan.md").write_text("x\n")
    h = Harness(root, tmp_path / "out", permission={"glob": {"private/**": "deny"}})
    result = await h.run(GlobTool(), pattern="**/*.md")
    assert "private/plan.md" not in result.output.splitlines()
    assert "a permission rule denies listing it" in result.output


# ---------------------------------------------------------------------------------------------- read


async def test_read_judges_the_real_path_of_notebooks_images_and_folders(
    h: Harness, root: Path, home: Path
) -> None:
    (root / "pic.png").symlink_to(home / ".ssh" / "key.png")
    (root / "keys").symlink_to(home / ".ssh", target_is_directory=True)
    (root / "nb.ipynb").symlink_to(root / ".env")
    for path in ("pic.png", "keys", "nb.ipynb", "keys/id_rsa"):
        decision = await h.refused(ReadTool(), file_path=path)
        assert decision.action == "ask", path
        assert "protected" in decision.rule or "secrets" in decision.reason, path
    # a plain image and folder inside the project read without asking
    (root / "ok.png").write_bytes(PNG)
    assert (await h.run(ReadTool(), file_path="ok.png")).attachments
    assert "app.py" in (await h.run(ReadTool(), file_path="src")).output
    assert len(h.asked) == 4


# ---------------------------------------------------------------------------------------------- edits


async def test_edits_through_links_ask_where_they_land(
    root: Path, tmp_path: Path, outside: Path, home: Path
) -> None:
    h = Harness(root, tmp_path / "out", mode="acceptEdits")  # edits inside the project need no yes
    (root / "notes").symlink_to(outside, target_is_directory=True)
    (root / "rc").symlink_to(home / ".bashrc")  # a link to a file that does not exist yet

    await h.run(WriteTool(), file_path="src/new.py", content="x = 1\n")
    assert h.asked == []
    decision = await h.refused(WriteTool(), file_path="notes/new.txt", content="x\n")
    assert "outside the project" in decision.reason
    decision = await h.refused(WriteTool(), file_path="rc", content="evil\n")
    assert decision.action == "ask"
    decision = await h.refused(EditTool(), file_path="notes/fresh.py", old_string="", new_string="x\n")
    assert "outside the project" in decision.reason
    patch = "*** Begin Patch\n*** Add File: notes/p.txt\n+hi\n*** End Patch"
    decision = await h.refused(ApplyPatchTool(), patch=patch)
    assert "outside the project" in decision.reason
    decision = await h.refused(
        NotebookEditTool(),
        notebook_path="notes/n.ipynb",
        new_source="1",
        cell_type="code",
        edit_mode="insert",
    )
    assert "outside the project" in decision.reason
    assert not (outside / "new.txt").exists() and not (outside / "p.txt").exists()
    assert not (outside / "n.ipynb").exists() and not (home / ".bashrc").exists()
