"""apply_patch on real files in tmp_path."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from nbagent.core.events import DiffProduced, Event
from nbagent.tools.base import PermissionQuery, PermissionRejected, ToolContext, ToolFailure, ToolResult
from nbagent.tools.files import ReadTool
from nbagent.tools.patch import ApplyPatchTool

APP = """import os


def main():
    name = os.environ.get("NAME")
    print("hello", name)
    return 0


def helper():
    return 1


if __name__ == "__main__":
    main()
"""


class Harness:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.events: list[Event] = []
        self.asks: list[PermissionQuery] = []
        self.refuse = False
        self.ctx = ToolContext(root=root, call_id="call_p", emit=self.events.append, ask=self._ask)

    async def _ask(self, query: PermissionQuery) -> None:
        self.asks.append(query)
        if self.refuse:
            raise PermissionRejected("The user refused edit.")

    async def patch(self, text: str) -> ToolResult:
        tool = ApplyPatchTool()
        return await tool.run(tool.parse({"patch": text}), self.ctx)

    async def given(self, name: str, content: str | bytes, *, read: bool = True) -> Path:
        path = self.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
        if read:
            tool = ReadTool()
            await tool.run(tool.parse({"file_path": name}), self.ctx)
        return path

    def diffs(self) -> list[DiffProduced]:
        return [e for e in self.events if isinstance(e, DiffProduced)]

    def snapshot(self) -> dict[str, bytes]:
        return {
            str(p.relative_to(self.root)): p.read_bytes() for p in sorted(self.root.rglob("*")) if p.is_file()
        }


@pytest.fixture
def h(tmp_path: Path) -> Harness:
    return Harness(tmp_path)


async def test_add_update_delete_and_move_in_one_patch(h: Harness) -> None:
    app = await h.given("app.py", APP)
    old = await h.given("old.txt", "bye\n", read=False)
    await h.given("lib/util.py", "def util():\n    return 1\n")
    result = await h.patch(
        """*** Begin Patch
*** Add File: docs/notes.md
+# Notes
+
+text
*** Update File: app.py
@@ def main():
-    name = os.environ.get("NAME")
+    name = os.environ.get("NAME", "world")
     print("hello", name)
*** Delete File: old.txt
*** Update File: lib/util.py
*** Move to: lib/tools.py
@@
 def util():
-    return 1
+    return 2
*** End Patch"""
    )
    assert (h.root / "docs/notes.md").read_text() == "# Notes\n\ntext\n"
    assert app.read_text() == APP.replace('get("NAME")', 'get("NAME", "world")')
    assert not old.exists()
    assert not (h.root / "lib/util.py").exists()
    assert (h.root / "lib/tools.py").read_text() == "def util():\n    return 2\n"
    assert result.output.splitlines() == [
        "Applied the patch to 4 files:",
        "A docs/notes.md (+3 -0)",
        "M app.py (+1 -1)",
        "D old.txt",
        "R lib/util.py -> lib/tools.py (+1 -1)",
    ]
    diffs = h.diffs()
    assert [d.path for d in diffs] == ["docs/notes.md", "app.py", "old.txt", "lib/tools.py"]
    assert all(d.call_id == "call_p" for d in diffs)
    assert (diffs[2].additions, diffs[2].deletions) == (0, 1)
    assert "--- a/lib/util.py" in diffs[3].diff and "+++ b/lib/tools.py" in diffs[3].diff
    assert result.metadata["diff"] == "".join(d.diff for d in diffs)
    [query] = [q for q in h.asks if q.permission == "edit"]
    assert query.patterns == ["docs/notes.md", "app.py", "old.txt", "lib/util.py", "lib/tools.py"]
    # recorded: the moved and updated files can be patched again without another read
    await h.patch(
        "*** Begin Patch\n*** Update File: lib/tools.py\n@@\n-    return 2\n+    return 3\n*** End Patch"
    )
    assert (h.root / "lib/tools.py").read_text() == "def util():\n    return 3\n"


async def test_multiple_hunks_in_one_file(h: Harness) -> None:
    app = await h.given("app.py", APP)
    await h.patch(
        """*** Begin Patch
*** Update File: app.py
@@
-import os
+import os
+import sys
@@ def helper():
-    return 1
+    return sys.maxsize
@@
 if __name__ == "__main__":
-    main()
+    sys.exit(main())
*** End Patch"""
    )
    expected = (
        APP.replace("import os\n", "import os\nimport sys\n")
        .replace("return 1", "return sys.maxsize")
        .replace("    main()", "    sys.exit(main())")
    )
    assert app.read_text() == expected
    [diff] = h.diffs()
    assert (diff.additions, diff.deletions) == (3, 2)


async def test_a_failing_hunk_leaves_every_file_untouched(h: Harness) -> None:
    await h.given("app.py", APP)
    await h.given("b.py", "one\ntwo\nthree\n")
    before = h.snapshot()
    with pytest.raises(ToolFailure) as info:
        await h.patch(
            """*** Begin Patch
*** Add File: c.py
+new
*** Update File: app.py
@@
-import os
+import sys
*** Update File: b.py
@@
 one
-two
+TWO
@@
-thre
-four
+THREE
*** End Patch"""
        )
    message = str(info.value)
    assert "Update File: b.py: hunk 2 of 2" in message
    assert "not found" in message and "-thre" not in message and "four" in message
    assert "line 3:\n     3\tthree" in message
    assert "No file was changed" in message
    assert h.snapshot() == before
    assert not h.diffs() and not [q for q in h.asks if q.permission == "edit"]


async def test_missing_context_header_is_reported(h: Harness) -> None:
    await h.given("app.py", APP)
    with pytest.raises(ToolFailure) as info:
        await h.patch(
            "*** Begin Patch\n*** Update File: app.py\n@@ def helpr(x):\n-    return 1\n+    return 2\n*** End Patch"
        )
    message = str(info.value)
    assert "@@ line 'def helpr(x):' was not found" in message
    assert "line 10" in message  # the closest line: def helper():


async def test_whitespace_tolerant_matching_keeps_the_files_context(h: Harness) -> None:
    path = await h.given("t.py", "def f():\n    a = 1   \n\tb = 2\n    return a\n")
    await h.patch(
        """*** Begin Patch
*** Update File: t.py
@@
 def f():
     a = 1
-  b = 2
+    b = 3
   return a
*** End Patch"""
    )
    assert path.read_text() == "def f():\n    a = 1   \n    b = 3\n    return a\n"


async def test_end_of_file_anchors_the_hunk_at_the_end(h: Harness) -> None:
    path = await h.given("r.txt", "x\nend\nx\nend\n")
    await h.patch(
        "*** Begin Patch\n*** Update File: r.txt\n@@\n x\n-end\n+END\n*** End of File\n*** End Patch"
    )
    assert path.read_text() == "x\nend\nx\nEND\n"


async def test_pure_addition_goes_after_the_header_or_at_the_end(h: Harness) -> None:
    path = await h.given("p.py", "def a():\n    pass\n\ndef b():\n    pass\n")
    await h.patch(
        "*** Begin Patch\n*** Update File: p.py\n@@ def a():\n+    '''Doc.'''\n@@\n+\n+def c():\n+    pass\n*** End Patch"
    )
    assert (
        path.read_text() == "def a():\n    '''Doc.'''\n    pass\n\ndef b():\n    pass\n\ndef c():\n    pass\n"
    )


async def test_closest_match_is_looked_for_after_the_header_first(h: Harness) -> None:
    await h.given("app.py", APP)
    with pytest.raises(ToolFailure) as info:
        await h.patch(
            "*** Begin Patch\n*** Update File: app.py\n@@ def helper():\n-    return 2\n+    return 5\n*** End Patch"
        )
    message = str(info.value)
    assert "not found after line 10" in message
    assert "closest match" in message and "line 11:\n    11\t    return 1" in message


async def test_header_may_be_the_start_of_a_line(h: Harness) -> None:
    path = await h.given("app.py", APP)
    await h.patch(
        "*** Begin Patch\n*** Update File: app.py\n@@ def helper\n-    return 1\n+    return 5\n*** End Patch"
    )
    assert path.read_text() == APP.replace("return 1", "return 5")


async def test_first_hunk_may_omit_the_at_at_line(h: Harness) -> None:
    path = await h.given("s.txt", "a\nb\nc\n")
    await h.patch("*** Begin Patch\n*** Update File: s.txt\n a\n-b\n+B\n*** End Patch")
    assert path.read_text() == "a\nB\nc\n"


async def test_bare_empty_lines_count_as_empty_context(h: Harness) -> None:
    path = await h.given("e.py", "x = 1\n\ny = 2\n")
    await h.patch("*** Begin Patch\n*** Update File: e.py\n@@\n x = 1\n\n-y = 2\n+y = 3\n\n*** End Patch")
    assert path.read_text() == "x = 1\n\ny = 3\n"


async def test_crlf_and_missing_final_newline_are_kept(h: Harness) -> None:
    crlf = await h.given("w.txt", b"one\r\ntwo\r\nthree\r\n")
    bare = await h.given("n.txt", "one\ntwo")
    await h.patch(
        "*** Begin Patch\n*** Update File: w.txt\n@@\n one\n-two\n+2\n*** Update File: n.txt\n@@\n-two\n+2\n*** End Patch"
    )
    assert crlf.read_bytes() == b"one\r\n2\r\nthree\r\n"
    assert bare.read_bytes() == b"one\n2"


async def test_patch_wrapped_in_a_fence_or_heredoc(h: Harness) -> None:
    await h.patch("```\n*** Begin Patch\n*** Add File: a.txt\n+a\n*** End Patch\n```")
    await h.patch("apply_patch <<'EOF'\n*** Begin Patch\n*** Add File: b.txt\n+b\n*** End Patch\nEOF\n")
    assert (h.root / "a.txt").read_text() == "a\n" and (h.root / "b.txt").read_text() == "b\n"


async def test_unified_diff_style_headers_are_accepted(h: Harness) -> None:
    path = await h.given("u.txt", "a\nb\n")
    await h.patch("*** Begin Patch\n*** Update File: u.txt\n@@ -1,2 +1,2 @@\n a\n-b\n+c\n*** End Patch")
    assert path.read_text() == "a\nc\n"


async def test_updates_need_a_fresh_read_but_adds_and_deletes_do_not(h: Harness) -> None:
    path = await h.given("u.py", "x = 1\n", read=False)
    with pytest.raises(ToolFailure, match="must read"):
        await h.patch("*** Begin Patch\n*** Update File: u.py\n@@\n-x = 1\n+x = 2\n*** End Patch")
    await h.given("u.py", "x = 1\n")
    path.write_text("x = 100\n")
    os.utime(path, ns=(0, 10**18))
    with pytest.raises(ToolFailure, match="changed on disk"):
        await h.patch("*** Begin Patch\n*** Update File: u.py\n@@\n-x = 1\n+x = 2\n*** End Patch")
    await h.given("gone.py", "", read=False)
    await h.patch("*** Begin Patch\n*** Delete File: gone.py\n*** Add File: fresh.py\n+y\n*** End Patch")
    assert not (h.root / "gone.py").exists() and (h.root / "fresh.py").exists()


async def test_add_over_an_unread_existing_file_is_refused(h: Harness) -> None:
    await h.given("exists.py", "keep\n", read=False)
    with pytest.raises(ToolFailure, match="must read"):
        await h.patch("*** Begin Patch\n*** Add File: exists.py\n+new\n*** End Patch")
    assert (h.root / "exists.py").read_text() == "keep\n"


async def test_move_onto_an_existing_file_is_refused(h: Harness) -> None:
    await h.given("a.py", "a\n")
    await h.given("b.py", "b\n")
    with pytest.raises(ToolFailure, match="already exists"):
        await h.patch("*** Begin Patch\n*** Update File: a.py\n*** Move to: b.py\n*** End Patch")


async def test_delete_of_a_missing_file_suggests_names(h: Harness) -> None:
    await h.given("readme.md", "", read=False)
    with pytest.raises(
        ToolFailure, match=r"Delete File: File not found: readme\.txt\. Did you mean: readme\.md"
    ):
        await h.patch("*** Begin Patch\n*** Delete File: readme.txt\n*** End Patch")


async def test_hunks_out_of_order_are_explained(h: Harness) -> None:
    await h.given("o.txt", "a\nb\nc\nd\n")
    with pytest.raises(ToolFailure, match="before the previous hunk"):
        await h.patch("*** Begin Patch\n*** Update File: o.txt\n@@\n-c\n+C\n@@\n-a\n+A\n*** End Patch")


async def test_permission_is_one_query_and_refusal_writes_nothing(h: Harness) -> None:
    await h.given("a.py", "a\n")
    before = h.snapshot()
    h.refuse = True
    with pytest.raises(PermissionRejected):
        await h.patch(
            "*** Begin Patch\n*** Update File: a.py\n@@\n-a\n+A\n*** Add File: z.py\n+z\n*** End Patch"
        )
    assert h.snapshot() == before
    edit_queries = [q for q in h.asks if q.permission == "edit"]
    assert len(edit_queries) == 1 and edit_queries[0].patterns == ["a.py", "z.py"]
    assert "+A" in edit_queries[0].metadata["diff"]


@pytest.mark.parametrize(
    ("patch", "error"),
    [
        ("", "must start with the line '\\*\\*\\* Begin Patch'"),
        ("*** Add File: a.txt\n+a\n*** End Patch", "must start"),
        ("*** Begin Patch\n*** Add File: a.txt\n+a\n", "must end with the line '\\*\\*\\* End Patch'"),
        ("*** Begin Patch\n*** End Patch", "no file operations"),
        (
            "*** Begin Patch\n*** Frobnicate: a.txt\n*** End Patch",
            "line 2: expected '\\*\\*\\* Add File: path'",
        ),
        (
            "*** Begin Patch\n*** Add File: a.txt\nno plus\n*** End Patch",
            "line 3: every line of an added file",
        ),
        ("*** Begin Patch\n*** Add File:  \n+x\n*** End Patch", "needs a path"),
        ("*** Begin Patch\n*** Update File: a.txt\n*** End Patch", "has no hunks"),
        ("*** Begin Patch\n*** Update File: a.txt\n@@\n a\n*** End Patch", "changes nothing"),
        (
            "*** Begin Patch\n*** Update File: a.txt\n@@\n-a\n+b\n?? what\n*** End Patch",
            "line 6: unexpected line",
        ),
        ("*** Begin Patch\n*** Update File: a.txt\n*** End of File\n*** End Patch", "must follow a hunk"),
        (
            "*** Begin Patch\n*** Delete File: a.txt\n*** Update File: a.txt\n@@\n-a\n+b\n*** End Patch",
            "appears twice",
        ),
    ],
)
async def test_malformed_patches_are_refused(h: Harness, patch: str, error: str) -> None:
    await h.given("a.txt", "a\n")
    before = h.snapshot()
    with pytest.raises(ToolFailure, match=error):
        await h.patch(patch)
    assert h.snapshot() == before


async def test_directory_targets_are_refused(h: Harness) -> None:
    (h.root / "d").mkdir()
    with pytest.raises(ToolFailure, match="is a directory"):
        await h.patch("*** Begin Patch\n*** Delete File: d\n*** End Patch")
