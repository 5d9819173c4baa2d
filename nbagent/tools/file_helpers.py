"""Shared helpers of the file tools (read, write, edit) and apply_patch.

Binary detection (``is_binary`` for the tools that change files, the laxer ``looks_binary`` for read,
which shows text in a legacy encoding such as Latin-1 with replacement characters) and image sniffing;
the file-not-found message with the names that look like what was meant; bounded unified diffs and
their ``DiffProduced`` event; the closest-match hint that tells the model where the text it failed to
match most likely is (``find_closest``, ``closest_hint``, ``numbered`` lines like ``cat -n``); and the
exact text read and write of a file.
"""

from __future__ import annotations

import codecs
import difflib
import heapq
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from nbagent.core.events import DiffProduced
from nbagent.tools.base import ToolContext, ToolFailure

MAX_LINE_CHARS = 2000  # longer lines are cut
MAX_DIFF_CHARS = 100_000  # diffs kept in events and metadata
SNIFF_BYTES = 8192


def image_type(head: bytes) -> str | None:
    """The media type of an image we can hand to the model, from its magic bytes."""
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    return None


def is_binary(head: bytes) -> bool:
    """NUL bytes, or not UTF-8, in the first bytes of a file."""
    if b"\x00" in head:
        return True
    try:
        codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
    except UnicodeDecodeError:
        return True
    return False


def looks_binary(head: bytes) -> bool:
    """What ``read`` refuses: NUL bytes, or mostly control characters, in the first bytes. Text in a
    legacy encoding (a few Latin-1 bytes) is not binary: it is read with replacement characters."""
    if b"\x00" in head:
        return True
    if not head:
        return False
    control = sum(1 for b in head if (b < 32 and b not in (9, 10, 12, 13, 27)) or b == 127)
    return control / len(head) > 0.1


def missing_file_message(path: Path, ctx: ToolContext) -> str:
    """File-not-found, with the names in its directory that look like what was meant."""
    shown = ctx.display(path)
    parent = path.parent
    if not parent.is_dir():
        ancestor = parent
        while not ancestor.is_dir() and ancestor != ancestor.parent:
            ancestor = ancestor.parent
        return (
            f"File not found: {shown}. The directory {ctx.display(parent)} does not exist"
            f" (nearest existing: {ctx.display(ancestor)}). Use glob to find the file."
        )
    try:
        names = [entry.name for _, entry in zip(range(5000), parent.iterdir(), strict=False)]
    except OSError:
        names = []
    wanted = path.name.lower()
    close = [n for n in names if n.lower() == wanted or n.lower().split(".")[0] == wanted.split(".")[0]]
    lowered = {n.lower(): n for n in names}
    close += [lowered[n] for n in difflib.get_close_matches(wanted, list(lowered), n=3, cutoff=0.6)]
    close = list(dict.fromkeys(close))[:5]
    if close:
        hint = ", ".join(ctx.display(parent / n) for n in close)
        return f"File not found: {shown}. Did you mean: {hint}?"
    return f"File not found: {shown}. Use glob to find the file."


def make_diff(old: str, new: str, old_name: str, new_name: str | None = None) -> tuple[str, int, int]:
    """A unified diff (bounded) with its counts of added and deleted lines."""
    new_name = new_name or old_name
    lines = list(
        difflib.unified_diff(
            old.splitlines(keepends=True),
            new.splitlines(keepends=True),
            fromfile=f"a/{old_name}",
            tofile=f"b/{new_name}",
        )
    )
    additions = sum(1 for ln in lines if ln.startswith("+") and not ln.startswith("+++"))
    deletions = sum(1 for ln in lines if ln.startswith("-") and not ln.startswith("---"))
    out: list[str] = []
    for ln in lines:
        if ln.endswith("\n"):
            out.append(ln)
        else:
            out.append(ln + "\n\\ No newline at end of file\n")
    diff = "".join(out)
    if len(diff) > MAX_DIFF_CHARS:
        diff = (
            diff[:MAX_DIFF_CHARS] + f"\n... [diff truncated: {len(diff) - MAX_DIFF_CHARS} more characters]\n"
        )
    return diff, additions, deletions


def emit_diff(ctx: ToolContext, shown: str, diff: str, additions: int, deletions: int) -> None:
    ctx.emit(
        DiffProduced(
            session_id=ctx.session_id,
            call_id=ctx.call_id,
            path=shown,
            diff=diff,
            additions=additions,
            deletions=deletions,
        )
    )


def squash(line: str) -> str:
    """A line with its whitespace runs collapsed: equal for lines that differ only in whitespace."""
    return " ".join(line.split())


@dataclass
class Closest:
    start: int  # 0-based index of the first line of the window
    ratio: float
    whitespace_only: bool


_TOKEN = re.compile(r"\w+|[^\w\s]")
_COMPARED_CHARS = 300  # of each line, when scoring similarity


def _line_ratio(a: str, b: str) -> float:
    return difflib.SequenceMatcher(None, a[:_COMPARED_CHARS], b[:_COMPARED_CHARS], autojunk=False).ratio()


def find_closest(lines: list[str], wanted: list[str]) -> Closest | None:
    """The window of ``len(wanted)`` lines that best resembles ``wanted``.

    A window equal to ``wanted`` up to whitespace wins outright. Otherwise windows are scored by the
    mean similarity of their lines to the wanted lines: every window of a small file; in a large one
    only the windows that lines sharing the most words with a few wanted lines point at, so the work
    stays bounded.
    """
    if not lines:
        return None
    n = min(max(1, len(wanted)), len(lines))
    wanted = wanted[:n]
    last = len(lines) - n
    squashed = [squash(w) for w in wanted]
    squashed_lines = [squash(x) for x in lines]
    where: dict[str, list[int]] = {}
    for j, s in enumerate(squashed):
        if s:
            where.setdefault(s, []).append(j)
    votes: Counter[int] = Counter()
    for i, s in enumerate(squashed_lines):
        for j in where.get(s, ()):
            votes[i - j] += 1
    needed = sum(len(v) for v in where.values())
    for start in sorted(s for s, count in votes.items() if needed and count == needed and 0 <= s <= last):
        if squashed_lines[start : start + n] == squashed:
            return Closest(start, 1.0, True)
    if (last + 1) * n <= 4000:
        candidates = list(range(last + 1))
    else:
        candidates = [s for s, _ in votes.most_common(20)]
        tokens = [set(_TOKEN.findall(x[:_COMPARED_CHARS])) for x in lines]
        for j in sorted({j for j in (0, n // 2, n - 1) if squashed[j]}):
            probe = set(_TOKEN.findall(wanted[j][:_COMPARED_CHARS]))
            scores = ((len(probe & t) / len(probe | t), i) for i, t in enumerate(tokens) if t & probe)
            candidates += [i - j for _, i in heapq.nlargest(10, scores)]
        candidates = [min(max(s, 0), last) for s in candidates]
    best: Closest | None = None
    for start in dict.fromkeys(candidates):
        score = sum(_line_ratio(lines[start + k], wanted[k]) for k in range(n)) / n
        if best is None or score > best.ratio:
            best = Closest(start, score, False)
    return best


def numbered(lines: list[str], start: int) -> str:
    """Lines numbered like ``cat -n``; ``start`` is the 1-based number of the first line."""
    out = []
    for i, line in enumerate(lines, start):
        if len(line) > MAX_LINE_CHARS:
            line = (
                line[:MAX_LINE_CHARS] + f"... [line truncated: {len(line) - MAX_LINE_CHARS} more characters]"
            )
        out.append(f"{i:>6}\t{line}")
    return "\n".join(out)


def closest_hint(lines: list[str], wanted: list[str], what: str, start: int = 0) -> str:
    """A sentence saying where the text the model meant most likely is: in ``lines[start:]`` if
    something there resembles it, else anywhere."""
    if wanted and all(re.match(r"^\s*\d+\t", w) for w in wanted if w):
        return (
            f"{what} seems to include the line numbers of the read output; give only the text after the tab."
        )
    region = lines[start:]
    closest = find_closest(region, wanted)
    if closest is None or closest.ratio < 0.5:
        if start:
            return closest_hint(lines, wanted, what)
        head = next((w for w in wanted if w.strip()), "")
        single = find_closest(lines, [head]) if len(wanted) > 1 and head else None
        if single is not None and single.ratio >= 0.6:
            return (
                f"No similar block was found; its first line {head!r} most resembles line {single.start + 1}:\n"
                + numbered(lines[single.start : single.start + 1], single.start + 1)
            )
        return "Nothing similar was found; read the file again to see its current content."
    n = min(max(1, len(wanted)), len(region))
    index = start + closest.start
    first, last = index + 1, index + n
    snippet = numbered(lines[index : index + n], first)
    if len(snippet) > 3000:
        snippet = snippet[:3000] + "\n..."
    where = f"line {first}" if first == last else f"lines {first}-{last}"
    if closest.whitespace_only:
        return (
            f"{what} matches {where} except for whitespace/indentation. Copy the exact text, "
            f"indentation included:\n{snippet}"
        )
    return f"The closest match ({closest.ratio:.0%} similar) is at {where}:\n{snippet}"


def read_text(path: Path, ctx: ToolContext) -> str:
    """A text file's exact content (line endings kept); refuse binary files."""
    data = path.read_bytes()
    if is_binary(data[:SNIFF_BYTES]):
        raise ToolFailure(f"{ctx.display(path)} is a binary file; it cannot be changed with this tool.")
    return data.decode("utf-8", errors="replace")


def write_text(path: Path, content: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content.encode("utf-8"))
