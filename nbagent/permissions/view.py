"""What a read-only command touches, as the read-only tables see it."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class View:
    """What a read-only command touches. ``problem`` None: proven harmless, given its paths are checked."""

    problem: str | None = None
    reads: list[str] = field(default_factory=list)  # files (or folders) whose contents it reads
    lists: list[str] = field(default_factory=list)  # folders whose names it shows
    recursive: list[str] = field(default_factory=list)  # folders whose every file it reads
    hidden: bool = True  # the recursive read includes hidden files
    follow: bool = False  # the recursive read follows symlinks
    cwd: str | None = None  # runs in another folder (git -C DIR)
