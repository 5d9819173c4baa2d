"""Memory files: AGENTS.md (CLAUDE.md where no AGENTS.md exists), global and per directory, with @imports.

- global: ``~/.config/nbagent/AGENTS.md``
- project: every directory from the git root down to the working directory
- nested: a subfolder's file is loaded the first time the agent reads a file under it, once
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from nbagent.core.config import user_config_dir
from nbagent.ext.notes import AUTO_NAME, append_note, auto_memory_path, clean_note, git_root

__all__ = [
    "AUTO_NAME",
    "MemoryFile",
    "append_note",
    "auto_memory_path",
    "clean_note",
    "discover",
    "git_root",
    "load_auto",
    "render",
]

NAMES = ("AGENTS.md", "CLAUDE.md")
MAX_IMPORT_DEPTH = 5
MAX_FILE_CHARS = 40_000
_IMPORT = re.compile(r"(?<![\w`])@((?:~|\.{1,2})?/?[\w.\-/]+)")
_FENCE = re.compile(r"^(```|~~~)")


@dataclass
class MemoryFile:
    path: Path
    text: str
    scope: str  # "global", "project" or "nested"


def memory_file_in(directory: Path) -> Path | None:
    """AGENTS.md, or CLAUDE.md where there is no AGENTS.md."""
    for name in NAMES:
        candidate = directory / name
        if candidate.is_file():
            return candidate
    return None


def _expand_imports(text: str, base: Path, seen: set[Path], depth: int) -> str:
    """Append the files that ``@path`` mentions (outside code blocks), recursively and once each."""
    if depth >= MAX_IMPORT_DEPTH:
        return text
    imports: list[Path] = []
    in_fence = False
    for line in text.splitlines():
        if _FENCE.match(line.strip()):
            in_fence = not in_fence
            continue
        if in_fence:
            continue
        for match in _IMPORT.finditer(line):
            raw = match.group(1)
            target = Path(raw).expanduser()
            target = (target if target.is_absolute() else base / target).resolve()
            if target.is_file() and target not in seen:
                seen.add(target)
                imports.append(target)
    parts = [text]
    for target in imports:
        try:
            body = target.read_text(encoding="utf-8", errors="replace")[:MAX_FILE_CHARS]
        except OSError:
            continue
        body = _expand_imports(body, target.parent, seen, depth + 1)
        parts.append(f"\n<!-- imported from {target} -->\n{body}")
    return "".join(parts)


def read_memory(path: Path, scope: str) -> MemoryFile:
    text = path.read_text(encoding="utf-8", errors="replace")[:MAX_FILE_CHARS]
    resolved = path.resolve()
    return MemoryFile(path, _expand_imports(text, resolved.parent, {resolved}, 0), scope)


def discover(cwd: Path) -> list[MemoryFile]:
    """Global file, then project files from the git root (or ``cwd``) down to ``cwd``."""
    found: list[MemoryFile] = []
    global_file = memory_file_in(user_config_dir())
    if global_file is not None:
        found.append(read_memory(global_file, "global"))
    cwd = cwd.resolve()
    top = git_root(cwd) or cwd
    chain = [cwd, *cwd.parents]
    for directory in reversed(chain[: chain.index(top) + 1]):
        path = memory_file_in(directory)
        if path is not None:
            found.append(read_memory(path, "project"))
    return found


@dataclass
class NestedMemory:
    """Loads a subfolder's memory file the first time a file under it is read."""

    root: Path
    loaded: set[Path] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.root = self.root.resolve()
        self.loaded.add(self.root)

    def on_read(self, path: Path) -> list[MemoryFile]:
        try:
            relative = path.resolve().relative_to(self.root)
        except ValueError:
            return []
        found: list[MemoryFile] = []
        directory = self.root
        for part in relative.parts[:-1]:
            directory = directory / part
            if directory in self.loaded:
                continue
            self.loaded.add(directory)
            memory = memory_file_in(directory)
            if memory is not None:
                found.append(read_memory(memory, "nested"))
        return found


def render(files: list[MemoryFile]) -> str:
    if not files:
        return ""
    sections = [f"## {f.path}\n{f.text.strip()}" for f in files]
    return "# Instructions from memory files (follow them)\n\n" + "\n\n".join(sections)


# -- notes and auto-memory -------------------------------------------------------------------------


def project_memory_path(root: Path) -> Path:
    """Where ``# note`` and ``/memory add`` write: the project's AGENTS.md at the git root (or
    ``root``); its CLAUDE.md where that is the only memory file there."""
    top = git_root(root.resolve()) or root.resolve()
    return memory_file_in(top) or top / "AGENTS.md"


def load_auto(root: Path, max_chars: int) -> MemoryFile | None:
    """The auto-memory file, its last ``max_chars`` characters (the newest facts) when longer."""
    path = auto_memory_path(root)
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    if not text.strip():
        return None
    if len(text) > max_chars:
        text = f"[… older entries not loaded: see {path}]\n" + text[-max_chars:]
    return MemoryFile(path, text, "auto")
