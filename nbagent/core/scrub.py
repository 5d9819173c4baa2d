"""One scrubber for everything that leaves nbagent's private store (and every tool output entering it).

    scrubber = Scrubber.for_project(root, config, api_key=args.api_key)   # once per session
    scrubber.text("OPENAI_API_KEY=sk-...")      # -> "OPENAI_API_KEY=[redacted]"
    scrubber.json(record)                       # every string of a JSON value (binary MIME data kept)

What it removes:

1. Known values, wherever they occur (:mod:`nbagent.core.secret_sources` says which and from what
   length): the session's ``api_key``; the values of secret-named environment variables and config
   keys; the values of the project's ``.env`` files (``.env``, ``.env.*`` but not ``.example`` /
   ``.sample`` / ``.template``, ``*.env``; in the root and one folder down); passwords of credential
   URLs among them. Values under 12 characters only match as a whole word.
2. Private key blocks (PEM, PGP).
3. Credentials in URLs: ``scheme://user:password@host`` -> ``scheme://user:[redacted]@host``.
4. ``Authorization:`` values (``Bearer``, ``Basic``, ``token`` ...), ``Cookie:`` lines, a bare
   ``Bearer <token>``, the ``key=`` and ``sig=`` query parameters.
5. Token shapes: OpenAI/Anthropic ``sk-...``, GitHub ``ghp_``/``github_pat_``..., GitLab ``glpat-``,
   Slack ``xox?-``, AWS ``AKIA...``, Google ``AIza...``/``ya29.``, Hugging Face ``hf_``, Stripe
   ``sk_live_``, npm ``npm_``, PyPI, Groq, xAI, SendGrid, JWTs ... (``_SHAPES``).
6. Values given to secret-named keys (:func:`is_secret_name`): ``API_KEY=...``, ``"password": "..."``,
   ``token: ...``, ``export GITHUB_TOKEN=...``, ``?access_token=...`` -- unless the value is code
   (``os.environ["X"]``, ``settings.token``, ``str``, ``None``, ``${VAR}``, ``get_key()`` ...).
7. Environment dumps (5+ ``NAME=value`` lines naming environment variables): every value.

Not touched: identifiers, 40-hex commit ids, UUIDs, hashes, paths, and binary MIME data in JSON
(``image/png`` values, image attachments). Speed: every pass is a literal search (or one pass over
the lowercased text), so 1 MB takes a few milliseconds to a few tens (``python -m bench.scrub``).
"""

from __future__ import annotations

import html
import json
import os
import re
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nbagent.core.secret_sources import (
    COMMON_VALUES,
    MIN_SECRET_CHARS,
    REDACTED,
    config_values,
    dotenv_values,
    env_files,
    environ_values,
    file_signature,
    is_secret_name,
    key_variable_values,
)

if TYPE_CHECKING:
    from nbagent.core.config import Config

__all__ = ["REDACTED", "Scrubber", "default_scrubber", "is_secret_name"]

WORD_BOUNDED_BELOW = 12  # known values shorter than this only match as a whole word
REFRESH_EVERY = 2.0  # seconds between two checks of the .env files and the environment
ENV_DUMP_LINES = 5

_PRIVATE_KEY = re.compile(
    r"-----BEGIN ((?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?)-----[\s\S]*?-----END (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----"
)
_URL_CREDENTIALS = re.compile(r"://([^\s:/@?#'\"]*):([^\s/@?#'\"]+)@")
_SLACK_WEBHOOK = re.compile(r"hooks\.slack\.com/services/([A-Za-z0-9/]+)")

# Token shapes, found in two steps. Cheap finders, each led by a literal character (the regex
# engine skips fast to it; one regex of alternatives would try every position), point at
# candidates: a ``_`` or ``-`` followed by a long run (``ghp_...``, ``sk-...``), or a rare capital.
# The shape regex then decides at the start of the word holding the candidate.
_SHAPE = re.compile(
    r"sk-(?:ant|proj|svcacct|admin|or|None)-[A-Za-z0-9_-]{16,}"  # Anthropic, OpenAI, OpenRouter
    r"|sk-(?=[a-z_-]{0,200}[A-Z0-9])[A-Za-z0-9][A-Za-z0-9_-]{19,}"  # other sk- keys: not all small letters
    r"|[sr]k_(?:live|test)_[A-Za-z0-9]{10,}|whsec_[A-Za-z0-9]{20,}"  # Stripe
    r"|gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,}"  # GitHub
    r"|gl(?:pat|dt|rt|ptt|ft|soat|cbt|imt)-[A-Za-z0-9_-]{20,}"  # GitLab
    r"|xox[abposr]-[A-Za-z0-9-]{10,}|xapp-\d-[A-Za-z0-9-]{10,}"  # Slack
    r"|(?:AKIA|ASIA|ABIA|ACCA)[0-9A-Z]{16}(?![0-9A-Za-z])"  # AWS access key ids
    r"|AIza[0-9A-Za-z_-]{35}|ya29\.[0-9A-Za-z_-]{20,}|GOCSPX-[A-Za-z0-9_-]{20,}"  # Google
    r"|hf_[A-Za-z0-9]{30,}|npm_[A-Za-z0-9]{36}(?![A-Za-z0-9])|pypi-AgEIcHlwaS5vcmc[A-Za-z0-9_-]{40,}"
    r"|gsk_[A-Za-z0-9]{40,}|xai-[A-Za-z0-9]{40,}|r8_[A-Za-z0-9]{30,}|pplx-[A-Za-z0-9]{40,}"  # providers
    r"|dop_v1_[a-f0-9]{64}|dapi[a-f0-9]{32}(?![A-Za-z0-9])|shp(?:at|ca|pa|ss)_[a-fA-F0-9]{32}"
    r"|SG\.[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{43}"  # SendGrid
    r"|eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*"  # JWT
)
_SHAPE_FINDERS = tuple(
    re.compile(p)
    for p in (
        r"_[A-Za-z0-9]{10,}+",
        r"-[A-Za-z0-9_-]{10,}+",
        r"A(?:KIA|SIA|BIA|CCA|Iza)",
        r"J[A-Za-z0-9_-]{8,}+\.eyJ",
        r"ya29\.",
        r"SG\.",
        r"dapi",
    )
)
_TOKEN_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-"
_WORD = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_")
_KEY_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789_.-"  # of a key in the lowercased text

# Regexes over the lowercased text (same positions as the text), each led by a piece that secret
# names hold ("ke" of key and token, "cre" of secret and credential, "pass" ...): the rest of
# the key, ``=`` or ``:``, a value. The whole key (found by looking back) then decides, with the
# value (:func:`_assignment`). And a bare ``Bearer``/``Basic`` credential.
_TRIGGERS = ("ke", "cre", "pass", "pw", "uth", "cookie", "sig")
# Names ending so are never secret (see ``secret_sources._NOT_A_VALUE``): dropped before Python looks.
_NOT_SECRET_ENDS = "".join(
    f"(?<!{end})" for end in ("tokens", "_cost", "_id", "_ids", "_name", "_type", "_file", "_path", "_count")
)
_ASSIGN = (
    rf"[a-z0-9_.-]{{0,40}}+{_NOT_SECRET_ENDS}(?P<kq>[\"']?)(?P<sep>[ \t]*(?::=|[:=])[ \t]*)"
    r"(?:(?P<q>[\"'])(?P<qv>[^\"'\n]{1,500})(?P=q)|(?P<v>[^\s\"'`,;&}<>)\]=\\][^\s\"'`,;&}<>)\]\\]{0,500}))"
)
_ASSIGNMENTS = tuple(re.compile(trigger + _ASSIGN) for trigger in _TRIGGERS)
_BARE_CREDENTIAL = re.compile(r"b(?:earer|asic)[ \t]+(?P<cred>[a-z0-9._~+/=-]{8,})")
_AUTH_VALUE = re.compile(
    r"[\"']?(?P<scheme>(?:bearer|basic|token|digest|negotiate|ntlm|apikey|sso-key|key|gateway-token)[ \t]+)?"
    r"(?P<v>[^\s\"',;\\]{4,})"
)
_COOKIE_VALUE = re.compile(r"[^\r\n\"]+")
_QUERY_KEYS = frozenset({"key", "sig", "signature"})
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")

_CODE_VALUE = re.compile(r"[A-Za-z_][A-Za-z_]*(?:\.[A-Za-z_]\w*)*")  # names, attribute chains
_ENV_LINE = re.compile(r"\n(?:export |declare -x )?([A-Za-z_][A-Za-z0-9_]*)=([^\n]*)")

# JSON values that are binary data, not text: kept as they are.
_BINARY_MIME = re.compile(r"(?:image|audio|video|font)/[\w.+-]+|application/(?:pdf|octet-stream|zip)")
_MEDIA_KEYS = ("media_type", "mime_type", "mimetype", "mediaType", "mimeType", "content_type")

Span = tuple[int, int]


def _is_code(value: str, names: bool = True) -> bool:
    """An assigned value that is code or a reference, not a literal secret (``names``: a bare name or
    an attribute chain counts as code)."""
    v = value.strip()
    if len(v) < 3 or v.lower() in COMMON_VALUES or v.startswith(REDACTED):
        return True
    if v[0] in "$%{([<*@#!&.~/\\|" or "${" in v or "{{" in v or "(" in v or "[" in v:
        return True
    return names and _CODE_VALUE.fullmatch(v) is not None


def _opaque(value: str) -> bool:
    """A credential rather than a word: it has a digit, or several capitals and small letters."""
    if any(c.isdigit() for c in value):
        return True
    return len(value) >= 12 and sum(c.isupper() for c in value) >= 2 and sum(c.islower() for c in value) >= 2


def _starts_word(text: str, at: int) -> bool:
    return at == 0 or text[at - 1] not in _WORD


def _assignments(text: str, low: str) -> Iterator[Span]:
    """Values given to secret-named keys: ``KEY=v``, ``"key": "v"``, ``key: v``, ``?token=v``."""
    for regex in _ASSIGNMENTS:
        for m in regex.finditer(low):
            at, key_end = m.start(), m.start("kq")
            head = low[at - 64 if at > 64 else 0 : at]
            start = at - len(head) + len(head.rstrip(_KEY_CHARS))  # the key begins before the trigger
            key = low[start:key_end]
            if is_secret_name(key) or key in _QUERY_KEYS:
                span = _assignment(text, low, m, start, key)
                if span is not None:
                    yield span
    for m in _BARE_CREDENTIAL.finditer(low):  # "Bearer <credential>" anywhere
        begin, end = m.span("cred")
        if _starts_word(low, m.start()) and _opaque(text[begin:end]):
            yield begin, end


def _assignment(text: str, low: str, m: re.Match[str], start: int, key: str) -> Span | None:
    """The span to redact for one assignment of a secret-named (or query) key, or None."""
    before = text[start - 1] if start else "^"
    sep = m.group("sep").strip()
    if key in _QUERY_KEYS:
        return m.span("v") if before in "?&;" and sep == "=" and m.group("v") else None  # ?key=, &sig=
    if sep == ":=":
        return None
    if key.endswith("authorization"):  # the credential after an optional scheme
        found = _AUTH_VALUE.match(low, m.end("sep"))
        if found is None:
            return None
        value = text[found.start("v") : found.end("v")]
        return found.span("v") if found.group("scheme") or _opaque(value) or not _is_code(value) else None
    if key.endswith("cookie"):  # the whole line
        found = _COOKIE_VALUE.match(low, m.end("sep"))
        return None if found is None else found.span()
    begin, end = m.span("qv" if m.group("q") else "v")
    # GITHUB_TOKEN=ghx_abc, --password=hunter, ?token=abc: a bare name there is a value too.
    plain = sep == "=" and not m.group("q")
    literal_names = plain and (
        text[start : m.start("kq")].isupper() or key.startswith("-") or before in "?&;"
    )
    return None if _is_code(text[begin:end], names=not literal_names) else (begin, end)


def _shapes(text: str) -> Iterator[Span]:
    for finder in _SHAPE_FINDERS:
        for m in finder.finditer(text):
            at = m.start()
            head = text[at - 40 if at > 40 else 0 : at]
            start = at - len(head) + len(head.rstrip(_TOKEN_CHARS))
            found = _SHAPE.match(text, start) if _starts_word(text, start) else None
            if found is not None and found.end() > at:
                yield start, found.end()


def _apply(text: str, spans: Iterable[Span]) -> str:
    ordered = sorted(spans)
    if not ordered:
        return text
    out: list[str] = []
    last = 0
    for start, end in ordered:
        if end <= last:
            continue
        if start < last:  # overlaps the previous span: extend it
            start = last
        else:
            out.append(text[last:start])
        if not out or out[-1] != REDACTED:
            out.append(REDACTED)
        last = end
    out.append(text[last:])
    return "".join(out)


def _variants(value: str) -> set[str]:
    """How a value may appear in serialised text besides verbatim (HTML, JSON string escapes)."""
    out = {value, html.escape(value), html.escape(value, quote=False), json.dumps(value)[1:-1]}
    return {v for v in out if v}


class Scrubber:
    """Removes secrets from text and JSON values. Built once per session (:meth:`for_project`);
    :meth:`refreshed` picks up changed ``.env`` files, :meth:`with_values` adds known values."""

    def __init__(
        self,
        values: Iterable[str] = (),
        *,
        environ_names: Iterable[str] = (),
        root: Path | None = None,
        sources: tuple[Any, ...] = (),
    ) -> None:
        self.values: frozenset[str] = frozenset(v.strip() for v in values if v and v.strip() != REDACTED)
        self._env_names = frozenset(environ_names)
        self._root = root
        self._sources = sources  # what the values were built from: refreshed() compares them
        self._checked = time.monotonic()
        variants = {variant for value in self.values for variant in _variants(value)}
        self._long = sorted((v for v in variants if len(v) >= WORD_BOUNDED_BELOW), key=len, reverse=True)
        self._short = [
            (v, re.compile(re.escape(v) + r"(?![A-Za-z0-9])"))
            for v in sorted((v for v in variants if len(v) < WORD_BOUNDED_BELOW), key=len, reverse=True)
        ]

    # -- construction ---------------------------------------------------------------------------

    @classmethod
    def for_project(
        cls,
        root: Path | None,
        config: Config | Mapping[str, Any] | None = None,
        api_key: str | None = None,
        *,
        environ: Mapping[str, str] | None = None,
    ) -> Scrubber:
        """The scrubber of a session in ``root``: it knows the secrets of the environment (default
        ``os.environ``), of ``config``, of the project's ``.env`` files and the ``--api-key``."""
        env = os.environ if environ is None else environ
        signature = file_signature(env_files(root)) if root is not None else ()
        env_values = environ_values(env) | key_variable_values(config, env)
        conf = config_values(config)
        key = (root, signature, env_values, conf, api_key, frozenset(env.keys()))
        with _CACHE_LOCK:
            cached = _CACHE.get(key)
        if cached is not None:
            return cached
        values = set(env_values | conf)
        for path, mtime, size in signature:
            values |= dotenv_values(path, mtime, size)
        if api_key and len(api_key.strip()) >= MIN_SECRET_CHARS:
            values.add(api_key)
        made = cls(
            values,
            environ_names=env.keys(),
            root=root,
            sources=(config, api_key, environ, signature, env_values),
        )
        with _CACHE_LOCK:
            if len(_CACHE) >= 32:
                _CACHE.pop(next(iter(_CACHE)))
            _CACHE[key] = made
        return made

    def with_values(self, values: Iterable[str]) -> Scrubber:
        """This scrubber also knowing ``values`` (empty and very short ones are ignored)."""
        more = {v.strip() for v in values if v and len(v.strip()) >= MIN_SECRET_CHARS}
        if more <= self.values:
            return self
        return Scrubber(self.values | more, environ_names=self._env_names, root=self._root)

    def refreshed(self) -> Scrubber:
        """This scrubber, or a new one when a ``.env`` file or the environment changed since it was
        built (looked at no more than every ``REFRESH_EVERY`` seconds)."""
        now = time.monotonic()
        if not self._sources or now - self._checked < REFRESH_EVERY:
            return self
        self._checked = now
        config, api_key, environ, signature, env_values = self._sources
        env = os.environ if environ is None else environ
        now_signature = file_signature(env_files(self._root)) if self._root is not None else ()
        if (
            now_signature == signature
            and environ_values(env) | key_variable_values(config, env) == env_values
        ):
            return self
        return Scrubber.for_project(self._root, config, api_key, environ=environ)

    # -- scrubbing ------------------------------------------------------------------------------

    def __call__(self, text: str) -> str:
        return self.text(text)

    def text(self, text: str) -> str:
        """``text`` with every secret replaced by ``[redacted]``."""
        if not text:
            return text
        for value in self._long:
            if value in text:
                text = text.replace(value, REDACTED)
        for value, regex in self._short:
            if value in text:
                text = regex.sub(lambda m: REDACTED if _starts_word(m.string, m.start()) else m.group(), text)
        if "PRIVATE KEY" in text:
            text = _PRIVATE_KEY.sub(lambda m: f"-----BEGIN {m.group(1)}----- {REDACTED}", text)
        if "://" in text:
            text = _URL_CREDENTIALS.sub(lambda m: f"://{m.group(1)}:{REDACTED}@", text)
            text = _SLACK_WEBHOOK.sub(lambda m: m.group(0)[: -len(m.group(1))] + REDACTED, text)
        low = text.lower()
        if len(low) != len(text):  # a rare letter lowercased to two characters: keep positions
            low = text.translate(_ASCII_LOWER)
        spans = [*_shapes(text), *_assignments(text, low)]
        return self._env_dump(_apply(text, spans))

    def _env_dump(self, text: str) -> str:
        names = self._env_names
        if not names or "=" not in text:
            return text
        lines = "\n" + text
        hits = 0
        for m in _ENV_LINE.finditer(lines):
            if m.group(1) in names:
                hits += 1
                if hits >= ENV_DUMP_LINES:
                    break
        if hits < ENV_DUMP_LINES:
            return text
        spans = [m.span(2) for m in _ENV_LINE.finditer(lines) if m.group(1) in names and m.group(2)]
        return _apply(lines, spans)[1:]

    def json(self, value: Any) -> Any:
        """A copy of a JSON value with every string scrubbed; the string value of a secret-named key
        is redacted whole; binary data (``image/png`` values, image attachments) is kept."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, list):
            return [self.json(v) for v in value]
        if isinstance(value, dict):
            media = next((value[k] for k in _MEDIA_KEYS if isinstance(value.get(k), str)), "")
            binary = bool(media) and _BINARY_MIME.fullmatch(media) is not None
            out: dict[Any, Any] = {}
            for k, v in value.items():
                if isinstance(k, str) and isinstance(v, str):
                    if _BINARY_MIME.fullmatch(k) or (binary and k == "data"):
                        out[k] = v
                        continue
                    if v and is_secret_name(k) and not _is_code(v):
                        out[k] = REDACTED
                        continue
                out[k] = self.json(v)
            return out
        return value


_CACHE: dict[tuple[Any, ...], Scrubber] = {}
_CACHE_LOCK = threading.Lock()


def default_scrubber() -> Scrubber:
    """A scrubber that knows the process environment's secrets (no project, no session key)."""
    return Scrubber.for_project(None)
