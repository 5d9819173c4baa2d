"""The markdown transcript: prompts, answers, tool calls with bounded results, errors, summaries."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from nbagent.core.messages import (
    Message,
    ReasoningPart,
    TextPart,
    ToolCompleted,
    ToolError,
    ToolPart,
    ToolRunning,
    Usage,
    user_message,
)
from nbagent.core.scrub import Scrubber
from nbagent.store import SessionInfo, SessionStore, export_markdown
from nbagent.store.export import bound, export_json


def session_messages() -> list[Message]:
    long_output = "\n".join(f"line {i}" for i in range(1000))
    return [
        user_message("Please fix `test_x` in tests/test_a.py"),
        Message(
            role="assistant",
            model="openai/x",
            parts=[
                ReasoningPart(text="The test fails on import."),
                TextPart(text="Running the tests first."),
                ToolPart(
                    call_id="c1",
                    tool="bash",
                    state=ToolCompleted(
                        input={"command": "pytest -q\nsecond line", "description": "run tests"},
                        output=long_output,
                        title="run tests",
                    ),
                ),
                ToolPart(
                    call_id="c2",
                    tool="edit",
                    state=ToolError(
                        input={"file_path": "a.py", "old_string": "x"}, error="old_string not found"
                    ),
                ),
                ToolPart(
                    call_id="c3",
                    tool="read",
                    state=ToolCompleted(input={"file_path": "b.md"}, output="```py\nx\n```"),
                ),
                ToolPart(
                    call_id="c4", tool="todowrite", state=ToolRunning(input={"todos": [{"content": "a"}]})
                ),
            ],
        ),
        user_message("The turn was interrupted.", synthetic=True),
    ]


def test_transcript_is_readable_and_bounded(tmp_path: Path) -> None:
    info = SessionInfo(
        id="ses_abc",
        project=tmp_path,
        title="Fix test_x",
        model="openai/x",
        usage=Usage(input_tokens=1234, cost=0.5),
    )
    with SessionStore(tmp_path / "s.db") as store:
        store.create_session(info)
        store.save_step(info.id, session_messages())
        store.add_summary(
            info.id, "## Goal\nFix test_x.", covers_until="msg_1", tokens_before=5000, tokens_after=500
        )
        stored, messages = store.load_session(info.id)
        md = export_markdown(stored, messages, store.summaries(info.id))

    assert md.startswith("# Fix test_x\n")
    assert "`ses_abc`" in md and "input 1,234" in md and "cost $0.5000" in md
    assert "## Compaction summary 1" in md and "Fix test_x." in md and "5,000 → 500 tokens" in md
    assert "## User" in md and "Please fix `test_x` in tests/test_a.py" in md
    assert "## Assistant (openai/x)" in md and "Running the tests first." in md
    assert "> The test fails on import." in md
    assert "**Tool `bash`** `pytest -q …` (run tests)" in md
    assert "line 0" in md and "line 999" in md and "line 500" not in md  # head and tail only
    assert "lines," in md and "omitted" in md
    assert "**Tool `edit`** `a.py` **failed:**" in md and "old_string not found" in md
    assert "**Tool `todowrite`**" in md and "did not finish: running" in md
    assert "## Note (harness)" in md
    # A result holding a fence gets a longer fence, so the transcript's blocks stay balanced.
    assert "````text\n```py\nx\n```\n````" in md
    assert len(md) < 20_000
    # The order is the conversation's order.
    assert md.index("Please fix") < md.index("Running the tests") < md.index("interrupted")


def test_bound_keeps_short_text_and_cuts_long_lines() -> None:
    assert bound("short") == "short"
    cut = bound("x" * 100_000)
    assert len(cut) < 5000 and "characters omitted" in cut
    assert re.search(r"\[\d+ lines, \d+ characters omitted\]", bound("\n".join(["y"] * 500)))


def test_exports_leave_secrets_behind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Secrets stored by an older version (before outputs were scrubbed) never leave by an export."""
    monkeypatch.setenv("MY_SERVICE_API_KEY", "qz-9f8e7d6c5b4a39281706")
    (tmp_path / ".env").write_text("DB_PASSWORD=dotenv-pass-55\n")
    dump = "MY_SERVICE_API_KEY=qz-9f8e7d6c5b4a39281706\nDATABASE_URL=postgres://app:url-pass-66@db/app\n"
    messages = [
        user_message("deploy with token ghp_abcdefghijklmnopqrstuvwxyz0123"),
        Message(
            role="assistant",
            parts=[
                ToolPart(
                    call_id="c1",
                    tool="bash",
                    state=ToolCompleted(input={"command": "env; cat .env"}, output=dump + "dotenv-pass-55\n"),
                )
            ],
        ),
    ]
    info = SessionInfo(id="ses_x", project=tmp_path, title="deploy")
    with SessionStore(tmp_path / "s.db") as store:
        store.create_session(info)
        store.save_step(info.id, messages)
        stored, loaded = store.load_session(info.id)
    scrubber = Scrubber.for_project(tmp_path)
    md = export_markdown(stored, loaded, (), scrubber)
    doc = json.dumps(export_json(stored, loaded, (), scrubber))
    for text in (md, doc):
        for secret in ("qz-9f8e7d6c5b4a39281706", "dotenv-pass-55", "url-pass-66", "ghp_abcdef"):
            assert secret not in text, secret
        assert "postgres://app:[redacted]@db/app" in text and "MY_SERVICE_API_KEY=[redacted]" in text
    assert json.loads(doc)["messages"][1]["parts"][0]["state"]["input"] == {"command": "env; cat .env"}
    # without the project's scrubber, the environment's secrets still go
    assert "qz-9f8e7d6c5b4a39281706" not in export_markdown(stored, loaded)


def test_a_tool_line_says_its_path_once_and_shows_no_terminal_codes(tmp_path: Path) -> None:
    info = SessionInfo(id="ses_t", project=tmp_path, model="openai/x")
    messages = [
        user_message("read it"),
        Message(
            role="assistant",
            parts=[
                ToolPart(
                    call_id="c1",
                    tool="read",
                    state=ToolCompleted(
                        input={"file_path": "wordcount/cli.py"},
                        output="1\timport sys",
                        title="wordcount/cli.py",
                    ),
                ),
                ToolPart(
                    call_id="c2",
                    tool="bash",
                    state=ToolCompleted(
                        input={"command": "pytest"}, output="\x1b[32m3 passed\x1b[0m", title="pytest"
                    ),
                ),
            ],
        ),
    ]
    md = export_markdown(info, messages)
    assert md.count("wordcount/cli.py") == 1 and "**Tool `read`** `wordcount/cli.py`\n" in md
    assert "**Tool `bash`** `pytest`\n" in md
    assert "\x1b" not in md and "3 passed" in md
