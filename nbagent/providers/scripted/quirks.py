"""Provider quirks the scripted model replays: the shapes real servers send, and the checks they make.

A :class:`Quirks` given to :class:`~nbagent.providers.scripted.server.ScriptedModelServer` changes how
every reply is sent (streamed, or whole when ``ignore_stream``) and how every request is checked:

- ``reasoning="deepseek"``: reasoning in ``reasoning_content``; an assistant tool-call turn sent back
  without its ``reasoning_content`` gets DeepSeek's 400.
- ``reasoning="gemini"``: the first call of a step carries ``extra_content.google.thought_signature``;
  a call sent back without it (or with one this server never gave) gets Google's 400. Tool schemas with
  keys Gemini refuses (``additionalProperties``, ``$schema``, formats other than ``enum``/``date-time``)
  get its 400 too.
- ``reasoning="anthropic"``: thinking blocks carry a fresh signature (``redacted`` adds a redacted block);
  an assistant turn whose tool calls came with thinking must send that thinking back, signed, first;
  a signature this server never gave is refused.
- ``parallel_index0``: parallel calls each in one delta, all at ``index: 0`` (Ollama, SGLang, lmdeploy).
- ``content_parts``: content and thinking as lists of parts (Mistral's reasoning models).
- ``no_call_ids``: tool calls without an id.
- ``mistral``: the ids it sends are 9 alphanumerics and it refuses other ids, and message fields it does
  not know (422).
- ``ignore_stream``: a whole ``chat.completion`` / ``message`` answered to ``stream: true``.

Answers :class:`EmptyStream` (no text, no call, no finish reason) and :class:`ErrorBody` (an HTTP 200 whose
body is an error, as a dict or Google's list) replay the failures that look like success.
"""

from __future__ import annotations

import json
import secrets
import string
import threading
from dataclasses import dataclass, field, replace
from typing import Any

from nbagent.providers.scripted.script import EmptyStream, ErrorBody, Reply

__all__ = ["EmptyStream", "ErrorBody", "QuirkState", "Quirks"]

ALNUM = string.ascii_letters + string.digits


@dataclass
class Quirks:
    reasoning: str = ""  # "", "deepseek", "gemini", "anthropic"
    redacted: bool = False
    parallel_index0: bool = False
    content_parts: bool = False
    no_call_ids: bool = False
    mistral: bool = False
    ignore_stream: bool = False


@dataclass
class _Issued:
    reasoning: str = ""
    signature: str = ""  # anthropic thinking
    redacted: str = ""
    thought: str = ""  # gemini


DEEPSEEK_MISSING = (
    "Missing `reasoning_content` field in the assistant message at message index {i}. For more information,"
    " please refer to https://api-docs.deepseek.com/guides/thinking_mode#tool-calls"
)
GEMINI_MISSING = (
    "Function call is missing a thought_signature in functionCall parts. This is required for tools to work"
    " correctly, and missing thought_signature may lead to degraded model performance. Additional data,"
    " function call `default_api:{name}` , position {i}. Please refer to"
    " https://ai.google.dev/gemini-api/docs/thought-signatures for more details."
)
_GEMINI_REFUSED = ("additionalProperties", "$schema", "$ref", "$defs", "exclusiveMinimum", "const")
_MISTRAL_MESSAGE_KEYS = {"role", "content", "tool_calls", "tool_call_id", "name", "prefix"}
_MISTRAL_CALL_KEYS = {"id", "type", "function", "index"}


def _token(prefix: str, n: int = 24) -> str:
    return prefix + "".join(secrets.choice(ALNUM) for _ in range(n))


def _gemini_schema_problem(schema: Any, where: str) -> str | None:
    if isinstance(schema, list):
        for i, s in enumerate(schema):
            found = _gemini_schema_problem(s, f"{where}[{i}]")
            if found:
                return found
        return None
    if not isinstance(schema, dict):
        return None
    for key in _GEMINI_REFUSED:
        if key in schema:
            return f"Invalid JSON payload received. Unknown name \"{key}\" at '{where}': Cannot find field."
    if schema.get("format") and schema.get("format") not in ("enum", "date-time"):
        return f"Invalid JSON payload received. Unsupported format \"{schema['format']}\" at '{where}'."
    if "enum" in schema and any(not isinstance(v, str) for v in schema["enum"]):
        return f"Invalid JSON payload received. enum values must be strings at '{where}'."
    for key, sub in schema.items():
        if key == "properties" and isinstance(sub, dict):
            for name, prop in sub.items():
                found = _gemini_schema_problem(prop, f"{where}.properties[{name}]")
                if found:
                    return found
        elif key in ("items", "anyOf"):
            found = _gemini_schema_problem(sub, f"{where}.{key}")
            if found:
                return found
    return None


@dataclass
class QuirkState:
    """What the server gave (ids, reasoning, signatures), to check what comes back."""

    quirks: Quirks
    issued: dict[str, _Issued] = field(default_factory=dict)
    signatures: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)

    # -- checking requests ---------------------------------------------------------------------

    def check(self, body: dict[str, Any], protocol: str) -> tuple[int, str] | None:
        """(status, message) of the error this provider answers ``body`` with, or None."""
        q = self.quirks
        messages = body.get("messages") or []
        if protocol == "anthropic":
            return self._check_anthropic(messages) if q.reasoning == "anthropic" else None
        if q.reasoning == "gemini":
            for i, tool in enumerate(body.get("tools") or []):
                params = (tool.get("function") or {}).get("parameters")
                problem = _gemini_schema_problem(params, f"tools[0].function_declarations[{i}].parameters")
                if problem:
                    return 400, problem
        for i, message in enumerate(messages):
            if q.mistral:
                refused = self._check_mistral(message)
                if refused:
                    return refused
            calls = message.get("tool_calls") or []
            if message.get("role") != "assistant" or not calls:
                continue
            if q.reasoning == "deepseek":
                sent = message.get("reasoning_content")
                if not isinstance(sent, str):
                    return 400, DEEPSEEK_MISSING.format(i=i)
                for call in calls:
                    given = self.issued.get(str(call.get("id")))
                    if given is not None and given.reasoning and sent != given.reasoning:
                        return (
                            400,
                            f"The reasoning_content at message index {i} is not the one this model gave.",
                        )
            if q.reasoning == "gemini":
                for position, call in enumerate(calls):
                    extra = (call.get("extra_content") or {}).get("google") or {}
                    sent = extra.get("thought_signature")
                    given = self.issued.get(str(call.get("id")))
                    name = (call.get("function") or {}).get("name")
                    if given is not None and given.thought and sent != given.thought:
                        return 400, GEMINI_MISSING.format(name=name, i=position + 1)
                    if sent and sent not in self.signatures:
                        return 400, "Thought signature is not valid."
        return None

    def _check_mistral(self, message: dict[str, Any]) -> tuple[int, str] | None:
        extra = set(message) - _MISTRAL_MESSAGE_KEYS
        for call in message.get("tool_calls") or []:
            extra |= set(call) - _MISTRAL_CALL_KEYS
            ident = str(call.get("id"))
            if len(ident) != 9 or any(c not in ALNUM for c in ident):
                return 400, f"Tool call id was {ident} but must be a-z, A-Z, 0-9, with a length of 9."
        result_id = message.get("tool_call_id")
        if result_id is not None and (
            len(str(result_id)) != 9 or any(c not in ALNUM for c in str(result_id))
        ):
            return 400, f"Tool call id was {result_id} but must be a-z, A-Z, 0-9, with a length of 9."
        if extra:
            return 422, f"Extra inputs are not permitted: {sorted(extra)}"
        return None

    def _check_anthropic(self, messages: list[dict[str, Any]]) -> tuple[int, str] | None:
        for i, message in enumerate(messages):
            content = message.get("content")
            if message.get("role") != "assistant" or not isinstance(content, list):
                continue
            for j, block in enumerate(content):
                if block.get("type") == "thinking" and block.get("signature") not in self.signatures:
                    return 400, f"messages.{i}.content.{j}: Invalid `signature` in `thinking` block"
                if block.get("type") == "redacted_thinking" and block.get("data") not in self.signatures:
                    return 400, f"messages.{i}.content.{j}: Invalid `data` in `redacted_thinking` block"
            uses = [b for b in content if b.get("type") == "tool_use"]
            given = next((self.issued[u["id"]] for u in uses if u.get("id") in self.issued), None)
            if given is None or not given.signature:
                continue
            first = content[0] if content else {}
            if first.get("type") not in ("thinking", "redacted_thinking"):
                return 400, (
                    f"messages.{i}.content.0.type: Expected `thinking` or `redacted_thinking`, but found "
                    f"`{first.get('type')}`. When `thinking` is enabled, a final `assistant` message must start"
                    " with a thinking block (preceeding the lastmost set of `tool_use` and `tool_result`"
                    " blocks). We recommend you include thinking blocks from previous turns."
                )
            thinking = [b for b in content if b.get("type") == "thinking"]
            if not any(
                b.get("signature") == given.signature and b.get("thinking") == given.reasoning
                for b in thinking
            ):
                return 400, f"messages.{i}: the thinking block of this turn was changed or dropped"
        return None

    # -- shaping replies ---------------------------------------------------------------------------

    def prepare(self, reply: Reply, protocol: str) -> tuple[Reply, _Issued, list[str]]:
        """The reply with its ids fixed, what was issued, and each call's id."""
        q = self.quirks
        issued = _Issued(reasoning=reply.reasoning)
        if q.reasoning == "anthropic" and protocol == "anthropic" and reply.reasoning:
            issued.signature = _token("sig_")
            issued.redacted = _token("redacted_") if q.redacted else ""
        if q.reasoning == "gemini" and reply.tool_calls:
            issued.thought = _token("ts_")
        ids = []
        calls = []
        for i, call in enumerate(reply.tool_calls):
            ident = call.id or (
                "".join(secrets.choice(ALNUM) for _ in range(9)) if q.mistral else _token(f"call_{i}_", 12)
            )
            ids.append(ident)
            calls.append(replace(call, id=ident))
        with self.lock:
            for i, ident in enumerate(ids):  # Gemini signs the first call of a step only
                self.issued[ident] = issued if i == 0 else replace(issued, thought="")
            self.signatures.update(s for s in (issued.signature, issued.redacted, issued.thought) if s)
        return replace(reply, tool_calls=calls), issued, ids

    def openai_message(self, message: dict[str, Any], issued: _Issued) -> dict[str, Any]:
        q = self.quirks
        calls = message.get("tool_calls") or []
        for i, call in enumerate(calls):
            if i == 0 and issued.thought:
                call["extra_content"] = {"google": {"thought_signature": issued.thought}}
            if q.no_call_ids:
                call.pop("id", None)
        if q.content_parts:
            parts: list[dict[str, Any]] = []
            if message.pop("reasoning_content", None):
                parts.append({"type": "thinking", "thinking": [{"type": "text", "text": issued.reasoning}]})
            if message.get("content"):
                parts.append({"type": "text", "text": message["content"]})
            message["content"] = parts
        return message

    def openai_events(self, events: list[str], issued: _Issued) -> list[str]:
        q = self.quirks
        out: list[str] = []
        whole: dict[int, dict[str, Any]] = {}  # parallel_index0: the calls, sent whole
        for event in events:
            data = event[6:].strip() if event.startswith("data: ") else ""
            if not data or data == "[DONE]":
                out.append(event)
                continue
            chunk = json.loads(data)
            delta = (chunk.get("choices") or [{}])[0].get("delta") if chunk.get("choices") else None
            if isinstance(delta, dict):
                for call in delta.get("tool_calls") or []:
                    if call.get("id") and call["index"] == 0 and issued.thought:
                        call["extra_content"] = {"google": {"thought_signature": issued.thought}}
                    if q.parallel_index0:
                        entry = whole.setdefault(call["index"], {"index": 0, "function": {"arguments": ""}})
                        for key in ("id", "type", "extra_content"):
                            if key in call:
                                entry[key] = call[key]
                        function = call.get("function") or {}
                        if function.get("name"):
                            entry["function"]["name"] = function["name"]
                        entry["function"]["arguments"] += function.get("arguments") or ""
                    if q.no_call_ids:
                        call.pop("id", None)
                if q.parallel_index0 and delta.get("tool_calls"):
                    continue  # sent whole before the finish
                if q.parallel_index0 and whole and chunk["choices"][0].get("finish_reason"):
                    for entry in whole.values():
                        if q.no_call_ids:
                            entry.pop("id", None)
                        out.append(_with_delta(chunk, {"tool_calls": [entry]}))
                    whole = {}
                if q.content_parts:
                    if delta.get("reasoning_content"):
                        thinking = [{"type": "text", "text": delta.pop("reasoning_content")}]
                        delta["content"] = [{"type": "thinking", "thinking": thinking}]
                    elif delta.get("content"):
                        delta["content"] = [{"type": "text", "text": delta["content"]}]
            out.append(f"data: {json.dumps(chunk)}\n\n")
        return out

    def anthropic_blocks(self, blocks: list[dict[str, Any]], issued: _Issued) -> list[dict[str, Any]]:
        out = []
        for block in blocks:
            if block.get("type") == "thinking" and issued.signature:
                block["signature"] = issued.signature
                out.append(block)
                if issued.redacted:
                    out.append({"type": "redacted_thinking", "data": issued.redacted})
            else:
                out.append(block)
        return out

    def anthropic_events(self, events: list[str], issued: _Issued) -> list[str]:
        if not issued.signature:
            return events
        out: list[str] = []
        shift = 0
        for event in events:
            name, _, rest = event.partition("\ndata: ")
            data = json.loads(rest)
            if "index" in data:
                data["index"] += shift
            delta = data.get("delta") or {}
            if delta.get("type") == "signature_delta":
                delta["signature"] = issued.signature
            out.append(f"{name}\ndata: {json.dumps(data)}\n\n")
            if data.get("type") == "content_block_stop" and data["index"] == 0 and issued.redacted:
                block = {"type": "redacted_thinking", "data": issued.redacted}
                out.append(_anthropic_event("content_block_start", {"index": 1, "content_block": block}))
                out.append(_anthropic_event("content_block_stop", {"index": 1}))
                shift = 1
        return out


def _with_delta(chunk: dict[str, Any], delta: dict[str, Any]) -> str:
    choice = {**chunk["choices"][0], "delta": delta, "finish_reason": None}
    return f"data: {json.dumps({**chunk, 'choices': [choice]})}\n\n"


def _anthropic_event(name: str, data: dict[str, Any]) -> str:
    return f"event: {name}\ndata: {json.dumps({'type': name, **data})}\n\n"
