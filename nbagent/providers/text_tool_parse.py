"""Tool calls a model wrote in its reply text, read robustly (the text tool protocol's parser).

    reader = CallReader({"read", "edit"})
    visible = reader.feed(chunk) ...; visible += reader.finish()   # the prose, calls taken out
    reader.calls                                                   # [ParsedCall, ...]

A call is a JSON object ``{"name": ..., "arguments": {...}}`` (``parameters``/``args``/``input`` and
OpenAI's ``{"function": {"name", "arguments": "<json>"}}`` are read too; a list holds several) inside

- a fenced block: `````tool_call`` (what the prompt asks for) or `````tool``; a `````json`` block only
  when it holds a call to a known tool (else it stays text);
- ``<tool_call>...</tool_call>`` (what Hermes, Qwen and many local models are trained to write);
- or the whole reply, when it is nothing but a call.

The JSON may have prose after it, trailing commas, single-quoted strings, Python's True/False/None,
raw newlines in strings or missing closing brackets (a reply cut short). What cannot be read becomes
a call with a ``problem``: the model is told exactly what went wrong and the format to use.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

OPEN_TAG, CLOSE_TAG = "<tool_call>", "</tool_call>"
FENCE = "```"
CALL_FENCES = frozenset({"tool_call", "tool", "tool_calls"})
MAYBE_CALL_FENCES = frozenset({"json", "json5"})
ARGUMENT_KEYS = ("arguments", "parameters", "args", "input")
RAW_LIMIT = 4_000  # characters of an unreadable call kept to show the model what it wrote
_DECODER = json.JSONDecoder(strict=False)  # raw newlines and tabs inside strings are read
_PARTIAL_FENCE = re.compile(r"`{1,3}[\w-]*\Z")
_PY_WORDS = {"True": "true", "False": "false", "None": "null"}


@dataclass
class ParsedCall:
    name: str
    arguments: dict[str, Any] = field(default_factory=dict)
    problem: str = ""  # set when the call could not be read; name and arguments are then guesses
    raw: str = ""  # the block as written (kept for an unreadable call)


# -- tolerant JSON ---------------------------------------------------------------------------------


def _repair(text: str) -> str:
    """``text`` with single-quoted strings, trailing commas and Python literals made JSON, and the
    brackets a cut-short reply left open closed. Strings in double quotes are left as they are."""
    out: list[str] = []
    closers: list[str] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch in "\"'":
            j, buf = i + 1, []
            while j < n and text[j] != ch:
                if text[j] == "\\" and j + 1 < n:
                    nxt = text[j + 1]
                    buf.append(nxt if (ch == "'" and nxt == "'") else text[j : j + 2])
                    j += 2
                    continue
                buf.append('\\"' if (ch == "'" and text[j] == '"') else text[j])
                j += 1
            out.append('"' + "".join(buf) + '"')
            i = j + 1
            continue
        if ch in "{[":
            closers.append("}" if ch == "{" else "]")
        elif ch in "}]":
            while out and out[-1].isspace():
                out.pop()
            if out and out[-1] == ",":
                out.pop()
            if closers:
                closers.pop()
            if not closers:
                out.append(ch)
                break  # the first complete value: whatever follows is prose
        elif ch.isalpha() or ch == "_":
            word = re.match(r"[A-Za-z_][A-Za-z0-9_]*", text[i:])
            token = word.group(0) if word else ch
            key = text[i + len(token) :].lstrip().startswith(":")
            out.append(f'"{token}"' if key else _PY_WORDS.get(token, token))  # {name: ...}: a bare key
            i += len(token)
            continue
        out.append(ch)
        i += 1
    while out and (out[-1].isspace() or out[-1] == ","):
        out.pop()
    out.extend(reversed(closers))
    return "".join(out)


def loads_tolerant(text: str) -> tuple[Any, str]:
    """(value, "") for the first JSON value in ``text``, read leniently; (None, why) when there is none."""
    start = min((i for i in (text.find("{"), text.find("[")) if i >= 0), default=-1)
    if start < 0:
        return None, "there is no JSON object in it"
    try:
        return _DECODER.raw_decode(text, start)[0], ""
    except ValueError as exc:
        first = exc
    try:
        return _DECODER.raw_decode(_repair(text[start:]))[0], ""
    except (ValueError, RecursionError):
        pass
    if isinstance(first, json.JSONDecodeError):
        return None, f"its JSON does not parse ({first.msg} at line {first.lineno}, column {first.colno})"
    return None, "its JSON does not parse"


# -- calls -----------------------------------------------------------------------------------------


def _one_call(obj: Any, raw: str) -> ParsedCall:
    if not isinstance(obj, dict):
        return ParsedCall("", problem='a call must be a JSON object with "name" and "arguments"', raw=raw)
    function = obj.get("function")
    if isinstance(function, dict) and "name" in function:
        obj = function
    name = obj.get("name", obj.get("tool", obj.get("tool_name")))
    if not isinstance(name, str) or not name.strip():
        return ParsedCall("", problem='the call has no "name" (the tool to call)', raw=raw)
    args: Any = next((obj[k] for k in ARGUMENT_KEYS if k in obj), {})
    if isinstance(args, str):
        parsed, why = loads_tolerant(args) if args.strip() else ({}, "")
        if why:
            return ParsedCall(name.strip(), problem=f'"arguments" is a string and {why}', raw=raw)
        args = parsed
    if args is None:
        args = {}
    if not isinstance(args, dict):
        return ParsedCall(name.strip(), problem='"arguments" must be a JSON object', raw=raw)
    return ParsedCall(name.strip(), args)


def parse_calls(text: str) -> list[ParsedCall]:
    """The calls in one block's content: one object, or a list of them; one unreadable call when the
    JSON cannot be read."""
    raw = text.strip()[:RAW_LIMIT]
    value, why = loads_tolerant(text)
    if why:
        return [ParsedCall("", problem=f"the call cannot be read: {why}", raw=raw)]
    items = value if isinstance(value, list) else [value]
    if not items:
        return [ParsedCall("", problem="the block holds an empty list", raw=raw)]
    return [_one_call(item, raw) for item in items]


def _whole_json(text: str) -> bool:
    """Whether ``text`` is exactly one JSON value (whitespace around it allowed)."""
    stripped = text.strip()
    if not stripped:
        return False
    try:
        _, end = _DECODER.raw_decode(stripped)
    except ValueError:
        return False
    return end == len(stripped)


def _known_calls(text: str, tools: frozenset[str]) -> list[ParsedCall] | None:
    """The calls in ``text`` when it is nothing but calls to known tools; None otherwise (plain text)."""
    value, why = loads_tolerant(text)
    if why:
        return None
    items = value if isinstance(value, list) else [value]
    calls = [_one_call(item, "") for item in items]
    if not calls or any(c.problem or c.name not in tools for c in calls):
        return None
    return calls


# -- reading a streamed reply ----------------------------------------------------------------------


@dataclass
class _Block:
    kind: str  # "tag", "fence" (a call fence), "maybe" (a json fence), "code" (any other fence), "bare"
    opening: str  # the text that opened it (given back as text when it is not a call)


class CallReader:
    """Takes the calls out of a streamed reply: :meth:`feed` returns the text that can be shown now
    (held back while it might be the start of a call), :meth:`finish` the rest; ``calls`` fills as
    blocks close."""

    def __init__(self, tools: set[str] | frozenset[str]) -> None:
        self.tools = frozenset(tools)
        self.calls: list[ParsedCall] = []
        self._buf = ""
        self._block: _Block | None = None
        self._at_start = True  # nothing but whitespace seen: a bare JSON reply may follow

    def feed(self, text: str) -> str:
        self._buf += text
        return self._drain(final=False)

    def finish(self) -> str:
        return self._drain(final=True)

    def _drain(self, *, final: bool) -> str:
        out: list[str] = []
        while True:
            if self._block is None:
                if not self._outside(out, final):
                    break
            elif not self._inside(out, final):
                break
        return "".join(out)

    def _outside(self, out: list[str], final: bool) -> bool:
        """Look for the start of a block; False when the buffer is done with for now."""
        buf = self._buf
        if self._at_start:
            stripped = buf.lstrip()
            if not stripped:
                if final:
                    out.append(buf)
                    self._buf = ""
                return False
            self._at_start = False
            if stripped[0] in "{[":
                self._block = _Block("bare", "")
                return True
        tag, fence = buf.find(OPEN_TAG), buf.find(FENCE)
        if tag < 0 and fence < 0:
            keep = 0 if final else self._partial_suffix(buf)
            out.append(buf[: len(buf) - keep])
            self._buf = buf[len(buf) - keep :]
            return False
        if tag >= 0 and (fence < 0 or tag < fence):
            out.append(buf[:tag])
            self._buf = buf[tag + len(OPEN_TAG) :]
            self._block = _Block("tag", OPEN_TAG)
            return True
        newline = buf.find("\n", fence + len(FENCE))
        if newline < 0:  # the fence's language is not known yet
            if final:
                out.append(buf)
                self._buf = ""
            else:
                out.append(buf[:fence])
                self._buf = buf[fence:]
            return False
        info = buf[fence + len(FENCE) : newline].strip().lower()
        kind = "fence" if info in CALL_FENCES else "maybe" if info in MAYBE_CALL_FENCES else "code"
        out.append(buf[:fence])
        opening = buf[fence : newline + 1]
        if kind == "code":
            out.append(opening)  # an ordinary code block: shown as it streams, its content never a call
        self._block = _Block(kind, opening)
        self._buf = buf[newline + 1 :]
        return True

    def _inside(self, out: list[str], final: bool) -> bool:
        """Look for the end of the open block; False when it has not come yet."""
        block, buf = self._block, self._buf
        assert block is not None
        if block.kind == "bare":
            if not final:
                return False
            end, rest = len(buf), ""
        elif block.kind == "tag":
            end = buf.find(CLOSE_TAG)
            rest = buf[end + len(CLOSE_TAG) :] if end >= 0 else ""
        else:
            end = self._closing_fence(buf, block.kind != "code", final)
            after = end + (len(FENCE) if end == 0 else len(FENCE) + 1)
            rest = buf[after:] if end >= 0 else ""
        if end < 0:
            if block.kind == "code" and not final:  # stream the code, keeping what may be its fence
                keep = min(len(buf), len(FENCE) + 1)
                out.append(buf[: len(buf) - keep])
                self._buf = buf[len(buf) - keep :]
                return False
            if not final:
                return False
            end, rest = len(buf), ""  # a block the reply never closed (cut short): read what is there
        content, closing = buf[:end], buf[end : len(buf) - len(rest)]
        self._block, self._buf = None, rest
        if block.kind in ("tag", "fence"):
            self.calls.extend(parse_calls(content))
        elif block.kind in ("maybe", "bare") and (known := _known_calls(content, self.tools)) is not None:
            self.calls.extend(known)
        else:  # not a call: given back as text (a code block's opening was shown already)
            out.append(("" if block.kind == "code" else block.opening) + content + closing)
        return True

    @staticmethod
    def _closing_fence(buf: str, json_inside: bool, final: bool) -> int:
        """Where the block's closing fence starts (-1: not come yet). In a block of JSON, a fence inside a
        string (a markdown file the call writes) is not the end: the end is the first fence after which
        the content is one whole JSON value; at the end of the reply, the first fence."""
        fences = [0] if buf.startswith(FENCE) else []
        at = buf.find("\n" + FENCE)
        while at >= 0:
            fences.append(at)
            at = buf.find("\n" + FENCE, at + 1)
        if not json_inside:
            return fences[0] if fences else -1
        for end in fences:
            if _whole_json(buf[:end]):
                return end
        return fences[0] if final and fences else -1

    @staticmethod
    def _partial_suffix(buf: str) -> int:
        """How many characters at the end of ``buf`` may begin a block (held back until known)."""
        keep = 0
        fence = _PARTIAL_FENCE.search(buf)
        if fence:
            keep = len(buf) - fence.start()
        for k in range(min(len(OPEN_TAG) - 1, len(buf)), 0, -1):
            if buf.endswith(OPEN_TAG[:k]):
                return max(keep, k)
        return keep
