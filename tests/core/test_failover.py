"""Switching models and failing over, over real HTTP against scripted model servers (one per model).

A session that starts on the Anthropic protocol fails over mid-turn to an OpenAI-style server when the
first answers a usage limit, finishes the turn there, and resumes later (a new Session from the SQLite
store) on the first model once its cool-down is over. Rate limits, overloads and 5xx storms fail over
after their retries; a usage limit at once; without a fallback the error says how to add one. ``/model``
and ``--model`` on a resumed session switch across protocols in both directions with a valid history.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from pathlib import Path
from typing import Any

import pytest

from nbagent.core.commands import run_command
from nbagent.core.config import Config, ModelLimits, RetryConfig
from nbagent.core.events import ErrorEvent, Event, ModelSwitched, Retrying, TurnFinished
from nbagent.core.failover import REST_FILE
from nbagent.core.private import cache_dir
from nbagent.core.session import Session
from nbagent.providers.scripted import ErrorReply, ListScript, Reply, ToolCallSpec
from nbagent.providers.scripted.script import OnToolResults
from nbagent.providers.scripted.server import RecordedRequest, ScriptedModelServer
from nbagent.store import SessionStore
from tests.conftest import _OPEN_SESSIONS, Serve, collect

CLAUDE = "anthropic/claude-sonnet-4-5"
BACKUP = "openai/backup"
THIRD = "openai/third"
KEY_VAR = "BACKUP_LLM"  # not a secret-looking name: scrubbed because api_key_env names it
BACKUP_KEY = "bk-7Hq2Zt9Lw4Xr8Np3Vs6Ym1"
ANTHROPIC_KEY = "sk-ant-test-0123456789abcdef"


def config(servers: dict[str, ScriptedModelServer], **fields: Any) -> Config:
    """Claude on the first server (Anthropic protocol), the others OpenAI-style, each with its endpoint;
    the backup's key comes from ``BACKUP_LLM``."""
    models: dict[str, ModelLimits] = {}
    for model, server in servers.items():
        if model.startswith("anthropic/"):
            models[model] = ModelLimits(api_base=server.url)
        else:
            models[model] = ModelLimits(api_base=server.openai_base, api_key_env=KEY_VAR)
    values: dict[str, Any] = {
        "model": CLAUDE,
        "models": models,
        "fallback": [m for m in servers if m != CLAUDE],
        "retry": RetryConfig(max_attempts=3, base_delay=0.0),
    }
    values.update(fields)
    return Config(**values)


def header(request: RecordedRequest, name: str) -> str | None:
    return {k.lower(): v for k, v in request.headers.items()}.get(name)


def opened(session: Session) -> Session:
    _OPEN_SESSIONS.append(session)
    return session


def new_session(root: Path, cfg: Config, **kwargs: Any) -> Session:
    return opened(Session(root, cfg, api_key=ANTHROPIC_KEY, headless="allow", **kwargs))


def switches(events: list[Event]) -> list[ModelSwitched]:
    return [e for e in events if isinstance(e, ModelSwitched)]


def finished(events: list[Event]) -> TurnFinished:
    last = events[-1]
    assert isinstance(last, TurnFinished), last
    return last


def openai_history_is_valid(body: dict[str, Any]) -> list[str]:
    """Every assistant tool call is answered by a tool message with its id, right after it; the ids."""
    messages = body["messages"]
    ids: list[str] = []
    for i, message in enumerate(messages):
        calls = message.get("tool_calls") or []
        if message["role"] != "assistant" or not calls:
            continue
        wanted = [c["id"] for c in calls]
        answered = [m.get("tool_call_id") for m in messages[i + 1 : i + 1 + len(wanted)]]
        assert answered == wanted, (wanted, answered)
        ids += wanted
    return ids


def anthropic_history_is_valid(body: dict[str, Any]) -> list[str]:
    """Roles alternate, and every tool_use is answered by a tool_result in the next user message."""
    messages = body["messages"]
    roles = [m["role"] for m in messages]
    assert all(a != b for a, b in itertools.pairwise(roles)), roles
    ids: list[str] = []
    for i, message in enumerate(messages):
        content = message["content"]
        if message["role"] != "assistant" or not isinstance(content, list):
            continue
        uses = [b["id"] for b in content if b.get("type") == "tool_use"]
        if not uses:
            continue
        following = messages[i + 1]["content"]
        results = [b["tool_use_id"] for b in following if b.get("type") == "tool_result"]
        assert results == uses, (uses, results)
        ids += uses
    return ids


@pytest.fixture(autouse=True)
def _backup_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_VAR, BACKUP_KEY)


async def test_usage_limit_fails_over_mid_turn_and_a_resume_after_the_cool_down_is_back_on_claude(
    tmp_path: Path, serve: Serve
) -> None:
    root = tmp_path / "project"
    root.mkdir()
    claude = serve(
        ListScript(
            [
                Reply(
                    text="Checking the environment.",
                    tool_calls=[
                        ToolCallSpec("bash", {"command": f"printenv {KEY_VAR}; echo end"}, id="toolu_1")
                    ],
                ),
                ErrorReply(429, "Claude usage limit reached for your plan."),  # mid-turn: not retried
                OnToolResults(lambda results: Reply(text="Back on Claude, with the whole story.")),
            ]
        )
    )
    backup = serve(
        ListScript(
            [
                OnToolResults(
                    lambda results: Reply(text=f"Finished on the backup after: {results[0].strip()}")
                ),
                Reply(text="still the backup"),
            ]
        )
    )
    cfg = config({CLAUDE: claude, BACKUP: backup}, fallback_cooldown=3.0)
    store = SessionStore(tmp_path / "store.db")
    session = new_session(root, cfg, store=store)
    events = await collect(session, "look around")
    started = time.time()

    done = finished(events)
    assert done.reason == "stop" and done.text.startswith("Finished on the backup after: end")
    [switch] = switches(events)
    assert switch.reason == "failover" and (switch.from_model, switch.to_model) == (CLAUDE, BACKUP)
    assert switch.message == f"{CLAUDE}: usage limit hit; continuing on {BACKUP}."
    assert not any(isinstance(e, ErrorEvent) for e in events)
    assert not any(isinstance(e, Retrying) and e.wait > 0 for e in events)  # a usage limit is not waited for
    assert [r.path for r in claude.requests] == ["/v1/messages", "/v1/messages"]
    assert session.messages[-1].model == BACKUP and session.model == BACKUP

    # The backup got the same turn: its own endpoint and key (never Claude's), a valid history holding
    # the call made on the Anthropic protocol and its result.
    [on_backup] = backup.requests
    assert header(on_backup, "authorization") == f"Bearer {BACKUP_KEY}"
    assert ANTHROPIC_KEY not in on_backup.raw.decode()
    assert openai_history_is_valid(on_backup.body) != []
    # The key: hidden from commands, scrubbed, never written.
    result = next(m for m in on_backup.body["messages"] if m["role"] == "tool")["content"]
    assert BACKUP_KEY not in json.dumps(result)
    assert BACKUP_KEY not in session.scrub(f"the key is {BACKUP_KEY}")
    await session.close()
    for path in [tmp_path / "store.db", cache_dir() / REST_FILE]:
        assert BACKUP_KEY.encode() not in path.read_bytes()

    # Resumed within the cool-down: it stays on the backup, Claude is not asked.
    early = opened(Session.resume(root, cfg, store, session.id, api_key=ANTHROPIC_KEY, headless="allow"))
    assert early.model == BACKUP
    early_events = await collect(early, "one more thing")
    assert finished(early_events).text == "still the backup"
    [resting] = switches(early_events)
    assert resting.reason == "failover" and "resting" in resting.message
    assert len(claude.requests) == 2
    await early.close()

    # Later, after the cool-down: a new Session from the store is back on Claude, whose history (calls
    # and results from both protocols) the Anthropic API accepts.
    await asyncio.sleep(max(0.0, started + 3.1 - time.time()))
    later = opened(Session.resume(root, cfg, store, session.id, api_key=ANTHROPIC_KEY, headless="allow"))
    assert later.model == CLAUDE
    later_events = await collect(later, "and now?")
    assert finished(later_events).text == "Back on Claude, with the whole story."
    assert switches(later_events) == []
    last = claude.requests[-1]
    assert header(last, "x-api-key") == ANTHROPIC_KEY
    assert anthropic_history_is_valid(last.body) == ["toolu_1"]
    sent = json.dumps(last.body)
    assert "Finished on the backup after: end" in sent and "still the backup" in sent


async def test_the_switch_back_happens_at_the_next_step_after_the_cool_down(
    tmp_path: Path, serve: Serve
) -> None:
    claude = serve(
        ListScript([ErrorReply(529, "Overloaded"), ErrorReply(529, "Overloaded"), Reply(text="claude")])
    )
    backup = serve(
        ListScript([Reply(tool_calls=[ToolCallSpec("bash", {"command": "sleep 0.6; echo slept"}, id="c1")])])
    )
    cfg = config(
        {CLAUDE: claude, BACKUP: backup},
        fallback_cooldown=0.3,
        retry=RetryConfig(max_attempts=2, base_delay=0),
    )
    session = new_session(tmp_path, cfg)
    events = await collect(session, "go")
    failover, back = switches(events)
    assert (
        failover.reason == "failover" and failover.message == f"{CLAUDE}: overloaded; continuing on {BACKUP}."
    )
    assert back.reason == "switch_back" and (back.from_model, back.to_model) == (BACKUP, CLAUDE)
    assert "cool-down" in back.message and "prompt cache starts over" in back.message
    assert finished(events).text == "claude" and session.model == CLAUDE
    # Claude's history holds the backup's call and its result, valid on the Anthropic protocol.
    assert anthropic_history_is_valid(claude.requests[-1].body) == ["c1"]


@pytest.mark.parametrize(
    ("answers", "reason", "retries"),
    [
        (
            [ErrorReply(500, "boom"), ErrorReply(502, "bad gateway"), ErrorReply(500, "boom")],
            "server errors",
            2,
        ),
        ([ErrorReply(529, "Overloaded")] * 3, "overloaded", 2),
        ([ErrorReply(429, "slow down", headers={"retry-after": "0"})] * 3, "rate limit did not clear", 2),
        (
            [ErrorReply(429, "slow down", headers={"retry-after": "600"})],
            "usage limit hit (resets in about 10",
            0,
        ),
        (
            [ErrorReply(403, "You have reached your usage limit, limit resets in 4 hours.")],
            "usage limit hit (resets in about 4 hours)",
            0,
        ),
    ],
)
async def test_what_fails_over_and_after_how_many_attempts(
    tmp_path: Path, serve: Serve, answers: list[ErrorReply], reason: str, retries: int
) -> None:
    claude = serve(ListScript(answers))
    backup = serve(ListScript([Reply(text="carried on")]))
    session = new_session(tmp_path, config({CLAUDE: claude, BACKUP: backup}))
    began = time.monotonic()
    events = await collect(session, "go")
    assert time.monotonic() - began < 10  # a long retry-after is not waited for
    [switch] = switches(events)
    assert switch.message.startswith(f"{CLAUDE}: {reason}") and switch.message.endswith(
        f"continuing on {BACKUP}."
    )
    assert len([e for e in events if isinstance(e, Retrying)]) == retries
    assert finished(events).text == "carried on"


async def test_the_chain_goes_on_to_the_third_and_stops_clearly_when_every_model_rests(
    tmp_path: Path, serve: Serve
) -> None:
    claude = serve(
        ListScript([ErrorReply(429, "usage limit reached"), ErrorReply(429, "usage limit reached")])
    )
    backup = serve(ListScript([ErrorReply(402, "Your credit balance is too low.")]))
    third = serve(ListScript([Reply(text="third one answers"), ErrorReply(429, "quota exceeded")]))
    session = new_session(tmp_path, config({CLAUDE: claude, BACKUP: backup, THIRD: third}))
    events = await collect(session, "go")
    assert [(s.from_model, s.to_model) for s in switches(events)] == [(CLAUDE, BACKUP), (BACKUP, THIRD)]
    assert finished(events).text == "third one answers"
    # /model picks Claude again (it rests no more); it fails again, the third too: a clear stop.
    picked = await run_command(session, f"/model {CLAUDE}")
    assert [e.reason for e in picked.events if isinstance(e, ModelSwitched)] == ["user"]
    events = await collect(session, "again")
    assert [(s.from_model, s.to_model) for s in switches(events)] == [(CLAUDE, THIRD)]  # the backup rests
    [error] = [e for e in events if isinstance(e, ErrorEvent)]
    assert error.kind == "usage_limit" and "quota exceeded" in error.message
    assert "Every fallback model is resting" in error.hint and CLAUDE in error.hint and BACKUP in error.hint


async def test_without_a_fallback_a_usage_limit_is_a_clear_error_at_once(
    tmp_path: Path, serve: Serve
) -> None:
    claude = serve(ListScript([ErrorReply(429, "usage limit reached, limit resets in 4 hours")]))
    session = new_session(tmp_path, Config(model=CLAUDE, models={CLAUDE: ModelLimits(api_base=claude.url)}))
    events = await collect(session, "go")
    [error] = [e for e in events if isinstance(e, ErrorEvent)]
    assert error.kind == "usage_limit" and "limit resets in 4 hours" in error.message
    assert '"fallback"' in error.hint and "nbagent.json" in error.hint and "about 4 hours" in error.hint
    assert not any(isinstance(e, Retrying | ModelSwitched) for e in events)
    assert not (cache_dir() / REST_FILE).exists()  # nothing rests without a fallback


async def test_a_storm_without_a_fallback_names_the_fix(tmp_path: Path, serve: Serve) -> None:
    claude = serve(ListScript([ErrorReply(503, "unavailable")] * 2))
    cfg = Config(
        model=CLAUDE,
        models={CLAUDE: ModelLimits(api_base=claude.url)},
        retry=RetryConfig(max_attempts=2, base_delay=0),
    )
    events = await collect(new_session(tmp_path, cfg), "go")
    [error] = [e for e in events if isinstance(e, ErrorEvent)]
    assert (
        "gave up after 2 attempts" in error.message
        and "fallback" in error.hint
        and "nbagent.json" in error.hint
    )


async def test_a_missing_key_variable_is_named(
    tmp_path: Path, serve: Serve, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(KEY_VAR)
    claude = serve(ListScript([ErrorReply(429, "usage limit reached")]))
    backup = serve(ListScript([]))
    events = await collect(new_session(tmp_path, config({CLAUDE: claude, BACKUP: backup})), "go")
    [error] = [e for e in events if isinstance(e, ErrorEvent)]
    assert error.kind == "auth" and KEY_VAR in error.message and KEY_VAR in error.hint


async def test_model_command_switches_across_protocols_both_ways(tmp_path: Path, serve: Serve) -> None:
    openai = serve(
        ListScript(
            [
                Reply(tool_calls=[ToolCallSpec("bash", {"command": "echo one"}, id="call_one")]),
                Reply(text="first on openai"),
                OnToolResults(lambda results: Reply(text="back on openai")),
            ]
        )
    )
    claude = serve(
        ListScript(
            [
                Reply(tool_calls=[ToolCallSpec("bash", {"command": "echo two"}, id="toolu_two")]),
                Reply(text="then on claude"),
            ]
        )
    )
    cfg = Config(
        model=BACKUP,
        models={
            BACKUP: ModelLimits(api_base=openai.openai_base, api_key_env=KEY_VAR),
            CLAUDE: ModelLimits(api_base=claude.url),
        },
    )
    session = new_session(tmp_path, cfg)
    await collect(session, "one")

    to_claude = await run_command(session, f"/model {CLAUDE}")
    assert "prompt cache starts over" in to_claude.text
    [event] = to_claude.events
    assert (
        isinstance(event, ModelSwitched)
        and event.reason == "user"
        and (event.from_model, event.to_model) == (BACKUP, CLAUDE)
    )
    assert "prompt cache starts over" in event.message
    assert finished(await collect(session, "two")).text == "then on claude"
    assert anthropic_history_is_valid(claude.requests[0].body) == ["call_one"]
    assert anthropic_history_is_valid(claude.requests[1].body) == ["call_one", "toolu_two"]
    assert ANTHROPIC_KEY not in json.dumps(claude.requests[0].headers)  # --api-key is the openai model's

    assert [e.to_model for e in switches((await run_command(session, f"/model {BACKUP}")).events)] == [BACKUP]
    assert finished(await collect(session, "three")).text == "back on openai"
    assert openai_history_is_valid(openai.requests[-1].body) == ["call_one", "toolu_two"]
    assert header(openai.requests[-1], "authorization") == f"Bearer {BACKUP_KEY}"
    assert (await run_command(session, f"/model {BACKUP}")).text.startswith("Already on")
    assert BACKUP in (await run_command(session, "/model")).text


async def test_model_option_on_a_resumed_session_switches_protocol(tmp_path: Path, serve: Serve) -> None:
    claude = serve(
        ListScript(
            [
                Reply(tool_calls=[ToolCallSpec("bash", {"command": "echo hi"}, id="toolu_a")]),
                Reply(text="claude done"),
            ]
        )
    )
    openai = serve(ListScript([Reply(text="openai continues")]))
    models = {
        CLAUDE: ModelLimits(api_base=claude.url),
        BACKUP: ModelLimits(api_base=openai.openai_base, api_key_env=KEY_VAR),
    }
    store = SessionStore(tmp_path / "store.db")
    first = new_session(tmp_path, Config(model=CLAUDE, models=models), store=store)
    await collect(first, "start")
    await first.close()

    resumed = opened(
        Session.resume(tmp_path, Config(model=BACKUP, models=models), store, first.id, headless="allow")
    )
    events = await collect(resumed, "continue")
    [switch] = switches(events)
    assert switch.reason == "user" and (switch.from_model, switch.to_model) == (CLAUDE, BACKUP)
    assert "prompt cache starts over" in switch.message
    assert finished(events).text == "openai continues"
    assert openai_history_is_valid(openai.requests[0].body) == ["toolu_a"]
    assert store.get_session(first.id).model == BACKUP  # the next plain resume stays on it
    again = opened(Session.resume(tmp_path, Config(models=models), store, first.id, headless="allow"))
    assert again.model == BACKUP


async def test_each_model_on_its_own_path_litellm_then_native(tmp_path: Path, serve: Serve) -> None:
    """A model only litellm serves (mistral/...) hits a usage limit; the turn goes on natively on Claude."""
    mistral = serve(ListScript([ErrorReply(429, "Monthly usage limit reached for this workspace.")]))
    claude = serve(ListScript([Reply(text="claude took over")]))
    cfg = Config(
        model="mistral/scripted",
        fallback=[CLAUDE],
        models={
            "mistral/scripted": ModelLimits(api_base=mistral.openai_base, api_key_env=KEY_VAR),
            CLAUDE: ModelLimits(api_base=claude.url),
        },
        retry=RetryConfig(base_delay=0.0),
    )
    session = new_session(tmp_path, cfg)
    events = await collect(session, "go")
    [switch] = switches(events)
    assert switch.message == f"mistral/scripted: usage limit hit; continuing on {CLAUDE}."
    assert finished(events).text == "claude took over"
    assert (
        len(mistral.requests) == 1 and header(mistral.requests[0], "authorization") == f"Bearer {BACKUP_KEY}"
    )
    assert ANTHROPIC_KEY not in json.dumps(claude.requests[0].headers)  # --api-key is mistral's provider's


async def test_a_zero_cool_down_never_ping_pongs_within_a_step(tmp_path: Path, serve: Serve) -> None:
    claude = serve(ListScript([ErrorReply(529, "Overloaded")]))
    backup = serve(ListScript([ErrorReply(503, "down")]))
    cfg = config({CLAUDE: claude, BACKUP: backup}, fallback_cooldown=0, retry=RetryConfig(max_attempts=1))
    events = await collect(new_session(tmp_path, cfg), "go")
    assert [(s.from_model, s.to_model) for s in switches(events)] == [(CLAUDE, BACKUP)]
    [error] = [e for e in events if isinstance(e, ErrorEvent)]
    assert "down" in error.message and "try again now" in error.hint
