"""Markdown files with a YAML frontmatter (agents, skills, commands): the metadata, the body, and where.

The frontmatter is read with PyYAML's safe loader (no tags, no objects), without aliases (a tiny file
must not expand into a huge one), from a file of at most ``MAX_FILE_BYTES``. Claude Code's files often
carry an unquoted ``description: Use when: ...``, which strict YAML rejects; when the strict parse
fails, a second pass quotes such plain top-level values, and the file loads with a warning. Anything
else that does not parse is a ``ConfigError`` naming the file and the line.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml  # type: ignore[import-untyped]

from nbagent.core.errors import ConfigError

MAX_FILE_BYTES = 256 * 1024
_FENCE = re.compile(r"^---[ \t]*$")
_PLAIN_VALUE = re.compile(r"^([A-Za-z_][\w-]*):[ \t]+(?![\"'|>\[{&*!])(.*:\s.*)$")


@dataclass
class Frontmatter:
    path: Path
    data: dict[str, Any]
    body: str
    lines: dict[str, int] = field(default_factory=dict)  # top-level key -> line in the file (1-based)
    warnings: list[str] = field(default_factory=list)

    def where(self, key: str | None = None) -> str:
        """``file:line`` of a key (the file's first line when unknown), for messages."""
        return f"{self.path}:{self.lines.get(key, 1) if key else 1}"


def read_text(path: Path) -> str:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot be read ({exc.strerror or exc})", "Fix its permissions.") from exc
    if len(raw) > MAX_FILE_BYTES:
        raise ConfigError(
            f"{path}: {len(raw)} bytes; definitions are limited to {MAX_FILE_BYTES // 1024} KB",
            "Move long reference material into separate files and point to them.",
        )
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ConfigError(f"{path}:{line}: not valid UTF-8", "Save the file as UTF-8.") from None


def parse_file(path: Path) -> Frontmatter:
    return parse_text(read_text(path), path)


def parse_text(text: str, path: Path) -> Frontmatter:
    """Split ``text`` into frontmatter and body. No frontmatter: empty data, the whole text as body."""
    lines = text.splitlines(keepends=True)
    if not lines or not _FENCE.match(lines[0].rstrip("\r\n")):
        return Frontmatter(path, {}, text.strip())
    end = next((i for i in range(1, len(lines)) if _FENCE.match(lines[i].rstrip("\r\n"))), None)
    if end is None:
        raise ConfigError(
            f"{path}:1: the frontmatter opened by '---' is never closed",
            "End the metadata block with a line holding only '---'.",
        )
    yaml_text = "".join(lines[1:end])
    body = "".join(lines[end + 1 :]).strip()
    out = Frontmatter(path, {}, body)
    try:
        node = _compose(yaml_text)
    except yaml.YAMLError as strict_error:
        fixed = _quote_plain_values(yaml_text)
        if fixed == yaml_text:
            raise _yaml_error(path, strict_error) from None
        try:
            node = _compose(fixed)
        except yaml.YAMLError:
            raise _yaml_error(path, strict_error) from None
        out.warnings.append(
            f"{_line_of(path, strict_error)}: a value containing ': ' is not quoted; read as plain text"
            " (quote it to silence this warning)"
        )
    if node is None:
        return out
    if not isinstance(node, yaml.MappingNode):
        raise ConfigError(
            f"{path}:2: the frontmatter must be 'key: value' lines, got a {node.id}",
            "Write the metadata as 'name: value' lines between the '---' fences.",
        )
    data = _construct(node, path)
    for key_node, _ in node.value:
        if isinstance(key_node.value, str):
            out.lines[key_node.value] = key_node.start_mark.line + 2  # +1 for 1-based, +1 for the fence
    out.data = data
    return out


def _compose(text: str) -> Any:
    loader = yaml.SafeLoader(text)
    try:
        for event in yaml.parse(text, Loader=yaml.SafeLoader):
            if isinstance(event, yaml.AliasEvent):
                raise yaml.YAMLError(f"aliases (*{event.anchor}) are not supported in a frontmatter")
        return loader.get_single_node()
    finally:
        loader.dispose()


def _construct(node: Any, path: Path) -> dict[str, Any]:
    loader = yaml.SafeLoader("")
    try:
        data = loader.construct_document(node)
    except yaml.YAMLError as exc:
        raise _yaml_error(path, exc) from None
    finally:
        loader.dispose()
    # Dates and other YAML-only types become strings: what crosses on is JSON data.
    result: dict[str, Any] = json.loads(json.dumps(data, default=str))
    return result


def _quote_plain_values(text: str) -> str:
    out = []
    for line in text.splitlines(keepends=True):
        m = _PLAIN_VALUE.match(line.rstrip("\r\n"))
        if m:
            line = f"{m.group(1)}: {json.dumps(m.group(2).strip())}\n"
        out.append(line)
    return "".join(out)


def _line_of(path: Path, exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    line = mark.line + 2 if mark is not None else 2
    return f"{path}:{line}"


def _yaml_error(path: Path, exc: yaml.YAMLError) -> ConfigError:
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    return ConfigError(
        f"{_line_of(path, exc)}: the frontmatter is not valid YAML ({problem})",
        "Fix the line: quote values that contain ':' or '#', indent list items under their key.",
    )
