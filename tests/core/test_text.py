"""Terminal escapes removed from tool output; one line per tool call, its title said once."""

from __future__ import annotations

from nbagent.core.text import call_summary, strip_ansi, title_extra


def test_strip_ansi_removes_colours_cursor_moves_titles_and_links() -> None:
    assert strip_ansi("\x1b[1;31mFAILED\x1b[0m test_x") == "FAILED test_x"
    assert strip_ansi("50%\x1b[2K\x1b[1G100%") == "50%100%"
    assert strip_ansi("\x1b]0;window title\x07done") == "done"
    assert strip_ansi("\x1b]8;;https://x.org\x1b\\link\x1b]8;;\x1b\\") == "link"
    assert strip_ansi("\x9b32mgreen\x9b0m") == "green"
    assert strip_ansi("cut at a chunk end \x1b") == "cut at a chunk end "
    plain = "no escapes [31m here, nor \\x1b"
    assert strip_ansi(plain) is plain


def test_call_summary_is_one_line() -> None:
    assert call_summary("read", {"file_path": "a/b.py", "offset": 3}) == "a/b.py"
    assert call_summary("bash", {"command": "make\nmake test"}) == "make …"
    assert call_summary("bash", {"command": "x" * 300}).endswith(" …")
    assert len(call_summary("bash", {"command": "x" * 300})) == 120
    patch = "*** Begin Patch\n*** Update File: a.py\n@@\n-x\n+y\n*** Add File: b.py\n+z\n*** End Patch"
    assert call_summary("apply_patch", {"patch": patch}) == "a.py, b.py"
    assert call_summary("todowrite", {"todos": [{}, {}]}) == "2 items"


def test_title_extra_drops_what_the_summary_says() -> None:
    assert title_extra("wordcount/cli.py", "wordcount/cli.py") == ""
    assert title_extra("/repo/wordcount/cli.py", "wordcount/cli.py") == ""
    assert title_extra("seq 1 200000", "seq 1 200000") == ""
    assert title_extra("make …", "make") == ""
    assert title_extra("a.py", "a.py (120 lines)") == "120 lines"
    assert title_extra("def main", "3 matches") == "3 matches"
    assert title_extra("", "variables") == "variables"
