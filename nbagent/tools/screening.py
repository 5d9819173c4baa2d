"""Checking every path a file tool touches.

A tool that touches one path asks for it with :func:`path_patterns`: the path as the model gave it
and, when a symbolic link leads elsewhere, where it really leads, so a link to ``.env`` or out of the
project asks like its target. A tool that touches many paths (a recursive grep, a glob) asks for its
root, then screens each path under it with ``ctx.screen`` (:func:`screen_paths`): what the rules would
not let through is left out, and the result names it so the model can ask for it explicitly.

Screening never looks at content: what is left out is decided before any file is opened, so the note
cannot tell the model whether a secret matched a pattern.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from nbagent.core.permission_types import ACTION_RANK
from nbagent.tools.base import PermissionQuery, ToolContext

Action = Literal["allow", "ask", "deny"]
NOTE_NAMES = 5  # paths named in a note; the rest are counted


def _real(path: Path) -> Path:
    try:
        return path.resolve()
    except (OSError, RuntimeError):  # a symlink loop: name it as it is
        return path


def _shown(path: Path, roots: tuple[Path, ...]) -> str:
    for root in roots:
        try:
            return str(path.relative_to(root))
        except ValueError:
            continue
    return str(path)


def _roots(ctx: ToolContext) -> tuple[Path, ...]:
    real_root = _real(ctx.root)
    return (ctx.root,) if real_root == ctx.root else (ctx.root, real_root)


def path_patterns(
    ctx: ToolContext, path: Path, roots: tuple[Path, ...] | None = None, real: Path | None = None
) -> list[str]:
    """The patterns of a permission query about ``path``: as shown to the user (relative to the project
    root when inside it), then its real location (``real``, else resolved now) when a symbolic link
    leads elsewhere."""
    roots = roots or _roots(ctx)
    given = _shown(path, roots[:1])
    real_shown = _shown(real or _real(path), roots)
    return [given] if real_shown == given else [given, real_shown]


def rank(action: str) -> int:
    """allow < ask < deny; an answer the tool does not know counts as deny."""
    return ACTION_RANK.get(action, ACTION_RANK["deny"])


@dataclass
class Screened:
    """The paths a tool may touch without asking, and those it leaves out (as shown to the user)."""

    allowed: list[Path] = field(default_factory=list)
    protected: list[str] = field(default_factory=list)  # inside the project, but touching them asks
    outside: list[str] = field(default_factory=list)  # outside the project (or a link leading out)
    denied: list[str] = field(default_factory=list)  # a rule denies them
    left_out_paths: list[Path] = field(default_factory=list)  # the three above, as paths

    @property
    def left_out(self) -> int:
        return len(self.protected) + len(self.outside) + len(self.denied)

    def note(self, verb: str, access: str) -> str:
        """Sentences for the model: how many paths were not ``verb`` (searched, listed) and why.

        ``access`` names what asks (``reading``, ``listing``)."""
        out: list[str] = []
        if self.protected:
            out.append(
                f"{_count(self.protected, 'protected file')} {_was(self.protected)} not {verb}"
                f" ({_names(self.protected)}): {access} {_them(self.protected)} asks. Read"
                f" {_them(self.protected)} with the read tool, which asks the user, if you need"
                f" {_them(self.protected)}."
            )
        if self.outside:
            out.append(
                f"{_count(self.outside, 'file')} outside the project {_was(self.outside)} not {verb}"
                f" ({_names(self.outside)}): {access} {_them(self.outside)} asks. Read"
                f" {_them(self.outside)} with the read tool, or ask the user to approve that folder"
                ' for external_directory with "always" and search again.'
            )
        if self.denied:
            out.append(
                f"{_count(self.denied, 'file')} {_was(self.denied)} not {verb} ({_names(self.denied)}):"
                f" a permission rule denies {access} {_them(self.denied)}."
            )
        return "\n".join(out)


def _count(items: list[str], noun: str) -> str:
    return f"1 {noun}" if len(items) == 1 else f"{len(items)} {noun}s"


def _was(items: list[str]) -> str:
    return "was" if len(items) == 1 else "were"


def _them(items: list[str]) -> str:
    return "it" if len(items) == 1 else "them"


def _names(items: list[str]) -> str:
    shown = ", ".join(sorted(items)[:NOTE_NAMES])
    return shown + (f", and {len(items) - NOTE_NAMES} more" if len(items) > NOTE_NAMES else "")


def screen_paths(
    ctx: ToolContext,
    paths: Iterable[Path],
    key: str,
    *,
    ceiling: str = "allow",
    walked_from: Path | None = None,
    stop_after: int | None = None,
) -> Screened:
    """Sort ``paths`` by what the rules say about ``key`` for each, without asking anyone.

    ``ceiling`` is the most restrictive answer still let through: ``allow`` lets through only what the
    rules allow silently; ``ask`` also what asks for the same reason the root did (the user approved the
    root as a whole). A deny is never let through. ``walked_from``: the paths were listed under that
    folder by a walk that follows no symbolic link, so each is really where its folder really is.
    ``stop_after``: stop once that many paths are let through.
    """
    roots = _roots(ctx)
    real_root = roots[-1]
    real_base = _real(walked_from) if walked_from is not None else None
    limit = min(rank(ceiling), 1)
    out = Screened()
    for path in paths:
        if stop_after is not None and len(out.allowed) >= stop_after:
            break
        real = real_base / path.relative_to(walked_from) if real_base is not None and walked_from else None
        patterns = path_patterns(ctx, path, roots, real)
        action = ctx.screen(PermissionQuery(permission=key, patterns=patterns))
        if rank(action) <= limit:
            out.allowed.append(path)
            continue
        shown = patterns[0]
        out.left_out_paths.append(path)
        if rank(action) >= 2:
            out.denied.append(shown)
        elif (real or _real(path)).is_relative_to(real_root):
            out.protected.append(shown)
        else:
            out.outside.append(shown)
    return out
