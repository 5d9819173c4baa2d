"""Provider quirks, normalized in one place that both paths share (the native client and litellm).

Incoming (what a server sends, folded into our chunks):

- content given as a list of parts in deltas or messages (Mistral's text and thinking chunks):
  :func:`content_pieces`, :func:`flatten_delta`;
- a whole ``chat.completion`` JSON answered to ``stream: true``: :func:`completion_events` replays it as
  the stream it stands for; an HTTP 200 whose body is an error (``{"error": ...}`` or Google's
  ``[{"error": ...}]``): :func:`error_payload`;
- parallel tool calls that share ``index: 0`` and differ by id (Ollama, SGLang, lmdeploy), calls with no
  id, provider metadata carried on a call (Gemini's ``extra_content.google.thought_signature``):
  :class:`CallAssembler`;
- a stream that ends with no text, no call and no finish reason: :func:`empty_step_error`.

Outgoing (our OpenAI-shaped request, shaped for the provider it goes to): :func:`prepare` gives every
tool-call id a form the target accepts (Mistral: 9 alphanumerics; the same mapping for a call and its
result), shapes tool schemas (:mod:`~nbagent.providers.tool_schemas`), and drops the
message fields the target does not take. Which reasoning and metadata go back at all is decided by
:func:`assistant_extras` (used by :func:`nbagent.providers.wire.to_openai`): everything to the model that
produced it, nothing (or the reasoning as plain text where the target requires a field) to another.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import string
from dataclasses import dataclass, field, replace
from typing import Any

from nbagent.core.errors import ProviderError
from nbagent.core.messages import Message, ReasoningPart
from nbagent.providers.base import ModelRequest, RawToolCall, ToolCallStarted
from nbagent.providers.tool_schemas import shaped_tool

ID_ALPHABET = string.ascii_letters + string.digits
ID_LENGTH = 9  # Mistral's requirement; every other provider accepts it too
_SAFE_ID = re.compile(r"[A-Za-z0-9_-]{1,40}\Z")  # OpenAI: at most 40; Anthropic: [A-Za-z0-9_-]+
_NINE = re.compile(r"[A-Za-z0-9]{9}\Z")
EMPTY_REASONING = " "  # the smallest reasoning_content DeepSeek's thinking mode accepts


# -- model families ------------------------------------------------------------------------------

ANTHROPIC = "anthropic"
GEMINI = "gemini"
MISTRAL = "mistral"
DEEPSEEK = "deepseek"
OPENAI = "openai"  # every other OpenAI-compatible server

_MISTRAL_NAMES = ("mistral", "magistral", "devstral", "codestral", "ministral", "pixtral")
_REASONING_BACK = ("deepseek", "kimi", "moonshot")  # want reasoning_content on assistant tool-call turns


def family(model: str) -> str:
    """The quirk family of a model string (its provider prefix and name)."""
    lowered = model.lower()
    prefix = lowered.partition("/")[0]
    if prefix == "anthropic" or lowered.startswith(("claude", "bedrock/anthropic", "vertex_ai/claude")):
        return ANTHROPIC
    if any(n in lowered for n in _MISTRAL_NAMES):
        return MISTRAL
    if "gemini" in lowered:
        return GEMINI
    if any(n in lowered for n in _REASONING_BACK):
        return DEEPSEEK
    return OPENAI


# -- tool-call ids ---------------------------------------------------------------------------------


def new_call_id() -> str:
    """A fresh id every provider accepts (9 alphanumerics), for a call the server sent without one."""
    return "".join(secrets.choice(ID_ALPHABET) for _ in range(ID_LENGTH))


_ID_CACHE: dict[tuple[str, bool], str] = {}


def wire_id(call_id: str, *, nine: bool) -> str:
    """``call_id`` in a form the target accepts: unchanged when it already is, else a stable digest
    (so a call and its result map to the same id, request after request)."""
    if (_NINE if nine else _SAFE_ID).match(call_id):
        return call_id
    key = (call_id, nine)
    mapped = _ID_CACHE.get(key)
    if mapped is None:
        number = int.from_bytes(hashlib.sha256(call_id.encode()).digest()[:8], "big")
        chars = []
        for _ in range(ID_LENGTH):
            number, rest = divmod(number, len(ID_ALPHABET))
            chars.append(ID_ALPHABET[rest])
        mapped = "".join(chars)
        if len(_ID_CACHE) > 50_000:
            _ID_CACHE.clear()
        _ID_CACHE[key] = mapped
    return mapped


# -- incoming: content, whole replies, error bodies ------------------------------------------------


def content_pieces(content: Any) -> list[tuple[bool, str]]:
    """(is_reasoning, text) pieces of a message or delta ``content``: a string, or a list of parts
    (``{"type": "text"}``, Mistral's ``{"type": "thinking", "thinking": [parts]}``, ``reasoning``)."""
    if isinstance(content, str):
        return [(False, content)] if content else []
    if not isinstance(content, list):
        return []
    out: list[tuple[bool, str]] = []
    for part in content:
        if isinstance(part, str):
            if part:
                out.append((False, part))
            continue
        if not isinstance(part, dict):
            continue
        kind = part.get("type")
        if kind in ("thinking", "reasoning"):
            inner = part.get("thinking", part.get("reasoning", part.get("text")))
            out.extend((True, text) for _, text in content_pieces(inner))
        elif kind in ("text", "output_text", None) and isinstance(part.get("text"), str) and part["text"]:
            out.append((False, part["text"]))
    return out


def flatten_delta(delta: dict[str, Any]) -> dict[str, Any]:
    """A delta (or message) whose list ``content`` became a string, its thinking parts joined into
    ``reasoning_content``; returned unchanged (the same object) when there is nothing to do."""
    content = delta.get("content")
    if not isinstance(content, list):
        return delta
    pieces = content_pieces(content)
    out = dict(delta)
    out["content"] = "".join(t for r, t in pieces if not r) or None
    reasoning = "".join(t for r, t in pieces if r)
    if reasoning:
        out["reasoning_content"] = (delta.get("reasoning_content") or "") + reasoning
    return out


def error_payload(payload: Any) -> dict[str, Any] | None:
    """The error a 200 body carries: ``{"error": ...}``, or Google's list form ``[{"error": ...}]``."""
    if isinstance(payload, list) and payload and isinstance(payload[0], dict):
        payload = payload[0]
    if isinstance(payload, dict) and payload.get("error"):
        return payload
    return None


def completion_events(payload: dict[str, Any]) -> list[dict[str, Any]]:
    """A whole ``chat.completion`` as the ``chat.completion.chunk`` events it stands for (one delta
    with everything, then the usage), so a server ignoring ``stream: true`` is a normal reply."""
    events: list[dict[str, Any]] = []
    base: dict[str, Any] = {k: payload[k] for k in ("id", "created", "model") if k in payload}
    for choice in payload.get("choices") or []:
        if not isinstance(choice, dict):
            continue
        message = flatten_delta(choice.get("message") or {})
        delta: dict[str, Any] = {"role": "assistant"}
        for key in ("content", "reasoning_content", "reasoning"):
            if message.get(key):
                delta[key] = message[key]
        calls = message.get("tool_calls") or []
        if calls:
            delta["tool_calls"] = [
                {**call, "index": i} for i, call in enumerate(calls) if isinstance(call, dict)
            ]
        for key in ("thinking_blocks", "provider_specific_fields"):
            if message.get(key):
                delta[key] = message[key]
        events.append(
            {
                **base,
                "object": "chat.completion.chunk",
                "choices": [
                    {
                        "index": choice.get("index", 0),
                        "delta": delta,
                        "finish_reason": choice.get("finish_reason"),
                    }
                ],
            }
        )
    if payload.get("usage"):
        events.append({**base, "object": "chat.completion.chunk", "choices": [], "usage": payload["usage"]})
    return events


# -- incoming: tool calls ----------------------------------------------------------------------------


@dataclass
class _Slot:
    call_id: str
    name: str
    arguments: list[str] = field(default_factory=list)
    extra: dict[str, Any] | None = None
    given: bool = True  # the id came from the server


def _complete_json(pieces: list[str]) -> bool:
    text = "".join(pieces).strip()
    return text.startswith("{") and text.endswith("}") and text.count("{") == text.count("}")


class CallAssembler:
    """Folds streamed tool-call deltas into whole calls, however the server numbers them.

    A delta continues the call at its ``index``, unless it starts a new one there: a different id, or
    a name arriving when the call there already has a name and whole JSON arguments (servers that send
    parallel calls all at ``index: 0``). Calls without an id get one every provider accepts; call-level
    metadata (``extra_content``, ``provider_specific_fields``) is kept to go back with the call.
    """

    META = ("extra_content", "provider_specific_fields")

    def __init__(self) -> None:
        self._slots: list[_Slot] = []
        self._at: dict[int, int] = {}  # server index -> slot
        self._ids: set[str] = set()

    def add(
        self,
        index: int | None,
        call_id: str | None,
        name: str | None,
        arguments: Any,
        extra: dict[str, Any] | None = None,
    ) -> ToolCallStarted | None:
        """Fold one delta; returns the start of a new call (to announce it), else None."""
        key = index if isinstance(index, int) else len(self._slots)
        position = self._at.get(key)
        slot = self._slots[position] if position is not None else None
        if slot is not None and (
            (call_id and slot.given and call_id != slot.call_id)
            or (not call_id and name and arguments and slot.name and _complete_json(slot.arguments))
        ):
            slot = None
        started = None
        if slot is None:
            fresh = call_id if call_id and call_id not in self._ids else new_call_id()
            slot = _Slot(fresh, name or "", given=bool(call_id))
            self._ids.add(fresh)
            self._at[key] = len(self._slots)
            self._slots.append(slot)
            started = ToolCallStarted(len(self._slots) - 1, slot.call_id, slot.name)
        elif name and not slot.name:
            slot.name = name
        if arguments:
            slot.arguments.append(arguments if isinstance(arguments, str) else json.dumps(arguments))
        if extra:
            slot.extra = {**(slot.extra or {}), **extra}
        return started

    def add_openai(self, call: dict[str, Any]) -> ToolCallStarted | None:
        """Fold an OpenAI-shaped tool-call delta (a dict)."""
        function = call.get("function") or {}
        extra = {k: call[k] for k in self.META if call.get(k)}
        if isinstance(function, dict) and function.get("provider_specific_fields"):
            extra["function_provider_specific_fields"] = function["provider_specific_fields"]
        return self.add(
            call.get("index"),
            call.get("id") or None,
            function.get("name") if isinstance(function, dict) else None,
            function.get("arguments") if isinstance(function, dict) else None,
            extra or None,
        )

    def __len__(self) -> int:
        return len(self._slots)

    def calls(self) -> list[RawToolCall]:
        return [RawToolCall(s.call_id, s.name, "".join(s.arguments), s.extra) for s in self._slots]


def empty_step_error(model: str) -> ProviderError:
    """A step that ended with no text, no reasoning, no call and no finish reason: retried, never a
    silent empty success."""
    return ProviderError(
        f"The model returned an empty response ({model}: no text, no tool call, no finish reason).",
        "It is retried; if it keeps happening, check the server's logs or switch model (/model).",
        kind="server",
        retryable=True,
    )


# -- outgoing: reasoning and metadata per target model ---------------------------------------------


def assistant_extras(message: Message, target: str | None, has_calls: bool) -> dict[str, Any]:
    """Fields to add to ``message``'s OpenAI-shaped assistant entry for the model ``target``.

    The model that produced the message gets its reasoning and signatures back (Anthropic:
    ``thinking_blocks``; OpenAI-compatible servers: ``reasoning_content``); another model gets none,
    except that a DeepSeek-style target, which requires ``reasoning_content`` on every tool-call turn,
    gets the other model's reasoning as plain text (or a blank)."""
    if target is None:
        return {}
    fam = family(target)
    same = message.model == target
    parts = [p for p in message.parts if isinstance(p, ReasoningPart)]
    if fam == ANTHROPIC:
        if not same:
            return {}
        blocks: list[dict[str, Any]] = []
        for p in parts:
            if p.redacted:
                blocks.append({"type": "redacted_thinking", "data": p.redacted})
            elif p.signature:
                blocks.append({"type": "thinking", "thinking": p.text, "signature": p.signature})
        return {"thinking_blocks": blocks} if blocks else {}
    if fam == MISTRAL or target.startswith("groq/"):
        return {}
    text = "".join(p.text for p in parts)
    if fam == DEEPSEEK and has_calls:
        return {"reasoning_content": text or EMPTY_REASONING}
    return {"reasoning_content": text} if same and text else {}


def call_extras(extra: dict[str, Any] | None, same_model: bool) -> dict[str, Any]:
    """Call-level metadata to send back with a tool call: to the model that produced it only."""
    if not extra or not same_model:
        return {}
    out = {k: v for k, v in extra.items() if k in CallAssembler.META}
    return out


# -- outgoing: the request shaped for its target ---------------------------------------------------

_DROP_FIELDS = {
    ANTHROPIC: ("reasoning_content",),
    MISTRAL: ("reasoning_content", "thinking_blocks"),
    GEMINI: ("thinking_blocks",),
    DEEPSEEK: ("thinking_blocks",),
    OPENAI: ("thinking_blocks",),
}
_CALL_FIELDS = ("extra_content", "provider_specific_fields")


def _shaped_message(message: dict[str, Any], fam: str, nine: bool) -> dict[str, Any]:
    changed: dict[str, Any] = {}
    drop = [k for k in _DROP_FIELDS[fam] if k in message]
    calls = message.get("tool_calls")
    if calls:
        new_calls = []
        for call in calls:
            cid = call.get("id")
            fixed = call
            if isinstance(cid, str) and wire_id(cid, nine=nine) != cid:
                fixed = {**call, "id": wire_id(cid, nine=nine)}
            if fam == MISTRAL and any(k in fixed for k in _CALL_FIELDS):
                fixed = {k: v for k, v in fixed.items() if k not in _CALL_FIELDS}
            new_calls.append(fixed)
        if any(a is not b for a, b in zip(new_calls, calls, strict=True)):
            changed["tool_calls"] = new_calls
    cid = message.get("tool_call_id")
    if isinstance(cid, str) and wire_id(cid, nine=nine) != cid:
        changed["tool_call_id"] = wire_id(cid, nine=nine)
    if not changed and not drop:
        return message
    out = {k: v for k, v in message.items() if k not in drop}
    out.update(changed)
    return out


# The session sends the same message objects request after request (its wire form is cached per
# message): their shaped form is kept too, keyed by identity (the entry holds the object, so its id
# cannot be reused while cached).
_MESSAGE_CACHE: dict[tuple[int, str], tuple[dict[str, Any], dict[str, Any]]] = {}
MESSAGE_CACHE_SIZE = 20_000


def _shaped_cached(message: dict[str, Any], fam: str, nine: bool) -> dict[str, Any]:
    key = (id(message), fam)
    cached = _MESSAGE_CACHE.get(key)
    if cached is not None and cached[0] is message:
        return cached[1]
    shaped = _shaped_message(message, fam, nine)
    if len(_MESSAGE_CACHE) >= MESSAGE_CACHE_SIZE:
        _MESSAGE_CACHE.clear()
    _MESSAGE_CACHE[key] = (message, shaped)
    return shaped


def prepare(request: ModelRequest, *, official_openai: bool = False) -> ModelRequest:
    """``request`` shaped for its target (ids, tool schemas, fields it does not take); the same object
    when nothing changes. Cheap on a long history: messages are copied only where they change."""
    fam = family(request.model)
    nine = fam == MISTRAL
    messages = request.messages
    shaped = [_shaped_cached(m, fam, nine) for m in messages]
    if all(a is b for a, b in zip(shaped, messages, strict=True)):
        shaped = messages
    mode = "gemini" if fam == GEMINI else "strict" if official_openai else ""
    tools = [shaped_tool(t, mode) for t in request.tools] if mode else request.tools
    if shaped is messages and all(a is b for a, b in zip(tools, request.tools, strict=True)):
        return request
    return replace(request, messages=shaped, tools=tools)
