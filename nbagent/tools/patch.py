"""apply_patch: the ``*** Begin Patch`` envelope. Parse all, check every hunk applies, then write all or nothing."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from nbagent.tools.base import PermissionQuery, Tool, ToolContext, ToolFailure, ToolResult
from nbagent.tools.files import (
    MAX_DIFF_CHARS,
    SNIFF_BYTES,
    closest_hint,
    emit_diff,
    is_binary,
    make_diff,
    missing_file_message,
    read_text,
    write_text,
)

BEGIN, END = "*** Begin Patch", "*** End Patch"
ADD, DELETE, UPDATE, MOVE = "*** Add File:", "*** Delete File:", "*** Update File:", "*** Move to:"
END_OF_FILE = "*** End of File"
_UNIFIED_HEADER = re.compile(r"^@@ -\d+(?:,\d+)? \+\d+(?:,\d+)? @@ ?")
_HEREDOC = re.compile(r"""^(?:apply_patch\s+)?<<-?\s*['"]?(\w+)['"]?\s*$""")


class PatchError(ToolFailure):
    """The patch is malformed or does not apply; nothing was written."""


@dataclass
class Hunk:
    header: str | None  # the text after "@@": a line that locates the hunk
    line: int  # where the hunk starts in the patch (1-based)
    ops: list[tuple[str, str]] = field(default_factory=list)  # (" " | "-" | "+", text)
    end_of_file: bool = False


@dataclass
class FileChange:
    kind: Literal["add", "delete", "update"]
    path: str
    line: int
    move_to: str | None = None
    added: list[str] = field(default_factory=list)
    hunks: list[Hunk] = field(default_factory=list)


# ---------------------------------------------------------------------------------------------- parsing


def _unwrap(lines: list[str]) -> tuple[list[str], int]:
    """Drop a markdown fence or a shell heredoc around the envelope; return the lines and the offset."""
    offset = 0
    while lines and not lines[0].strip():
        lines, offset = lines[1:], offset + 1
    while lines and not lines[-1].strip():
        lines = lines[:-1]
    if len(lines) >= 2 and lines[0].startswith("```") and lines[-1].strip() == "```":
        lines, offset = lines[1:-1], offset + 1
    if len(lines) >= 2:
        heredoc = _HEREDOC.match(lines[0].strip())
        if heredoc and lines[-1].strip() == heredoc.group(1):
            lines, offset = lines[1:-1], offset + 1
    return lines, offset


def parse_patch(text: str) -> list[FileChange]:
    raw, offset = _unwrap(text.splitlines())
    if not raw or raw[0].strip() != BEGIN:
        raise PatchError(f"The patch must start with the line '{BEGIN}'.")
    if raw[-1].strip() != END:
        raise PatchError(f"The patch must end with the line '{END}'.")
    lines = raw[1:-1]
    changes: list[FileChange] = []
    i = 0

    def number(index: int) -> int:
        return index + offset + 2  # 1-based, after the Begin line

    def path_after(prefix: str, line: str, index: int) -> str:
        path = line[len(prefix) :].strip()
        if not path:
            raise PatchError(f"Patch line {number(index)}: '{prefix}' needs a path.")
        return path

    while i < len(lines):
        line = lines[i]
        if not line.strip() or line.strip() == END_OF_FILE:
            i += 1
            continue
        if line.startswith(ADD):
            change = FileChange("add", path_after(ADD, line, i), number(i))
            i += 1
            pending_blank = 0
            while i < len(lines) and not lines[i].startswith("*** "):
                if lines[i].startswith("+"):
                    change.added += [""] * pending_blank + [lines[i][1:]]
                    pending_blank = 0
                elif not lines[i].strip():
                    pending_blank += 1
                else:
                    raise PatchError(
                        f"Patch line {number(i)}: every line of an added file must start with '+'"
                        f" (in Add File: {change.path}), got {lines[i]!r}."
                    )
                i += 1
            changes.append(change)
        elif line.startswith(DELETE):
            changes.append(FileChange("delete", path_after(DELETE, line, i), number(i)))
            i += 1
        elif line.startswith(UPDATE):
            change = FileChange("update", path_after(UPDATE, line, i), number(i))
            i += 1
            if i < len(lines) and lines[i].startswith(MOVE):
                change.move_to = path_after(MOVE, lines[i], i)
                i += 1
            i = _parse_hunks(lines, i, change, number)
            if not change.hunks and change.move_to is None:
                raise PatchError(f"Update File: {change.path} (patch line {change.line}) has no hunks.")
            changes.append(change)
        else:
            raise PatchError(
                f"Patch line {number(i)}: expected '{ADD} path', '{DELETE} path' or '{UPDATE} path',"
                f" got {line!r}."
            )
    if not changes:
        raise PatchError("The patch contains no file operations.")
    return changes


def _parse_hunks(lines: list[str], i: int, change: FileChange, number: Callable[[int], int]) -> int:
    hunk: Hunk | None = None
    blanks: list[int] = []  # ops of the current hunk that came from bare empty lines

    def close() -> None:
        if hunk is None:
            return
        while blanks and blanks[-1] == len(hunk.ops) - 1:  # bare empty lines at a hunk's end are spacing
            hunk.ops.pop()
            blanks.pop()
        if not hunk.ops:
            return
        if not any(op != " " for op, _ in hunk.ops):
            raise PatchError(
                f"Patch line {hunk.line}: a hunk of Update File: {change.path} changes nothing"
                " (it needs '-' or '+' lines)."
            )
        change.hunks.append(hunk)

    while i < len(lines):
        line = lines[i]
        if line.strip() == END_OF_FILE:
            if hunk is None:
                raise PatchError(f"Patch line {number(i)}: '{END_OF_FILE}' must follow a hunk.")
            hunk.end_of_file = True
        elif line.startswith("*** "):
            break
        elif line.startswith("@@"):
            close()
            header = _UNIFIED_HEADER.sub("", line) if _UNIFIED_HEADER.match(line) else line[2:]
            hunk, blanks = Hunk(header.strip() or None, number(i)), []
        elif line[:1] in (" ", "-", "+") or not line:
            if hunk is None:
                if change.hunks:
                    raise PatchError(f"Patch line {number(i)}: hunks after the first must start with '@@'.")
                hunk = Hunk(None, number(i))
            if not line:
                blanks.append(len(hunk.ops))
                hunk.ops.append((" ", ""))
            else:
                hunk.ops.append((line[0], line[1:]))
        else:
            raise PatchError(
                f"Patch line {number(i)}: unexpected line in Update File: {change.path}: {line!r}."
                " Hunk lines start with ' ' (context), '-' (remove) or '+' (add); hunks start with '@@'."
            )
        i += 1
    close()
    return i


# ---------------------------------------------------------------------------------------------- applying


_NORMALISERS: tuple[Callable[[str], str], ...] = (lambda s: s, str.rstrip, str.strip)


def seek(lines: list[str], pattern: list[str], start: int, end_of_file: bool = False) -> int | None:
    """Where ``pattern`` occurs in ``lines`` at or after ``start``: exact, then ignoring trailing, then
    leading and trailing whitespace. With ``end_of_file``, a match at the very end is preferred."""
    n = len(pattern)
    if n > len(lines):
        return None
    order = list(range(start, len(lines) - n + 1))
    if end_of_file:
        order = [len(lines) - n, *order]
    for norm in _NORMALISERS:
        wanted = [norm(p) for p in pattern]
        for i in order:
            if all(norm(lines[i + j]) == wanted[j] for j in range(n)):
                return i
    return None


def apply_hunks(text: str, change: FileChange, shown: str) -> str:
    """The new content of a file after its hunks; ``PatchError`` naming the hunk that does not apply."""
    crlf = "\r\n" in text and text.count("\r\n") == text.count("\n")
    eol = "\r\n" if crlf else "\n"
    body = text.replace("\r\n", "\n") if crlf else text
    lines = body.split("\n") if body else []
    trailing_newline = body.endswith("\n") or not body
    if body.endswith("\n"):
        lines.pop()
    edits: list[tuple[int, int, list[str]]] = []
    position = 0
    total = len(change.hunks)
    for number, hunk in enumerate(change.hunks, 1):
        name = f"Update File: {shown}: hunk {number} of {total} (patch line {hunk.line})"
        if hunk.header is not None:
            found = seek(lines, [hunk.header], position)
            if found is None:  # "@@ def handler" for "def handler(request):"
                found = next(
                    (
                        i
                        for i in range(position, len(lines))
                        if lines[i].strip().startswith(hunk.header.strip())
                    ),
                    None,
                )
            if found is None:
                hint = closest_hint(lines, [hunk.header], "The @@ line", position)
                raise PatchError(
                    f"{name} did not apply: its @@ line {hunk.header!r} was not found"
                    f"{f' after line {position}' if position else ''}. {hint}\nNo file was changed."
                )
            position = found + 1
        ops = hunk.ops
        old = [text for op, text in ops if op != "+"]
        if not old:  # pure addition: after the @@ line, or at the end of the file
            at = position if hunk.header is not None else len(lines)
            edits.append((at, at, [text for _, text in ops]))
            continue
        found = seek(lines, old, position, hunk.end_of_file)
        if found is None and ops[-1] == (" ", ""):
            ops = ops[:-1]
            old = old[:-1]
            found = seek(lines, old, position, hunk.end_of_file) if old else None
        if found is None:
            earlier = seek(lines, old, 0) if old else None
            if earlier is not None:
                why = (
                    f"its lines are at line {earlier + 1}, before the previous hunk; put hunks in file order"
                    " and do not repeat one."
                )
            else:
                why = "these lines were not found" + (f" after line {position}" if position else "") + ":\n"
                why += "\n".join(old[:30]) + ("\n..." if len(old) > 30 else "")
                why += "\n" + closest_hint(lines, old, "The hunk", position)
            raise PatchError(
                f"{name} did not apply: {why}\nNo file was changed. Read the file and retry with its exact lines."
            )
        segment: list[str] = []
        j = found
        for op, text in ops:
            if op == " ":
                segment.append(lines[j])  # keep the file's own context line (whitespace included)
                j += 1
            elif op == "-":
                j += 1
            else:
                segment.append(text)
        edits.append((found, j, segment))
        position = j
    for start, stop, segment in sorted(edits, key=lambda e: (e[0], e[1]), reverse=True):
        lines[start:stop] = segment
    result = eol.join(lines)
    if lines and trailing_newline:
        result += eol
    return result


@dataclass
class Planned:
    change: FileChange
    source: Path
    target: Path
    old: str | None  # None: the file did not exist (or is binary, for a delete)
    new: str | None  # None: the file is deleted


def plan(changes: list[FileChange], ctx: ToolContext) -> list[Planned]:
    """Check every change against the disk and compute the new contents; write nothing."""
    planned: list[Planned] = []
    seen: dict[Path, str] = {}

    def claim(path: Path, what: str) -> None:
        if path in seen:
            raise PatchError(
                f"{ctx.display(path)} appears twice in the patch ({seen[path]} and {what}). "
                "Put all its changes under one Update File."
            )
        seen[path] = what

    for change in changes:
        source = ctx.resolve(change.path)
        shown = ctx.display(source)
        label = {"add": "Add File", "delete": "Delete File", "update": "Update File"}[change.kind]
        claim(source, f"{label}: {change.path}")
        if source.is_dir():
            raise PatchError(f"{label}: {shown} is a directory; patches change files.")
        if change.kind == "add":
            old = None
            if source.exists():
                ctx.files.check_fresh(source)  # overwriting an existing file needs a read, like write
                old = read_text(source, ctx)
            new = "".join(line + "\n" for line in change.added)
            planned.append(Planned(change, source, source, old, new))
            continue
        if not source.exists():
            raise PatchError(f"{label}: {missing_file_message(source, ctx)}")
        if change.kind == "delete":
            data = source.read_bytes()
            text = None if is_binary(data[:SNIFF_BYTES]) else data.decode("utf-8", errors="replace")
            planned.append(Planned(change, source, source, text, None))
            continue
        ctx.files.check_fresh(source)
        old = read_text(source, ctx)
        new = apply_hunks(old, change, shown) if change.hunks else old
        target = source
        if change.move_to is not None:
            target = ctx.resolve(change.move_to)
            if target != source:
                claim(target, f"Move to: {change.move_to}")
                if target.exists():
                    raise PatchError(
                        f"Move to: {ctx.display(target)} already exists. Delete it first, or move elsewhere."
                    )
        planned.append(Planned(change, source, target, old, new))
    return planned


def write_all(planned: list[Planned], ctx: ToolContext) -> None:
    """Write every planned change; on an error put back what was already written."""
    backups: dict[Path, bytes | None] = {}
    try:
        for item in planned:
            for path in (item.source, item.target):
                if path not in backups:
                    ctx.before_change(path)
                    backups[path] = path.read_bytes() if path.exists() else None
            if item.new is None:
                item.source.unlink()
                continue
            write_text(item.target, item.new)
            if item.target != item.source:
                item.source.unlink()
    except OSError as exc:
        for path, data in backups.items():
            try:
                if data is None:
                    path.unlink(missing_ok=True)
                else:
                    path.write_bytes(data)
            except OSError:
                pass
        where = ctx.display(Path(exc.filename)) if exc.filename else "a file"
        raise ToolFailure(
            f"Writing {where} failed ({exc.strerror or exc}); files already written were restored."
        ) from exc


# ---------------------------------------------------------------------------------------------- the tool


class ApplyPatchParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    patch: str = Field(description="The whole patch, from '*** Begin Patch' to '*** End Patch'")


class ApplyPatchTool(Tool[ApplyPatchParams]):
    name = "apply_patch"
    params = ApplyPatchParams

    async def run(self, args: ApplyPatchParams, ctx: ToolContext) -> ToolResult:
        planned = plan(parse_patch(args.patch), ctx)
        summary: list[str] = []
        diffs: list[tuple[str, str, int, int]] = []
        for item in planned:
            source, target = ctx.display(item.source), ctx.display(item.target)
            diff, additions, deletions = make_diff(item.old or "", item.new or "", source, target)
            if item.new is None and item.old is None:
                diff = f"Binary file {source} deleted\n"
            diffs.append((target, diff, additions, deletions))
            counts = f" (+{additions} -{deletions})"
            if item.change.kind == "add":
                summary.append(f"A {target}{counts}")
            elif item.new is None:
                summary.append(f"D {source}")
            elif target != source:
                summary.append(f"R {source} -> {target}{counts}")
            else:
                summary.append(f"M {target}{counts}")
        paths = list(dict.fromkeys(p for item in planned for p in (item.source, item.target)))
        shown = [ctx.display(p) for p in paths]
        combined = "".join(d for _, d, _, _ in diffs)
        if len(combined) > MAX_DIFF_CHARS:
            combined = combined[:MAX_DIFF_CHARS] + "\n... [diff truncated]\n"
        await ctx.ask(
            PermissionQuery(
                permission="edit",
                patterns=shown,
                title=f"Apply patch to {', '.join(shown)}",
                metadata={"diff": combined},
            )
        )
        write_all(planned, ctx)
        for item in planned:
            if item.new is None:
                ctx.files.stamps.pop(item.source, None)
            else:
                ctx.files.stamps.pop(item.source, None)
                ctx.files.record(item.target)
        for target, diff, additions, deletions in diffs:
            emit_diff(ctx, target, diff, additions, deletions)
        noun = "file" if len(planned) == 1 else "files"
        return ToolResult(
            output=f"Applied the patch to {len(planned)} {noun}:\n" + "\n".join(summary),
            title=", ".join(shown) if len(shown) <= 3 else f"{len(shown)} files",
            metadata={
                "diff": combined,
                "files": [{"path": t, "additions": a, "deletions": d} for t, _, a, d in diffs],
            },
        )
