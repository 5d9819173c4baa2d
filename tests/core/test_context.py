"""Budget, pruning, compaction and cache-friendly requests, against the scripted model over HTTP."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from nbagent.core.config import ContextConfig, ModelLimits
from nbagent.core.events import Compacted, ErrorEvent, Event, TurnFinished
from nbagent.providers.scripted import FunctionScript, ListScript, Reply, ToolCallSpec
from tests.conftest import Serve, collect, make_session

GOAL = "Refactor the parser module into three files"
CONSTRAINT = "never touch tests/legacy"


def _is_compaction(request: dict[str, Any]) -> bool:
    system = request["messages"][0]["content"]
    text = system if isinstance(system, str) else json.dumps(system)
    return "You are summarising a coding session" in text


def summarizer(request: dict[str, Any]) -> Reply:
    """A scripted summariser: keeps the previous summary's goal or the first USER line, like a good model."""
    prompt = request["messages"][-1]["content"]
    previous = re.search(r"<previous-summary>\n(.*?)\n</previous-summary>", prompt, re.S)
    if previous:
        goal = previous.group(1).split("## Goal\n", 1)[1].split("\n", 1)[0]
    else:
        goal = re.search(r"USER: (.*)", prompt).group(1)  # type: ignore[union-attr]
    n = prompt.count("TOOL CALL")
    return Reply(text=f"## Goal\n{goal}\n## Progress\nran {n} commands\n## Next steps\ncontinue")


def test_limits_from_metadata_and_overrides(tmp_path: Path, serve: Serve) -> None:
    server = serve(ListScript([]))
    known = make_session(tmp_path, server, "anthropic")
    assert known.limits.known and known.limits.context >= 100_000
    assert known.limits.reserve <= 16_000 < known.limits.context // 3
    unknown = make_session(tmp_path, server)
    assert not unknown.limits.known and unknown.limits.context == 32_000
    custom = make_session(
        tmp_path, server, models={"openai/scripted": ModelLimits(context=20_000, output=1_000)}
    )
    assert (custom.limits.context, custom.limits.output, custom.limits.reserve) == (20_000, 1_000, 1_000)


async def test_long_session_prunes_compacts_and_stays_under_the_limit(tmp_path: Path, serve: Serve) -> None:
    steps = 55

    def answer(request: dict[str, Any], protocol: str) -> Reply:
        if _is_compaction(request):
            return summarizer(request)
        calls = sum(1 for r in server.requests if not _is_compaction(r.body))
        if calls > steps:
            return Reply(text="All done.")
        return Reply(
            tool_calls=[ToolCallSpec("bash", {"command": f"python3 -c \"print('line {calls} ' * 800)\""})]
        )

    server = serve(FunctionScript(answer))
    limit = 16_000
    session = make_session(
        tmp_path, server, models={"openai/scripted": ModelLimits(context=limit, output=2_000)}, max_steps=100
    )
    events = await collect(session, f"{GOAL}. Constraint: {CONSTRAINT}.")
    finished = events[-1]
    assert isinstance(finished, TurnFinished) and finished.reason == "stop", [
        e for e in events if isinstance(e, ErrorEvent)
    ]
    assert finished.steps > 50
    compactions = [e for e in events if isinstance(e, Compacted)]
    assert len(compactions) >= 1
    assert any(getattr(p.state, "pruned", None) for m in session.messages for p in m.tool_parts())
    # No request over the window: the server counts ~4 chars a token over the whole request.
    for recorded in server.requests:
        size = len(json.dumps(recorded.body["messages"])) + len(json.dumps(recorded.body.get("tools", [])))
        assert size / 4 + 2_000 <= limit, size
    # The goal and the constraint from the first message survive every compaction.
    compaction_requests = [r.body for r in server.requests if _is_compaction(r.body)]
    assert CONSTRAINT in compaction_requests[0]["messages"][-1]["content"]
    last = json.dumps(server.requests[-1].body["messages"])
    assert GOAL in last
    # Raw outputs are never lost: the history still holds every full output.
    assert all(
        len(getattr(p.state, "output", "x" * 5000)) > 4000 for m in session.messages for p in m.tool_parts()
    )


async def test_auto_compaction_off_is_a_clear_error(tmp_path: Path, serve: Serve) -> None:
    big = ToolCallSpec("bash", {"command": "python3 -c \"print('y' * 20000)\""})
    # The model keeps calling until the context is full (how many steps that takes is not the point).
    server = serve(FunctionScript(lambda request, protocol: Reply(tool_calls=[big])))
    session = make_session(
        tmp_path,
        server,
        models={"openai/scripted": ModelLimits(context=12_000, output=1_000)},
    )
    session.config.context = ContextConfig(auto_compact=False, prune=False)
    events: list[Event] = await collect(session, "fill it")
    (error,) = [e for e in events if isinstance(e, ErrorEvent)]
    assert "auto-compaction is off" in error.message and "/compact" in error.hint
    assert not any(isinstance(e, Compacted) for e in events)
    for recorded in server.requests:
        assert len(json.dumps(recorded.body["messages"])) / 4 <= 12_000


async def test_manual_compact_with_focus(tmp_path: Path, serve: Serve) -> None:
    def answer(request: dict[str, Any], protocol: str) -> Reply:
        if _is_compaction(request):
            assert "Focus the summary on: the parser" in request["messages"][-1]["content"]
            return summarizer(request)
        return Reply(text="ok")

    server = serve(FunctionScript(answer))
    session = make_session(tmp_path, server)
    await collect(session, GOAL)
    await collect(session, "and another thing")
    events = [e async for e in session.compact("the parser")]
    (compacted,) = events
    assert isinstance(compacted, Compacted) and GOAL in compacted.summary
    await collect(session, "next")
    first_user = server.requests[-1].body["messages"][1]["content"]
    assert "compacted" in first_user and GOAL in first_user
    # A second compaction updates the previous summary instead of summarising a summary.
    await collect(session, "more work")
    (again,) = [e async for e in session.compact("the parser")]
    assert isinstance(again, Compacted) and GOAL in again.summary
    compaction_requests = [r.body for r in server.requests if _is_compaction(r.body)]
    assert "<previous-summary>" in compaction_requests[1]["messages"][-1]["content"]


async def test_compaction_keeps_the_live_kernel_state(tmp_path: Path, serve: Serve) -> None:
    """After a compaction the model still sees the kernel's state card (variables, last error), taken
    when it compacted, and the next compaction does not summarise the old card."""
    from nbagent.tools.kernel import KERNEL_KEY, DictNamespace

    server = serve(FunctionScript(lambda r, p: summarizer(r) if _is_compaction(r) else Reply(text="ok")))
    session = make_session(tmp_path, server)
    session.tool_state[KERNEL_KEY] = DictNamespace({"__name__": "__main__", "sales": [1, 2, 3]})
    await collect(session, GOAL)
    (compacted,) = [e async for e in session.compact()]
    assert isinstance(compacted, Compacted)
    assert "<kernel-state>" in compacted.summary and "sales: list" in compacted.summary
    await collect(session, "next")
    first_user = server.requests[-1].body["messages"][1]["content"]
    assert "sales: list" in first_user and "last error: none" in first_user
    await collect(session, "more")
    [e async for e in session.compact()]
    second = [r.body for r in server.requests if _is_compaction(r.body)][1]["messages"][-1]["content"]
    assert "<previous-summary>" in second and "<kernel-state>" not in second


async def test_anthropic_requests_carry_cache_breakpoints(tmp_path: Path, serve: Serve) -> None:
    (tmp_path / "a.txt").write_text("hello\n")
    server = serve(
        ListScript([Reply(tool_calls=[ToolCallSpec("read", {"file_path": "a.txt"})]), Reply(text="done")])
    )
    session = make_session(tmp_path, server, "anthropic")
    await collect(session, "read a.txt")
    body = server.requests[-1].body
    assert body["system"][-1]["cache_control"] == {"type": "ephemeral"}
    assert body["tools"][-1]["cache_control"] == {"type": "ephemeral"}
    assert 1 <= json.dumps(body["messages"]).count("cache_control") <= 2  # the last messages
    assert "sanitised" not in json.dumps(body["messages"])
    # The scripted server reports the cached prefix as cache reads on the second request.
    assert session.usage.cache_read_tokens > 0


async def test_openai_requests_share_a_prompt_cache_key_and_a_stable_prefix(
    tmp_path: Path, serve: Serve
) -> None:
    (tmp_path / "a.txt").write_text("hello\n")
    server = serve(
        ListScript(
            [Reply(tool_calls=[ToolCallSpec("read", {"file_path": "a.txt"})])] * 2 + [Reply(text="done")]
        )
    )
    session = make_session(tmp_path, server)
    await collect(session, "read a.txt twice")
    keys = {r.body.get("prompt_cache_key") for r in server.requests}
    assert keys == {session.id}
    first, second = (json.dumps(r.body["messages"]) for r in server.requests[:2])
    assert second.startswith(first[:-1])
