"""Turn records (bounded, scrubbed), resuming from them, metadata, and replay through a real session."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest

from nbagent.core.errors import ProviderError
from nbagent.core.events import ErrorEvent, ToolCallCompleted
from nbagent.core.messages import Message, TextPart, ToolCompleted, ToolPart, Usage, user_message
from nbagent.providers.base import ModelRequest
from nbagent.providers.replay import RecordedCall, RecordedStep, RecordingProvider, ReplayProvider
from nbagent.providers.scripted import ListScript, Reply, ToolCallSpec
from nbagent.store.notebook import (
    TURN_MIME,
    build_metadata,
    compare_results,
    find_turn,
    make_record,
    normalize_output,
    notebook_turns,
    recorded_replies,
    scrub,
    session_history,
    turns_before,
)
from tests.conftest import Serve, collect, make_session


def tool_message(output: str, call_id: str = "call_1") -> Message:
    return Message(
        role="assistant",
        parts=[
            TextPart(text="running"),
            ToolPart(
                call_id=call_id, tool="bash", state=ToolCompleted(input={"command": "cat big"}, output=output)
            ),
        ],
        usage=Usage(input_tokens=10, output_tokens=5),
        finish_reason="tool_calls",
    )


def test_a_1mb_tool_output_adds_a_few_kb() -> None:
    big = "line of output\n" * 70_000  # ~1 MB
    record = make_record(
        session_id="ses_1",
        turn_id="turn_1",
        prompt="show it",
        model="m",
        messages=[
            user_message("show it"),
            tool_message(big),
            Message(role="assistant", parts=[TextPart(text="ok")]),
        ],
        replies=[],
        usage=Usage(),
        reason="stop",
        started=0.0,
    )
    size = len(record.model_dump_json(exclude_none=True))
    assert size < 5_000, size
    kept = record.messages[1].tool_parts()[0].state
    assert isinstance(kept, ToolCompleted)
    assert "characters not kept in the notebook" in kept.output and "sha256" in kept.output
    assert record.results[0].chars > 1_000_000  # the digest covers the whole output
    assert record.replies == []  # derivable from the messages, not stored twice
    assert [s.calls[0].name for s in recorded_replies(record) if s.calls] == ["bash"]


def test_secrets_never_enter_the_record(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_SERVICE_TOKEN", "tok-0123456789abcdef")
    monkeypatch.setenv("HOME_LIKE", "/home/someone")
    env_dump = "\n".join(
        f"{k}=value{i}"
        for i, k in enumerate(["PATH", "HOME", "MY_SERVICE_TOKEN", "HOME_LIKE", "PWD", "SHELL"])
    )
    output = (
        "Authorization: Bearer abcdefghijklmnop1234\n"
        "key sk-ant-api03-AAAABBBBCCCCDDDDEEEE and ghp_abcdefghijklmnopqrstuvwxyz0123\n"
        "token tok-0123456789abcdef\n" + env_dump
    )
    record = make_record(
        session_id="s",
        turn_id="t",
        prompt="use sk-proj-ZZZZYYYYXXXXWWWWVVVV",
        model="m",
        messages=[tool_message(output)],
        replies=[],
        usage=Usage(),
        reason="stop",
        started=0,
        secrets=["explicit-api-key-123"],
    )
    text = record.model_dump_json()
    for secret in (
        "abcdefghijklmnop1234",
        "sk-ant-api03",
        "ghp_abc",
        "tok-0123456789abcdef",
        "sk-proj-ZZZZ",
        "value0",
    ):
        assert secret not in text, secret
    assert "[redacted]" in text
    assert scrub("header x-api-key: explicit-api-key-123", ["explicit-api-key-123"]).count("explicit") == 0
    assert scrub("nothing secret here, PATH is fine") == "nothing secret here, PATH is fine"


def test_normalize_masks_what_changes_between_runs() -> None:
    a = normalize_output(
        "3 passed in 0.03s at /tmp/pytest-1/x.py, id call_0123456789abcdef, <obj at 0x7f00aabbccdd>"
    )
    b = normalize_output(
        "3 passed in 1.20s at /tmp/pytest-9/x.py, id call_fedcba9876543210, <obj at 0x7f11aabbccdd>"
    )
    assert a == b
    assert normalize_output("/work/p/src/a.py", "/work/p") == "<root>/src/a.py"
    assert normalize_output("3 passed") != normalize_output("2 passed, 1 failed")


def _nb_with(records: list[dict], ids: list[str]) -> dict:
    nb = nbformat.v4.new_notebook()
    for rec, cid in zip(records, ids, strict=True):
        cell = nbformat.v4.new_code_cell(f"%%agent\n{rec['prompt']}")
        cell["id"] = cid
        cell["outputs"] = [nbformat.v4.new_output("display_data", data={"text/plain": "x", TURN_MIME: rec})]
        nb.cells.append(cell)
    nbformat.validate(nb)
    return json.loads(nbformat.writes(nb))


def _record(sid: str, turn: str, prompt: str, answer: str, cost: float = 0.01) -> dict:
    return make_record(
        session_id=sid,
        turn_id=turn,
        prompt=prompt,
        model="openai/x",
        messages=[user_message(prompt), Message(role="assistant", parts=[TextPart(text=answer)])],
        replies=[],
        usage=Usage(input_tokens=100, output_tokens=10, cost=cost),
        reason="stop",
        started=1.0,
    ).model_dump(mode="json", exclude_none=True)


def test_resume_history_metadata_and_lookup() -> None:
    nb = _nb_with(
        [
            _record("s1", "t1", "first", "one"),
            _record("s1", "t2", "second", "two"),
            _record("s2", "t3", "other", "x"),
        ],
        ["c1", "c2", "c3"],
    )
    turns = notebook_turns(nb)
    assert [t.cell_id for t in turns] == ["c1", "c2", "c3"]
    before = turns_before(turns, "c3")
    sid, messages, model = session_history(before)
    assert sid == "s1" and model == "openai/x"
    assert [m.text for m in messages] == ["first", "one", "second", "two"]
    assert session_history(turns, "s2")[1][0].text == "other"
    meta = build_metadata(nb)
    assert meta["schema_version"] == 1 and meta["active_session"] == "s2"
    s1 = meta["sessions"][0]
    assert s1["turns"] == 2 and s1["cells"] == ["c1", "c2"] and s1["usage"]["input_tokens"] == 200
    assert s1["cost"] == pytest.approx(0.02)
    assert find_turn(turns, "c2", "", set()) is turns[1]
    assert find_turn(turns, None, "%%agent\nsecond", set()) is turns[1]
    assert find_turn(turns, None, "%%agent\nsecond", {"t2"}) is None


def test_compare_results_reports_changed_and_missing() -> None:
    old = make_record(
        session_id="s",
        turn_id="t",
        prompt="p",
        model="m",
        usage=Usage(),
        reason="stop",
        started=0,
        replies=[],
        messages=[tool_message("3 passed in 0.1s", "c1"), tool_message("same", "c2")],
    ).results
    new = make_record(
        session_id="s",
        turn_id="t",
        prompt="p",
        model="m",
        usage=Usage(),
        reason="stop",
        started=0,
        replies=[],
        messages=[tool_message("1 failed in 0.2s", "c1")],
    ).results
    div = compare_results(old, new)
    assert [(d.call_id, d.replayed.split(":")[0]) for d in div] == [("c1", "completed"), ("c2", "(not run)")]
    assert "1 failed" in div[0].replayed and "3 passed" in div[0].recorded
    assert compare_results(old, old) == []


async def test_recording_then_replay_drives_the_same_turn(tmp_path: Path, serve: Serve) -> None:
    (tmp_path / "a.txt").write_text("hello\n")
    server = serve(
        ListScript(
            [
                Reply(
                    text="Reading.",
                    reasoning="think",
                    tool_calls=[ToolCallSpec("read", {"file_path": "a.txt"})],
                ),
                Reply(text="It says hello."),
            ]
        )
    )
    session = make_session(tmp_path, server)
    recorder = RecordingProvider(session.provider)
    session.provider = recorder
    events = await collect(session, "what is in a.txt?")
    steps = recorder.take()
    assert [len(s.calls) for s in steps] == [1, 0] and steps[0].reasoning == "think"
    assert steps[0].calls[0].name == "read" and json.loads(steps[0].calls[0].arguments) == {
        "file_path": "a.txt"
    }
    first = next(e for e in events if isinstance(e, ToolCallCompleted)).output

    replayed = make_session(tmp_path, server)
    replayed.provider = ReplayProvider(steps)
    before = len(server.requests)
    events2 = await collect(replayed, "what is in a.txt?")
    assert len(server.requests) == before  # no model call
    assert next(e for e in events2 if isinstance(e, ToolCallCompleted)).output == first
    assert replayed.messages[-1].text == "It says hello."


async def test_replay_past_the_recording_is_a_clear_error(tmp_path: Path, serve: Serve) -> None:
    step = RecordedStep(
        calls=[RecordedCall(id="c1", name="glob", arguments='{"pattern": "*"}')], finish_reason="tool_calls"
    )
    provider = ReplayProvider([step])
    with pytest.raises(ProviderError, match="no model reply for step 2"):
        for _ in range(2):
            async for _chunk in provider.stream(ModelRequest(model="m", messages=[], tools=[])):
                pass
    session = make_session(tmp_path, serve(ListScript([])))
    session.provider = ReplayProvider([step])
    events = await collect(session, "go")
    errors = [e for e in events if isinstance(e, ErrorEvent)]
    assert errors and "no model reply" in errors[0].message
