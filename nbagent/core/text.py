"""Text as people and models read it: terminal escape codes removed, one line per tool call.

``strip_ansi`` runs where a tool result is produced (the loop), so neither the model, the store nor the
notebook ever holds colour codes; front-ends strip live output (and older records) with it too.
"""

from __future__ import annotations

import json
import re
from typing import Any

# CSI (colours, cursor moves), OSC (titles, hyperlinks; ended by BEL or ST), other two-byte escapes,
# and the 8-bit CSI. A lone ESC left over at a chunk boundary goes too.
_ANSI = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]"
    r"|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?"
    r"|\x1b[P^_][^\x1b]*(?:\x1b\\)?"
    r"|\x1b[@-Z\\-_]"
    r"|\x9b[0-?]*[ -/]*[@-~]"
    r"|\x1b"
)
SUMMARY_CHARS = 120
# The parameter that says most about a call (first one present wins).
KEY_PARAMS = (
    "command",
    "file_path",
    "notebook_path",
    "pattern",
    "url",
    "name",
    "path",
    "code",
    "description",
)


def strip_ansi(text: str) -> str:
    """``text`` without terminal escape sequences (colours, cursor moves, titles, hyperlinks)."""
    if "\x1b" not in text and "\x9b" not in text:
        return text
    return _ANSI.sub("", text)


def _one_line(value: str, limit: int = SUMMARY_CHARS) -> str:
    stripped = value.strip()
    line = stripped.splitlines()[0] if stripped else ""
    if len(line) > limit:
        return line[: limit - 2].rstrip() + " …"
    return line + (" …" if "\n" in stripped else "")


def call_summary(tool: str, data: dict[str, Any]) -> str:
    """One line that says what a tool call does (its command, path, pattern, …)."""
    for key in KEY_PARAMS:
        value = data.get(key)
        if isinstance(value, str) and value.strip():
            return _one_line(value)
    if tool == "apply_patch":
        files = [
            ln.split(":", 1)[1].strip()
            for ln in str(data.get("patch", "")).splitlines()
            if ln.startswith("*** ") and ":" in ln and not ln.startswith("*** End")
        ]
        return _one_line(", ".join(files))
    if tool == "todowrite":
        return f"{len(data.get('todos') or [])} items"
    if not data:
        return ""
    return _one_line(json.dumps(data, ensure_ascii=False, default=str))


def title_extra(summary: str, title: str) -> str:
    """What a tool's result title adds to the call's summary: nothing when it repeats it (``read a.py``
    titled ``a.py``), the rest when it starts with it."""
    t, s = " ".join(title.split()), " ".join(summary.split()).removesuffix(" …")
    if not t or t == s or (s and t in s):
        return ""
    if s and t.startswith(s):
        return t[len(s) :].strip(" ·:-–—()")
    return t
