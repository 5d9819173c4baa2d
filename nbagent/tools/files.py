"""The file tools: read, write, edit.

Their shared helpers (binary detection, diffs, the closest-match hint, exact text read and write), also
used by apply_patch, live in :mod:`nbagent.tools.file_helpers` and are re-exported here.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
from pathlib import Path
from typing import Any, NamedTuple

from pydantic import BaseModel, ConfigDict, Field

from nbagent.core.messages import Attachment
from nbagent.tools.base import PermissionQuery, Tool, ToolContext, ToolFailure, ToolResult, bound_output
from nbagent.tools.file_helpers import (
    MAX_DIFF_CHARS,
    MAX_LINE_CHARS,
    SNIFF_BYTES,
    Closest,
    closest_hint,
    emit_diff,
    find_closest,
    image_type,
    is_binary,
    looks_binary,
    make_diff,
    missing_file_message,
    numbered,
    read_text,
    squash,
    write_text,
)
from nbagent.tools.notebook_live import OpenNotebook, live_cells, open_notebook, ran_source_of
from nbagent.tools.notebook_view import MAX_IMAGE_BYTES, NB_MAX_IMAGES, NB_OUTPUT_CHARS, render_notebook
from nbagent.tools.screening import path_patterns

__all__ = [
    "DEFAULT_LIMIT",
    "IMAGE_SUFFIXES",
    "MAX_DIFF_CHARS",
    "MAX_IMAGE_BYTES",
    "MAX_LINE_CHARS",
    "MAX_READ_CHARS",
    "NB_MAX_IMAGES",
    "NB_OUTPUT_CHARS",
    "SNIFF_BYTES",
    "Closest",
    "EditParams",
    "EditTool",
    "ReadParams",
    "ReadTool",
    "WriteParams",
    "WriteTool",
    "closest_hint",
    "emit_diff",
    "find_closest",
    "image_type",
    "is_binary",
    "looks_binary",
    "make_diff",
    "missing_file_message",
    "numbered",
    "read_text",
    "squash",
    "write_text",
]

DEFAULT_LIMIT = 2000  # lines per read
MAX_READ_CHARS = 50_000  # one read returns at most this much text; the rest is read on with offset

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".gif", ".webp")


# ---------------------------------------------------------------------------------------------- read


class ReadParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    file_path: str = Field(
        description="Path to the file or directory (absolute, or relative to the project root)"
    )
    offset: int | None = Field(default=None, ge=1, description="1-based line to start reading from")
    limit: int | None = Field(
        default=None, ge=1, description=f"Number of lines to read (default {DEFAULT_LIMIT})"
    )


_INVALID_BYTE = re.compile("[\udc80-\udcff]")  # a byte that is not UTF-8, as surrogateescape decodes it


class _Window(NamedTuple):
    lines: list[str]
    total: int  # lines in the file
    capped: bool  # the character budget cut the window short
    replaced: int  # bytes of the file that are not valid UTF-8 (shown as U+FFFD)


def _read_window(path: Path, start: int, limit: int) -> _Window:
    """Lines ``start``.. (1-based, at most ``limit`` and ``MAX_READ_CHARS``) of a text file."""
    window: list[str] = []
    chars = 0
    capped = False
    total = 0
    replaced = 0
    with path.open("r", encoding="utf-8", errors="surrogateescape", newline="") as fh:
        for total, raw in enumerate(fh, 1):
            bad = 0 if raw.isascii() else len(_INVALID_BYTE.findall(raw))
            replaced += bad
            if total < start or len(window) >= limit or capped:
                continue
            line = raw.rstrip("\r\n")
            if bad:
                line = _INVALID_BYTE.sub("\ufffd", line)
            size = min(len(line), MAX_LINE_CHARS) + 8
            if window and chars + size > MAX_READ_CHARS:
                capped = True
                continue
            window.append(line)
            chars += size
    return _Window(window, total, capped, replaced)


class ReadTool(Tool[ReadParams]):
    name = "read"
    params = ReadParams
    read_only = True

    async def run(self, args: ReadParams, ctx: ToolContext) -> ToolResult:
        path = ctx.resolve(args.file_path)
        shown = ctx.display(path)
        # asked as named and where a symbolic link really leads: a link to .env asks like .env
        await ctx.ask(
            PermissionQuery(permission="read", patterns=path_patterns(ctx, path), title=f"Read {shown}")
        )
        opened = None
        if path.suffix.lower() == ".ipynb":
            opened = await open_notebook(ctx, path)
            live = await self._live_notebook(opened, path, args, ctx) if opened is not None else None
            if live is not None:
                return live
        if not path.exists():
            raise ToolFailure(missing_file_message(path, ctx))
        if path.is_dir():
            return self._directory(path, args, ctx)
        if not path.is_file():
            raise ToolFailure(f"{shown} is not a regular file.")
        with path.open("rb") as fh:
            head = fh.read(SNIFF_BYTES)
        media = image_type(head)
        if media is not None:
            return self._image(path, media, ctx)
        if path.suffix.lower() in IMAGE_SUFFIXES:
            raise ToolFailure(
                f"{shown} has an image extension but is not a valid png, jpeg, gif or webp image."
            )
        if looks_binary(head):
            raise ToolFailure(
                f"Cannot read {shown}: it is a binary file. "
                "Inspect it with bash (e.g. `file`, `xxd | head`) if you need to."
            )
        if path.suffix.lower() == ".ipynb":
            result = self._notebook(path, args, ctx, ran_source_of(ctx) if opened is not None else None)
            if result is not None:
                return result
        if not head:
            ctx.files.record(path)
            return ToolResult(output=f"{shown} is empty (0 lines).", title=shown, metadata={"lines": 0})
        start = args.offset or 1
        limit = args.limit or DEFAULT_LIMIT
        window, total, capped, replaced = await asyncio.to_thread(_read_window, path, start, limit)
        if start > total:
            raise ToolFailure(
                f"offset {start} is past the end of {shown}, which has {total} lines. Use a smaller offset."
            )
        ctx.files.record(path)
        last = start + len(window) - 1
        output = numbered(window, start)
        if last < total:
            why = f" (output capped at {MAX_READ_CHARS // 1000} KB)" if capped else ""
            output += (
                f"\n\n(Showing lines {start}-{last} of {total}{why}. Use offset={last + 1} to read more.)"
            )
        if replaced:
            output += (
                f"\n\n(note: not valid UTF-8, {replaced} bytes replaced with \ufffd; the file is probably in"
                " another encoding, such as Latin-1)"
            )
        return ToolResult(
            output=output,
            title=shown,
            metadata={
                "lines": total,
                "start": start,
                "end": last,
                "truncated": last < total,
                "replaced_bytes": replaced,
            },
        )

    def _directory(self, path: Path, args: ReadParams, ctx: ToolContext) -> ToolResult:
        shown = ctx.display(path)
        try:
            entries = sorted(
                (e.name + "/" if e.is_dir() else e.name for e in path.iterdir()), key=lambda n: n.lower()
            )
        except OSError as exc:
            raise ToolFailure(f"Cannot list {shown}: {exc.strerror or exc}") from exc
        start = args.offset or 1
        limit = min(args.limit or 500, 2000)
        part = entries[start - 1 : start - 1 + limit]
        header = f"{shown.rstrip('/')}/ is a directory with {len(entries)} entries"
        if not entries:
            return ToolResult(output=header.replace("with 0 entries", "and is empty") + ".", title=shown)
        output = header + ":\n" + "\n".join(part)
        end = start - 1 + len(part)
        if end < len(entries):
            output += f"\n\n(Showing entries {start}-{end}. Use offset={end + 1} to see more, or glob.)"
        return ToolResult(output=bound_output(output, ctx, label="listing"), title=shown)

    def _image(self, path: Path, media: str, ctx: ToolContext) -> ToolResult:
        shown = ctx.display(path)
        size = path.stat().st_size
        if size > MAX_IMAGE_BYTES:
            raise ToolFailure(
                f"{shown} is an image of {size / 1e6:.1f} MB; images over {MAX_IMAGE_BYTES // (1024 * 1024)} MB"
                " are not read. Make a smaller copy (e.g. with Pillow or ImageMagick) and read that."
            )
        data = base64.b64encode(path.read_bytes()).decode("ascii")
        ctx.files.record(path)
        return ToolResult(
            output=f"Image {shown} ({media}, {size:,} bytes) is attached.",
            title=shown,
            attachments=[Attachment(media_type=media, data=data, name=shown)],
            metadata={"media_type": media, "bytes": size},
        )

    def _notebook(self, path: Path, args: ReadParams, ctx: ToolContext, ran: Any) -> ToolResult | None:
        """The cells of a notebook with their outputs; ``None`` if the file is not notebook JSON."""
        try:
            nb = json.loads(path.read_text(encoding="utf-8", errors="replace"))
        except json.JSONDecodeError:
            return None
        if not isinstance(nb, dict) or not isinstance(nb.get("cells"), list):
            return None
        shown = ctx.display(path)
        cells: list[Any] = nb["cells"]
        meta = nb.get("metadata")
        info = meta.get("language_info") if isinstance(meta, dict) else None
        language = (info.get("name") if isinstance(info, dict) else None) or "python"
        header = f"Notebook {shown}: {len(cells)} cells ({language}). offset/limit count cells."
        text, attachments = render_notebook(cells, shown, header, args.offset, args.limit, ran)
        ctx.files.record(path)
        output = bound_output(text, ctx, label="notebook")
        return ToolResult(output=output, title=shown, attachments=attachments, metadata={"cells": len(cells)})

    async def _live_notebook(
        self, opened: OpenNotebook, path: Path, args: ReadParams, ctx: ToolContext
    ) -> ToolResult | None:
        """The open notebook's live document (unsaved edits included), when a front-end answers."""
        doc = await opened.document()
        if doc is None:
            return None
        shown = ctx.display(path)
        cells = await live_cells(doc)
        header = (
            f"Notebook {shown}: {len(cells)} cells, the live document open in {doc.frontend} (unsaved edits"
            " included). offset/limit count cells."
        )
        text, attachments = render_notebook(cells, shown, header, args.offset, args.limit, ran_source_of(ctx))
        output = bound_output(text, ctx, label="notebook")
        return ToolResult(
            output=output, title=shown, attachments=attachments, metadata={"cells": len(cells), "live": True}
        )


# ---------------------------------------------------------------------------------------------- write


class WriteParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    file_path: str = Field(description="Path of the file (absolute, or relative to the project root)")
    content: str = Field(description="The complete new content of the file")


class WriteTool(Tool[WriteParams]):
    name = "write"
    params = WriteParams

    async def run(self, args: WriteParams, ctx: ToolContext) -> ToolResult:
        path = ctx.resolve(args.file_path)
        shown = ctx.display(path)
        if path.is_dir():
            raise ToolFailure(f"{shown} is a directory; give the path of a file.")
        exists = path.exists()
        old = ""
        if exists:
            ctx.files.check_fresh(path)
            old = read_text(path, ctx)
        diff, additions, deletions = make_diff(old, args.content, shown)
        await ctx.ask(
            PermissionQuery(
                permission="edit",
                patterns=path_patterns(ctx, path),
                title=f"Write {shown}",
                metadata={"diff": diff},
            )
        )
        ctx.before_change(path)
        write_text(path, args.content)
        ctx.files.record(path)
        emit_diff(ctx, shown, diff, additions, deletions)
        lines = len(args.content.splitlines())
        verb = f"Overwrote {shown}" if exists else f"Created {shown}"
        return ToolResult(
            output=f"{verb} ({lines} lines, +{additions} -{deletions}).",
            title=shown,
            metadata={"diff": diff, "additions": additions, "deletions": deletions, "created": not exists},
        )


# ---------------------------------------------------------------------------------------------- edit


class EditParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    file_path: str = Field(description="Path of the file (absolute, or relative to the project root)")
    old_string: str = Field(description="The exact text to replace")
    new_string: str = Field(description="The text to put in its place (must differ from old_string)")
    replace_all: bool = Field(default=False, description="Replace every occurrence of old_string")


def _line_of(content: str, index: int) -> int:
    return content.count("\n", 0, index) + 1


class EditTool(Tool[EditParams]):
    name = "edit"
    params = EditParams

    async def run(self, args: EditParams, ctx: ToolContext) -> ToolResult:
        path = ctx.resolve(args.file_path)
        shown = ctx.display(path)
        if args.old_string == args.new_string:
            raise ToolFailure("old_string and new_string are identical; there is nothing to change.")
        if path.is_dir():
            raise ToolFailure(f"{shown} is a directory; give the path of a file.")
        if not path.exists():
            if args.old_string:
                raise ToolFailure(missing_file_message(path, ctx) + " (Empty old_string creates a new file.)")
            return await self._save(path, "", args.new_string, ctx, created=True, count=1)
        ctx.files.check_fresh(path)
        original = read_text(path, ctx)
        old, new = args.old_string, args.new_string
        if not old:
            if original:
                raise ToolFailure(
                    f"old_string is empty but {shown} already exists and is not empty. "
                    "Give the text to replace, or use write to replace the whole file."
                )
            return await self._save(path, original, new, ctx, created=False, count=1)

        # Line endings: the read output hides "\r"; match a pure-CRLF file in "\n" form and convert back.
        crlf = "\r\n" in original and original.count("\r\n") == original.count("\n")
        if crlf or "\r" not in original:
            content = original.replace("\r\n", "\n")
            old, new = old.replace("\r\n", "\n"), new.replace("\r\n", "\n")
        else:
            content = original

        count = content.count(old)
        if count == 0:
            hint = closest_hint(content.split("\n"), old.rstrip("\n").split("\n"), "old_string")
            raise ToolFailure(f"old_string was not found in {shown}. {hint}")
        if count > 1 and not args.replace_all:
            positions: list[int] = []
            at = content.find(old)
            while at != -1 and len(positions) < 20:
                positions.append(_line_of(content, at))
                at = content.find(old, at + len(old))
            where = ", ".join(str(p) for p in positions)
            raise ToolFailure(
                f"old_string occurs {count} times in {shown} (starting on lines {where}). Add surrounding "
                "lines to old_string to make it unique, or set replace_all=true to change every occurrence."
            )
        updated = content.replace(old, new) if args.replace_all else content.replace(old, new, 1)
        if crlf:
            updated = updated.replace("\n", "\r\n")
        return await self._save(path, original, updated, ctx, created=False, count=count)

    async def _save(
        self, path: Path, old: str, new: str, ctx: ToolContext, *, created: bool, count: int
    ) -> ToolResult:
        shown = ctx.display(path)
        diff, additions, deletions = make_diff(old, new, shown)
        await ctx.ask(
            PermissionQuery(
                permission="edit",
                patterns=path_patterns(ctx, path),
                title=f"Edit {shown}",
                metadata={"diff": diff},
            )
        )
        ctx.before_change(path)
        write_text(path, new)
        ctx.files.record(path)
        emit_diff(ctx, shown, diff, additions, deletions)
        if created:
            message = f"Created {shown} (+{additions})."
        else:
            times = f"{count} occurrences" if count > 1 else "1 occurrence"
            message = f"Edited {shown}: replaced {times} (+{additions} -{deletions})."
        return ToolResult(
            output=message,
            title=shown,
            metadata={"diff": diff, "additions": additions, "deletions": deletions, "replacements": count},
        )
