"""The data shell analysis produces (``FoundCommand``, ``Redirect``, ``Analysis``), the context passed
down the tree, and the parser. See ``bash.py``."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tree_sitter import Parser

MAX_DEPTH = 8  # nested bash -c / eval strings
MAX_CHARS = 100_000  # longer command lines are not analysed
MAX_NODES = 200_000
MAX_SECONDS = 5.0  # a bound for pathological input, far above any real command

_parser: Parser | None = None


def get_parser() -> Parser:
    """The bash grammar, loaded on first use (the types here are needed without it)."""
    global _parser
    if _parser is None:
        import tree_sitter_bash
        from tree_sitter import Language, Parser

        _parser = Parser(Language(tree_sitter_bash.language()))
    return _parser


@dataclass(slots=True)
class FoundCommand:
    """One program the command line would run."""

    argv: list[str]  # unquoted words; a word that is not literal is kept as written ($X, "$(...)")
    literal: list[bool]  # per word: its value is known
    cwd: str | None = ""  # where it runs: "" the start directory, a path (relative or absolute), None unknown
    via: list[str] = field(default_factory=list)  # wrappers it runs under: sudo, xargs, bash -c, ...
    assigns: list[str] = field(default_factory=list)  # variables set in its environment (X=1 cmd, env X=1)
    vars: list[str] = field(default_factory=list)  # variables expanded in its words
    writes: list[str] = field(default_factory=list)  # arguments it writes to (tee FILE, time -o FILE)
    unknowable: str = ""  # why the program that really runs cannot be known
    wrapper: bool = False  # only runs another command (found separately): env, nohup, xargs, bash -c, ...
    code: bool = False  # runs code the analysis does not read (python -c, node -e, awk, env -S)
    extra_args: bool = False  # gets more arguments at run time (xargs)
    script: str | None = None  # the script file it runs (bash FILE, source FILE, python FILE)

    @property
    def program(self) -> str:
        return self.argv[0].rsplit("/", 1)[-1] if self.argv else ""

    @property
    def args(self) -> list[str]:
        return self.argv[1:]

    @property
    def text(self) -> str:
        return " ".join(self.argv)

    @property
    def dynamic(self) -> bool:
        return not all(self.literal) or self.extra_args


@dataclass(slots=True)
class Redirect:
    op: str  # '>', '>>', '&>', '<', ...
    target: str  # unquoted when literal, else as written
    literal: bool
    write: bool
    cwd: str | None = ""
    vars: list[str] = field(default_factory=list)


@dataclass(slots=True)
class Analysis:
    command: str
    commands: list[FoundCommand] = field(default_factory=list)
    redirects: list[Redirect] = field(default_factory=list)
    parse_error: bool = False
    # statement-level assignments that change what runs (PATH=..., export LD_PRELOAD=...)
    risky: list[str] = field(default_factory=list)
    # code hidden in data the shell may still run: x='$(cmd)' then $((x)), ${x@P}, a misread heredoc
    hidden: list[str] = field(default_factory=list)
    # variables the command line sets itself, and functions it defines (their bodies are analysed)
    assigned: set[str] = field(default_factory=set)
    functions: set[str] = field(default_factory=set)
    # every variable expanded anywhere (words, assignments, here-strings, heredocs, redirects)
    expanded: list[str] = field(default_factory=list)
    # a limit the analysis hit (nesting, size, time): it did not see everything
    limit: str = ""

    @property
    def unknowable(self) -> list[str]:
        return [c.unknowable for c in self.commands if c.unknowable] + self.hidden

    @property
    def opaque(self) -> list[str]:
        """Why the analysis cannot see everything this command line runs (empty: it sees all)."""
        out = [c.unknowable for c in self.commands if c.unknowable]
        out += [f"{c.program} runs code nbagent does not read" for c in self.commands if c.code]
        out += self.hidden
        if self.parse_error:
            out.append("the command does not parse as bash")
        if self.limit:
            out.append(self.limit)
        return out


class Limit(Exception):
    pass


class Ctx:
    __slots__ = ("assigns", "cwd", "depth", "via")

    def __init__(
        self, cwd: str | None = "", via: tuple[str, ...] = (), depth: int = 0, assigns: tuple[str, ...] = ()
    ) -> None:
        self.cwd = cwd
        self.via = via
        self.depth = depth
        self.assigns = assigns  # environment assignments of the wrappers around (X=1 nice cmd)

    def copy(self) -> Ctx:
        return Ctx(self.cwd, self.via, self.depth, self.assigns)


Word = tuple[str | None, str]  # (value when known, text as written)


def join_cwd(cwd: str | None, target: str) -> str | None:
    if cwd is None:
        return None
    if target.startswith("/"):
        return os.path.normpath(target)
    return os.path.normpath(os.path.join(cwd, target)) if cwd else os.path.normpath(target)


CODE_IN_DATA = re.compile(r"\$\(|`")
