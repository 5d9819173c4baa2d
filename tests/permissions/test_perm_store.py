"""'Always' approvals: scoped, saved atomically in .nbagent/permissions.local.json, applied at once."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from nbagent.core.config import Config
from nbagent.core.errors import ConfigError
from nbagent.core.events import Event, PermissionAsked
from nbagent.core.permission import PermissionBroker
from nbagent.permissions.policy import RulePolicy
from nbagent.tools.base import PermissionQuery, PermissionRejected


def q(key: str, *patterns: str) -> PermissionQuery:
    return PermissionQuery(permission=key, patterns=list(patterns))


def test_remember_saves_scoped_rules_and_survives_restart(project: Path) -> None:
    policy = RulePolicy(project, Config())
    query = q("bash", "git commit -m 'first'")
    decision = policy.evaluate(query)
    assert decision.action == "ask" and decision.always == ["git commit *"]
    policy.remember(query, decision)

    saved = json.loads((project / ".nbagent" / "permissions.local.json").read_text())
    assert saved == {"permission": {"bash": {"git commit *": "allow"}}}
    assert "permissions.local.json" in (project / ".nbagent" / ".gitignore").read_text().splitlines()
    assert policy.evaluate(q("bash", "git commit -m 'second'")).action == "allow"
    assert policy.evaluate(q("bash", "git commit --amend")).rule == 'bash "git commit *": allow (saved)'
    assert policy.evaluate(q("bash", "git push")).action == "ask"

    restarted = RulePolicy(project, Config())
    assert restarted.evaluate(q("bash", "git commit -m 'third'")).action == "allow"


def test_saved_rules_outrank_config_but_not_other_commands(project: Path) -> None:
    config = Config.model_validate({"permission": {"bash": {"*": "ask", "cargo *": "deny"}}})
    policy = RulePolicy(project, config)
    query = q("bash", "npm run build")
    policy.remember(query, policy.evaluate(query))
    assert policy.evaluate(q("bash", "npm run build --prod")).action == "allow"
    assert policy.evaluate(q("bash", "npm run deploy")).action == "ask"
    assert policy.evaluate(q("bash", "cargo build")).action == "deny"


def test_remember_paths_and_external_folders(project: Path) -> None:
    policy = RulePolicy(project, Config())
    edit = q("edit", "src/pkg/a.py")
    policy.remember(edit, policy.evaluate(edit))
    assert policy.evaluate(q("edit", "src/pkg/b.py")).action == "allow"
    assert policy.evaluate(q("edit", "src/other.py")).action == "ask"

    outside = q("bash", "cat /etc/hosts")
    d = policy.evaluate(outside)
    assert d.always == ["external_directory: /etc/**"]
    policy.remember(outside, d)
    assert policy.evaluate(q("read", "/etc/passwd")).action == "allow"


def test_remember_protected_path_saves_exactly_that_path(project: Path) -> None:
    policy = RulePolicy(project, Config())
    query = q("read", ".env")
    d = policy.evaluate(query)
    assert d.always == ["./.env"]
    policy.remember(query, d)
    assert policy.evaluate(q("read", ".env")).action == "allow"
    assert policy.evaluate(q("read", "config/.env")).action == "ask"


def test_unknowable_offers_nothing_to_save(project: Path) -> None:
    policy = RulePolicy(project, Config())
    query = q("bash", 'eval "$X"')
    d = policy.evaluate(query)
    assert d.always == []
    policy.remember(query, d)
    assert not (project / ".nbagent" / "permissions.local.json").exists()


def test_never_saves_catch_all(project: Path) -> None:
    policy = RulePolicy(project, Config())
    from nbagent.core.permission import Decision

    policy.remember(q("bash", "x"), Decision(action="ask", always=["*"]))
    assert not (project / ".nbagent" / "permissions.local.json").exists()


def test_existing_file_is_merged_and_written_atomically(project: Path) -> None:
    local = project / ".nbagent" / "permissions.local.json"
    local.parent.mkdir()
    local.write_text(json.dumps({"permission": {"bash": {"make test *": "allow"}}, "note": "kept"}))
    (project / ".nbagent" / ".gitignore").write_text("other")
    policy = RulePolicy(project, Config())
    query = q("bash", "make lint")
    policy.remember(query, policy.evaluate(query))
    data = json.loads(local.read_text())
    assert data["permission"]["bash"] == {"make test *": "allow", "make lint *": "allow"}
    assert data["note"] == "kept"
    assert sorted(p.name for p in local.parent.iterdir()) == [".gitignore", "permissions.local.json"]
    assert (project / ".nbagent" / ".gitignore").read_text() == "other\npermissions.local.json\n"


def test_broken_local_file_is_a_clear_error(project: Path) -> None:
    local = project / ".nbagent" / "permissions.local.json"
    local.parent.mkdir()
    local.write_text("{not json")
    with pytest.raises(ConfigError, match=r"permissions\.local\.json"):
        RulePolicy(project, Config())
    local.write_text(json.dumps({"permission": {"bash": {"ls": "sure"}}}))
    with pytest.raises(ConfigError, match=r"permission\.bash\.ls"):
        RulePolicy(project, Config())


async def test_always_reply_applies_to_other_pending_requests(project: Path) -> None:
    events: list[Event] = []
    policy = RulePolicy(project, Config())
    broker = PermissionBroker(policy, events.append)
    first = asyncio.create_task(broker.check(q("bash", "git commit -m one")))
    second = asyncio.create_task(broker.check(q("bash", "git commit -m two")))
    other = asyncio.create_task(broker.check(q("bash", "git push")))
    for _ in range(100):  # let the three checks reach their prompts
        if len(broker.pending) == 3:
            break
        await asyncio.sleep(0)
    asked = [e for e in events if isinstance(e, PermissionAsked)]
    assert asked[0].always == ["git commit *"]
    assert asked[0].details["commands"][0]["command"] == "git commit -m one"
    broker.reply(asked[0].request_id, "always")
    await asyncio.wait_for(asyncio.gather(first, second), 2)
    assert broker.pending == [asked[2].request_id]
    broker.reply(asked[2].request_id, "reject", feedback="do not push yet")
    with pytest.raises(PermissionRejected, match="do not push yet"):
        await other


def test_agent_deny_beats_a_saved_approval(project: Path) -> None:
    config = Config.model_validate(
        {"agent": {"reviewer": {"permission": {"bash": {"*": "ask", "git commit*": "deny"}}}}}
    )
    build = RulePolicy(project, config)
    query = q("bash", "git commit -m x")
    build.remember(query, build.evaluate(query))
    reviewer = RulePolicy(project, config, agent="reviewer")
    assert reviewer.evaluate(q("bash", "git commit -m y")).action == "deny"
    other = q("bash", "make docs")
    build.remember(other, build.evaluate(other))
    assert RulePolicy(project, config, agent="reviewer").evaluate(q("bash", "make docs")).action == "allow"
