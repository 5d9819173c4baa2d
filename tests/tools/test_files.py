"""read, write and edit on real files in tmp_path."""

from __future__ import annotations

import base64
import json
import os
import struct
import zlib
from pathlib import Path
from typing import Any

import pytest

from nbagent.core.events import DiffProduced, Event
from nbagent.tools.base import PermissionQuery, PermissionRejected, Tool, ToolContext, ToolFailure, ToolResult
from nbagent.tools.files import EditTool, ReadTool, WriteTool


class Harness:
    def __init__(self, root: Path) -> None:
        self.events: list[Event] = []
        self.asks: list[PermissionQuery] = []
        self.refuse = False
        self.ctx = ToolContext(
            root=root, call_id="call_1", emit=self.events.append, ask=self._ask, output_dir=root / ".out"
        )

    async def _ask(self, query: PermissionQuery) -> None:
        self.asks.append(query)
        if self.refuse:
            raise PermissionRejected(f"The user refused {query.permission}.", "not now")

    async def run(self, tool: Tool[Any], **args: Any) -> ToolResult:
        return await tool.run(tool.parse(args), self.ctx)

    async def read(self, path: str, **args: Any) -> ToolResult:
        return await self.run(ReadTool(), file_path=path, **args)

    def diffs(self) -> list[DiffProduced]:
        return [e for e in self.events if isinstance(e, DiffProduced)]


@pytest.fixture
def h(tmp_path: Path) -> Harness:
    return Harness(tmp_path)


def tiny_png(width: int = 2, height: int = 2) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    rows = b"".join(b"\x00" + b"\xff\x00\x00" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def touch_changed(path: Path, content: str) -> None:
    """Change a file on disk the way another program would (new size and a later mtime)."""
    st = path.stat()
    path.write_text(content)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))


# ---------------------------------------------------------------------------------------------- schema


def test_read_only_flags() -> None:
    assert ReadTool.read_only is True
    assert WriteTool.read_only is False
    assert EditTool.read_only is False


def test_extra_parameters_are_refused() -> None:
    with pytest.raises(ValueError, match="extra"):
        ReadTool().parse({"file_path": "a", "path": "b"})


# ---------------------------------------------------------------------------------------------- read


async def test_read_numbers_lines_like_cat_n_and_records_the_read(h: Harness, tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("alpha\n\tbeta\ngamma")
    result = await h.read("a.txt")
    assert result.output == "     1\talpha\n     2\t\tbeta\n     3\tgamma"
    assert tmp_path / "a.txt" in h.ctx.files.stamps
    assert h.asks == [PermissionQuery(permission="read", patterns=["a.txt"], title="Read a.txt")]
    assert result.metadata["lines"] == 3


async def test_read_absolute_path_and_crlf(h: Harness, tmp_path: Path) -> None:
    (tmp_path / "w.txt").write_bytes(b"one\r\ntwo\r\n")
    result = await h.read(str(tmp_path / "w.txt"))
    assert result.output == "     1\tone\n     2\ttwo"


async def test_read_offset_and_limit(h: Harness, tmp_path: Path) -> None:
    (tmp_path / "n.txt").write_text("".join(f"line {i}\n" for i in range(1, 11)))
    result = await h.read("n.txt", offset=3, limit=2)
    body, _, trailer = result.output.partition("\n\n")
    assert body == "     3\tline 3\n     4\tline 4"
    assert "lines 3-4 of 10" in trailer and "offset=5" in trailer
    tail = await h.read("n.txt", offset=9)
    assert tail.output == "     9\tline 9\n    10\tline 10"  # nothing remains: no trailer


async def test_read_default_limit_is_2000_lines(h: Harness, tmp_path: Path) -> None:
    (tmp_path / "big.txt").write_text("".join(f"{i}\n" for i in range(1, 2501)))
    result = await h.read("big.txt")
    assert "  2000\t2000\n" in result.output
    assert "\t2001" not in result.output
    assert "offset=2001" in result.output and "of 2500" in result.output


async def test_read_output_is_bounded_in_characters(h: Harness, tmp_path: Path) -> None:
    (tmp_path / "wide.txt").write_text(("x" * 1500 + "\n") * 1000)
    result = await h.read("wide.txt")
    assert len(result.output) < 60_000
    last = result.metadata["end"]
    assert 10 < last < 1000
    assert f"offset={last + 1}" in result.output and "capped" in result.output


async def test_read_cuts_long_lines(h: Harness, tmp_path: Path) -> None:
    (tmp_path / "long.txt").write_text("y" * 5000 + "\nshort\n")
    result = await h.read("long.txt")
    first, second = result.output.split("\n")
    assert first.startswith("     1\t" + "y" * 2000 + "...")
    assert "3000 more characters" in first and len(first) < 2100
    assert second == "     2\tshort"


async def test_read_offset_past_end(h: Harness, tmp_path: Path) -> None:
    (tmp_path / "s.txt").write_text("a\nb\n")
    with pytest.raises(ToolFailure, match=r"past the end.*2 lines"):
        await h.read("s.txt", offset=5)


async def test_read_empty_file_says_so(h: Harness, tmp_path: Path) -> None:
    (tmp_path / "empty.py").write_text("")
    result = await h.read("empty.py")
    assert "empty" in result.output
    assert tmp_path / "empty.py" in h.ctx.files.stamps


async def test_read_lists_a_directory(h: Harness, tmp_path: Path) -> None:
    (tmp_path / "pkg" / "sub").mkdir(parents=True)
    (tmp_path / "pkg" / "b.py").write_text("")
    (tmp_path / "pkg" / "A.txt").write_text("")
    result = await h.read("pkg")
    assert result.output == "pkg/ is a directory with 3 entries:\nA.txt\nb.py\nsub/"


async def test_read_directory_listing_is_bounded(h: Harness, tmp_path: Path) -> None:
    (tmp_path / "many").mkdir()
    for i in range(700):
        (tmp_path / "many" / f"f{i:04}").write_text("")
    result = await h.read("many")
    assert "700 entries" in result.output
    assert "f0499" in result.output and "f0500" not in result.output
    assert "offset=501" in result.output
    rest = await h.read("many", offset=501)
    assert "f0500" in rest.output and "f0699" in rest.output and "offset=" not in rest.output


async def test_read_empty_directory(h: Harness, tmp_path: Path) -> None:
    (tmp_path / "void").mkdir()
    result = await h.read("void")
    assert "empty" in result.output


async def test_read_refuses_binary_files(h: Harness, tmp_path: Path) -> None:
    (tmp_path / "blob.bin").write_bytes(b"ELF\x00\x01\x02" * 10)
    with pytest.raises(ToolFailure, match="binary"):
        await h.read("blob.bin")
    (tmp_path / "ctrl.bin").write_bytes(bytes(range(1, 32)) * 20)  # no NUL, but all control bytes
    with pytest.raises(ToolFailure, match="binary"):
        await h.read("ctrl.bin")
    assert not h.ctx.files.stamps


async def test_read_text_with_a_few_latin1_bytes_is_decoded_and_flagged(h: Harness, tmp_path: Path) -> None:
    lines = ["plain line"] * 3000 + ["caf\xe9 cr\xe8me br\xfbl\xe9e", "tail"]
    (tmp_path / "latin.txt").write_bytes("\n".join(lines).encode("latin-1"))
    result = await h.read("latin.txt", offset=3001)
    assert result.output.splitlines()[0].endswith("caf\ufffd cr\ufffdme br\ufffdl\ufffde")
    assert "note: not valid UTF-8, 4 bytes replaced" in result.output
    assert result.metadata["replaced_bytes"] == 4
    # flagged even when the bad bytes lie outside the lines shown
    head = await h.read("latin.txt", limit=2)
    assert "4 bytes replaced" in head.output and "\ufffd" not in head.output.split("(")[0]
    assert h.ctx.files.stamps

    (tmp_path / "clean.txt").write_text("na\u00efve \ufffd already\n", encoding="utf-8")
    clean = await h.read("clean.txt")
    assert "not valid UTF-8" not in clean.output and clean.metadata["replaced_bytes"] == 0


async def test_read_utf8_split_at_sniff_boundary_is_text(h: Harness, tmp_path: Path) -> None:
    text = "aaaaaaa\n" * 1023 + "aaaaaaaé\n"  # "é" straddles byte 8192
    assert text.encode()[8191:8193] == "é".encode()
    (tmp_path / "u.txt").write_text(text, encoding="utf-8")
    result = await h.read("u.txt")
    assert result.output.endswith("  1024\taaaaaaaé")


async def test_read_attaches_images(h: Harness, tmp_path: Path) -> None:
    png = tiny_png()
    (tmp_path / "dot.png").write_bytes(png)
    result = await h.read("dot.png")
    assert len(result.attachments) == 1
    attachment = result.attachments[0]
    assert attachment.media_type == "image/png"
    assert base64.b64decode(attachment.data) == png
    assert "dot.png" in result.output and len(result.output) < 200


async def test_read_detects_image_type_from_content(h: Harness, tmp_path: Path) -> None:
    (tmp_path / "photo").write_bytes(b"\xff\xd8\xff\xe0" + b"\x10" * 100)
    result = await h.read("photo")
    assert result.attachments[0].media_type == "image/jpeg"


async def test_read_refuses_huge_images_and_fake_ones(h: Harness, tmp_path: Path) -> None:
    (tmp_path / "huge.png").write_bytes(tiny_png() + b"\x00" * (5 * 1024 * 1024 + 1))
    with pytest.raises(ToolFailure, match="MB"):
        await h.read("huge.png")
    (tmp_path / "fake.png").write_text("not a png")
    with pytest.raises(ToolFailure, match="not a valid"):
        await h.read("fake.png")


def notebook(cells: list[dict[str, Any]]) -> str:
    return json.dumps(
        {
            "cells": cells,
            "metadata": {"language_info": {"name": "python"}},
            "nbformat": 4,
            "nbformat_minor": 5,
        }
    )


async def test_read_renders_notebooks_with_outputs(h: Harness, tmp_path: Path) -> None:
    png = base64.b64encode(tiny_png()).decode()
    cells: list[dict[str, Any]] = [
        {"cell_type": "markdown", "id": "intro", "metadata": {}, "source": ["# Title\n", "Some text"]},
        {
            "cell_type": "code",
            "id": "c1",
            "execution_count": 7,
            "metadata": {},
            "source": "print('hi')\n1 + 1",
            "outputs": [
                {"output_type": "stream", "name": "stdout", "text": ["hi\n"]},
                {
                    "output_type": "execute_result",
                    "execution_count": 7,
                    "data": {"text/plain": "2"},
                    "metadata": {},
                },
            ],
        },
        {
            "cell_type": "code",
            "id": "c2",
            "execution_count": None,
            "metadata": {},
            "source": "plot()",
            "outputs": [
                {
                    "output_type": "display_data",
                    "data": {"image/png": png, "text/plain": "<Figure>"},
                    "metadata": {},
                }
                for _ in range(5)
            ]
            + [
                {
                    "output_type": "error",
                    "ename": "ValueError",
                    "evalue": "bad",
                    "traceback": ["\x1b[31mlong..."],
                }
            ],
        },
        {
            "cell_type": "code",
            "id": "c3",
            "execution_count": 9,
            "metadata": {},
            "source": "spam()",
            "outputs": [{"output_type": "stream", "name": "stderr", "text": "z" * 10_000}],
        },
    ]
    (tmp_path / "nb.ipynb").write_text(notebook(cells))
    result = await h.read("nb.ipynb")
    out = result.output
    assert "4 cells" in out
    assert '<cell 1 id="intro" type="markdown">\n# Title\nSome text\n</cell>' in out
    assert '<cell 2 id="c1" type="code" execution_count=7>' in out
    assert "[stdout]\nhi" in out and "[execute_result text/plain]\n2" in out
    assert "execution_count=none" in out
    assert "[error] ValueError: bad" in out and "\x1b" not in out
    assert len(result.attachments) == 3
    assert all(base64.b64decode(a.data) == tiny_png() for a in result.attachments)
    assert "not attached" in out
    assert "[stderr]" in out and "output truncated: 8000 more characters" in out
    assert tmp_path / "nb.ipynb" in h.ctx.files.stamps


async def test_read_notebook_offset_counts_cells(h: Harness, tmp_path: Path) -> None:
    cells = [
        {"cell_type": "code", "id": f"c{i}", "source": f"x = {i}", "outputs": [], "metadata": {}}
        for i in range(5)
    ]
    (tmp_path / "nb.ipynb").write_text(notebook(cells))
    result = await h.read("nb.ipynb", offset=2, limit=2)
    assert 'id="c1"' in result.output and 'id="c2"' in result.output
    assert 'id="c0"' not in result.output and 'id="c3"' not in result.output
    assert "offset=4" in result.output


async def test_read_invalid_notebook_json_falls_back_to_text(h: Harness, tmp_path: Path) -> None:
    (tmp_path / "broken.ipynb").write_text('{"cells": [')
    result = await h.read("broken.ipynb")
    assert result.output == '     1\t{"cells": ['


async def test_read_missing_file_suggests_similar_names(h: Harness, tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "config.yaml").write_text("")
    (tmp_path / "src" / "unrelated.txt").write_text("")
    with pytest.raises(ToolFailure) as info:
        await h.read("src/config.yml")
    message = str(info.value)
    assert "not found" in message and "src/config.yaml" in message and "unrelated" not in message
    with pytest.raises(ToolFailure, match="directory nope does not exist"):
        await h.read("nope/x.py")


async def test_read_permission_refused_reads_nothing(h: Harness, tmp_path: Path) -> None:
    (tmp_path / "secret.env").write_text("KEY=1\n")
    h.refuse = True
    with pytest.raises(PermissionRejected, match="not now"):
        await h.read("secret.env")
    assert not h.ctx.files.stamps


# ---------------------------------------------------------------------------------------------- write


async def test_write_creates_a_new_file_with_parents(h: Harness, tmp_path: Path) -> None:
    result = await h.run(WriteTool(), file_path="deep/er/new.py", content="a = 1\nb = 2\n")
    assert (tmp_path / "deep/er/new.py").read_text() == "a = 1\nb = 2\n"
    assert "Created deep/er/new.py" in result.output
    [event] = h.diffs()
    assert event.path == "deep/er/new.py" and event.call_id == "call_1"
    assert (event.additions, event.deletions) == (2, 0)
    assert "+++ b/deep/er/new.py" in event.diff and "+b = 2" in event.diff
    assert result.metadata["diff"] == event.diff
    assert h.asks[0].permission == "edit" and h.asks[0].patterns == ["deep/er/new.py"]
    # recorded: an edit right after the write needs no read
    await h.run(EditTool(), file_path="deep/er/new.py", old_string="b = 2", new_string="b = 3")
    assert (tmp_path / "deep/er/new.py").read_text() == "a = 1\nb = 3\n"


async def test_write_existing_file_must_be_read_first(h: Harness, tmp_path: Path) -> None:
    (tmp_path / "x.py").write_text("old\n")
    with pytest.raises(ToolFailure, match="must read"):
        await h.run(WriteTool(), file_path="x.py", content="new\n")
    assert (tmp_path / "x.py").read_text() == "old\n"
    await h.read("x.py")
    result = await h.run(WriteTool(), file_path="x.py", content="new\n")
    assert (tmp_path / "x.py").read_text() == "new\n"
    assert "Overwrote" in result.output
    assert (h.diffs()[0].additions, h.diffs()[0].deletions) == (1, 1)


async def test_write_refuses_a_file_changed_since_read(h: Harness, tmp_path: Path) -> None:
    (tmp_path / "x.py").write_text("old\n")
    await h.read("x.py")
    touch_changed(tmp_path / "x.py", "someone else\n")
    with pytest.raises(ToolFailure, match="changed on disk"):
        await h.run(WriteTool(), file_path="x.py", content="mine\n")
    assert (tmp_path / "x.py").read_text() == "someone else\n"


async def test_write_to_a_directory_fails(h: Harness, tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    with pytest.raises(ToolFailure, match="directory"):
        await h.run(WriteTool(), file_path="d", content="x")


async def test_write_permission_refused_writes_nothing(h: Harness, tmp_path: Path) -> None:
    h.refuse = True
    with pytest.raises(PermissionRejected):
        await h.run(WriteTool(), file_path="n.py", content="x")
    assert not (tmp_path / "n.py").exists()
    assert h.asks[0].metadata["diff"].startswith("--- a/n.py")
    assert not h.diffs()


# ---------------------------------------------------------------------------------------------- edit

SOURCE = """def greet(name):
    message = "hello " + name
    print(message)
    return message


def part():
    x = 1
    y = 2
    x = 1
    return x + y
"""


async def read_source(h: Harness, tmp_path: Path, text: str = SOURCE, name: str = "m.py") -> Path:
    path = tmp_path / name
    path.write_text(text)
    await h.read(name)
    return path


async def test_edit_replaces_exact_text(h: Harness, tmp_path: Path) -> None:
    path = await read_source(h, tmp_path)
    result = await h.run(EditTool(), file_path="m.py", old_string='"hello "', new_string='"hi "')
    assert path.read_text() == SOURCE.replace('"hello "', '"hi "')
    assert "replaced 1 occurrence" in result.output
    [event] = h.diffs()
    assert (event.additions, event.deletions) == (1, 1)
    assert '-    message = "hello " + name' in event.diff and '+    message = "hi " + name' in event.diff
    assert result.metadata["diff"] == event.diff
    # recorded after the write: a second edit works without reading again
    await h.run(EditTool(), file_path="m.py", old_string='"hi "', new_string='"hey "')
    assert '"hey "' in path.read_text()


async def test_edit_ambiguous_old_string_names_the_lines(h: Harness, tmp_path: Path) -> None:
    path = await read_source(h, tmp_path)
    with pytest.raises(ToolFailure) as info:
        await h.run(EditTool(), file_path="m.py", old_string="x = 1", new_string="x = 10")
    assert "occurs 2 times" in str(info.value) and "lines 8, 10" in str(info.value)
    assert "replace_all" in str(info.value)
    assert path.read_text() == SOURCE


async def test_edit_replace_all(h: Harness, tmp_path: Path) -> None:
    path = await read_source(h, tmp_path)
    result = await h.run(
        EditTool(), file_path="m.py", old_string="x = 1", new_string="x = 10", replace_all=True
    )
    assert path.read_text().count("x = 10") == 2
    assert "2 occurrences" in result.output


async def test_edit_requires_a_read(h: Harness, tmp_path: Path) -> None:
    (tmp_path / "m.py").write_text(SOURCE)
    with pytest.raises(ToolFailure, match="must read"):
        await h.run(EditTool(), file_path="m.py", old_string="x = 1", new_string="x = 2", replace_all=True)


async def test_edit_refuses_a_file_changed_on_disk(h: Harness, tmp_path: Path) -> None:
    path = await read_source(h, tmp_path)
    touch_changed(path, SOURCE + "# more\n")
    with pytest.raises(ToolFailure, match="changed on disk"):
        await h.run(EditTool(), file_path="m.py", old_string="y = 2", new_string="y = 3")
    assert path.read_text() == SOURCE + "# more\n"


async def test_edit_refuses_identical_strings(h: Harness, tmp_path: Path) -> None:
    await read_source(h, tmp_path)
    with pytest.raises(ToolFailure, match="identical"):
        await h.run(EditTool(), file_path="m.py", old_string="y = 2", new_string="y = 2")


async def test_edit_not_found_points_at_the_closest_match(h: Harness, tmp_path: Path) -> None:
    await read_source(h, tmp_path)
    with pytest.raises(ToolFailure) as info:
        await h.run(
            EditTool(),
            file_path="m.py",
            old_string='    mesage = "hello" + name\n    print(mesage)',
            new_string="pass",
        )
    message = str(info.value)
    assert "not found" in message and "closest match" in message
    assert "lines 2-3" in message and '     2\t    message = "hello " + name' in message


async def test_edit_not_found_explains_indentation_differences(h: Harness, tmp_path: Path) -> None:
    await read_source(h, tmp_path)
    with pytest.raises(ToolFailure) as info:
        await h.run(EditTool(), file_path="m.py", old_string="  y = 2\n  x = 1", new_string="pass")
    message = str(info.value)
    assert "whitespace/indentation" in message and "lines 9-10" in message
    assert "     9\t    y = 2" in message


async def test_edit_not_found_spots_line_number_prefixes(h: Harness, tmp_path: Path) -> None:
    await read_source(h, tmp_path)
    with pytest.raises(ToolFailure, match="line numbers"):
        await h.run(EditTool(), file_path="m.py", old_string="     9\t    y = 2", new_string="pass")


async def test_edit_not_found_names_the_line_its_first_line_resembles(h: Harness, tmp_path: Path) -> None:
    await read_source(h, tmp_path)
    with pytest.raises(ToolFailure) as info:
        await h.run(
            EditTool(),
            file_path="m.py",
            old_string="def greet(names):\nQQQQ ZZZZ WWWW 12345 67890 @@@@ %%%%\n&&&&&&&& ######## !!!!!!!!",
            new_string="pass",
        )
    assert "first line 'def greet(names):' most resembles line 1:\n     1\tdef greet(name):" in str(
        info.value
    )


async def test_edit_not_found_with_nothing_similar(h: Harness, tmp_path: Path) -> None:
    await read_source(h, tmp_path)
    with pytest.raises(ToolFailure, match="Nothing similar"):
        await h.run(EditTool(), file_path="m.py", old_string="QQQQQQQQQQQQQQ", new_string="pass")


async def test_edit_keeps_crlf_line_endings(h: Harness, tmp_path: Path) -> None:
    path = tmp_path / "w.txt"
    path.write_bytes(b"one\r\ntwo\r\nthree\r\n")
    await h.read("w.txt")
    await h.run(EditTool(), file_path="w.txt", old_string="one\ntwo", new_string="uno\ndos\nextra")
    assert path.read_bytes() == b"uno\r\ndos\r\nextra\r\nthree\r\n"


async def test_edit_with_empty_old_string_creates_a_new_file(h: Harness, tmp_path: Path) -> None:
    result = await h.run(EditTool(), file_path="new/made.txt", old_string="", new_string="hello\n")
    assert (tmp_path / "new/made.txt").read_text() == "hello\n"
    assert "Created" in result.output and h.diffs()[0].additions == 1


async def test_edit_with_empty_old_string_on_existing_file_fails(h: Harness, tmp_path: Path) -> None:
    await read_source(h, tmp_path)
    with pytest.raises(ToolFailure, match="not empty"):
        await h.run(EditTool(), file_path="m.py", old_string="", new_string="x")


async def test_edit_missing_file_suggests_names(h: Harness, tmp_path: Path) -> None:
    (tmp_path / "module.py").write_text("")
    with pytest.raises(ToolFailure, match=r"module\.py"):
        await h.run(EditTool(), file_path="modul.py", old_string="a", new_string="b")


async def test_edit_permission_refused_leaves_the_file(h: Harness, tmp_path: Path) -> None:
    path = await read_source(h, tmp_path)
    h.refuse = True
    with pytest.raises(PermissionRejected):
        await h.run(EditTool(), file_path="m.py", old_string="y = 2", new_string="y = 3")
    assert path.read_text() == SOURCE
    assert h.asks[-1].permission == "edit" and h.asks[-1].patterns == ["m.py"]


async def test_edit_closest_match_on_large_files(h: Harness, tmp_path: Path) -> None:
    """A miss in a 20,000-line file names the closest match, or says nothing is similar (its speed:
    bench/edit_closest_match.py)."""
    text = "".join(f"value_{i} = compute({i}, {i * 7})\n" for i in range(20_000))
    await read_source(h, tmp_path, text, "big.py")
    with pytest.raises(ToolFailure, match="closest match"):
        await h.run(
            EditTool(),
            file_path="big.py",
            old_string="value_12345 = compute(12345, 86415)\nvalue_12346 = compute(12346, 0)",
            new_string="x",
        )
    with pytest.raises(ToolFailure, match="Nothing similar"):
        await h.run(
            EditTool(),
            file_path="big.py",
            old_string="\n".join(f"    unrelated_{i}(alpha, beta) -> gamma" for i in range(30)),
            new_string="x",
        )


async def test_paths_outside_the_root_are_shown_absolute(tmp_path: Path) -> None:
    h = Harness(tmp_path / "project")
    (tmp_path / "project").mkdir()
    outside = tmp_path / "elsewhere" / "n.txt"
    await h.run(WriteTool(), file_path=str(outside), content="x\n")
    assert outside.read_text() == "x\n"
    assert h.asks[0].patterns == [str(outside)]
    assert h.diffs()[0].path == str(outside)
    result = await h.read("../elsewhere/n.txt")
    assert result.title == str(outside)
