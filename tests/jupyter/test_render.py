"""The transcript view model and its HTML/text renderings, fed with real event objects."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

from nbagent.core.config import Config
from nbagent.core.events import (
    DiffProduced,
    PermissionAsked,
    PermissionReplied,
    Retrying,
    TextDelta,
    TodoItem,
    TodoUpdated,
    ToolCallCompleted,
    ToolCallOutput,
    ToolCallPending,
    ToolCallRunning,
    TurnFinished,
    UsageUpdated,
)
from nbagent.core.messages import Usage
from nbagent.jupyter.render_html import (
    PermissionBlock,
    TextBlock,
    ToolBlock,
    Transcript,
    transcript_html,
    transcript_text,
)
from nbagent.permissions.policy import RulePolicy
from nbagent.tools.base import PermissionQuery


def test_text_streams_into_one_block_and_escapes_html() -> None:
    t = Transcript()
    for piece in ["Hello **wor", "ld** <script>alert(1)</script>"]:
        t.apply(TextDelta(message_id="m1", text=piece))
    assert len(t.blocks) == 1 and isinstance(t.blocks[0], TextBlock)
    html = transcript_html(t)
    assert "<strong>world</strong>" in html
    assert "<script>" not in html and "&lt;script&gt;" in html


def test_tool_card_lifecycle_with_live_output_and_diff() -> None:
    t = Transcript()
    t.apply(ToolCallPending(call_id="c1", tool="bash"))
    t.apply(ToolCallRunning(call_id="c1", tool="bash", input={"command": "make test"}))
    t.apply(ToolCallOutput(call_id="c1", chunk="x" * 10_000))
    tool = t.tools["c1"]
    assert tool.status == "running" and len(tool.live) == 4_000
    diff = "--- a/f\n+++ b/f\n@@ -1 +1 @@\n-old\n+new\n" + "".join(f"+l{i}\n" for i in range(200))
    t.apply(DiffProduced(call_id="c1", path="f", diff=diff, additions=201, deletions=1))
    t.apply(
        ToolCallCompleted(call_id="c1", tool="bash", input={"command": "make test"}, output="ok\n" * 5000)
    )
    assert tool.status == "completed" and tool.live == ""
    html = transcript_html(t)
    assert "rgba(46,160,67" in html and "rgba(248,81,73" in html  # coloured
    assert "more lines</summary>" in html  # folded
    assert "not kept in the notebook" in html  # bounded in the saved output
    assert "lines omitted" in html
    assert "✓ bash make test" in transcript_text(t)


def test_permission_sits_below_its_call_and_shows_the_answer() -> None:
    t = Transcript()
    t.apply(ToolCallPending(call_id="c1", tool="edit"))
    t.apply(ToolCallPending(call_id="c2", tool="bash"))
    t.apply(
        PermissionAsked(
            request_id="p1",
            call_id="c1",
            tool="edit",
            title="Edit a.py",
            reason="edit: ask",
            always=["edit: a.py"],
        )
    )
    assert [type(b).__name__ for b in t.blocks] == ["ToolBlock", "PermissionBlock", "ToolBlock"]
    t.apply(PermissionReplied(request_id="p1", reply="always"))
    block = t.blocks[1]
    assert isinstance(block, PermissionBlock) and block.replied is not None
    html = transcript_html(t)
    assert "always allowed" in html and "edit: a.py" in html
    assert "? permission: Edit a.py → always" in transcript_text(t)


def test_todos_update_in_place_and_todowrite_cards_hide() -> None:
    t = Transcript()
    for done in range(3):
        t.apply(ToolCallPending(call_id=f"t{done}", tool="todowrite"))
        todos = [
            TodoItem(content=f"step {i}", status="completed" if i < done else "pending") for i in range(2)
        ]
        t.apply(TodoUpdated(todos=todos))
        t.apply(ToolCallCompleted(call_id=f"t{done}", tool="todowrite", input={}, output="ok"))
    todo_blocks = [b for b in t.blocks if type(b).__name__ == "TodoBlock"]
    assert len(todo_blocks) == 1
    text = transcript_text(t)
    assert text.count("Plan:") == 1 and "☑ step 1" in text and "todowrite" not in text


def test_retry_discards_the_partial_message() -> None:
    t = Transcript()
    t.apply(TextDelta(message_id="m1", text="partial"))
    t.apply(ToolCallPending(call_id="c9", tool="read"))
    t.apply(Retrying(attempt=1, max_attempts=3, wait=0.5, reason="overloaded", discard_message_id="m1"))
    assert not any(isinstance(b, TextBlock | ToolBlock) for b in t.blocks)
    assert "Retry 1/2" in transcript_text(t)


def test_footer_shows_model_tokens_cost_context() -> None:
    t = Transcript(model="openai/x")
    total = Usage(input_tokens=12_000, output_tokens=300, cost=0.0123)
    t.apply(
        UsageUpdated(
            step=2, model="openai/x", usage=total, total=total, context_tokens=8000, context_limit=32000
        )
    )
    t.apply(TurnFinished(turn_id="t", reason="stop", steps=2, usage=total))
    text = transcript_text(t)
    assert "openai/x · 12.0k in · 300 out · $0.0123 · context 8,000/32.0k (25%) · 2 steps · stop" in text


class Outline(HTMLParser):
    """The elements of a page, each with the chain of elements it sits in (styles ignored)."""

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.found: list[tuple[tuple[str, ...], str]] = []  # (ancestors + tag, its text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in ("img", "br"):
            self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag in self.stack:
            del self.stack[len(self.stack) - 1 - self.stack[::-1].index(tag) :]

    def handle_data(self, data: str) -> None:
        self.found.append((tuple(self.stack), data))

    def texts_in(self, *path: str) -> list[str]:
        """Texts inside elements nested as ``path`` (each within the one before)."""
        out = []
        for chain, text in self.found:
            at = 0
            for tag in chain:
                if at < len(path) and tag == path[at]:
                    at += 1
            if at == len(path):
                out.append(text)
        return out


def unstyled(html: str) -> Outline:
    """The page as a sanitizer that drops inline styles leaves it (untrusted notebooks, GitHub)."""
    bare = re.sub(r"""\sstyle=(\"[^\"]*\"|'[^']*')""", "", html)
    assert "style=" not in bare
    outline = Outline()
    outline.feed(bare)
    return outline


def test_static_html_is_readable_without_inline_styles() -> None:
    t = Transcript()
    t.apply(TextDelta(message_id="m1", text="Fixing it."))
    t.apply(ToolCallRunning(call_id="c1", tool="bash", input={"command": "make test\nmake lint"}))
    diff = "--- a/f.py\n+++ b/f.py\n@@ -1 +1 @@\n-old line\n+new line\n"
    t.apply(DiffProduced(call_id="c1", path="f.py", diff=diff, additions=1, deletions=1))
    t.apply(
        ToolCallCompleted(
            call_id="c1", tool="bash", input={"command": "make test\nmake lint"}, output="3 passed\n"
        )
    )
    t.apply(TodoUpdated(todos=[TodoItem(content="write the fix", status="completed")]))
    page = unstyled(transcript_html(t))
    # diff lines: inserted and deleted text, in a preformatted block
    assert page.texts_in("pre", "ins") == ["+new line"]
    assert page.texts_in("pre", "del") == ["-old line"]
    # the tool's code and result fold in <details>, preformatted; the command is code
    assert "make test\nmake lint" in page.texts_in("details", "pre", "code")
    assert "code" in page.texts_in("details", "summary")
    assert "3 passed\n" in page.texts_in("details", "pre")
    assert any(text.startswith("result (") for text in page.texts_in("details", "summary"))
    assert "make test …" in page.texts_in("code")
    # the plan is a list, done items struck through
    assert page.texts_in("ul", "li", "s") == ["write the fix"]


def shell_request(command: str, tmp_path: Path) -> PermissionAsked:
    """The permission request the real policy makes for a shell command."""
    decision = RulePolicy(tmp_path, Config(model="m")).evaluate(
        PermissionQuery(permission="bash", patterns=[command])
    )
    assert decision.action == "ask"
    return PermissionAsked(
        request_id="p1",
        call_id="c1",
        tool="bash",
        title=f"Run: {command}",
        patterns=[command],
        reason=decision.reason,
        always=decision.always,
        details=decision.details,
    )


def test_shell_permission_details_read_as_text(tmp_path: Path) -> None:
    t = Transcript()
    t.apply(
        ToolCallRunning(call_id="c1", tool="bash", input={"command": "git status && rm -rf build > out.txt"})
    )
    t.apply(shell_request("git status && rm -rf build > out.txt", tmp_path))
    t.apply(PermissionReplied(request_id="p1", reply="reject", feedback="keep build"))
    html, text = transcript_html(t), transcript_text(t)
    for rendering in (html, text):
        assert "{'" not in rendering and "'via'" not in rendering and "wrapper" not in rendering
    # each command and redirect with its decision and why
    assert "✓ git status — allowed: read-only command: git" in text
    assert "? rm -rf build — asks: default bash: ask" in text
    assert "? > out.txt (redirect) — asks: edit out.txt" in text
    assert "→ reject: “keep build”" in text
    page = unstyled(html)
    assert page.texts_in("ul", "li", "code") == ["git status", "rm -rf build", "> out.txt (redirect)"]
    assert page.texts_in("ul", "li", "b") == ["allowed", "asks", "asks"]


def test_commands_run_by_a_wrapper_say_so(tmp_path: Path) -> None:
    t = Transcript()
    t.apply(shell_request("sudo ls /root | xargs cat", tmp_path))
    text = transcript_text(t)
    assert "ls /root (run by sudo) — asks: /root is outside the project" in text
    assert "xargs (runs the command after it) — allowed" in text


def test_a_tool_header_says_the_path_once() -> None:
    t = Transcript()
    t.apply(ToolCallRunning(call_id="c1", tool="read", input={"file_path": "wordcount/cli.py"}))
    t.apply(
        ToolCallCompleted(
            call_id="c1",
            tool="read",
            input={"file_path": "wordcount/cli.py"},
            output="1\timport sys\n",
            title="wordcount/cli.py",
        )
    )
    t.apply(ToolCallRunning(call_id="c2", tool="grep", input={"pattern": "def main"}))
    t.apply(
        ToolCallCompleted(
            call_id="c2", tool="grep", input={"pattern": "def main"}, output="x", title="3 matches"
        )
    )
    text = transcript_text(t)
    assert text.count("wordcount/cli.py") == 1 and "✓ read wordcount/cli.py\n" in text + "\n"
    assert "✓ grep def main · 3 matches" in text  # a title that says more is kept
    html = transcript_html(t)
    assert html.count("wordcount/cli.py") == 1


def test_the_python_prompt_shows_the_code_once() -> None:
    code = "y = x * 2\nprint('y is', y)"
    t = Transcript()
    t.apply(ToolCallPending(call_id="c1", tool="python"))
    t.apply(ToolCallRunning(call_id="c1", tool="python", input={"code": code}))
    t.apply(
        PermissionAsked(
            request_id="p1",
            call_id="c1",
            tool="python",
            title="Run Python in the kernel: y = x * 2 ...",
            patterns=[code],
            reason=f"python {code}",
            details={"code": code},
        )
    )
    for rendering in (transcript_html(t), transcript_text(t)):
        assert rendering.count("y = x * 2") == 1, rendering
        assert rendering.count("print(") == 1
    t.apply(PermissionReplied(request_id="p1", reply="once"))
    t.apply(ToolCallCompleted(call_id="c1", tool="python", input={"code": code}, output="[stdout]\ny is 42"))
    for rendering in (transcript_html(t), transcript_text(t)):
        assert rendering.count("y = x * 2") == 1, rendering


def test_terminal_colours_never_reach_the_page() -> None:
    t = Transcript()
    t.apply(ToolCallRunning(call_id="c1", tool="bash", input={"command": "pytest --color=yes"}))
    t.apply(ToolCallOutput(call_id="c1", chunk="\x1b[32m2 passed\x1b[0m in 0.1s\n\x1b]0;title\x07"))
    live = transcript_html(t)
    assert "\x1b" not in live and "2 passed in 0.1s" in live
    t.apply(
        ToolCallCompleted(
            call_id="c1", tool="bash", input={"command": "pytest"}, output="\x1b[1;31mFAILED\x1b[0m test_x"
        )
    )
    for rendering in (transcript_html(t), transcript_text(t)):
        assert "\x1b" not in rendering and "[0m" not in rendering
    assert "FAILED test_x" in transcript_html(t)
