"""Bash word expansions the analysis can do before running: ANSI-C quoting, brace expansion and
``$IFS`` splitting, so ``$'rm\\0x'``, ``{rm,-rf,x}`` and ``rm${IFS}-rf`` are seen as the words bash
runs. ``deobfuscate`` applies the same to a whole command line for matching deny rules against text
the analysis cannot take apart.
"""

from __future__ import annotations

import re

MAX_FIELDS = 1024

_ANSI_C = re.compile(r"\\(x[0-9a-fA-F]{1,2}|u[0-9a-fA-F]{1,4}|U[0-9a-fA-F]{1,8}|[0-7]{1,3}|c.|.)", re.DOTALL)
_ANSI_SIMPLE = {"n": "\n", "t": "\t", "r": "\r", "a": "\a", "b": "\b", "e": "\x1b", "E": "\x1b", "f": "\f",
                "v": "\v", "\\": "\\", "'": "'", '"': '"', "?": "?"}  # fmt: skip


def ansi_c(body: str) -> str:
    """The value of ``$'body'``; bash ends the string at a NUL byte (``$'rm\\0x'`` is ``rm``)."""

    def sub(m: re.Match[str]) -> str:
        s = m.group(1)
        if s[0] in "xuU":
            return chr(min(int(s[1:], 16), 0x10FFFF))
        if s[0].isdigit():
            return chr(int(s, 8) & 0xFF)
        if s[0] == "c":
            return chr(ord(s[1]) & 0x1F)
        return _ANSI_SIMPLE.get(s, "\\" + s)

    return _ANSI_C.sub(sub, body).split("\x00", 1)[0]


_SPLIT = object()
Item = tuple[str, bool] | object  # (character, quoted) or _SPLIT


def _lex(raw: str) -> list[Item] | None:
    """Characters of a word with their quoting; None when it holds an expansion other than $IFS."""
    out: list[Item] = []
    i, n = 0, len(raw)
    while i < n:
        c = raw[i]
        if c == "\\":
            if i + 1 < n:
                if raw[i + 1] != "\n":
                    out.append((raw[i + 1], True))
                i += 2
                continue
            out.append(("\\", True))
            i += 1
        elif c == "'":
            j = raw.find("'", i + 1)
            if j < 0:
                return None
            out += [(ch, True) for ch in raw[i + 1 : j]]
            i = j + 1
        elif c == "$" and raw.startswith("$'", i):
            j = i + 2
            while j < n and raw[j] != "'":
                j += 2 if raw[j] == "\\" else 1
            if j >= n:
                return None
            out += [(ch, True) for ch in ansi_c(raw[i + 2 : j])]
            i = j + 1
        elif c == '"':
            j = i + 1
            while j < n and raw[j] != '"':
                if raw[j] in "$`":
                    return None
                if raw[j] == "\\" and j + 1 < n and raw[j + 1] in '$`"\\\n':
                    if raw[j + 1] != "\n":
                        out.append((raw[j + 1], True))
                    j += 2
                    continue
                out.append((raw[j], True))
                j += 1
            if j >= n:
                return None
            i = j + 1
        elif c == "$":
            m = re.match(r"\$(?:IFS\b|\{IFS\})", raw[i:])
            if m is None:
                return None
            out.append(_SPLIT)
            i += m.end()
        elif c == "`":
            return None
        else:
            out.append((c, False))
            i += 1
    return out


def _brace(items: list[Item], limit: list[int]) -> list[list[Item]]:
    """Bash brace expansion over unquoted braces: ``a{b,c}d`` -> ``abd acd``; ``{1..3}``."""
    depth = 0
    start = -1
    for i, it in enumerate(items):
        if it is _SPLIT or it[1]:  # type: ignore[index]
            continue
        ch = it[0]  # type: ignore[index]
        if ch == "{":
            if depth == 0:
                start = i
            depth += 1
        elif ch == "}" and depth > 0:
            depth -= 1
            if depth == 0:
                body = items[start + 1 : i]
                alts = _split_commas(body)
                if alts is None:
                    seq = _sequence(body)
                    if seq is None:
                        start = -1
                        continue
                    alts = [[(ch2, True) for ch2 in s] for s in seq]
                out: list[list[Item]] = []
                for alt in alts:
                    for tail in _brace(items[i + 1 :], limit):
                        limit[0] -= 1
                        if limit[0] < 0:
                            raise OverflowError
                        out += (
                            _brace([*items[:start], *alt, *tail], limit)
                            if _has_brace(alt)
                            else [[*items[:start], *alt, *tail]]
                        )
                return out
    return [items]


def _has_brace(items: list[Item]) -> bool:
    return any(it is not _SPLIT and not it[1] and it[0] == "{" for it in items)  # type: ignore[index]


def _split_commas(body: list[Item]) -> list[list[Item]] | None:
    parts: list[list[Item]] = [[]]
    depth = 0
    for it in body:
        if it is not _SPLIT and not it[1]:  # type: ignore[index]
            ch = it[0]  # type: ignore[index]
            if ch == "{":
                depth += 1
            elif ch == "}":
                depth -= 1
            elif ch == "," and depth == 0:
                parts.append([])
                continue
        parts[-1].append(it)
    return parts if len(parts) > 1 else None


def _sequence(body: list[Item]) -> list[str] | None:
    text = "".join(it[0] for it in body if it is not _SPLIT)  # type: ignore[index]
    m = re.fullmatch(r"(-?\d+|[A-Za-z])\.\.(-?\d+|[A-Za-z])(?:\.\.(-?\d+))?", text)
    if m is None:
        return None
    a, b, step = m.group(1), m.group(2), abs(int(m.group(3) or 1)) or 1
    if a.lstrip("-").isdigit() and b.lstrip("-").isdigit():
        lo, hi = int(a), int(b)
        if abs(hi - lo) // step > MAX_FIELDS:
            raise OverflowError
        rng = range(lo, hi + 1, step) if lo <= hi else range(lo, hi - 1, -step)
        return [str(x) for x in rng]
    if a.isalpha() and b.isalpha():
        lo, hi = ord(a), ord(b)
        rng = range(lo, hi + 1, step) if lo <= hi else range(lo, hi - 1, -step)
        return [chr(x) for x in rng]
    return None


def word_fields(raw: str) -> list[str] | None:
    """The words bash makes of one word as written, when only quoting, braces and $IFS are involved."""
    items = _lex(raw)
    if items is None:
        return None
    try:
        expanded = _brace(items, [MAX_FIELDS])
    except (OverflowError, RecursionError):
        return None
    fields: list[str] = []
    for word in expanded:
        current: list[str] = []
        started = False
        for it in word:
            if it is _SPLIT:
                if current:
                    fields.append("".join(current))
                current = []
                started = False
                continue
            current.append(it[0])  # type: ignore[index]
            started = True
        if started or (current and not fields):
            fields.append("".join(current))
        if len(fields) > MAX_FIELDS:
            return None
    return fields


_TOKEN = re.compile(
    r"""(?:[^\s;&|<>()'"\\$`]|\\.|'[^']*'|"(?:[^"\\]|\\.)*"|\$'(?:[^'\\]|\\.)*'|\$\{?IFS\}?|\$)+""", re.DOTALL
)


def deobfuscate(command: str) -> str:
    """The command line with quotes, escapes, brace expansion and $IFS undone, words joined by spaces."""
    out: list[str] = []
    for m in _TOKEN.finditer(command):
        tok = m.group(0)
        fields = word_fields(tok)
        if fields is None:
            fields = [
                re.sub(
                    r"""\\(.)|['"]""",
                    lambda x: x.group(1) or "",
                    tok.replace("${IFS}", " ").replace("$IFS", " "),
                )
            ]
        out += fields
    return " ".join(" ".join(out).split())
