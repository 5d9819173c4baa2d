"""Compact ``name: description`` listings for tool descriptions and the system prompt (paid every step).

Each description is put on one line and cut to ``DESC_CHARS`` characters; when the whole still
exceeds ``max_chars``, descriptions are shortened further (down to ``MIN_DESC_CHARS``), then the last
entries are dropped for a ``(+N more: ...)`` line. Order is the caller's (kept stable: by name).
"""

from __future__ import annotations

DESC_CHARS = 100
MIN_DESC_CHARS = 40


def shorten(text: str, limit: int) -> str:
    """``text`` on one line, at most ``limit`` characters (cut at a word). Not cut at the first
    sentence: the "Use when ..." that follows it is what tells the model when to pick the entry."""
    flat = " ".join(text.split())
    if len(flat) <= limit:
        return flat
    cut = flat[: limit - 1]
    if " " in cut[limit // 2 :]:
        cut = cut[: cut.rindex(" ")]
    return cut.rstrip(" ,;:-") + "…"


def _render(entries: list[tuple[str, str]], limit: int) -> list[str]:
    return [f"{name}: {shorten(desc, limit)}" if desc.strip() else name for name, desc in entries]


def compact_listing(entries: list[tuple[str, str]], max_chars: int, tool: str) -> str:
    """The listing of ``entries`` within ``max_chars``; ``tool`` names where the rest can be seen."""
    if not entries:
        return ""
    limit = DESC_CHARS
    lines = _render(entries, limit)
    while sum(len(line) + 1 for line in lines) > max_chars and limit > MIN_DESC_CHARS:
        limit -= 10
        lines = _render(entries, limit)
    if sum(len(line) + 1 for line in lines) <= max_chars:
        return "\n".join(lines)
    kept: list[str] = []
    used = 0
    for i, line in enumerate(lines):
        more = f"(+{len(lines) - i} more: use {tool} to list)"
        if used + len(line) + 1 + len(more) > max_chars:
            return "\n".join([*kept, more])
        kept.append(line)
        used += len(line) + 1
    return "\n".join(kept)
