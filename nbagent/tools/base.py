"""The tool protocol: typed parameters, a description file beside the tool, a bounded result."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, ClassVar, Generic, TypeVar

from pydantic import BaseModel, Field

from nbagent.core.errors import PermissionRejected, ToolFailure
from nbagent.core.events import Event
from nbagent.core.messages import Attachment
from nbagent.core.permission_types import PermissionQuery
from nbagent.core.private import cache_dir
from nbagent.tools.shell_env import ShellOptions
from nbagent.tools.spill import private_dir

__all__ = [
    "PermissionQuery",
    "PermissionRejected",
    "Tool",
    "ToolContext",
    "ToolFailure",
    "ToolResult",
]

DESCRIPTIONS = Path(__file__).parent / "descriptions"

# Every result the model sees is bounded.
MAX_OUTPUT_CHARS = 30_000
MAX_OUTPUT_LINES = 2_000


class ToolResult(BaseModel):
    output: str
    title: str = ""
    metadata: dict[str, Any] = Field(default_factory=dict)
    attachments: list[Attachment] = Field(default_factory=list)


@dataclass
class FileStamp:
    mtime_ns: int
    size: int


@dataclass
class FileTracker:
    """Which files the model has read in this session, and how they looked then."""

    stamps: dict[Path, FileStamp] = field(default_factory=dict)

    def record(self, path: Path) -> None:
        st = path.stat()
        self.stamps[path] = FileStamp(st.st_mtime_ns, st.st_size)

    def check_fresh(self, path: Path) -> None:
        """Refuse to change a file the model has not read, or that changed since it read it."""
        stamp = self.stamps.get(path)
        if stamp is None:
            raise ToolFailure(f"You must read {path} before changing it. Use the read tool first.")
        st = path.stat()
        if (st.st_mtime_ns, st.st_size) != (stamp.mtime_ns, stamp.size):
            raise ToolFailure(
                f"{path} changed on disk since you last read it. Read it again before changing it."
            )


Emit = Callable[[Event], None]
Ask = Callable[[PermissionQuery], Awaitable[None]]


async def _allow_all(_: PermissionQuery) -> None:
    return None


def _screen_allow(_: PermissionQuery) -> str:
    return "allow"


def default_output_dir() -> Path:
    """Where full tool outputs (and pruned ones) are saved for the model to read back: private to the
    user (``tools/spill.py``: 0700 folders, 0600 files under nbagent's cache folder), created on use."""
    return cache_dir() / "tool-output"


@dataclass
class ToolContext:
    root: Path
    session_id: str = ""
    call_id: str = ""
    files: FileTracker = field(default_factory=FileTracker)
    emit: Emit = field(default=lambda _e: None)
    ask: Ask = field(default=_allow_all)
    # What the rules would decide ("allow", "ask" or "deny") without asking anyone: tools that touch many
    # paths (a recursive grep, a glob) screen each one and leave out the protected or outside ones.
    screen: Callable[[PermissionQuery], str] = field(default=_screen_allow)
    # Per-session mutable state that tools share (todos, background shells, ...), keyed by tool family.
    state: dict[str, Any] = field(default_factory=dict)
    # Called with a file's path before a tool changes it (undo keeps the old content).
    before_change: Callable[[Path], None] = field(default=lambda _p: None)
    # Wraps a command's argv before it runs (the bubblewrap sandbox, when enabled).
    wrap_argv: Callable[[list[str]], list[str]] = field(default=lambda argv: argv)
    output_dir: Path = field(default_factory=lambda: default_output_dir())
    # Shell commands: which secret-looking variables pass, the output cap, the sandbox's after-check.
    shell: ShellOptions = field(default_factory=ShellOptions)

    def resolve(self, path: str) -> Path:
        """A path as the model gave it, absolute or relative to the project root, normalised."""
        p = Path(os.path.expanduser(path))
        if not p.is_absolute():
            p = self.root / p
        return Path(os.path.normpath(p))

    def display(self, path: Path) -> str:
        """The path as shown to the user: relative to the project root when inside it."""
        try:
            return str(path.relative_to(self.root))
        except ValueError:
            return str(path)

    def inside_root(self, path: Path) -> bool:
        try:
            path.resolve().relative_to(self.root.resolve())
        except ValueError:
            return False
        return True


P = TypeVar("P", bound=BaseModel)


class Tool(Generic[P]):
    """A tool: a name, a pydantic model of its parameters and an async ``run``."""

    name: ClassVar[str]
    params: type[P]
    read_only: ClassVar[bool] = False

    @property
    def description(self) -> str:
        return load_description(self.name)

    def schema(self) -> dict[str, Any]:
        """The function definition the model sees (OpenAI tools format)."""
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": parameters_schema(self.params),
            },
        }

    def parse(self, arguments: dict[str, Any]) -> P:
        return self.params.model_validate(arguments)

    async def run(self, args: P, ctx: ToolContext) -> ToolResult:
        raise NotImplementedError


@cache
def load_description(name: str) -> str:
    return (DESCRIPTIONS / f"{name}.md").read_text(encoding="utf-8").strip()


def parameters_schema(model: type[BaseModel]) -> dict[str, Any]:
    """A compact JSON schema for a parameters model: no titles, inline, no pydantic noise."""
    schema = model.model_json_schema()

    def clean(node: Any) -> Any:
        if isinstance(node, dict):
            return {k: clean(v) for k, v in node.items() if k != "title"}
        if isinstance(node, list):
            return [clean(v) for v in node]
        return node

    cleaned: dict[str, Any] = clean(schema)
    cleaned.setdefault("properties", {})
    cleaned["additionalProperties"] = False
    return cleaned


def bound_output(
    text: str,
    ctx: ToolContext,
    *,
    max_chars: int = MAX_OUTPUT_CHARS,
    max_lines: int = MAX_OUTPUT_LINES,
    label: str = "output",
) -> str:
    """Keep the head and the tail of a long output; save the whole to a file whose path is returned."""
    lines = text.splitlines(keepends=True)
    if len(text) <= max_chars and len(lines) <= max_lines:
        return text
    private_dir(ctx.output_dir)
    fd, name = tempfile.mkstemp(prefix=f"{label}-", suffix=".txt", dir=ctx.output_dir)
    with os.fdopen(fd, "w", encoding="utf-8", errors="replace") as fh:
        fh.write(text)
    half_chars = max_chars // 2
    half_lines = max_lines // 2
    head = "".join(lines[:half_lines])[:half_chars]
    tail = "".join(lines[-half_lines:])[-half_chars:]
    omitted = len(text) - len(head) - len(tail)
    return (
        f"{head}\n... [{omitted} characters omitted; full {label} ({len(lines)} lines) saved to {name};"
        f" read it with the read tool or grep] ...\n{tail}"
    )
