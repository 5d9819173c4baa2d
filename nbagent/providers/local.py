"""Context windows read from local and self-hosted servers, where the server says it.

    endpoint = endpoint_for("hosted_vllm/qwen", config)   # None: not a server we ask
    found = cached(endpoint) or discover(endpoint)         # blocking: call it in a thread
    found.context                                         # None when the server did not say

Where each server says it:

- Ollama: ``POST /api/show {"model": name}``: ``model_info["<arch>.context_length"]``; a ``num_ctx``
  in ``parameters`` (set in the Modelfile) wins.
- vLLM and SGLang: ``GET /v1/models``: the model's ``max_model_len``.
- llama.cpp's server: ``GET /props``: ``default_generation_settings.n_ctx`` (the window per slot).
- LM Studio: ``GET /api/v0/models/<name>``: ``loaded_context_length``, else ``max_context_length``.

Only servers the user points nbagent at are asked: the local routes (``ollama_chat/``, ``ollama/``,
``hosted_vllm/``, ``lm_studio/``) and ``openai/`` behind a custom base URL. Answers are cached in a
private file keyed by base URL (without credentials) and model, for :data:`CACHE_TTL` seconds; failures
are not cached. The key a request would carry goes in the probe's header only, never into the cache.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit, urlunsplit

from nbagent.core.config import Config
from nbagent.core.private import cache_dir, private_dir, write_private

if TYPE_CHECKING:
    import httpx

CACHE_NAME = "local-context.json"
CACHE_TTL = 3600.0  # seconds an answer is trusted (a restarted server may have a new window)
CACHE_MAX_ENTRIES = 200
PROBE_TIMEOUT = 2.0  # seconds per request
PROBE_DEADLINE = 3.0  # seconds for all the requests of one discovery
OFFICIAL_HOSTS = ("api.openai.com",)

OLLAMA, OPENAI, LM_STUDIO = "ollama", "openai", "lm_studio"
_KINDS = {
    "ollama": OLLAMA,
    "ollama_chat": OLLAMA,
    "hosted_vllm": OPENAI,
    "lm_studio": LM_STUDIO,
    "openai": OPENAI,
}
_DEFAULT_BASES = {"ollama": "http://localhost:11434", "ollama_chat": "http://localhost:11434"}
_NUM_CTX = re.compile(r"^\s*num_ctx\s+(\d+)\s*$", re.M)


@dataclass(frozen=True)
class Endpoint:
    """A model on a server nbagent may ask about its window."""

    model: str  # the model string as configured
    name: str  # the model's name on the server
    kind: str  # OLLAMA, OPENAI or LM_STUDIO: which questions fit the server
    base: str  # the API base (with /v1 for OpenAI-style servers)
    root: str  # the server's root (without /v1): /props, /api/show, /api/v0 live there
    key: str | None = field(default=None, repr=False)  # sent as a bearer token; never stored

    @property
    def cache_key(self) -> str:
        return f"{_public_url(self.base)} {self.name}"


@dataclass(frozen=True)
class Discovery:
    """What the server said: ``context`` (None when it did not), where from, or why not."""

    context: int | None
    source: str = ""  # e.g. "vLLM/SGLang GET /v1/models (max_model_len)"
    problem: str = ""  # why no window was found, one clause per question asked
    at: float = 0.0  # when it was asked (time.time())


def _public_url(url: str) -> str:
    """``url`` without credentials, query or fragment: safe to write down."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))


def _root(base: str) -> str:
    root = base.rstrip("/")
    for suffix in ("/chat/completions", "/v1"):
        if root.endswith(suffix):
            root = root[: -len(suffix)]
    return root


def endpoint_for(model: str, config: Config) -> Endpoint | None:
    """The server to ask about ``model``'s window, or None: a hosted API, or no base URL known."""
    from nbagent.providers.native import ROUTES

    prefix, sep, name = model.partition("/")
    kind = _KINDS.get(prefix)
    if not sep or not name or kind is None:
        return None
    settings = config.models.get(model)
    route = ROUTES.get(prefix)
    env_names = route.base_env if route else ("OLLAMA_API_BASE",)
    # the top-level api_base belongs to the configured model's provider (as for the requests)
    own = prefix == (config.model or "").partition("/")[0]
    configured = (settings and settings.api_base) or (own and config.api_base) or _env(env_names)
    base = configured or (route.base if route and prefix != "openai" else _DEFAULT_BASES.get(prefix))
    if not base or not base.startswith(("http://", "https://")):
        return None
    if prefix == "openai" and (urlsplit(base).hostname or "") in OFFICIAL_HOSTS:
        return None
    key_env = (settings and settings.api_key_env) or (route.key_env if route else "")
    key = os.environ.get(key_env, "").strip() if key_env else ""
    base = base.rstrip("/")
    if kind == OLLAMA and not base.endswith("/v1"):
        base = f"{base}/v1"
    return Endpoint(model=model, name=name, kind=kind, base=base, root=_root(base), key=key or None)


def _env(names: tuple[str, ...]) -> str | None:
    return next((os.environ[n] for n in names if os.environ.get(n)), None)


# -- the cache --------------------------------------------------------------------------------


def cache_path() -> Path:
    return cache_dir() / CACHE_NAME


def _read_cache() -> dict[str, Any]:
    try:
        data = json.loads(cache_path().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    entries = data.get("entries") if isinstance(data, dict) else None
    return entries if isinstance(entries, dict) else {}


def cached(endpoint: Endpoint, *, now: float | None = None) -> Discovery | None:
    """The window the server gave within :data:`CACHE_TTL`, or None."""
    entry = _read_cache().get(endpoint.cache_key)
    if not isinstance(entry, dict):
        return None
    context, at, source = entry.get("context"), entry.get("at"), entry.get("source")
    if not isinstance(context, int) or context <= 0 or not isinstance(at, int | float):
        return None
    if (now if now is not None else time.time()) - at > CACHE_TTL:
        return None
    return Discovery(context, str(source or "the server"), at=float(at))


_cache_lock = threading.Lock()


def remember(endpoint: Endpoint, found: Discovery) -> None:
    """Keep a window the server gave (expired entries are dropped on the way)."""
    if found.context is None:
        return
    with _cache_lock:
        entries = _read_cache()
        now = time.time()
        entries = {
            k: v
            for k, v in entries.items()
            if isinstance(v, dict) and isinstance(v.get("at"), int | float) and now - v["at"] <= CACHE_TTL
        }
        entries[endpoint.cache_key] = {"context": found.context, "source": found.source, "at": found.at}
        newest = sorted(entries.items(), key=lambda kv: kv[1]["at"])[-CACHE_MAX_ENTRIES:]
        private_dir(cache_path().parent)
        write_private(cache_path(), json.dumps({"version": 1, "entries": dict(newest)}, indent=1))


# -- asking the server ---------------------------------------------------------------------------


class _Unreachable(Exception):
    """The server cannot be reached at all: asking it anything else is pointless."""


def _positive(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def _get_json(client: httpx.Client, method: str, url: str, body: Any = None) -> Any:
    import httpx

    try:
        response = client.request(method, url, json=body)
    except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
        raise _Unreachable(f"cannot connect ({type(exc).__name__})") from exc
    except httpx.HTTPError as exc:
        raise ValueError(f"{type(exc).__name__}") from exc
    if response.status_code >= 400:
        raise ValueError(f"HTTP {response.status_code}")
    try:
        return response.json()
    except ValueError:
        raise ValueError("not JSON") from None


def _ask_ollama(client: httpx.Client, ep: Endpoint) -> tuple[int | None, str]:
    data = _get_json(client, "POST", f"{ep.root}/api/show", {"model": ep.name})
    parameters = data.get("parameters") if isinstance(data, dict) else None
    if isinstance(parameters, str):
        match = _NUM_CTX.search(parameters)
        if match and int(match.group(1)) > 0:
            return int(match.group(1)), "Ollama POST /api/show (num_ctx)"
    info = data.get("model_info") if isinstance(data, dict) else None
    if isinstance(info, dict):
        for key, value in info.items():
            if key.endswith(".context_length") and _positive(value):
                return value, f"Ollama POST /api/show ({key})"
    return None, "no context_length in model_info"


def _ask_models(client: httpx.Client, ep: Endpoint) -> tuple[int | None, str]:
    data = _get_json(client, "GET", f"{ep.base}/models")
    entries = data.get("data") if isinstance(data, dict) else None
    entries = [e for e in entries if isinstance(e, dict)] if isinstance(entries, list) else []
    mine = [e for e in entries if e.get("id") == ep.name]
    if not mine and len(entries) == 1:
        mine = entries  # one model served (llama.cpp and SGLang answer to any name)
    for entry in mine:
        value = _positive(entry.get("max_model_len"))
        if value:
            return value, "vLLM/SGLang GET /v1/models (max_model_len)"
    return None, "no max_model_len" if mine else f"{ep.name} is not listed"


def _ask_llamacpp(client: httpx.Client, ep: Endpoint) -> tuple[int | None, str]:
    data = _get_json(client, "GET", f"{ep.root}/props")
    settings = data.get("default_generation_settings") if isinstance(data, dict) else None
    value = _positive(settings.get("n_ctx")) if isinstance(settings, dict) else None
    if value:
        return value, "llama.cpp GET /props (default_generation_settings.n_ctx)"
    return None, "no default_generation_settings.n_ctx"


def _ask_lmstudio(client: httpx.Client, ep: Endpoint) -> tuple[int | None, str]:
    data = _get_json(client, "GET", f"{ep.root}/api/v0/models/{quote(ep.name, safe='')}")
    if isinstance(data, dict):
        for key in ("loaded_context_length", "max_context_length"):
            value = _positive(data.get(key))
            if value:
                return value, f"LM Studio GET /api/v0/models ({key})"
    return None, "no context length"


Question = Callable[["httpx.Client", Endpoint], tuple[int | None, str]]
_QUESTIONS: dict[str, tuple[tuple[str, Question], ...]] = {
    OLLAMA: (("POST /api/show", _ask_ollama),),
    LM_STUDIO: (("GET /api/v0/models", _ask_lmstudio), ("GET /v1/models", _ask_models)),
    # a generic OpenAI-compatible server: vLLM, SGLang, llama.cpp (Ollama and LM Studio by port)
    OPENAI: (("GET /v1/models", _ask_models), ("GET /props", _ask_llamacpp)),
}
_BY_PORT = {11434: OLLAMA, 1234: LM_STUDIO}


def questions(ep: Endpoint) -> tuple[tuple[str, Question], ...]:
    """What to ask, in order: by route, and for a plain ``openai/`` model by the well-known ports."""
    asked = _QUESTIONS[ep.kind]
    if ep.kind == OPENAI:
        port_kind = _BY_PORT.get(urlsplit(ep.base).port or 0)
        if port_kind:
            asked = _QUESTIONS[port_kind] + asked
    return asked


def discover(ep: Endpoint, *, timeout: float = PROBE_TIMEOUT, deadline: float = PROBE_DEADLINE) -> Discovery:
    """Ask the server for ``ep``'s window (blocking: run it in a thread); never raises."""
    import httpx

    started = time.monotonic()
    headers = {"authorization": f"Bearer {ep.key}"} if ep.key else {}
    problems: list[str] = []
    try:
        # Certificates are loaded only for https (building the context costs ~100 ms).
        with httpx.Client(
            timeout=httpx.Timeout(timeout, connect=min(timeout, 1.0)),
            headers=headers,
            verify=ep.base.startswith("https://"),
            trust_env=True,
        ) as client:
            for label, ask in questions(ep):
                if time.monotonic() - started > deadline:
                    problems.append(f"{label}: not asked, out of time")
                    continue
                try:
                    context, said = ask(client, ep)
                except _Unreachable as exc:
                    problems.append(f"{_public_url(ep.root)}: {exc}")
                    break
                except (ValueError, AttributeError, TypeError) as exc:
                    problems.append(f"{label}: {exc}")
                    continue
                if context is not None:
                    return Discovery(context, said, at=time.time())
                problems.append(f"{label}: {said}")
    except Exception as exc:  # a broken proxy setting, an SSL setup error: the window stays unknown
        problems.append(f"{type(exc).__name__}: {exc}")
    return Discovery(None, problem="; ".join(problems) or "nothing to ask", at=time.time())


# -- in the background -----------------------------------------------------------------------------

_inflight: dict[str, Future[Discovery]] = {}
_inflight_lock = threading.Lock()


def start(ep: Endpoint) -> Future[Discovery]:
    """Ask in a daemon thread (one question in flight per server and model); the answer is cached.
    The future never fails: a failure is a :class:`Discovery` without a context."""
    with _inflight_lock:
        running = _inflight.get(ep.cache_key)
        if running is not None:
            return running
        future: Future[Discovery] = Future()
        _inflight[ep.cache_key] = future

    def work() -> None:
        found = discover(ep)
        try:
            remember(ep, found)
        except OSError:
            pass  # an unwritable cache: the answer is used, just asked again next time
        finally:
            with _inflight_lock:
                _inflight.pop(ep.cache_key, None)
            future.set_result(found)

    threading.Thread(target=work, name="nbagent-context-window", daemon=True).start()
    return future
