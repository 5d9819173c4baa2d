"""What the scripted model answers: replies, errors and broken streams, chosen per request."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass
class ToolCallSpec:
    name: str
    arguments: dict[str, Any] | str  # a str is sent verbatim (lets tests send broken JSON)
    id: str = ""

    def arguments_json(self) -> str:
        return self.arguments if isinstance(self.arguments, str) else json.dumps(self.arguments)


@dataclass
class Reply:
    text: str = ""
    reasoning: str = ""
    tool_calls: list[ToolCallSpec] = field(default_factory=list)
    delay: float = 0.0  # seconds between streamed chunks


@dataclass
class ErrorReply:
    status: int
    message: str = "scripted error"
    headers: dict[str, str] = field(default_factory=dict)
    error_type: str = ""


@dataclass
class CutStream:
    """Start streaming ``reply`` and drop the connection after ``after_chunks`` chunks."""

    reply: Reply
    after_chunks: int = 2


@dataclass
class EmptyStream:
    """A 200 answer with nothing in it: no text, no call, no finish reason (streamed or whole)."""


@dataclass
class ErrorBody:
    """An HTTP 200 whose body is an error (``listed``: Google's ``[{"error": ...}]``)."""

    message: str = "upstream overloaded"
    error_type: str = "server_error"
    listed: bool = False

    def payload(self) -> Any:
        body = {"error": {"message": self.message, "type": self.error_type, "code": None}}
        return [body] if self.listed else body


Answer = Reply | ErrorReply | CutStream | EmptyStream | ErrorBody


def tool_results(request: dict[str, Any]) -> list[str]:
    """The text of the tool results the request ends with: the results of the model's last tool calls
    (OpenAI ``tool`` messages, Anthropic ``tool_result`` blocks); empty when it ends otherwise."""
    messages = request.get("messages") or []
    out: list[str] = []
    for message in reversed(messages):
        content = message.get("content")
        if message.get("role") == "tool":
            out.append(_text(content))
            continue
        if message.get("role") == "user" and isinstance(content, list):
            blocks = [b for b in content if isinstance(b, dict) and b.get("type") == "tool_result"]
            if (
                not blocks
                and not out
                and any(isinstance(b, dict) and b.get("type") == "image_url" for b in content)
            ):
                continue  # the images of the tool results (OpenAI's tool messages carry no images)
            out.extend(_text(b.get("content")) for b in reversed(blocks))
        break
    return out[::-1]


def _text(content: Any) -> str:
    if isinstance(content, list):
        return "".join(str(c.get("text", "")) for c in content if isinstance(c, dict))
    return str(content or "")


@dataclass
class OnToolResults:
    """A step whose reply depends on what the tools really returned: ``choose(results)`` picks it (the
    results as :func:`tool_results` gives them), so a scripted answer can fit a refusal or a failure."""

    choose: Callable[[list[str]], Answer]

    def resolve(self, request: dict[str, Any]) -> Answer:
        return self.choose(tool_results(request))


Step = Answer | OnToolResults


class Script(Protocol):
    def answer(self, request: dict[str, Any], protocol: str) -> Answer: ...


class ListScript:
    """Answers in order (an :class:`OnToolResults` step chooses from the request's tool results); past
    the end, answers ``fallback`` (a plain text reply by default)."""

    def __init__(self, answers: Iterable[Step], fallback: Answer | None = None) -> None:
        self._answers = list(answers)
        self._lock = threading.Lock()
        self._index = 0
        self.fallback = fallback or Reply(text="(the scripted model has no more replies)")

    def answer(self, request: dict[str, Any], protocol: str) -> Answer:
        with self._lock:
            if self._index >= len(self._answers):
                return self.fallback
            self._index += 1
            step = self._answers[self._index - 1]
        return step.resolve(request) if isinstance(step, OnToolResults) else step

    @property
    def remaining(self) -> int:
        return len(self._answers) - self._index


class FunctionScript:
    """Answers by calling ``fn(request, protocol)``: for replies that depend on the conversation."""

    def __init__(self, fn: Callable[[dict[str, Any], str], Answer]) -> None:
        self._fn = fn

    def answer(self, request: dict[str, Any], protocol: str) -> Answer:
        return self._fn(request, protocol)
