"""The scrubber: what it redacts (known values, .env files, URLs, headers, token shapes, assignments),
what it leaves alone (code, hashes, ids, paths, images), and that it stays fast."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import pytest

from nbagent.core.config import Config
from nbagent.core.scrub import REDACTED, Scrubber, is_secret_name
from nbagent.core.secret_sources import env_files, parse_dotenv

ENV = {"OPENAI_API_KEY": "qz-9f8e7d6c5b4a39281706", "PATH": "/usr/bin:/bin", "HOME": "/home/u", "PIN": "4821"}


def scrubber(root: Path | None = None, **kwargs: object) -> Scrubber:
    return Scrubber.for_project(root, environ=ENV, **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "name",
    ["OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GITHUB_TOKEN", "HF_TOKEN", "AWS_SECRET_ACCESS_KEY", "AWS_ACCESS_KEY_ID",
     "DB_PASSWORD", "MYSQL_PWD", "client_secret", "apiKey", "x-api-key", "accessToken", "PIN", "STRIPE_KEY",
     "SECRET_KEY_BASE", "Authorization", "SENTRY_DSN", "SMTP_PASS"],
)  # fmt: skip
def test_secret_names(name: str) -> None:
    assert is_secret_name(name)


@pytest.mark.parametrize(
    "name",
    ["PATH", "PWD", "HOME", "max_tokens", "maxTokens", "input_cost_per_token", "sort_key", "primary_key",
     "key", "PASSWORD_FILE", "token_count", "pad_token", "eos_token", "next_token", "tokenizer", "keyboard",
     "GPG_KEY", "public_key", "SSH_AUTH_SOCK", "api_key_path"],
)  # fmt: skip
def test_ordinary_names(name: str) -> None:
    assert not is_secret_name(name)


def test_known_values_from_the_environment_and_the_session_key() -> None:
    s = scrubber(api_key="session-key-7731")
    out = s.text("env says qz-9f8e7d6c5b4a39281706; --api-key session-key-7731; pin 4821 but 14821 and 48210")
    assert "qz-9f8e7d6c5b4a39281706" not in out and "session-key-7731" not in out
    assert "pin [redacted] but 14821 and 48210" in out  # short values only as a whole word
    # what was not secret-named stays
    assert s.text("PATH is /usr/bin:/bin") == "PATH is /usr/bin:/bin"


def test_known_values_inside_html_and_json_escapes() -> None:
    s = Scrubber(['p&ss"word<1>'])
    assert "p&amp;ss&quot;word&lt;1&gt;" not in s.text("<td>p&amp;ss&quot;word&lt;1&gt;</td>")
    assert 'p&ss\\"word<1>' not in s.text('{"v": "p&ss\\"word<1>"}')


def test_dotenv_values_are_known(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(
        "# comment\n"
        'export DB_PASSWORD="s3cret pass with spaces"\n'
        "PIN=4821\n"
        "STRIPE_PUBLIC=pk_live_0123456789abcdefgh  # inline comment\n"
        "DEBUG=true\nPORT=8080\nHOST=localhost\nAPP_NAME=myapp\nEMPTY=\n"
        'PRIVATE_KEY="-----BEGIN KEY-----\nabc\n-----END KEY-----"\n'
    )
    (tmp_path / "backend").mkdir()
    (tmp_path / "backend" / ".env.local").write_text("SERVICE_TOKEN='tok-123456'\n")
    (tmp_path / ".env.example").write_text("EXAMPLE_ONLY=example-value-12345\n")
    assert [p.name for p in env_files(tmp_path)] == [".env", ".env.local"]
    s = scrubber(tmp_path)
    text = (
        "s3cret pass with spaces | 4821 | pk_live_0123456789abcdefgh | tok-123456 | example-value-12345"
        " | DEBUG true on port 8080 at localhost for myapp"
    )
    out = s.text(text)
    for secret in ("s3cret pass", "4821", "pk_live_0123456789abcdefgh", "tok-123456"):
        assert secret not in out, secret
    assert "example-value-12345" in out  # .env.example holds no secrets
    assert out.endswith("DEBUG true on port 8080 at localhost for myapp")  # ordinary values stay


def test_parse_dotenv_forms() -> None:
    assert parse_dotenv("export A=1\nB = '2 3'\nC=\"x\ny\"\n# D=4\nE=5 # five\n") == {
        "A": "1",
        "B": "2 3",
        "C": "x\ny",
        "E": "5",
    }


def test_refresh_picks_up_a_changed_env_file(tmp_path: Path) -> None:
    s = scrubber(tmp_path)
    assert s.text("later-secret-998877") == "later-secret-998877"
    (tmp_path / ".env").write_text("LATER_TOKEN=later-secret-998877\n")
    s._checked -= 10  # as if REFRESH_EVERY had passed
    assert s.refreshed().text("later-secret-998877") == REDACTED
    again = s.refreshed()
    assert again.refreshed() is again  # nothing changed: the same object, no work


def test_config_secrets_are_known() -> None:
    config = Config.model_validate(
        {
            "hooks": {"env": {"HOOK_TOKEN": "hook-token-123456"}},
            "api_base": "https://u:proxy-pw-77@proxy.local/v1",
        }
    )
    out = Scrubber.for_project(None, config, environ={}).text("hook-token-123456 and proxy-pw-77")
    assert out == f"{REDACTED} and {REDACTED}"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("postgres://app:dbpass-1234@db.local/app", "postgres://app:[redacted]@db.local/app"),
        ("DATABASE_URL=postgres://u:p@h/db", "DATABASE_URL=postgres://u:[redacted]@h/db"),
        ("redis://:hunter2@cache:6379", "redis://:[redacted]@cache:6379"),
        ("API_KEY=xyz123abc", "API_KEY=[redacted]"),
        ("export GITHUB_TOKEN=abcdef_letters", "export GITHUB_TOKEN=[redacted]"),
        ('{"password": "hunter2", "user": "bob"}', '{"password": "[redacted]", "user": "bob"}'),
        ("password: hunter2\nuser: bob", "password: [redacted]\nuser: bob"),
        ("Authorization: Bearer abc.def.ghi123", "Authorization: Bearer [redacted]"),
        ("authorization: token abcdef123456", "authorization: token [redacted]"),
        ("x-api-key: q8e7w6r5t4", "x-api-key: [redacted]"),
        ("Cookie: session=abc; theme=dark", "Cookie: [redacted]"),
        ("curl -H 'Bearer eyJhbGciOi.x1'", "curl -H 'Bearer [redacted]'"),
        ("GET /v1?token=abc123&page=2&key=AIzaSy0&sig=Zm9v", "GET /v1?token=[redacted]&page=2&key=[redacted]&sig=[redacted]"),
        ("--password=hunter", "--password=[redacted]"),
        ("-----BEGIN RSA PRIVATE KEY-----\nMIIE\n-----END RSA PRIVATE KEY-----", "-----BEGIN RSA PRIVATE KEY----- [redacted]"),
        ("https://hooks.slack.com/services/T000/B000/XXXX", "https://hooks.slack.com/services/[redacted]"),
    ],
)  # fmt: skip
def test_secrets_in_text(text: str, expected: str) -> None:
    assert Scrubber().text(text) == expected


@pytest.mark.parametrize(
    "token",
    ["sk-ant-api03-AAAABBBBCCCCDDDDEEEE", "sk-proj-ZZZZYYYYXXXXWWWWVVVV", "sk-abcdefghijklmnopqrstuv12",
     "ghp_abcdefghijklmnopqrstuvwxyz0123", "gho_abcdefghijklmnopqrstuvwxyz0123", "github_pat_11ABCDEFG0123456789_abcdefghij",
     "xoxb-1234567890-abcdefghij", "AKIAIOSFODNN7EXAMPLE", "AIzaSyA1234567890abcdefghijklmnopqrstuv",
     "hf_abcdefghijklmnopqrstuvwxyzABCDEF", "sk_live_abcdefghij1234567890", "rk_live_abcdefghij1234567890",
     "glpat-abcdefghij0123456789", "npm_abcdefghijklmnopqrstuvwxyz0123456789",
     "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.abcdefgh"],
)  # fmt: skip
def test_token_shapes(token: str) -> None:
    assert Scrubber().text(f"found {token}, done") == f"found {REDACTED}, done"


@pytest.mark.parametrize(
    "text",
    [
        "api_key = os.environ['OPENAI_API_KEY']",
        "def f(api_key: str, token: Optional[str] = None) -> None:",
        "self.api_key = api_key",
        "max_tokens=100, sort_key=lambda x: x",
        "tokenizer.pad_token = tokenizer.eos_token",
        'pad_token="<pad>"',
        'headers = {"Authorization": f"Bearer {token}"}',
        "password = getpass.getpass()",
        "if token == other:",
        "token: ${{ secrets.GITHUB_TOKEN }}",
        '"input_cost_per_token": 1.25e-05, "max_tokens": 8192',
        "commit 3f2a9c1e5b7d9f1a3c5e7b9d1f3a5c7e9b1d3f5a",
        "id 123e4567-e89b-12d3-a456-426614174000 sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
        "/home/user/project/src/api_key.py and ./secrets/token_loader.py",
        "task-list-item disk-something-long-enough-here pip install token-bucket-limiter",
        "Basic authentication. Bearer tokens are used.",
        "Authorization: required",
    ],
)
def test_code_and_ordinary_text_are_left_alone(text: str) -> None:
    assert Scrubber().text(text) == text


def test_environment_dumps_lose_their_values() -> None:
    names = {"PATH": "/usr/bin", "HOME": "/home/u", "SHELL": "/bin/bash", "LANG": "C", "USER": "u"}
    s = Scrubber.for_project(None, environ=names)
    dump = "\n".join(f"{k}=value{i}" for i, k in enumerate(names))
    assert s.text(dump) == "\n".join(f"{k}=[redacted]" for k in names)
    assert s.text("PATH=/usr/bin\nHOME=/x") == "PATH=/usr/bin\nHOME=/x"  # two lines are not a dump


def test_json_keeps_binary_data_and_redacts_secret_keys() -> None:
    image = base64.b64encode(b"sk-ant-api03-AAAABBBBCCCCDDDDEEEE" * 4).decode()
    value = {
        "data": {"image/png": image, "text/plain": "key sk-ant-api03-AAAABBBBCCCCDDDDEEEE"},
        "attachments": [{"media_type": "image/jpeg", "data": image}],
        "headers": {"Authorization": "opaque-value-123", "Accept": "text/html"},
        "usage": {"max_tokens": 10, "input_tokens": 5},
    }
    out = Scrubber().json(value)
    assert out["data"]["image/png"] == image and out["attachments"][0]["data"] == image
    assert out["data"]["text/plain"] == f"key {REDACTED}"
    assert out["headers"] == {"Authorization": REDACTED, "Accept": "text/html"}
    assert out["usage"] == value["usage"]


def test_building_is_cached_and_with_values_adds() -> None:
    a = Scrubber.for_project(None, environ=ENV)
    assert Scrubber.for_project(None, environ=dict(ENV)) is a
    b = a.with_values(["extra-secret-1"])
    assert b.text("extra-secret-1") == REDACTED and a.text("extra-secret-1") == "extra-secret-1"
    assert a.with_values(["ab"]) is a  # too short to be a value worth replacing


def test_one_megabyte_is_scrubbed() -> None:
    """Its speed is a figure: bench/scrub.py (typically 15-40 ms a MB)."""
    chunk = (
        "def f(api_key: str) -> None:\n    headers = {'Authorization': f'Bearer {api_key}'}  # max_tokens=5\n"
        "commit 3f2a9c1e5b7d9f1a3c5e7b9d1f3a5c7e9b1d3f5a at /home/u/src/x.py\n"
        "OPENAI_API_KEY=sk-proj-AbCdEf0123456789AbCdEf0123456789 postgres://a:b@h/db\n"
    )
    text = (chunk * (1_000_000 // len(chunk) + 1))[:1_000_000]
    s = Scrubber.for_project(None, environ={**os.environ, **ENV})
    out = s.text(text)
    assert "sk-proj-AbCdEf" not in out and "postgres://a:b@" not in out
    assert "def f(api_key: str) -> None:" in out  # code around the secrets is kept
