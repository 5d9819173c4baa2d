"""Provider keys and secret-named variables never reach a command's environment, sandboxed or not:
a real session runs `env` through the real bash tool."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from nbagent.core.config import Config
from nbagent.core.session import Session
from nbagent.permissions.sandbox import sandbox_available
from nbagent.tools.shell import BashTool
from nbagent.tools.shell_env import ShellOptions, scrubbed_env
from tests.conftest import require

OPENAI = "sk-proj-openai-0123456789abcdef"
SESSION_KEY = "sk-ant-session-key-fedcba9876543210"
SECRETS = {
    "OPENAI_API_KEY": OPENAI,
    "ANTHROPIC_API_KEY": "sk-ant-env-key-1111",
    "HF_TOKEN": "hf_token_2222",
    "GITHUB_TOKEN": "ghp_pass_me_3333",
    "AWS_SECRET_ACCESS_KEY": "aws-secret-4444",
    "DB_PASSWORD": "pw-5555",
    "DATABASE_URL": "postgres://app:pw-6666@db.internal/app",
    "NBAGENT_SIGNING_KEY": "nbk-7777",
    "INNOCENT_LOOKING": SESSION_KEY,  # the session's own key under another name
}
PLAIN = {"HOME_PAGE": "https://example.org", "REDIS_URL": "redis://cache:6379/0", "MY_SETTING": "42"}


class _Provider:
    async def close(self) -> None:
        return None


async def env_output(root: Path, sandbox: bool, pass_env: list[str]) -> str:
    config = Config.model_validate(
        {"model": "openai/none", "sandbox": {"enabled": sandbox}, "shell": {"pass_env": pass_env}}
    )
    session = Session(root, config, provider=_Provider(), api_key=SESSION_KEY, headless="allow")  # type: ignore[arg-type]
    try:
        tool = BashTool()
        result = await tool.run(
            tool.parse({"command": "env; cat /proc/self/environ"}), session.tool_context("c1")
        )
    finally:
        await session.close()
    return result.output


@pytest.mark.parametrize("sandbox", [False, True], ids=["unsandboxed", "sandboxed"])
async def test_env_of_a_command_has_no_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sandbox: bool
) -> None:
    if sandbox:
        require(sandbox_available() is None, f"bubblewrap ({sandbox_available()})")
    for name, value in {**SECRETS, **PLAIN}.items():
        monkeypatch.setenv(name, value)
    out = await env_output(tmp_path, sandbox, pass_env=["GITHUB_*"])
    assert "Exit code 0." in out
    for name, value in SECRETS.items():
        if name == "GITHUB_TOKEN":
            assert f"GITHUB_TOKEN={value}" in out  # passed on purpose (shell.pass_env)
        else:
            assert value not in out, name
    for name, value in PLAIN.items():
        assert f"{name}={value}" in out


def test_pass_env_never_passes_the_session_key() -> None:
    env = {"OPENAI_API_KEY": SESSION_KEY, "OTHER_KEY_LIKE": "x"}
    options = ShellOptions(pass_env=("*",), hidden_values=(SESSION_KEY,))
    assert scrubbed_env(env, options) == {"OTHER_KEY_LIKE": "x"}
    assert scrubbed_env({"openai_api_key": "x", "PATH": "/bin"}, ShellOptions()) == {"PATH": "/bin"}


def test_bwrap_is_present_in_ci() -> None:
    require(shutil.which("bwrap") is not None, "bubblewrap (bwrap)")
