"""MCP server definitions: OpenCode's shape in nbagent.json, Claude Code's in .mcp.json, user vs project."""

from __future__ import annotations

import json
from pathlib import Path

from nbagent.core.config import load_config, user_config_dir
from nbagent.ext.mcp_config import expand, load_mcp_config
from nbagent.ext.trust import describe_project_code, project_code_digest, project_code_sources


def test_expand_variables() -> None:
    env = {"TOKEN": "abc", "EMPTY": ""}
    assert expand("Bearer ${TOKEN}", env) == "Bearer abc"
    assert expand("${MISSING:-fallback}/${EMPTY:-x}", env) == "fallback/x"
    assert expand("{env:TOKEN}", env) == "abc"


def test_both_shapes_user_and_project(tmp_path: Path) -> None:
    user = user_config_dir()
    user.mkdir(parents=True, exist_ok=True)
    (user / "nbagent.json").write_text(
        json.dumps(
            {
                "mcp": {
                    "local1": {
                        "type": "local",
                        "command": ["prog", "a"],
                        "environment": {"K": "v"},
                        "timeout": 5,
                    },
                    "remote1": {"type": "remote", "url": "https://example.test/mcp", "headers": {"A": "b"}},
                    "off": {"type": "local", "command": ["x"], "enabled": False},
                }
            }
        )
    )
    root = tmp_path / "proj"
    root.mkdir()
    (root / ".mcp.json").write_text(
        json.dumps(
            {
                "mcpServers": {
                    "cc": {"command": "npx", "args": ["-y", "pkg"], "env": {"T": "${TOKEN}"}},
                    "web": {
                        "type": "http",
                        "url": "${BASE:-http://localhost:1}/mcp",
                        "headers": {"X": "${TOKEN}"},
                    },
                    "old": {"type": "sse", "url": "http://localhost:2/sse"},
                    "broken": {"command": "x", "env": {"T": "${NOT_SET_ANYWHERE}"}},
                }
            }
        )
    )
    config = load_mcp_config(root, env={"TOKEN": "tok"})
    s = config.servers
    assert s["local1"].command == ["prog", "a"] and s["local1"].env == {"K": "v"}
    assert s["local1"].start_timeout == 5 and not s["local1"].project
    assert s["remote1"].transport == "http" and s["remote1"].headers == {"A": "b"}
    assert not s["off"].enabled
    assert s["cc"].command == ["npx", "-y", "pkg"] and s["cc"].env == {"T": "tok"} and s["cc"].project
    assert s["web"].url == "http://localhost:1/mcp" and s["web"].headers == {"X": "tok"}
    assert s["old"].transport == "sse"
    assert "broken" not in s
    assert any("'broken'" in e and "NOT_SET_ANYWHERE" in e and ":-" in e for e in config.errors)
    assert set(config.project_servers) == {"cc", "web", "old"}


def test_nbagent_json_with_mcp_loads_and_mcp_json_is_trusted_code(tmp_path: Path) -> None:
    (tmp_path / "nbagent.json").write_text(json.dumps({"mcp": {"a": {"type": "local", "command": ["p"]}}}))
    (tmp_path / ".mcp.json").write_text(json.dumps({"mcpServers": {"b": {"command": "q"}}}))
    config = load_config(tmp_path)  # the "mcp" key is part of the configuration
    sources = project_code_sources(tmp_path, config)
    assert tmp_path / ".mcp.json" in sources
    described = dict(describe_project_code(tmp_path, sources))
    assert described[".mcp.json defines mcpServers"] == ["b"]
    before = project_code_digest(tmp_path, sources)
    (tmp_path / ".mcp.json").write_text(json.dumps({"mcpServers": {"b": {"command": "evil"}}}))
    assert project_code_digest(tmp_path, sources) != before  # a changed server asks again
    servers = load_mcp_config(tmp_path, env={}).servers
    assert servers["a"].project and servers["b"].project


def test_bad_entries_are_reported_not_fatal(tmp_path: Path) -> None:
    (tmp_path / ".mcp.json").write_text(
        json.dumps(
            {
                "mcpServers": {
                    "x": {"type": "carrier-pigeon"},
                    "y": {"url": "ftp://no"},
                    "z": {"command": "ok"},
                }
            }
        )
    )
    config = load_mcp_config(tmp_path, env={})
    assert list(config.servers) == ["z"]
    assert len(config.errors) == 2
    (tmp_path / ".mcp.json").write_text("{not json")
    assert "not valid JSON" in load_mcp_config(tmp_path, env={}).errors[0]


def test_mcp_permission_patterns(tmp_path: Path) -> None:
    from nbagent.core.config import Config
    from nbagent.core.permission_types import PermissionQuery
    from nbagent.permissions.policy import RulePolicy

    # Like patterns within a key, the last matching wildcard key wins; a tool's own key comes first.
    rules = {"mcp__*": "deny", "mcp__github__*": "allow", "mcp__github__delete_repo": "deny"}
    policy = RulePolicy(tmp_path, Config(permission=rules))

    def action(tool: str) -> str:
        return policy.evaluate(PermissionQuery(permission=tool, patterns=[""])).action

    assert action("mcp__github__list_issues") == "allow"  # the server's pattern
    assert action("mcp__github__delete_repo") == "deny"  # the tool's own key beats a pattern
    assert action("mcp__other__anything") == "deny"
    assert (
        RulePolicy(tmp_path, Config()).evaluate(PermissionQuery(permission="mcp__x__y", patterns=[""])).action
        == "ask"
    )


def test_what_mcp_shows_of_a_server_keeps_secrets_out(tmp_path: Path) -> None:
    """/mcp and the sidebar show the command or URL as written: a token from a variable stays a variable,
    a URL loses its query string and credentials (/mcp output can be saved in a notebook)."""
    from nbagent.core.mcp_session import McpSession

    root = tmp_path / "proj"
    root.mkdir()
    servers = {
        "cli": {"command": "prog", "args": ["--token", "${TOKEN}"]},
        "web": {"type": "http", "url": "https://user:pw@mcp.example.test:8443/mcp?key=s3cret"},
        "var": {"type": "http", "url": "${BASE:-http://localhost:1}/mcp?key=${TOKEN}"},
    }
    (root / ".mcp.json").write_text(json.dumps({"mcpServers": servers}))
    config = load_mcp_config(root, env={"TOKEN": "tok-123"})
    assert config.servers["cli"].command == ["prog", "--token", "tok-123"]  # what runs
    text = McpSession(config).describe()
    assert "`prog --token ${TOKEN}`" in text and f"(from {root / '.mcp.json'})" in text
    assert "`https://mcp.example.test:8443/mcp`" in text and "`${BASE:-http://localhost:1}/mcp`" in text
    assert "tok-123" not in text and "s3cret" not in text and "pw@" not in text


async def test_a_failed_server_error_keeps_secrets_out(tmp_path: Path) -> None:
    """A remote server that cannot be reached: its error (shown by /mcp, the sidebar, notices) names the
    URL as written and masks what variables put in the URL and headers."""
    from nbagent.ext.mcp_client import McpHub

    root = tmp_path / "proj"
    root.mkdir()
    url = "http://127.0.0.1:9/mcp?key=${KEY}"
    servers = {
        "web": {"type": "http", "url": url, "headers": {"Authorization": "Bearer ${KEY}"}, "timeout": 5}
    }
    (root / ".mcp.json").write_text(json.dumps({"mcpServers": servers}))
    hub = McpHub(load_mcp_config(root, env={"KEY": "s3cret-value"}))
    try:
        await hub.start_all(trusted=True)
        error = hub.servers["web"].error
    finally:
        await hub.close()
    assert error.startswith("MCP server 'web' (http://127.0.0.1:9/mcp)") and "s3cret-value" not in error


def test_an_opencode_block_pasted_into_nbagent_json_keeps_its_timeout_meaning(tmp_path: Path) -> None:
    """OpenCode writes "timeout" in milliseconds, nbagent.json in seconds: 5000 is read as 5 s, and said."""
    root = tmp_path / "proj"
    root.mkdir()
    servers = {
        "pasted": {"type": "local", "command": ["prog"], "timeout": 5000},
        "ours": {"type": "local", "command": ["prog"], "timeout": 45},
    }
    (root / "nbagent.json").write_text(json.dumps({"mcp": servers}))
    config = load_mcp_config(root, env={})
    assert config.servers["pasted"].start_timeout == 5 and config.servers["ours"].start_timeout == 45
    assert any("'pasted'" in e and "write 5" in e for e in config.errors)
    assert not any("'ours'" in e for e in config.errors)


def test_errors_and_display_never_carry_what_a_variable_or_a_credential_holds(tmp_path: Path) -> None:
    from nbagent.core.mcp_session import McpSession
    from nbagent.ext.mcp_client import ServerConn

    root = tmp_path / "proj"
    root.mkdir()
    servers = {
        "web": {
            "type": "http",
            "url": "https://bob:hunter2pass@h.example/${TENANT}/mcp?key=${KEY}#frag",
            "headers": {"Authorization": "Bearer ${KEY}"},
        },
        "typo": {"type": "${KEY}", "command": "true"},  # an error must not show what the variable holds
    }
    (root / ".mcp.json").write_text(json.dumps({"mcpServers": servers}))
    config = load_mcp_config(root, env={"KEY": "sk_live_abcdef123456", "TENANT": "acme"})
    text = McpSession(config).describe() + "\n".join(config.errors)
    assert "`https://h.example/${TENANT}/mcp`" in text
    assert "sk_live" not in text and "hunter2pass" not in text
    conn = ServerConn(config.servers["web"])
    said = "401 for url 'https://h.example/acme/mcp/?key=sk_live_abcdef123456': invalid api key sk_live_abcdef123456"
    assert "sk_live" not in conn.redact(said) and "hunter2pass" not in conn.redact("auth hunter2pass failed")
