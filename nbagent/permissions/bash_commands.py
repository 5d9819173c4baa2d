"""The command half of the shell analysis: what a simple command runs, seen through wrappers (``sudo``,
``env``, ``xargs``, ``nice``, ``timeout``, ... ``wrappers.py``), shells and ``eval`` (their strings are
parsed in turn), interpreters and ``find -exec``. A mixin of the walker in ``bash_walk.py``."""

from __future__ import annotations

import os
import re

from tree_sitter import Node

from nbagent.permissions.bash_programs import ProgramRunners, streamed
from nbagent.permissions.bash_types import (
    CODE_IN_DATA,
    MAX_DEPTH,
    Analysis,
    Ctx,
    FoundCommand,
    Redirect,
    Word,
    get_parser,
    join_cwd,
)
from nbagent.permissions.expand import word_fields
from nbagent.permissions.programs import INT_VARS, INTERPRETERS, SHELLS
from nbagent.permissions.wrappers import WRAPPERS


class CommandWalker(ProgramRunners):
    """Commands: the statement and word methods come from the walker (``bash_walk._Walker``)."""

    src: bytes
    out: Analysis
    budget: list[float]
    ints: set[str]

    def __init__(self, src: bytes, out: Analysis, budget: list[float]) -> None:
        raise NotImplementedError

    def tick(self) -> None:
        raise NotImplementedError

    def visit(self, node: Node, ctx: Ctx) -> None:
        raise NotImplementedError

    def text(self, node: Node) -> str:
        raise NotImplementedError

    def word(self, node: Node, ctx: Ctx, names: list[str]) -> str | None:
        raise NotImplementedError

    def redirect(self, node: Node, ctx: Ctx) -> list[Word]:
        raise NotImplementedError

    def heredoc(self, node: Node, ctx: Ctx, extras: list[Word]) -> str | None:
        raise NotImplementedError

    def herestring(self, node: Node, ctx: Ctx) -> str | None:
        raise NotImplementedError

    def assignment(self, node: Node, ctx: Ctx, statement: bool) -> str:
        raise NotImplementedError

    # ---- commands -----------------------------------------------------------------------------
    def command(self, node: Node, ctx: Ctx, extras: list[Word], stdin: str | None) -> None:
        assigns: list[str] = []
        words: list[Word] = []
        names: list[str] = []
        for ch in node.named_children:
            t = ch.type
            if t == "variable_assignment":
                assigns.append(self.assignment(ch, ctx, statement=False))
            elif t == "command_name":
                for part in ch.named_children:
                    for value in self.fields(part, ctx, names):
                        if value[0] is not None and _unquoted_glob(part, self):
                            value = (None, value[1])  # /bin/r? expands to a program we cannot name
                        words.append(value)
            elif t == "file_redirect":
                extras = extras + self.redirect(ch, ctx)
            elif t == "herestring_redirect":
                stdin = self.herestring(ch, ctx)
            elif t == "heredoc_redirect":
                stdin = self.heredoc(ch, ctx, extras)
            elif t == "comment":
                continue
            else:
                words += self.fields(ch, ctx, names)
        words += extras
        if not words:
            return
        self.run(words, [*ctx.assigns, *assigns], names, ctx, stdin)

    def fields(self, node: Node, ctx: Ctx, names: list[str]) -> list[Word]:
        """The words one argument becomes: brace expansion and ``$IFS`` may make several."""
        raw = self.text(node)
        if "{" in raw or "IFS" in raw:
            split = word_fields(raw)
            if split is not None:
                self.word(node, ctx, names)  # still analyse substitutions inside
                return [(f, f) for f in split]
        return [(self.word(node, ctx, names), raw)]

    def record(
        self,
        words: list[Word],
        ctx: Ctx,
        *,
        assigns: list[str] | None = None,
        names: list[str] | None = None,
        **flags: object,
    ) -> FoundCommand:
        argv = [v if v is not None else raw for v, raw in words]
        found = FoundCommand(
            argv,
            [v is not None for v, _ in words],
            ctx.cwd,
            list(ctx.via),
            list(assigns or []),
            list(names or []),
        )
        for key, value in flags.items():
            setattr(found, key, value)
        self.out.commands.append(found)
        return found

    def run(
        self,
        words: list[Word],
        assigns: list[str],
        names: list[str],
        ctx: Ctx,
        stdin: str | None,
        extra_args: bool = False,
    ) -> None:
        self.tick()
        prog = words[0][0]
        if prog is None:
            self.record(
                words, ctx, assigns=assigns, names=names, extra_args=extra_args,
                unknowable=f"the program name {words[0][1]} is only known at run time",
            )  # fmt: skip
            return
        base = prog.rsplit("/", 1)[-1]
        args = words[1:]
        vals = [v for v, _ in args]

        def inner(
            rest: list[Word], label: str, *, more_args: bool = extra_args, writes: list[str] | None = None
        ) -> None:
            """Record the wrapper (its own words only), then analyse the command it runs."""
            found = self.record(words, ctx, assigns=assigns, names=names, wrapper=True, extra_args=extra_args)
            found.argv = found.argv[: len(words) - len(rest)]
            found.literal = found.literal[: len(found.argv)]
            found.writes = writes or []
            if rest:
                sub = Ctx(ctx.cwd, (*ctx.via, label), ctx.depth, tuple(assigns))
                self.run(rest, list(assigns), names, sub, stdin, more_args)

        if base == "command" and any(v in ("-v", "-V") for v in vals):
            self.record(words, ctx, assigns=assigns, names=names)  # only says what a name is
            return
        if base in WRAPPERS:
            self.wrapper(base, words, assigns, names, ctx, stdin, extra_args, inner)
            return
        if base in ("sudo", "doas"):
            i = _skip_options(
                vals, {"-u", "-g", "-C", "-D", "-h", "-p", "-r", "-t", "-U", "-T", "--user", "--group",
                       "--chdir", "--host", "--prompt", "--role", "--type", "--other-user", "--close-from"}
            )  # fmt: skip
            if any(v in ("-i", "-s", "--login", "--shell") for v in vals[:i]) and i >= len(args):
                self.record(words, ctx, assigns=assigns, names=names,
                            unknowable=f"{base} -i/-s starts an interactive shell")  # fmt: skip
                return
            if any(v is None for v in vals[:i]):
                self.record(words, ctx, assigns=assigns, names=names,
                            unknowable=f"{base} has options only known at run time")  # fmt: skip
                return
            self.record(words, ctx, assigns=assigns, names=names, extra_args=extra_args)
            if i < len(args):
                sub = Ctx(ctx.cwd, (*ctx.via, base), ctx.depth, tuple(assigns))
                self.run(args[i:], list(assigns), names, sub, stdin, extra_args)
            return
        if base == "env":
            self.env(words, assigns, names, ctx, stdin, extra_args)
            return
        if base == "xargs":
            takes = {"-I", "-L", "-n", "-P", "-s", "-d", "-E", "-a", "--arg-file", "--delimiter", "--max-args",
                     "--max-lines", "--max-procs", "--max-chars", "--replace", "--process-slot-var", "--eof", "-e",
                     "-i", "-l"}  # fmt: skip
            i = _skip_options(vals, takes)
            for k, v in enumerate(vals[:i]):  # -a FILE: the arguments come from a file it reads
                target = vals[k + 1] if v in ("-a", "--arg-file") and k + 1 < len(vals) else None
                if v is not None and v.startswith("--arg-file="):
                    target = v.split("=", 1)[1]
                if target is not None or v in ("-a", "--arg-file"):
                    self.out.redirects.append(Redirect("<", target or "", target is not None, False, ctx.cwd))
            if i >= len(args):
                self.record(words, ctx, assigns=assigns, names=names)  # xargs alone runs echo
                return
            inner(args[i:], "xargs", more_args=True)
            return
        if base in ("source", "."):
            found = self.record(words, ctx, assigns=assigns, names=names, extra_args=extra_args)
            script = vals[0] if vals else None
            if script is None or streamed(script):
                found.code = True
            found.script = script
            return
        if base == "trap" and vals and vals[0] is not None and not vals[0].startswith("-"):
            self.record(words, ctx, assigns=assigns, names=names)
            self.parse_nested(vals[0], [], ctx, assigns, names, "trap", record=False)
            return
        if base == "watch":
            i = _skip_options(vals, {"-n", "--interval", "-d", "-q"})
            rest = args[i:]
            if any(v in ("-x", "--exec") for v in vals[:i]):
                inner(rest, "watch")
            else:
                self.shell_string(words, rest, ctx, assigns, names, "watch")
            return
        if base == "eval":
            rest = args[1:] if vals[:1] == ["--"] else args
            self.shell_string(words, rest, ctx, assigns, names, "eval")
            return
        if base == "busybox" and args:
            inner(args, base)
            return
        if base in SHELLS:
            self.shell(words, ctx, assigns, names, stdin, extra_args)
            return
        interp = _interpreter(base)
        if interp is not None:
            self.interpreter(interp, base, words, ctx, assigns, names, stdin, extra_args)
            return
        if base == "find":
            self.find(words, ctx, assigns, names, extra_args)
            return
        if base in ("cd", "pushd", "popd"):
            self.record(words, ctx, assigns=assigns, names=names)
            target = next(
                (v for v in vals if v is None or not v.startswith("-")), "~" if base == "cd" else None
            )
            if base == "popd" or target is None or target == "-":
                ctx.cwd = None
            else:
                ctx.cwd = join_cwd(ctx.cwd, os.path.expanduser("~") if target == "~" else target)
            return
        if base in _ARITH_BUILTINS:
            for v in vals:
                if v is not None and CODE_IN_DATA.search(v):
                    self.out.hidden.append(
                        f"{base} may evaluate {v[:40]} as arithmetic, which runs the command in it"
                    )
            if base == "let":
                for v in vals:
                    for name in re.findall(r"[A-Za-z_][A-Za-z0-9_]*", v or ""):
                        if name not in self.ints and name not in INT_VARS:
                            self.out.hidden.append(
                                f"let evaluates ${name}, whose value is not a known number"
                            )
                            break
        if base in ("read", "mapfile", "readarray"):
            for v in vals:
                if v is not None and not v.startswith("-"):
                    self.out.assigned.add(v)
                    self.ints.discard(v)
        found = self.record(words, ctx, assigns=assigns, names=names, extra_args=extra_args)
        if base == "tee":
            found.writes = [
                v if v is not None else raw for v, raw in args if v is None or not v.startswith("-")
            ]

    def shell_string(
        self,
        head: list[Word],
        parts: list[Word],
        ctx: Ctx,
        assigns: list[str],
        names: list[str],
        label: str,
    ) -> None:
        """Run ``parts`` joined by spaces as shell code (``eval``, ``bash -c``, ``watch``)."""
        if any(v is None for v, _ in parts):
            words = head + [p for p in parts if p not in head]
            self.record(words, ctx, assigns=assigns, names=names,
                        unknowable=f"{label} runs a string only known at run time")  # fmt: skip
            return
        self.parse_nested(" ".join(v or "" for v, _ in parts), head, ctx, assigns, names, label)

    def parse_nested(
        self,
        code: str,
        head: list[Word],
        ctx: Ctx,
        assigns: list[str],
        names: list[str],
        label: str,
        *,
        record: bool = True,
    ) -> None:
        if record:
            found = self.record(head, ctx, assigns=assigns, names=names, wrapper=True)
        else:
            found = FoundCommand([label], [True], ctx.cwd, list(ctx.via), list(assigns))
        if ctx.depth >= MAX_DEPTH:
            found.wrapper = False
            found.unknowable = f"{label} nests shell code too deeply to follow"
            if not record:
                self.out.commands.append(found)
            return
        src = code.encode("utf-8", "surrogateescape")
        tree = get_parser().parse(src)
        if tree.root_node.has_error:
            self.out.parse_error = True
        sub = Ctx(ctx.cwd, (*ctx.via, label), ctx.depth + 1, (*ctx.assigns, *assigns))
        walker = type(self)(src, self.out, self.budget)
        walker.ints = set(self.ints)
        walker.visit(tree.root_node, sub)

    def find(
        self,
        words: list[Word],
        ctx: Ctx,
        assigns: list[str],
        names: list[str],
        extra_args: bool,
    ) -> None:
        i = 1
        own: list[Word] = [words[0]]
        execs: list[tuple[str, list[Word]]] = []
        while i < len(words):
            v = words[i][0]
            if v in ("-exec", "-execdir", "-ok", "-okdir"):
                j = i + 1
                while j < len(words) and words[j][0] not in (";", "+"):
                    j += 1
                execs.append((v, words[i + 1 : j]))
                own.append(words[i])
                i = j + 1
                continue
            own.append(words[i])
            i += 1
        self.record(own, ctx, assigns=assigns, names=names, extra_args=extra_args)
        for label, cmd in execs:
            if cmd:
                self.run(cmd, list(assigns), names, Ctx(ctx.cwd, (*ctx.via, f"find {label}"), ctx.depth,
                                                        tuple(assigns)), None)  # fmt: skip


def _unquoted_glob(node: Node, walker: CommandWalker) -> bool:
    """Does a command word hold an unquoted glob character (``/bin/r?``)?"""
    if node.type == "word":
        text = walker.text(node).replace("\\\\", "")
        return any(c in text.replace("\\*", "").replace("\\?", "").replace("\\[", "") for c in "*?[")
    if node.type == "concatenation":
        return any(_unquoted_glob(ch, walker) for ch in node.named_children)
    return False


def _brace_command(text: str) -> list[Word] | None:
    """The words of a simple command that starts with a brace-expanded word (``{rm,-rf,x} y``)."""
    if not re.match(r"\{\S", text) or re.search(r"[;&|<>()`\n]|\$\(", text):
        return None
    words: list[Word] = []
    for tok in text.split():
        fields = word_fields(tok)
        if fields is None:
            return None
        words += [(f, f) for f in fields]
    return words or None


def _skip_options(vals: list[str | None], takes_value: set[str]) -> int:
    """Index of the first word after a wrapper's own options."""
    i = 0
    while i < len(vals):
        v = vals[i]
        if v is None or not v.startswith("-") or v == "-":
            return i
        if v == "--":
            return i + 1
        if v in takes_value:
            i += 2
            continue
        i += 1
    return i


_ARITH_BUILTINS = frozenset(
    {"printf", "read", "test", "[", "let", "declare", "typeset", "local", "export", "readonly", "unset", "mapfile",
     "readarray", "wait", "shift", "exit", "return", "kill", "ulimit", "getopts"}
)  # fmt: skip
# Shell variables that are not environment settings: assigning them is harmless.
_HARMLESS_SHELL = frozenset({"_", "OPTIND", "OPTARG", "REPLY"})
_BRACE = re.compile(r"\{[^{}]*(?:,|\.\.)[^{}]*\}")
_PY = re.compile(r"python[0-9.]*|pypy[0-9.]*")


def _interpreter(base: str) -> str | None:
    if base in INTERPRETERS:
        return base
    if _PY.fullmatch(base):
        return "python"
    return None
