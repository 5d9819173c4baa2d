"""Where secret values come from: secret-looking names, the environment, ``.env`` files, the config.

Used by :mod:`nbagent.core.scrub` (what it knows to replace) and by whatever must tell a secret
variable from an ordinary one (:func:`is_secret_name`).

Thresholds for a known value: under a secret-named key, 4 characters or more (``PIN=4821``); under
any other ``.env`` key, only when it looks like a credential (8+ characters with a letter and a
digit, or 20+ characters without spaces), so ``PORT=8080``, ``DEBUG=true``, ``HOST=localhost`` or
``APP_NAME=myapp`` are not. Booleans, ``null``/``none``, ``localhost`` and paths never are.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from nbagent.core.config import Config

REDACTED = "[redacted]"
MIN_SECRET_CHARS = 4  # a value under a secret-named key
MIN_PLAIN_CHARS = 8  # a value under another .env key (it must also look like a credential)
MAX_ENV_FILE_BYTES = 256 * 1024
MAX_CHILD_DIRS = 64

# -------------------------------------------------------------------------------------------- names

# Provider and cloud variables whose names do not follow the *_API_KEY / *_TOKEN / *SECRET* shapes.
SECRET_VARIABLES = frozenset(
    {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AZURE_AD_TOKEN", "AZURE_API_KEY",
     "WATSONX_APIKEY", "WATSONX_TOKEN", "DATABRICKS_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_TOKEN",
     "VERTEXAI_CREDENTIALS", "OR_API_KEY", "GITHUB_TOKEN", "GH_TOKEN", "NPM_TOKEN", "PYPI_TOKEN",
     "SENTRY_DSN", "DATABASE_PASSWORD", "PGPASSWORD", "MYSQL_PWD", "REDIS_PASSWORD"}
)  # fmt: skip
# A name holding one of these words names a secret (unless it ends in a word from _NOT_A_VALUE).
_STRONG = frozenset(
    {"SECRET", "SECRETS", "PASSWORD", "PASSWORDS", "PASSWD", "PASSPHRASE", "CREDENTIAL", "CREDENTIALS",
     "APIKEY", "PRIVATEKEY", "AUTHORIZATION", "PASSWORT", "MOTDEPASSE"}
)  # fmt: skip
_NOT_A_VALUE = frozenset(
    {"FILE", "PATH", "DIR", "NAME", "NAMES", "LENGTH", "LEN", "COUNT", "MIN", "MAX", "POLICY", "PROMPT",
     "FIELD", "TYPE", "ENABLED", "REQUIRED", "URL", "URI", "ENDPOINT", "REGION", "ARN", "VERSION", "HINT",
     "LABEL", "RULES", "STRENGTH", "EXPIRY", "EXPIRES", "TTL", "MANAGER", "STORE", "HEADER", "ENV", "VAR",
     "ID", "IDS", "ENCODING", "FORMAT", "MODE", "SIZE", "BITS", "ALGORITHM", "SCOPE", "SCOPES", "TOKENS",
     "COST", "LIMIT", "TIMEOUT"}
)  # fmt: skip
# ... or ending in one of these (KEY and TOKEN only when the word before does not say otherwise).
_WEAK_LAST = frozenset({"TOKEN", "KEY", "PAT", "PIN", "DSN", "PASS", "PW", "PWD", "COOKIE", "AUTH", "SALT"})
_NEEDS_PREFIX = frozenset({"KEY", "PW", "PWD", "PASS"})  # alone they name too many ordinary things
_NOT_SECRET_TOKEN = frozenset(
    {"MAX", "MIN", "NUM", "PAD", "EOS", "BOS", "UNK", "SEP", "CLS", "MASK", "START", "END", "STOP",
     "SPECIAL", "NEXT", "PAGE", "CONTINUATION", "PAGINATION", "CURSOR", "SYNC", "RESUME", "CANCELLATION",
     "NEW", "IMAGE", "AUDIO", "TOOL", "CSRF", "XSRF", "THINK", "USER", "SYSTEM", "ASSISTANT", "BOT", "PER",
     "INPUT", "OUTPUT", "PROMPT", "COMPLETION", "REASONING", "CACHED", "TOTAL", "FIRST", "LAST"}
)  # fmt: skip
_NOT_SECRET_KEY = frozenset(
    {"SORT", "PRIMARY", "FOREIGN", "CACHE", "PARTITION", "ROW", "HASH", "DICT", "MAP", "HOT", "SHORTCUT",
     "LOOKUP", "UNIQUE", "COMPOSITE", "INDEX", "GROUP", "ORDER", "JOIN", "SHARD", "ROUTING", "IDEMPOTENCY",
     "OBJECT", "BUCKET", "PUBLIC", "PUB", "DEDUP", "RANGE", "ENTRY", "CONFIG", "SETTINGS", "LANG",
     "TRANSLATION", "STATE", "REGISTRY", "STORAGE", "MONKEY", "SURROGATE", "NATURAL", "CANDIDATE", "LIST",
     "DEDUPE", "CLUSTER", "LABEL", "METADATA", "ATTRIBUTE", "PROPERTY", "FIELD", "RESULT", "ITEM", "REACT",
     "ESCAPE", "MODIFIER", "PRESS", "DOWN", "UP", "EVENT", "NODE", "SSH", "GPG", "PGP", "DEPLOY"}
)  # fmt: skip
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_SEGMENT_SPLIT = re.compile(r"[^A-Za-z0-9]+")


@lru_cache(maxsize=8192)
def is_secret_name(name: str) -> bool:
    """Whether a variable, key or header called ``name`` holds a secret (``OPENAI_API_KEY``,
    ``githubToken``, ``x-api-key``, ``DB_PASSWORD``, ``PIN``) -- not ``max_tokens``, ``sort_key``,
    ``PASSWORD_FILE`` or ``PWD``."""
    if name.upper() in SECRET_VARIABLES:
        return True
    segments = [s.upper() for s in _SEGMENT_SPLIT.split(_CAMEL.sub("_", name)) if s]
    if not segments:
        return False
    last = segments[-1]
    if any(s in _STRONG for s in segments):
        return last not in _NOT_A_VALUE
    if last not in _WEAK_LAST:
        return False
    before = segments[-2] if len(segments) > 1 else ""
    if last in _NEEDS_PREFIX and not before:
        return False
    if last == "TOKEN":
        return before not in _NOT_SECRET_TOKEN
    if last == "KEY":
        return before not in _NOT_SECRET_KEY
    return True


COMMON_VALUES = frozenset(
    {"true", "false", "yes", "no", "on", "off", "none", "null", "nil", "undefined", "localhost",
     "127.0.0.1", "0.0.0.0", "::1", "development", "production", "staging", "test", "testing", "debug",
     "info", "warning", "error", "enabled", "disabled", "required", "optional", "str", "string", "int",
     "bytes", "bool", "any", "object", "secret", "password", "token", "redacted", REDACTED, "xxx", "***",
     "default", "auto", "empty", "unset", "dummy", "example", "placeholder", "self", "this"}
)  # fmt: skip


def _credential_like(value: str) -> bool:
    """A value under a non-secret name that still looks like a credential (not a word, port, host)."""
    if len(value) < MIN_PLAIN_CHARS or any(c.isspace() for c in value):
        return False
    if "://" in value or value.startswith(("/", "./", "~")):
        return False
    has_digit = any(c.isdigit() for c in value)
    has_alpha = any(c.isalpha() for c in value)
    if re.fullmatch(r"[0-9.:]+|[A-Za-z0-9.-]+\.[a-z]{2,}", value):  # numbers, versions, host names
        return False
    return (has_digit and has_alpha) or len(value) >= 20


def _usable(value: str, secret_named: bool) -> bool:
    value = value.strip()
    if value.lower() in COMMON_VALUES or value.startswith(("/", "~/", "${", "{{")):
        return False
    if secret_named:
        return len(value) >= MIN_SECRET_CHARS
    return _credential_like(value)


_URL_CREDENTIALS = re.compile(r"\b([A-Za-z][A-Za-z0-9+.-]{1,20}://)([^\s:/@?#'\"]*):([^\s/@?#'\"]+)@")


def url_passwords(text: str) -> list[str]:
    """The passwords of the credential URLs in ``text`` (``postgres://u:p@h/db`` -> ``["p"]``)."""
    return [m.group(3) for m in _URL_CREDENTIALS.finditer(text) if m.group(3) != REDACTED]


def known_values(pairs: Iterable[tuple[str, str]], *, all_keys: bool = False) -> set[str]:
    """The values of ``(name, value)`` pairs worth replacing wherever they occur."""
    out: set[str] = set()
    for name, value in pairs:
        if not isinstance(value, str) or not value:
            continue
        out.update(p for p in url_passwords(value) if _usable(p, True))
        secret = is_secret_name(name)
        if (secret or all_keys) and "://" not in value and _usable(value, secret):
            out.add(value.strip())
    return out


_DOTENV_LINE = re.compile(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_.-]*)\s*[=:]\s*(.*)$")


def parse_dotenv(text: str) -> dict[str, str]:
    """``KEY=VALUE`` lines of a ``.env`` file: ``export`` prefixes, quotes (multi-line in double
    quotes), ``#`` comments."""
    out: dict[str, str] = {}
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        m = _DOTENV_LINE.match(lines[i])
        i += 1
        if m is None or lines[i - 1].lstrip().startswith("#"):
            continue
        name, value = m.group(1), m.group(2).strip()
        quote = value[:1]
        if quote in ("'", '"'):
            body = value[1:]
            while quote not in body and quote == '"' and i < len(lines):  # a multi-line value
                body += "\n" + lines[i]
                i += 1
            end = body.find(quote)
            value = body[:end] if end >= 0 else body
        else:
            value = re.split(r"\s+#", value, maxsplit=1)[0].strip()
        out[name] = value
    return out


_ENV_EXAMPLES = (".example", ".sample", ".template")
_SKIP_DIRS = frozenset({"node_modules", "__pycache__", "venv", "site-packages", "dist", "build", "target"})


def _is_env_file(name: str) -> bool:
    if name == ".env":
        return True
    if name.startswith(".env."):
        return not name.endswith(_ENV_EXAMPLES)
    return name.endswith(".env") and len(name) > 4 and not name.startswith(".")


def env_files(root: Path) -> list[Path]:
    """The ``.env`` files of a project: in its root and its direct (non-hidden) subfolders."""
    found: list[Path] = []
    dirs = [root]
    try:
        with os.scandir(root) as entries:
            for entry in entries:
                if entry.name.startswith(".") or entry.name in _SKIP_DIRS:
                    if _is_env_file(entry.name) and entry.is_file():
                        found.append(Path(entry.path))
                    continue
                if entry.is_dir(follow_symlinks=False) and len(dirs) <= MAX_CHILD_DIRS:
                    dirs.append(Path(entry.path))
                elif _is_env_file(entry.name) and entry.is_file():
                    found.append(Path(entry.path))
    except OSError:
        return found
    for sub in dirs[1:]:
        try:
            with os.scandir(sub) as entries:
                found += [Path(e.path) for e in entries if _is_env_file(e.name) and e.is_file()]
        except OSError:
            continue
    return sorted(found)


def file_signature(files: list[Path]) -> tuple[tuple[str, int, int], ...]:
    """(path, mtime, size) of each file: changes when one of them does."""
    out = []
    for path in files:
        try:
            st = path.stat()
        except OSError:
            continue
        out.append((str(path), st.st_mtime_ns, st.st_size))
    return tuple(out)


@lru_cache(maxsize=256)
def dotenv_values(path: str, mtime_ns: int, size: int) -> frozenset[str]:
    """The known values of one ``.env`` file (cached per path, mtime and size)."""
    if size > MAX_ENV_FILE_BYTES:
        return frozenset()
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return frozenset()
    return frozenset(known_values(parse_dotenv(text).items(), all_keys=True))


def environ_values(environ: Mapping[str, str]) -> frozenset[str]:
    """The values of the secret-named variables (and URL passwords) of an environment."""
    return frozenset(known_values(environ.items()))


def _config_pairs(value: Any, key: str = "") -> Iterable[tuple[str, str]]:
    if isinstance(value, Mapping):
        for k, v in value.items():
            yield from _config_pairs(v, str(k))
    elif isinstance(value, list | tuple):
        for v in value:
            yield from _config_pairs(v, key)
    elif isinstance(value, str):
        yield key, value


def config_values(config: Config | Mapping[str, Any] | None) -> frozenset[str]:
    """Secret-named values and URL passwords anywhere in a configuration (hooks' env, headers, URLs)."""
    if config is None:
        return frozenset()
    data = config if isinstance(config, Mapping) else config.model_dump(mode="json")
    return frozenset(known_values(_config_pairs(data)))


def key_variable_values(
    config: Config | Mapping[str, Any] | None, environ: Mapping[str, str]
) -> frozenset[str]:
    """The values of the variables a configuration names as API key holders (``models.<name>.api_key_env``),
    whatever their names: each holds a key."""
    if config is None:
        return frozenset()
    models = (config.get("models") if isinstance(config, Mapping) else config.models) or {}
    names = set()
    for settings in models.values():
        name = (
            settings.get("api_key_env")
            if isinstance(settings, Mapping)
            else getattr(settings, "api_key_env", None)
        )
        if isinstance(name, str) and name:
            names.add(name)
    values = (environ.get(name, "").strip() for name in names)
    return frozenset(v for v in values if len(v) >= MIN_SECRET_CHARS)
