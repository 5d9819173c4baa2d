"""glob and grep on real files, with ripgrep and with the pure-Python fallback (rg taken off PATH)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from nbagent.tools.base import PermissionQuery, Tool, ToolContext, ToolFailure, ToolResult
from nbagent.tools.search import GlobTool, GrepTool


class Harness:
    def __init__(self, root: Path, output_dir: Path) -> None:
        self.asks: list[PermissionQuery] = []
        self.ctx = ToolContext(root=root, emit=lambda _e: None, ask=self._ask, output_dir=output_dir)

    async def _ask(self, query: PermissionQuery) -> None:
        self.asks.append(query)

    async def run(self, tool: Tool[Any], **args: Any) -> ToolResult:
        return await tool.run(tool.parse(args), self.ctx)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    root.mkdir()
    return root


@pytest.fixture
def h(root: Path, tmp_path: Path, engine: str) -> Harness:
    return Harness(root, tmp_path / "out")


def write(root: Path, rel: str, text: str = "", mtime: float | None = None) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    if mtime is not None:
        os.utime(path, (mtime, mtime))
    return path


def lines(result: ToolResult) -> list[str]:
    return result.output.splitlines()


# ---------------------------------------------------------------------------------------------- glob


async def test_glob_newest_first_and_relative_to_root(h: Harness, root: Path) -> None:
    write(root, "src/old.py", mtime=1_000_000)
    write(root, "src/pkg/new.py", mtime=3_000_000)
    write(root, "src/mid.py", mtime=2_000_000)
    write(root, "src/notes.txt", mtime=4_000_000)
    result = await h.run(GlobTool(), pattern="**/*.py")
    assert lines(result) == ["src/pkg/new.py", "src/mid.py", "src/old.py"]
    # leave is asked for the folder searched, not the glob: the rules judge paths
    assert [(q.permission, q.patterns) for q in h.asks] == [("glob", ["."])]

    # relative to a folder, shown relative to the project root
    result = await h.run(GlobTool(), pattern="*.py", path="src/pkg")
    assert lines(result) == ["src/pkg/new.py"]
    result = await h.run(GlobTool(), pattern="pkg/*.py", path="src")
    assert lines(result) == ["src/pkg/new.py"]
    result = await h.run(GlobTool(), pattern="{old,mid}.py", path="src")
    assert sorted(lines(result)) == ["src/mid.py", "src/old.py"]


async def test_glob_absolute_pattern(h: Harness, root: Path) -> None:
    write(root, "a/b/c.py")
    result = await h.run(GlobTool(), pattern=f"{root}/a/**/*.py")
    assert lines(result) == ["a/b/c.py"]


async def test_glob_respects_gitignore_and_skips_vcs_and_hidden(h: Harness, root: Path, engine: str) -> None:
    write(root, ".gitignore", "build/\n*.log\n/top_only.py\n")
    write(root, "keep.py")
    write(root, "app.log")
    write(root, "build/gen.py")
    write(root, "top_only.py")
    write(root, "sub/top_only.py")
    write(root, ".git/hooks/x.py")
    write(root, ".hidden/h.py")
    write(root, "sub/.gitignore", "local.py\n")
    write(root, "sub/local.py")
    if engine == "python":  # without ripgrep, dependency folders are skipped even when not ignored
        write(root, "node_modules/dep/index.py")
        write(root, ".venv/lib/site.py")
    result = await h.run(GlobTool(), pattern="**/*")
    assert sorted(lines(result)) == ["keep.py", "sub/top_only.py"]

    # naming a dot-folder explicitly searches it
    write(root, ".github/workflows/ci.yml")
    result = await h.run(GlobTool(), pattern=".github/**/*.yml")
    assert lines(result) == [".github/workflows/ci.yml"]


async def test_glob_is_bounded_and_says_so(h: Harness, root: Path) -> None:
    for i in range(150):
        write(root, f"many/f{i:03}.txt", mtime=1_000_000 + i)
    result = await h.run(GlobTool(), pattern="many/*.txt")
    out = lines(result)
    assert out[0] == "many/f149.txt"  # newest first
    assert len([line for line in out if line.startswith("many/")]) == 100
    assert "Showing the 100 newest of 150 files" in result.output
    assert result.metadata["truncated"] is True


async def test_glob_no_match_and_bad_path(h: Harness, root: Path) -> None:
    write(root, "a.py")
    result = await h.run(GlobTool(), pattern="*.rs")
    assert result.output == "No files found"
    with pytest.raises(ToolFailure, match="not found"):
        await h.run(GlobTool(), pattern="*", path="missing")
    with pytest.raises(ToolFailure, match="is a file"):
        await h.run(GlobTool(), pattern="*", path="a.py")


GLOB_TREE = [
    "a/b/c.py",
    "src/b.py",
    "src/a/b.py",
    "src/a/b/c.py",
    "x/y.tsx",
    "x/y.ts",
    "x/y.js",
    "f3.txt",
    "fa.txt",
]


@pytest.mark.parametrize(
    ("pattern", "found"),
    [
        ("*.py", ["a/b/c.py", "src/a/b.py", "src/a/b/c.py", "src/b.py"]),  # no slash: any depth
        ("src/*.py", ["src/b.py"]),  # one level only
        ("src/**/*.py", ["src/a/b.py", "src/a/b/c.py", "src/b.py"]),  # ** spans zero or more folders
        ("*.{ts,tsx}", ["x/y.ts", "x/y.tsx"]),
        ("f[0-9].txt", ["f3.txt"]),
    ],
)
async def test_glob_pattern_semantics(h: Harness, root: Path, pattern: str, found: list[str]) -> None:
    """What a pattern finds on disk (the policy), whatever compiles it."""
    for rel in GLOB_TREE:
        write(root, rel)
    result = await h.run(GlobTool(), pattern=pattern)
    assert sorted(lines(result)) == found


# ---------------------------------------------------------------------------------------------- grep


@pytest.fixture
def corpus(root: Path) -> Path:
    write(root, ".gitignore", "ignored/\n")
    write(root, "src/old.py", "def alpha():\n    return 1\n", mtime=1_000_000)
    write(root, "src/new.py", "import os\n\ndef Alpha_two():\n    pass\n# alpha again\n", mtime=2_000_000)
    write(root, "docs/readme.md", "alpha in docs\n", mtime=1_500_000)
    write(root, "ignored/x.py", "def alpha(): pass\n")
    return root


async def test_grep_files_with_matches_newest_first_respecting_gitignore(h: Harness, corpus: Path) -> None:
    result = await h.run(GrepTool(), pattern="alpha")
    assert lines(result) == ["Found 3 files", "src/new.py", "docs/readme.md", "src/old.py"]
    # leave is asked for the folder searched, not the regex: the rules judge paths
    assert (h.asks[0].permission, h.asks[0].patterns) == ("grep", ["."])

    result = await h.run(GrepTool(), pattern="alpha", glob="*.py")
    assert lines(result)[1:] == ["src/new.py", "src/old.py"]

    result = await h.run(GrepTool(), pattern="def", path="src/old.py")
    assert lines(result)[1:] == ["src/old.py"]


async def test_grep_content_mode_with_line_numbers_and_context(h: Harness, corpus: Path) -> None:
    result = await h.run(GrepTool(), pattern="^def", output_mode="content", path="src")
    assert sorted(lines(result)) == ["src/new.py:3:def Alpha_two():", "src/old.py:1:def alpha():"]

    result = await h.run(GrepTool(), pattern="Alpha_two", output_mode="content", context=1)
    assert lines(result) == ["src/new.py-2-", "src/new.py:3:def Alpha_two():", "src/new.py-4-    pass"]

    result = await h.run(
        GrepTool(), pattern="ALPHA", output_mode="content", case_insensitive=True, glob="*.md"
    )
    assert lines(result) == ["docs/readme.md:1:alpha in docs"]

    result = await h.run(GrepTool(), pattern="ALPHA", output_mode="content")
    assert result.output == "No matches found"


async def test_grep_count_mode(h: Harness, corpus: Path) -> None:
    result = await h.run(GrepTool(), pattern="alpha", output_mode="count", case_insensitive=True)
    assert lines(result) == [
        "4 matching lines in 3 files",
        "docs/readme.md:1",
        "src/new.py:2",
        "src/old.py:1",
    ]


async def test_grep_multiline_and_lookaround(h: Harness, corpus: Path) -> None:
    result = await h.run(GrepTool(), pattern=r"alpha\(\):\n\s+return", output_mode="content", multiline=True)
    assert lines(result) == ["src/old.py:1:def alpha():", "src/old.py:2:    return 1"]
    # no multiline: \n never matches
    result = await h.run(GrepTool(), pattern=r"alpha\(\):\n\s+return", output_mode="content")
    assert result.output == "No matches found"
    # look-ahead needs PCRE2 under ripgrep; it still works
    result = await h.run(GrepTool(), pattern=r"alpha(?=\(\))", output_mode="content")
    assert lines(result) == ["src/old.py:1:def alpha():"]


async def test_grep_invalid_regex_is_explained(h: Harness, corpus: Path) -> None:
    with pytest.raises(ToolFailure) as info:
        await h.run(GrepTool(), pattern="foo(bar")
    message = str(info.value)
    assert "regex" in message.lower()
    assert "escape" in message.lower()


async def test_grep_bounds_lines_files_and_long_lines(h: Harness, root: Path) -> None:
    write(root, "big.txt", "".join(f"needle {i}\n" for i in range(300)))
    result = await h.run(GrepTool(), pattern="needle", output_mode="content")
    out = lines(result)
    assert out[0] == "big.txt:1:needle 0"
    assert len([line for line in out if line.startswith("big.txt:")]) == 250
    assert "Showing the first 250 lines" in result.output
    assert result.metadata["truncated"] is True

    result = await h.run(GrepTool(), pattern="needle", output_mode="content", head_limit=5)
    assert lines(result)[:5] == [f"big.txt:{i + 1}:needle {i}" for i in range(5)]
    assert "Showing the first 5 lines" in result.output

    for i in range(120):
        write(root, f"many/f{i:03}.txt", "needle\n", mtime=1_000_000 + i)
    result = await h.run(GrepTool(), pattern="needle", path="many")
    out = lines(result)
    assert out[0] == "Found 120 files"
    assert out[1] == "many/f119.txt"
    assert len([line for line in out if line.startswith("many/")]) == 100

    write(root, "long/min.js", "var a=1;" * 2000 + "needle" + "x" * 5000 + "\n")
    result = await h.run(GrepTool(), pattern="var a", output_mode="content", path="long")
    assert result.output.startswith("long/min.js:1:var a=1;")
    assert len(result.output) < 1_000


async def test_grep_missing_path(h: Harness, root: Path) -> None:
    with pytest.raises(ToolFailure, match="not found"):
        await h.run(GrepTool(), pattern="x", path="nope")
