"""The text tool protocol: tools for models without native tool calling, as a Provider wrapper.

    provider = TextToolProvider(inner, mode_of=lambda model: "auto", notify=print)

For a model in text mode (``"models": {name: {"tools": "text"}}``, or ``auto`` after the server
rejected a request with ``tools``), each request goes out without ``tools``: the tools are described
at the end of the system prompt, the model's earlier calls are written in its turns as the blocks it
is asked to write, and tool results come back as user messages. The reply's text is read by
:class:`~nbagent.providers.text_tool_parse.CallReader`; its calls come out as ``RawToolCall`` in
``StepDone``, so the loop runs them as it runs native calls. A call that cannot be read becomes a
call of :data:`UNREADABLE` (an unknown tool, so the loop gives it an error result); the next request
replaces that result by what went wrong and the exact format.

In ``auto`` mode requests go out natively; when the server answers with a 400 that says it does not
support tools (Ollama: "... does not support tools", vLLM: "requires --enable-auto-tool-choice",
llama.cpp: "requires --jinja"), the wrapper switches the model to text mode for the rest of the
session, says so once through ``notify``, and sends the same request again in text mode.
"""

from __future__ import annotations

import json
import re
import secrets
import string
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from typing import Any, Literal

from nbagent.core.config import Config
from nbagent.core.errors import ProviderError
from nbagent.core.messages import Usage
from nbagent.providers.base import (
    Chunk,
    ModelRequest,
    Provider,
    RawToolCall,
    StepDone,
    TextChunk,
    ToolCallStarted,
)
from nbagent.providers.text_tool_parse import CallReader, ParsedCall

ToolMode = Literal["auto", "native", "text"]
UNREADABLE = "unreadable_tool_call"  # the name of a call that could not be read
ID_ALPHABET = string.ascii_letters + string.digits
CALL_FORMAT = (
    "Write each tool call as a fenced block whose language is tool_call, holding one JSON object with"
    ' the tool\'s "name" and its "arguments" object, for example:\n\n'
    '```tool_call\n{"name": "read", "arguments": {"path": "src/app.py"}}\n```'
)
PROTOCOL = f"""# Calling tools

You have no native tool calling here: you call tools by writing them in your reply. {CALL_FORMAT}

- One block per call; write several blocks to make several calls. The JSON must be valid: double
  quotes, no comments, newlines inside strings written as \\n.
- After your tool calls, end your reply: do not guess the results. They come back in the next user
  message, each inside <tool_result name="..."> ... </tool_result>.
- A reply without a tool_call block is your final answer to the user.

# Tools
"""
_NO_TOOLS_SUPPORT = re.compile(
    r"(not|n't|no|un)[ -]?support|unsupported|requires? --|--jinja|enable-auto-tool-choice|not enabled|"
    r"not available",
    re.I,
)
_MENTIONS_TOOLS = re.compile(r"\btools?\b|tool[ _-]?(choice|use|call|calling)|function[ _-]?call", re.I)


def tool_mode(config: Config, model: str) -> ToolMode:
    settings = config.models.get(model)
    return settings.tools if settings is not None else "auto"


def rejects_tools(exc: ProviderError, model: str) -> bool:
    """Whether ``exc`` is a server saying it does not take ``tools`` (not any other bad request)."""
    if exc.kind not in ("bad_request", "server", "unknown", "not_found"):
        return False
    message = str(exc).replace(model, " ")
    return bool(_MENTIONS_TOOLS.search(message) and _NO_TOOLS_SUPPORT.search(message))


def new_call_id() -> str:
    """Nine letters and digits: an id every provider accepts (Mistral asks for exactly this)."""
    return "".join(secrets.choice(ID_ALPHABET) for _ in range(9))


# -- the request ---------------------------------------------------------------------------------


def describe_tools(tools: list[dict[str, Any]]) -> str:
    """The system prompt's section: the protocol, then each tool with its JSON schema."""
    sections = [PROTOCOL]
    for tool in tools:
        function = tool.get("function", tool)
        name = function.get("name", "")
        description = str(function.get("description") or "").strip()
        schema = json.dumps(function.get("parameters") or {}, ensure_ascii=False, separators=(",", ":"))
        sections.append(f"## {name}\n{description}\nArguments (JSON schema): {schema}\n")
    return "\n".join(sections).strip()


def render_call(name: str, arguments: str) -> str:
    """A call as the model is asked to write it (its own earlier calls, shown back to it)."""
    try:
        args: Any = json.loads(arguments or "{}")
    except ValueError:
        args = arguments
    body = json.dumps({"name": name, "arguments": args}, ensure_ascii=False)
    return f"```tool_call\n{body}\n```"


def _text_of(content: Any) -> str:
    if isinstance(content, list):
        return "".join(str(b.get("text", "")) for b in content if isinstance(b, dict))
    return "" if content is None else str(content)


def _unreadable(arguments: str) -> tuple[str, str]:
    """(problem, what the model wrote) of an unreadable call."""
    try:
        data = json.loads(arguments)
    except ValueError:
        data = {}
    data = data if isinstance(data, dict) else {}
    return str(data.get("problem") or "it could not be read"), str(data.get("text") or "")


def _result_text(name: str, arguments: str, content: Any) -> str:
    if name == UNREADABLE:
        problem, _ = _unreadable(arguments)
        return f"Error: your tool call could not be read: {problem}.\n{CALL_FORMAT}"
    return f'<tool_result name="{name}">\n{_text_of(content)}\n</tool_result>'


def _as_blocks(content: Any) -> list[dict[str, Any]]:
    if isinstance(content, list):
        return [b for b in content if isinstance(b, dict)]
    return [{"type": "text", "text": _text_of(content)}]


def _add_user(out: list[dict[str, Any]], content: Any) -> None:
    """Append a user message, merged into a user message just before it (roles must alternate on
    many local servers' chat templates)."""
    last = out[-1] if out else None
    if last is None or last.get("role") != "user":
        out.append({"role": "user", "content": content})
        return
    if isinstance(last.get("content"), str) and isinstance(content, str):
        last["content"] = f"{last['content']}\n\n{content}"
    else:
        last["content"] = [*_as_blocks(last.get("content")), *_as_blocks(content)]


def _with_tools_prompt(system: dict[str, Any], section: str) -> dict[str, Any]:
    content = system.get("content")
    if isinstance(content, list) and content and isinstance(content[-1], dict):
        last = {**content[-1], "text": f"{content[-1].get('text', '')}\n\n{section}"}
        return {**system, "content": [*content[:-1], last]}
    return {**system, "content": f"{_text_of(content)}\n\n{section}".strip()}


def to_text_messages(messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The OpenAI-format history with tool calls written as text and results as user messages."""
    out: list[dict[str, Any]] = []
    calls: dict[str, tuple[str, str]] = {}  # call id -> (name, arguments)
    for message in messages:
        role = message.get("role")
        if role == "system":
            out.append(_with_tools_prompt(message, describe_tools(tools)) if tools else message)
        elif role == "assistant" and message.get("tool_calls"):
            pieces = [_text_of(message.get("content")).strip()]
            for call in message["tool_calls"]:
                function = call.get("function") or {}
                name, arguments = str(function.get("name", "")), str(function.get("arguments") or "{}")
                calls[str(call.get("id", ""))] = (name, arguments)
                pieces.append(
                    _unreadable(arguments)[1] if name == UNREADABLE else render_call(name, arguments)
                )
            entry = {k: v for k, v in message.items() if k != "tool_calls"}
            entry["content"] = "\n\n".join(p for p in pieces if p) or "(no output)"
            out.append(entry)
        elif role == "tool":
            name, arguments = calls.get(str(message.get("tool_call_id", "")), ("tool", "{}"))
            _add_user(out, _result_text(name, arguments, message.get("content")))
        elif role == "user":
            _add_user(out, message.get("content"))
        else:
            out.append(message)
    return out


def to_text_request(request: ModelRequest) -> ModelRequest:
    extra = {k: v for k, v in request.extra.items() if k not in ("tool_choice", "parallel_tool_calls")}
    return replace(request, messages=to_text_messages(request.messages, request.tools), tools=[], extra=extra)


def to_raw_call(call: ParsedCall) -> RawToolCall:
    if call.problem:
        arguments = json.dumps({"problem": call.problem, "text": call.raw}, ensure_ascii=False)
        return RawToolCall(new_call_id(), UNREADABLE, arguments)
    return RawToolCall(new_call_id(), call.name, json.dumps(call.arguments, ensure_ascii=False))


# -- the provider ----------------------------------------------------------------------------------


async def _closing(stream: AsyncIterator[Chunk]) -> None:
    close = getattr(stream, "aclose", None)
    if close is not None:
        await close()


class TextToolProvider:
    """Wraps a provider: native tool calling where the model takes it, the text protocol elsewhere.

    ``mode_of(model)``: the configured mode; ``notify(message)``: tells the user once per model when
    ``auto`` switched it to text."""

    def __init__(
        self,
        inner: Provider,
        mode_of: Callable[[str], ToolMode] = lambda model: "auto",
        notify: Callable[[str], None] = lambda message: None,
    ) -> None:
        self.inner = inner
        self.mode_of = mode_of
        self.notify = notify
        self.switched: set[str] = set()  # models auto switched to text in this session

    def uses_text(self, model: str) -> bool:
        mode = self.mode_of(model)
        return mode == "text" or (mode == "auto" and model in self.switched)

    async def close(self) -> None:
        await self.inner.close()

    async def stream(self, request: ModelRequest) -> AsyncIterator[Chunk]:
        if self.uses_text(request.model):
            async for chunk in self._text_stream(request):
                yield chunk
            return
        stream = self.inner.stream(request)
        started = False
        try:
            async for chunk in stream:
                started = True
                yield chunk
            return
        except ProviderError as exc:
            if (
                started
                or not request.tools
                or self.mode_of(request.model) != "auto"
                or not rejects_tools(exc, request.model)
            ):
                raise
            reason = str(exc)
        finally:
            await _closing(stream)
        self.switched.add(request.model)
        self.notify(
            f"{request.model} does not take native tool calls ({reason}). This session goes on with the"
            " text tool protocol: the model writes its tool calls in its replies. To start with it, set"
            f' "models": {{"{request.model}": {{"tools": "text"}}}} in nbagent.json.'
        )
        async for chunk in self._text_stream(request):
            yield chunk

    async def _text_stream(self, request: ModelRequest) -> AsyncIterator[Chunk]:
        names = {str((t.get("function") or t).get("name", "")) for t in request.tools}
        reader = CallReader(names)
        calls: list[RawToolCall] = []
        native: list[RawToolCall] = []
        done: StepDone | None = None
        stream = self.inner.stream(to_text_request(request))
        index = 0

        def started() -> list[Chunk]:
            nonlocal index
            out: list[Chunk] = []
            for parsed in reader.calls[len(calls) :]:
                raw = to_raw_call(parsed)
                calls.append(raw)
                out.append(ToolCallStarted(index, raw.call_id, raw.name))
                index += 1
            return out

        try:
            async for chunk in stream:
                if isinstance(chunk, TextChunk):
                    visible = reader.feed(chunk.text)
                    if visible:
                        yield TextChunk(visible)
                    for event in started():
                        yield event
                elif isinstance(chunk, StepDone):
                    done = chunk
                    native = list(chunk.tool_calls)
                elif isinstance(chunk, ToolCallStarted):  # a server that parsed the calls itself
                    yield ToolCallStarted(index, chunk.call_id, chunk.name)
                    index += 1
                else:  # reasoning, and whatever else the provider streams, as it comes
                    yield chunk
        finally:
            await _closing(stream)
        rest = reader.finish()
        if rest:
            yield TextChunk(rest)
        for event in started():
            yield event
        all_calls = [*native, *calls]
        usage = done.usage if done is not None else Usage()
        finish = "tool_calls" if all_calls else (done.finish_reason if done is not None else "stop")
        yield StepDone(all_calls, usage, finish)
