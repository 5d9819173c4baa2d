"""Notes the user or the agent keep: the project's memory file and the auto-memory outside the repository.

``# note`` and ``/memory add`` append to the project's AGENTS.md; the ``memory`` tool (auto-memory, opt-in)
appends to a per-project file in nbagent's private data folder. Used by the context loader
(:mod:`nbagent.core.context.memory`) and the ``memory`` tool.
"""

from __future__ import annotations

import re
from pathlib import Path

AUTO_NAME = "MEMORY.md"
MAX_NOTE_CHARS = 2_000


def git_root(start: Path) -> Path | None:
    for directory in (start, *start.parents):
        if (directory / ".git").exists():
            return directory
    return None


def auto_memory_path(root: Path) -> Path:
    """The project's auto-memory: in nbagent's private data folder, never in the repository."""
    import hashlib

    from nbagent.core.private import data_dir

    top = git_root(root.resolve()) or root.resolve()
    digest = hashlib.sha256(str(top).encode()).hexdigest()[:12]
    slug = re.sub(r"[^\w.-]", "_", top.name)[:40] or "root"
    return data_dir() / "memory" / f"{slug}-{digest}" / AUTO_NAME


def clean_note(text: str) -> str:
    note = " ".join(text.split())
    if not note:
        raise ValueError("The note is empty.")
    if len(note) > MAX_NOTE_CHARS:
        raise ValueError(f"The note is {len(note)} characters; at most {MAX_NOTE_CHARS}.")
    return note


def append_note(path: Path, text: str) -> str:
    """Append ``- text`` to the memory file at ``path`` (created with a heading when missing)."""
    note = clean_note(text)
    existing = path.read_text(encoding="utf-8", errors="replace") if path.is_file() else ""
    lead = "" if not existing or existing.endswith("\n") else "\n"
    if not existing:
        lead = "# Memory\n\n" if path.name == AUTO_NAME else "# Notes\n\n"
    if path.name == AUTO_NAME:
        from nbagent.core.private import private_dir, private_file

        private_file(private_dir(path.parent) / path.name)
    with path.open("a", encoding="utf-8") as handle:
        handle.write(f"{lead}- {note}\n")
    return note
