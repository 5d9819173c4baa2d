"""A user's Claude Code (``~/.claude.json``) and OpenCode (``opencode.json(c)``) MCP servers, read where
they are: precedence, trust of the project's OpenCode file, JSONC, ``{env:}``/``{file:}``, the import
switch, broken files. Real files in tmp folders; real SDK servers started through real sessions and
``nbagent mcp list`` processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from nbagent.core.config import load_config, user_config_dir
from nbagent.core.events import ToolCallCompleted
from nbagent.ext.mcp_config import load_mcp_config
from nbagent.ext.mcp_import import loads_jsonc
from nbagent.ext.trust import describe_project_code, project_code_digest, project_code_sources
from nbagent.providers.scripted import ListScript, Reply, ToolCallSpec
from tests.conftest import Serve, collect, make_session

FIXTURE = str(Path(__file__).with_name("mcp_fixture_server.py"))
FX = [sys.executable, FIXTURE, "stdio"]


def claude_file() -> Path:
    return Path(os.environ["CLAUDE_CONFIG_DIR"]) / ".claude.json"


def opencode_global() -> Path:
    return Path(os.environ["XDG_CONFIG_HOME"]) / "opencode"


def write(path: Path, data: dict[str, Any] | str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


def oc_local(*command: str) -> dict[str, Any]:
    return {"type": "local", "command": list(command)}


def cc(command: str) -> dict[str, Any]:
    return {"command": command}


# -- JSONC ----------------------------------------------------------------------------------------------

JSONC = """\ufeff{
  // a line comment, with "quotes" and a URL: https://example.test/x
  "$schema": "https://opencode.ai/config.json", // after a value
  /* a block
     comment, }] */
  "url": "https://x//not-a-comment/*nor-this*/",
  "escaped": "a \\" // still a string",
  "comma": "a,}",
  "list": [1, 2, /* inline */ 3,],
  "nested": {"k": "v",
  },
}
"""


def test_jsonc_comments_and_trailing_commas_outside_strings() -> None:
    assert loads_jsonc(JSONC) == {
        "$schema": "https://opencode.ai/config.json",
        "url": "https://x//not-a-comment/*nor-this*/",
        "escaped": 'a " // still a string',
        "comma": "a,}",
        "list": [1, 2, 3],
        "nested": {"k": "v"},
    }
    assert loads_jsonc('{"a": 1}') == {"a": 1}
    with pytest.raises(ValueError, match="line 2"):
        loads_jsonc('{"a": 1,\n /* never closed\n}')
    with pytest.raises(ValueError, match="line 4"):  # positions survive the stripping
        loads_jsonc('{\n  /* x\n  */\n  "a": }')
    with pytest.raises(ValueError):
        loads_jsonc('{"a": 1,,}')  # only a trailing comma goes


# -- where, and in what order ---------------------------------------------------------------------------


def test_every_file_in_precedence_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "proj"
    root.mkdir()
    custom = tmp_path / "custom-opencode.json"
    monkeypatch.setenv("OPENCODE_CONFIG", str(custom))
    # (file, content given its "shared" entry and its own one), lowest precedence first
    layers: list[tuple[str, Path, bool]] = [
        ("claude-user", claude_file(), False),
        ("oc-global", opencode_global() / "opencode.json", False),
        ("oc-global-c", opencode_global() / "opencode.jsonc", False),
        ("oc-custom", custom, False),
        ("nb-user", user_config_dir() / "nbagent.json", False),
        ("oc-project-c", root / "opencode.jsonc", True),
        ("oc-project", root / "opencode.json", True),
        ("oc-dot", root / ".opencode" / "opencode.json", True),
        ("nb-project", root / "nbagent.json", True),
        ("mcp-json", root / ".mcp.json", True),
        ("claude-local", claude_file(), False),
    ]
    claude: dict[str, Any] = {"numStartups": 3, "projects": {"/elsewhere": {"mcpServers": {"no": cc("x")}}}}

    def write_all(upto: int) -> None:
        for path in {p for _, p, _ in layers}:
            path.unlink(missing_ok=True)
        claude.pop("mcpServers", None)
        claude["projects"].pop(str(root), None)
        for tag, path, _ in layers[:upto]:
            servers = {"shared": None, f"only-{tag}": None}
            if tag.startswith("oc-"):
                write(path, {"mcp": {n: oc_local(tag) for n in servers}, "model": "x/y"})
            elif tag.startswith("nb-"):
                write(path, {"mcp": {n: oc_local(tag) for n in servers}})
            elif tag == "mcp-json":
                write(path, {"mcpServers": {n: cc(tag) for n in servers}})
            elif tag == "claude-user":
                claude["mcpServers"] = {n: cc(tag) for n in servers}
            else:
                claude["projects"][str(root)] = {"mcpServers": {n: cc(tag) for n in servers}}
            if tag.startswith("claude"):
                write(claude_file(), claude)

    for upto in range(len(layers), 0, -1):
        write_all(upto)
        config = load_mcp_config(root)
        assert config.errors == []
        tag, path, project = layers[upto - 1]
        shared = config.servers["shared"]
        assert (shared.command, shared.source, shared.project) == ([tag], str(path), project), tag
        for tag, path, project in layers[:upto]:
            own = config.servers[f"only-{tag}"]
            assert (own.source, own.project) == (str(path), project)
        assert "no" not in config.servers  # another project's local scope


def test_claude_local_scope_matches_the_real_folder(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "link").symlink_to(real)
    local = {"mcpServers": {"mine": cc("prog")}, "disabledMcpServers": ["team", "nowhere"]}
    write(claude_file(), {"projects": {str(tmp_path / "link"): local}})
    write(real / ".mcp.json", {"mcpServers": {"team": cc("t"), "other": cc("o")}})
    config = load_mcp_config(real)
    assert config.servers["mine"].command == ["prog"] and not config.servers["mine"].project
    # turned off for this project in Claude Code's /mcp: off here too
    assert not config.servers["team"].enabled and config.servers["other"].enabled
    assert config.errors == []


# -- OpenCode's fields ----------------------------------------------------------------------------------


def test_opencode_fields_env_and_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "home"
    write(home / ".tokens" / "gh", "  ghp-from-home\n")
    monkeypatch.setenv("HOME", str(home))
    write(opencode_global() / "secrets" / "key.txt", "sk-file\n")
    write(
        opencode_global() / "opencode.jsonc",
        """{
      "experimental": {"mcp_timeout": 90000},
      "mcp": {
        // OpenCode's own example shapes
        "local": {"type": "local", "command": ["npx", "-y", "{env:PKG}"], "timeout": 5000,
                  "environment": {"KEY": "{file:secrets/key.txt}", "UNSET": "{env:NOT_SET_XYZ}",
                                  "LITERAL": "${NOT_EXPANDED}"}},
        "remote": {"type": "remote", "url": "https://mcp.example.test/mcp", "oauth": false,
                   "headers": {"Authorization": "Bearer {file:~/.tokens/gh}"}},
        "off": {"type": "local", "command": ["x"], "enabled": false},
        "off-oauth": {"type": "remote", "url": "https://a.test", "enabled": false, "oauth": {}},
        "oauth": {"type": "remote", "url": "https://b.test/mcp", "oauth": {"clientId": "id"}},
        "typo": {"type": "local", "command": ["x"], "env": {"A": "b"}},
        "untyped": {"command": ["x"]},
        "ms": {"type": "local", "command": ["x"], "timeout": 1.5},
        "nofile": {"type": "local", "command": ["x", "{file:missing.txt}"]},
      },
    }""",
    )
    config = load_mcp_config(tmp_path, env={**os.environ, "PKG": "some-mcp"})
    s = config.servers
    assert s["local"].command == ["npx", "-y", "some-mcp"] and s["local"].start_timeout == 5.0
    assert s["local"].env == {"KEY": "sk-file", "UNSET": "", "LITERAL": "${NOT_EXPANDED}"}
    assert s["local"].call_timeout == 90.0  # experimental.mcp_timeout, ms
    assert s["remote"].transport == "http" and s["remote"].headers == {
        "Authorization": "Bearer ghp-from-home"
    }
    assert not s["off"].enabled and not s["off-oauth"].enabled
    assert set(s) == {"local", "remote", "off", "off-oauth"}
    errors = "\n".join(config.errors)
    where = str(opencode_global() / "opencode.jsonc")
    for name, why in [
        ("oauth", '"oauth"'),
        ("typo", "unknown field(s) env"),
        ("untyped", '"type": "local" or "remote"'),
        ("ms", "milliseconds"),
        ("nofile", str(opencode_global() / "missing.txt")),
    ]:
        assert f"MCP server '{name}' ({where}): " in errors and why in errors, (name, errors)


def test_opencode_2_layout(tmp_path: Path) -> None:
    write(
        tmp_path / "opencode.json",
        {
            "mcp": {
                "servers": {
                    "everything": {
                        "type": "local",
                        "command": ["prog"],
                        "cwd": "sub",
                        "disabled": False,
                        "timeout": {"startup": 8000, "request": 120000},
                    },
                    "gone": {"type": "local", "command": ["prog"], "disabled": True},
                }
            }
        },
    )
    s = load_mcp_config(tmp_path).servers
    assert s["everything"].cwd == str(tmp_path / "sub") and s["everything"].project
    assert (s["everything"].start_timeout, s["everything"].call_timeout) == (8.0, 120.0)
    assert not s["gone"].enabled


def test_claude_fields_nbagent_does_not_do_are_reported(tmp_path: Path) -> None:
    write(
        claude_file(),
        {
            "mcpServers": {
                "web": {"type": "http", "url": "https://x.test/mcp", "headers": {"A": "${TOKEN:-t}"}},
                "helper": {"type": "http", "url": "https://y.test/mcp", "headersHelper": "get-token"},
                "slack": {"type": "http", "url": "https://z.test/mcp", "oauth": {"clientId": "1"}},
            }
        },
    )
    config = load_mcp_config(tmp_path, env={"CLAUDE_CONFIG_DIR": os.environ["CLAUDE_CONFIG_DIR"]})
    assert config.servers["web"].headers == {"A": "t"} and set(config.servers) == {"web"}
    assert any("'helper'" in e and "headersHelper" in e and str(claude_file()) in e for e in config.errors)
    assert any("'slack'" in e and "oauth" in e for e in config.errors)


# -- the switch, broken files, trust --------------------------------------------------------------------


def test_import_switch(tmp_path: Path) -> None:
    write(claude_file(), {"mcpServers": {"from-claude": cc("a")}})
    write(opencode_global() / "opencode.json", {"mcp": {"from-opencode": oc_local("b")}})
    user = user_config_dir() / "nbagent.json"

    def names(user_mcp: dict[str, Any] | None, project_mcp: dict[str, Any] | None = None) -> set[str]:
        for path, mcp in ((user, user_mcp), (tmp_path / "nbagent.json", project_mcp)):
            if mcp is None:
                path.unlink(missing_ok=True)
            else:
                write(path, {"mcp": mcp})
        return set(load_mcp_config(tmp_path).servers)

    assert names(None) == {"from-claude", "from-opencode"}
    assert names({"import": False, "own": oc_local("c")}) == {"own"}
    assert names({"import": ["claude"]}) == {"from-claude"}
    assert names({"import": ["opencode"]}) == {"from-opencode"}
    # a project can narrow the user's choice, never turn an import the user switched off back on
    assert names({"import": False}, {"import": True}) == set()
    assert names({"import": ["claude"]}, {"import": True}) == {"from-claude"}
    assert names(None, {"import": ["opencode"]}) == {"from-opencode"}
    (tmp_path / "nbagent.json").unlink()
    write(user, {"mcp": {"import": "yes"}})
    config = load_mcp_config(tmp_path)
    assert set(config.servers) == {"from-claude", "from-opencode"}
    assert any(str(user) in e and "mcp.import" in e for e in config.errors)


def test_a_broken_foreign_file_is_reported_and_the_others_load(tmp_path: Path) -> None:
    write(claude_file(), '{"mcpServers": {"x": ')
    write(opencode_global() / "opencode.jsonc", '{"mcp": {/* oops }')
    write(opencode_global() / "opencode.json", {"mcp": {"global-ok": oc_local("g")}})
    write(tmp_path / "opencode.jsonc", '{"mcp": {"proj": {"type": "local", "command": ["p"],},},}')
    write(tmp_path / ".mcp.json", {"mcpServers": {"cc": cc("c")}})
    config = load_mcp_config(tmp_path)
    assert set(config.servers) == {"global-ok", "proj", "cc"}
    assert any(e.startswith(f"{claude_file()}: not valid JSON") for e in config.errors), config.errors
    broken = str(opencode_global() / "opencode.jsonc")
    assert any(e.startswith(f"{broken}: not valid JSON with comments") for e in config.errors)


def test_project_opencode_file_is_project_code(tmp_path: Path) -> None:
    path = write(
        tmp_path / "opencode.jsonc",
        '{"model": "a/b", // mine\n "mcp": {"fx": {"type": "local", "command": ["p"]}}}',
    )
    sources = project_code_sources(tmp_path, load_config(tmp_path))
    assert path in sources
    assert ("opencode.jsonc defines mcp", ["fx"]) in describe_project_code(tmp_path, sources)
    digest = project_code_digest(tmp_path, sources)
    path.write_text('{"model": "c/d", "mcp": {"fx": {"type": "local", "command": ["p"]}}}')
    assert project_code_digest(tmp_path, sources) == digest  # another setting: trust holds
    path.write_text('{"model": "c/d", "mcp": {"fx": {"type": "local", "command": ["evil"]}}}')
    assert project_code_digest(tmp_path, sources) != digest  # another server: asked again


# -- real servers ----------------------------------------------------------------------------------------


def mcp_list(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "nbagent", "mcp", "list"],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"},
    )


def test_project_opencode_server_starts_only_once_trusted(tmp_path: Path) -> None:
    write(
        tmp_path / "opencode.jsonc",
        '{\n  // the project\'s server\n  "mcp": {"fx": {"type": "local", "command": '
        + json.dumps(FX)
        + ', "timeout": 60000,},},\n}\n',
    )
    untrusted = mcp_list(tmp_path)
    assert "**fx** (stdio, project): needs trust" in untrusted.stdout, untrusted
    assert "echo" not in untrusted.stdout
    trust = subprocess.run(
        [sys.executable, "-m", "nbagent", "trust", str(tmp_path)], capture_output=True, text=True, timeout=60
    )
    assert trust.returncode == 0 and "opencode.jsonc defines mcp" in trust.stdout, trust
    trusted = mcp_list(tmp_path)
    assert trusted.returncode == 0, trusted.stderr
    assert "**fx** (stdio, project): ready" in trusted.stdout and "echo" in trusted.stdout, trusted.stdout


async def test_session_calls_a_tool_of_a_project_opencode_server(tmp_path: Path, serve: Serve) -> None:
    write(
        tmp_path / "opencode.jsonc",
        '{"mcp": {"oc": {"type": "local", "command": ' + json.dumps(FX) + ",},},}",
    )
    call = Reply(tool_calls=[ToolCallSpec("mcp__oc__echo", {"text": "from opencode.jsonc"})])
    session = make_session(tmp_path, serve(ListScript([call, Reply(text="done")])), trust_project=True)
    done = [e for e in await collect(session, "echo") if isinstance(e, ToolCallCompleted)]
    assert done and done[0].output == "echo: from opencode.jsonc"


async def test_session_calls_a_tool_of_a_claude_local_scope_server(tmp_path: Path, serve: Serve) -> None:
    servers = {"cl": {"type": "stdio", "command": FX[0], "args": FX[1:], "env": {}}}
    write(claude_file(), {"projects": {str(tmp_path): {"mcpServers": servers}}})
    call = Reply(tool_calls=[ToolCallSpec("mcp__cl__echo", {"text": "from ~/.claude.json"})])
    # the user's own server: it starts in a folder nobody trusted (a headless policy never answers trust)
    session = make_session(tmp_path, serve(ListScript([call, Reply(text="done")])))
    done = [e for e in await collect(session, "echo") if isinstance(e, ToolCallCompleted)]
    assert done and done[0].output == "echo: from ~/.claude.json"
    assert "**cl** (stdio, user): ready" in session.mcp.describe()
    listed = mcp_list(tmp_path)
    assert "**cl** (stdio, user): ready" in listed.stdout and "echo" in listed.stdout, listed
