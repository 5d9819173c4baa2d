"""Command-line options parsed the way GNU ``getopt_long`` parses them, against a table of options.

A table is written as a string of tokens, one per option::

    "-n= -q --lines= --quiet --follow? -f=P --output! -o!"

- ``-x`` / ``--name``: a flag;
- ``-x=`` / ``--name=``: takes a value (``-xVAL``, ``-x VAL``, ``--name=VAL``, ``--name VAL``);
- ``-x=P`` / ``--name=P``: takes a value that is a path the program reads (checked like an operand);
- ``--name?``: an optional value, only glued (``--color=auto``);
- ``-x!`` / ``--name!``: known, and not harmless (writes files, runs programs, reads files listed in a
  file): the command is not read-only.

Long options match by unique prefix, as getopt does (``--in-pl`` is ``--in-place``); a prefix that
fits several options, or an option the table does not list, makes the command unproven. Listing the
harmful options too (``!``) keeps prefixes honest: ``--o`` resolves against ``--output!`` as well.
Options and operands may be mixed (GNU permutes them); ``--`` ends the options.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Kind = Literal["flag", "value", "path", "optional", "bad"]


@dataclass(frozen=True)
class OptionTable:
    short: dict[str, Kind]
    long: dict[str, Kind]
    numeric: bool = False  # ``-5`` is an option (head -5, tail -20)

    @classmethod
    def parse(cls, spec: str, *, numeric: bool = False) -> OptionTable:
        short: dict[str, Kind] = {}
        long: dict[str, Kind] = {}
        for token in spec.split():
            kind: Kind = "flag"
            name = token
            if token.endswith("!"):
                kind, name = "bad", token[:-1]
            elif token.endswith("=P"):
                kind, name = "path", token[:-2]
            elif token.endswith("="):
                kind, name = "value", token[:-1]
            elif token.endswith("?"):
                kind, name = "optional", token[:-1]
            if name.startswith("--"):
                long[name[2:]] = kind
            elif name.startswith("-") and len(name) == 2:
                short[name[1]] = kind
            else:
                raise ValueError(f"bad option token {token!r}")
        return cls(short, long, numeric)

    def kind(self, option: str) -> Kind | None:
        """The kind of a canonical option name as ``Parsed.options`` spells it (``-f``, ``--file``)."""
        if option.startswith("--"):
            return self.long.get(option[2:])
        return self.short.get(option[1:]) if len(option) == 2 else None


@dataclass
class Parsed:
    """``options``: (canonical name with dashes, value or None), in order; ``operands`` the rest."""

    options: list[tuple[str, str | None]] = field(default_factory=list)
    operands: list[str] = field(default_factory=list)
    operand_index: list[int] = field(default_factory=list)  # index of each operand in args
    problem: str | None = None

    def has(self, *names: str) -> bool:
        return any(name in names for name, _ in self.options)

    def values(self, *names: str) -> list[str]:
        return [v for n, v in self.options if n in names and v is not None]


def _long_match(name: str, table: dict[str, Kind]) -> tuple[str | None, str | None]:
    """(the option, a problem): exact name, else the one option it is a prefix of."""
    if name in table:
        return name, None
    hits = [opt for opt in table if opt.startswith(name)]
    if len(hits) == 1 and name:
        return hits[0], None
    if len(hits) > 1:
        return None, f"--{name} is ambiguous (--{', --'.join(sorted(hits))})"
    return None, f"--{name} is not an option nbagent knows to be harmless"


def parse_options(args: list[str], table: OptionTable, *, stop_at_operand: bool = False) -> Parsed:
    """Parse ``args``; ``stop_at_operand``: options end at the first operand (POSIX, ``find``-like)."""
    out = Parsed()
    i = 0
    n = len(args)
    while i < n:
        a = args[i]
        if a == "--":
            out.operands += args[i + 1 :]
            out.operand_index += list(range(i + 1, n))
            break
        if a.startswith("--"):
            name, eq, value = a[2:].partition("=")
            opt, problem = _long_match(name, table.long)
            if opt is None:
                out.problem = problem
                return out
            kind = table.long[opt]
            if kind == "bad":
                out.problem = f"--{opt} writes files, runs programs or reads other files"
                return out
            if kind in ("value", "path"):
                if not eq:
                    if i + 1 >= n:
                        out.problem = f"--{opt} needs a value"
                        return out
                    i += 1
                    value = args[i]
                out.options.append((f"--{opt}", value))
            elif kind == "optional":
                out.options.append((f"--{opt}", value if eq else None))
            else:
                if eq:
                    out.problem = f"--{opt} takes no value"
                    return out
                out.options.append((f"--{opt}", None))
        elif a.startswith("-") and len(a) > 1:
            if table.numeric and a[1:].isdigit():
                out.options.append(("-#", a[1:]))
                i += 1
                continue
            j = 1
            while j < len(a):
                c = a[j]
                short = table.short.get(c)
                if short is None:
                    out.problem = f"-{c} is not an option nbagent knows to be harmless"
                    return out
                kind = short
                if kind == "bad":
                    out.problem = f"-{c} writes files, runs programs or reads other files"
                    return out
                if kind in ("value", "path"):
                    value = a[j + 1 :]
                    if not value:
                        if i + 1 >= n:
                            out.problem = f"-{c} needs a value"
                            return out
                        i += 1
                        value = args[i]
                    out.options.append((f"-{c}", value))
                    break
                out.options.append((f"-{c}", None))
                j += 1
        else:
            if stop_at_operand:
                out.operands += args[i:]
                out.operand_index += list(range(i, n))
                break
            out.operands.append(a)
            out.operand_index.append(i)
        i += 1
    return out
