"""Shell command analysis with tree-sitter-bash: every program a command line would run.

``analyze(command)`` parses once and walks the tree, passing context (the directory, the wrappers, the
environment assignments) down rather than climbing parents. It sees through quoting (``'rm'``,
``\\rm``, ``$'rm\\0x'``), brace expansion and ``$IFS`` splitting (``{rm,-rf,x}``, ``rm${IFS}-rf``), paths
(``/bin/rm``), environment assignments (``X=1 rm``) and wrappers that run their argument (``sudo``,
``env``, ``xargs``, ``bash -c``, ``eval``, ``find -exec``, ``timeout``, ... see ``wrappers.py``). What it
cannot know (``eval "$VAR"``, ``$CMD``, ``| sh``, code hidden in data, a misread heredoc) is marked, and
so are limits (nesting, size, time). It knows nothing about rules: the policy decides.
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass, field
from typing import Protocol

import tree_sitter_bash
from tree_sitter import Language, Node, Parser

from nbagent.permissions.expand import ansi_c, word_fields
from nbagent.permissions.options import parse_options
from nbagent.permissions.programs import INT_VARS, INTERPRETERS, SHELLS, risky_var
from nbagent.permissions.wrappers import STRING_LONG, WRAPPERS, wrapper_table

MAX_DEPTH = 8  # nested bash -c / eval strings
MAX_CHARS = 100_000  # longer command lines are not analysed
MAX_NODES = 200_000
MAX_SECONDS = 5.0  # a bound for pathological input, far above any real command

_parser: Parser | None = None


def _get_parser() -> Parser:
    global _parser
    if _parser is None:
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

    def summary(self) -> dict[str, object]:
        return {
            "commands": [c.text for c in self.commands if not c.wrapper],
            "redirects": [f"{r.op} {r.target}" for r in self.redirects],
            "unknowable": self.unknowable,
            "hidden": self.hidden,
            "parse_error": self.parse_error,
            "limit": self.limit,
        }


class _Limit(Exception):
    pass


class _Ctx:
    __slots__ = ("assigns", "cwd", "depth", "via")

    def __init__(
        self, cwd: str | None = "", via: tuple[str, ...] = (), depth: int = 0, assigns: tuple[str, ...] = ()
    ) -> None:
        self.cwd = cwd
        self.via = via
        self.depth = depth
        self.assigns = assigns  # environment assignments of the wrappers around (X=1 nice cmd)

    def copy(self) -> _Ctx:
        return _Ctx(self.cwd, self.via, self.depth, self.assigns)


Word = tuple[str | None, str]  # (value when known, text as written)


def _join_cwd(cwd: str | None, target: str) -> str | None:
    if cwd is None:
        return None
    if target.startswith("/"):
        return os.path.normpath(target)
    return os.path.normpath(os.path.join(cwd, target)) if cwd else os.path.normpath(target)


class _Walker:
    def __init__(self, src: bytes, out: Analysis, budget: list[float]) -> None:
        self.src = src
        self.out = out
        self.budget = budget  # [deadline, nodes left]: shared by nested walkers
        self.ints: set[str] = set()  # variables known to hold plain numbers

    def tick(self) -> None:
        self.budget[1] -= 1
        if self.budget[1] <= 0:
            raise _Limit("the command is too large to analyse")
        if self.budget[1] % 512 == 0 and time.perf_counter() > self.budget[0]:
            raise _Limit("the command takes too long to analyse")

    # ---- statements -------------------------------------------------------------------------
    def visit(self, node: Node, ctx: _Ctx) -> None:
        self.tick()
        t = node.type
        if t in ("program", "list"):
            # a long && chain nests list nodes one per part: walk it without recursion
            stack = [node]
            flat: list[Node] = []
            while stack:
                n = stack.pop()
                if n.type in ("program", "list") and (n is node or n.type == "list"):
                    stack.extend(reversed(n.named_children))
                else:
                    flat.append(n)
                self.tick()
            for ch in flat:
                self.visit(ch, ctx)
        elif t == "command":
            self.command(node, ctx, [], None)
        elif t == "redirected_statement":
            self.redirected(node, ctx)
        elif t == "pipeline":
            for ch in node.named_children:
                self.visit(ch, ctx.copy())
        elif t in ("subshell", "command_substitution", "process_substitution"):
            inner = ctx.copy()
            for ch in node.named_children:
                self.visit(ch, inner)
        elif t == "file_redirect":
            self.redirect(node, ctx)
        elif t == "variable_assignment":
            self.assignment(node, ctx, statement=True)
        elif t == "variable_assignments":
            for ch in node.named_children:
                self.visit(ch, ctx)
        elif t in ("declaration_command", "unset_command"):
            self.declaration(node, ctx)
        elif t == "function_definition":
            name = node.child_by_field_name("name")
            if name is not None:
                self.out.functions.add(self.text(name))
            for ch in node.named_children:
                if ch.type != "word":
                    self.visit(ch, ctx.copy())
        elif t in ("arithmetic_expansion", "c_style_for_statement") or (
            t == "compound_statement" and self.text(node).startswith("((")
        ):
            self.arithmetic(node)
            for ch in node.named_children:
                self.visit(ch, ctx)
        elif t == "test_command":
            self.hidden_code(node)
            if re.search(r"\s-(?:eq|ne|lt|le|gt|ge)\s", self.text(node)) and self.text(node).startswith("[["):
                self.arithmetic(node)
            for ch in node.named_children:
                self.visit(ch, ctx)
        elif t == "for_statement":
            var = node.child_by_field_name("variable")
            if var is not None:
                self.out.assigned.add(self.text(var))
                self.ints.discard(self.text(var))
            for ch in node.named_children:
                self.visit(ch, ctx)
        elif t in ("comment", "word", "number", "raw_string", "ansi_c_string", "variable_name", "string_content",
                   "heredoc_content", "heredoc_start", "heredoc_end", "file_descriptor", "extglob_pattern",
                   "special_variable_name", "test_operator", "regex"):  # fmt: skip
            return
        elif t in ("simple_expansion", "expansion", "string", "concatenation"):
            self.word(node, ctx, [])
        else:  # compound statements, loops, ERROR, heredoc bodies, ...
            if t == "ERROR":
                self.out.parse_error = True
                self.error(node, ctx)
                return
            for ch in node.named_children:
                self.visit(ch, ctx)

    def error(self, node: Node, ctx: _Ctx) -> None:
        """What the grammar could not parse; '{rm,-rf,x}' is a word to bash, a broken group here."""
        kids = node.children
        skip: Node | None = None
        for i, ch in enumerate(kids):
            if ch is skip:
                continue
            if ch.type == "{" and i + 1 < len(kids) and kids[i + 1].start_byte == ch.end_byte:
                words = _brace_command("{" + self.text(kids[i + 1]))
                if words is not None:
                    self.run(words, list(ctx.assigns), [], ctx, None)
                    skip = kids[i + 1]
                    continue
            if ch.is_named:
                self.visit(ch, ctx)

    def redirected(self, node: Node, ctx: _Ctx) -> None:
        body: Node | None = None
        extras: list[Word] = []
        stdin: str | None = None
        for ch in node.named_children:
            t = ch.type
            if t == "file_redirect":
                extras += self.redirect(ch, ctx)
            elif t == "heredoc_redirect":
                stdin = self.heredoc(ch, ctx, extras)
            elif t == "herestring_redirect":
                stdin = self.herestring(ch, ctx)
            elif body is None:
                body = ch
            else:
                self.visit(ch, ctx)
        if body is None:
            return
        if body.type == "command":
            self.command(body, ctx, extras, stdin)
        else:
            self.visit(body, ctx)

    def heredoc(self, node: Node, ctx: _Ctx, extras: list[Word]) -> str | None:
        quoted = False
        strip_tabs = False
        delimiter = ""
        end = ""
        body: str | None = None
        body_node: Node | None = None
        for ch in node.children:
            t = ch.type
            if t == "<<-":
                strip_tabs = True
            elif t == "heredoc_start":
                raw = self.text(ch)
                quoted = any(q in raw for q in "'\"\\")
                delimiter = re.sub(r"""\\(.)|['"]""", lambda m: m.group(1) or "", raw)
            elif t == "heredoc_body":
                body_node = ch
            elif t == "heredoc_end":
                end = self.text(ch)
            elif t == "file_redirect":
                extras += self.redirect(ch, ctx)
            elif ch.is_named and t != "heredoc_content":
                self.visit(ch, ctx)
        text = self.text(body_node) if body_node is not None else ""
        lines = [line.lstrip("\t") if strip_tabs else line for line in text.split("\n")]
        if (end.lstrip("\t") if strip_tabs else end) != delimiter or delimiter in lines:
            # the grammar ended the heredoc where bash would not: what follows may be hidden in it
            self.out.parse_error = True
            self.out.hidden.append(f"the heredoc <<{delimiter} is not read the way bash reads it")
        if body_node is not None:
            if quoted:
                body = text
            else:
                if any(c.type != "heredoc_content" for c in body_node.named_children):
                    self.visit(body_node, ctx.copy())
                else:
                    body = text
                # backticks run in an unquoted heredoc even where the grammar does not see them
                for m in re.finditer(r"(?<!\\)`((?:[^`\\]|\\.)*)`", text):
                    self.parse_nested(m.group(1), [], ctx, [], [], "heredoc `...`", record=False)
                for m in re.finditer(r"(?<!\\)\$\{?([A-Za-z_][A-Za-z0-9_]*|[0-9#?$!@*-])", text):
                    self.out.expanded.append(m.group(1))
                if body is not None and re.search(r"(?<!\\)\$[({]", text):
                    body = None  # expansions make the text unknown
        if body is not None and strip_tabs:
            body = "\n".join(line.lstrip("\t") for line in body.split("\n"))
        return body

    def herestring(self, node: Node, ctx: _Ctx) -> str | None:
        value: str | None = None
        for ch in node.named_children:
            value = self.word(ch, ctx, [])
        return value

    def redirect(self, node: Node, ctx: _Ctx) -> list[Word]:
        """Record a file redirect; return extra words the grammar attached to it (``echo a 2>x b``)."""
        op = ""
        dests: list[Node] = []
        for ch in node.children:
            if not ch.is_named:
                op = ch.type
            elif ch.type != "file_descriptor":
                dests.append(ch)
        if not dests:
            return []
        first = dests[0]
        extras = [(self.word(d, ctx, []), self.text(d)) for d in dests[1:]]
        if first.type == "process_substitution":
            self.visit(first, ctx)
            return extras
        raw = self.text(first)
        if op in (">&", "<&") and (first.type == "number" or raw == "-"):
            return extras  # duplicating or closing a file descriptor
        names: list[str] = []
        value = self.word(first, ctx, names)
        write = ">" in op
        self.out.redirects.append(
            Redirect(op, value if value is not None else raw, value is not None, write, ctx.cwd, names)
        )
        return extras

    def assignment(self, node: Node, ctx: _Ctx, statement: bool) -> str:
        name = ""
        value: str | None = None
        for ch in node.named_children:
            if ch.type in ("variable_name", "subscript") and not name:
                name = self.text(ch).split("[", 1)[0]
                if ch.type == "subscript":
                    self.hidden_code(ch)
                    self.arithmetic(ch)
            else:
                value = self.word(ch, ctx, [])
                if value is not None and _CODE_IN_DATA.search(value):
                    self.out.hidden.append(
                        f"{name} is set to text holding a command ({value[:40]}), which the shell may run later"
                    )
        self.out.assigned.add(name)
        if value is not None and re.fullmatch(r"-?\d+", value.strip()):
            self.ints.add(name)
        else:
            self.ints.discard(name)
        if statement and (risky_var(name) or (name in os.environ and name not in _HARMLESS_SHELL)):
            self.out.risky.append(name)
        return name

    def declaration(self, node: Node, ctx: _Ctx) -> None:
        argv: list[str] = []
        names = 0
        for ch in node.children:
            if not ch.is_named:
                if not argv:
                    argv.append(ch.type)  # export, local, declare, unset, ...
                continue
            if ch.type == "variable_assignment":
                argv.append(self.assignment(ch, ctx, statement=True) + "=...")
                names += 1
            elif ch.type == "variable_name":
                name = self.text(ch)
                self.out.assigned.add(name)
                self.ints.discard(name)
                argv.append(name)
                names += 1
                if argv[0] == "export" and (risky_var(name) or name not in os.environ):
                    self.out.risky.append(name)
            else:
                value = self.word(ch, ctx, [])
                argv.append(value if value is not None else self.text(ch))
                if value is not None and not value.startswith(("-", "+")):
                    names += 1
        if not argv:
            return
        flags = "".join(a[1:] for a in argv[1:] if a.startswith(("-", "+")))
        if "n" in flags and argv[0] != "export":
            self.out.hidden.append(f"{argv[0]} -n makes a name for another variable, which may hold a secret")
        if argv[0] != "unset" and "x" in flags:
            for a in argv[1:]:
                base = a.split("=", 1)[0]
                if not a.startswith(("-", "+")) and (risky_var(base) or base not in os.environ):
                    self.out.risky.append(base)
        # setting or marking variables changes only this shell; printing them (export, declare -p, -x
        # alone) may show secrets, so that is a command of its own
        sets = names > 0 and not any(f in flags for f in "pfF")
        self.out.commands.append(FoundCommand(argv, [True] * len(argv), ctx.cwd, list(ctx.via), wrapper=sets))

    # ---- commands -----------------------------------------------------------------------------
    def command(self, node: Node, ctx: _Ctx, extras: list[Word], stdin: str | None) -> None:
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

    def fields(self, node: Node, ctx: _Ctx, names: list[str]) -> list[Word]:
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
        ctx: _Ctx,
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
        ctx: _Ctx,
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
                sub = _Ctx(ctx.cwd, (*ctx.via, label), ctx.depth, tuple(assigns))
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
                sub = _Ctx(ctx.cwd, (*ctx.via, base), ctx.depth, tuple(assigns))
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
            if i >= len(args):
                self.record(words, ctx, assigns=assigns, names=names)  # xargs alone runs echo
                return
            inner(args[i:], "xargs", more_args=True)
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
                ctx.cwd = _join_cwd(ctx.cwd, os.path.expanduser("~") if target == "~" else target)
            return
        if base in _ARITH_BUILTINS:
            for v in vals:
                if v is not None and _CODE_IN_DATA.search(v):
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

    def wrapper(self, base: str, words: list[Word], assigns: list[str], names: list[str], ctx: _Ctx,
                stdin: str | None, extra_args: bool, inner: _Inner) -> None:  # fmt: skip
        spec = WRAPPERS[base]
        args = words[1:]
        vals = [v for v, _ in args]
        # options end at the first operand (the command), as POSIXLY_CORRECT getopt would for wrappers
        known = [v if v is not None else "\x00" for v in vals]
        parsed = parse_options(known, wrapper_table(base), stop_at_operand=True)
        if parsed.problem or "\x00" in "".join(n + (v or "") for n, v in parsed.options):
            self.record(words, ctx, assigns=assigns, names=names, extra_args=extra_args,
                        unknowable=f"cannot tell which program {base} runs ({parsed.problem or 'options only known at run time'})")  # fmt: skip
            return
        string_opts = (spec.string, *STRING_LONG.get(spec.string, ())) if spec.string else ()
        code = [v for n, v in parsed.options if n in string_opts and v is not None]
        writes = [v for n, v in parsed.options if n in spec.writes and v is not None]
        start = len(words) - 1 - len(parsed.operands)
        rest_at = start + spec.skip
        if string_opts and rest_at < len(args) and vals[rest_at] in string_opts:  # flock FILE -c CMD
            after = vals[rest_at + 1] if rest_at + 1 < len(vals) else None
            if after is None:
                self.record(words, ctx, assigns=assigns, names=names,
                            unknowable=f"{base} -c runs a string only known at run time")  # fmt: skip
                return
            code = [after]
        if code:
            found = self.record(words, ctx, assigns=assigns, names=names, wrapper=True, writes=writes)
            if spec.changes_root:
                found.wrapper = False
                found.unknowable = f"{base} runs the command in another file system"
            for c in code:
                self.parse_nested(c, [], ctx, assigns, names, f"{base} -c", record=False)
            return
        if spec.changes_root:
            self.record(words, ctx, assigns=assigns, names=names,
                        unknowable=f"{base} runs the command in another file system")  # fmt: skip
            if rest_at < len(args):
                inner_words = args[rest_at:]
                sub = _Ctx(None, (*ctx.via, base), ctx.depth, tuple(assigns))
                self.run(inner_words, list(assigns), names, sub, stdin, extra_args)
            return
        if rest_at >= len(args):
            self.record(words, ctx, assigns=assigns, names=names, writes=writes)
            return
        inner(args[rest_at:], base, writes=writes)

    def env(self, words: list[Word], assigns: list[str], names: list[str], ctx: _Ctx, stdin: str | None,
            extra_args: bool) -> None:  # fmt: skip
        args = words[1:]
        vals = [v for v, _ in args]
        i = 0
        env_assigns: list[str] = []
        cwd: str | None = ctx.cwd
        while i < len(vals):
            v = vals[i]
            if v is None:
                self.record(words, ctx, assigns=assigns, names=names,
                            unknowable="env has arguments only known at run time")  # fmt: skip
                return
            if v in ("-u", "--unset"):
                i += 2
                continue
            if v in ("-C", "--chdir") or v.startswith("--chdir="):
                target = v.split("=", 1)[1] if "=" in v else (vals[i + 1] if i + 1 < len(vals) else None)
                cwd = _join_cwd(cwd, target) if target is not None else None
                i += 1 if "=" in v else 2
                continue
            if v in ("-S", "--split-string") or v.startswith(("--split-string=", "-S")):
                if v in ("-S", "--split-string"):
                    string = vals[i + 1] if i + 1 < len(vals) else None
                    tail = vals[i + 2 :]
                else:
                    string = v.split("=", 1)[1] if v.startswith("--") else v[2:]
                    tail = vals[i + 1 :]
                found = self.record(words, ctx, assigns=assigns + env_assigns, names=names, code=True)
                if string is None or any(t is None for t in tail):
                    found.unknowable = "env -S splits a string only known at run time"
                    return
                sub = _Ctx(cwd, (*ctx.via, "env -S"), ctx.depth, tuple(assigns + env_assigns))
                self.parse_nested(" ".join([string, *(t or "" for t in tail)]), [], sub, [], names,
                                  "env -S", record=False)  # fmt: skip
                return
            if v == "--":
                i += 1
                break
            if v.startswith("-") and v != "-":
                i += 1
                continue
            if "=" in v and not v.startswith("="):
                env_assigns.append(v.split("=", 1)[0])
                i += 1
                continue
            break
        if i >= len(args):
            # env alone prints the environment
            self.record(words, ctx, assigns=assigns + env_assigns, names=names)
            return
        found = self.record(words[: i + 1], ctx, assigns=assigns + env_assigns, names=names, wrapper=True)
        if cwd != ctx.cwd:
            found.cwd = cwd
        sub = _Ctx(cwd, (*ctx.via, "env"), ctx.depth, tuple(assigns + env_assigns))
        self.run(args[i:], assigns + env_assigns, names, sub, stdin, extra_args)

    def interpreter(self, interp: str, base: str, words: list[Word], ctx: _Ctx, assigns: list[str],
                    names: list[str], stdin: str | None, extra_args: bool) -> None:  # fmt: skip
        vals = [v for v, _ in words[1:]]
        flags = INTERPRETERS[interp]
        has_code_flag = any(
            v is not None and (v in flags or v.startswith(tuple(f + "=" for f in flags if f.startswith("--")))
                               or (len(flags) and v.startswith("-") and not v.startswith("--")
                                   and any(f[1:] in v[1:] for f in flags if len(f) == 2)))
            for v in vals
        )  # fmt: skip
        script = next((v for v in vals if v is not None and (not v.startswith("-") or v == "-")), None)
        if interp in ("awk", "gawk") or has_code_flag:
            self.record(words, ctx, assigns=assigns, names=names, code=True, extra_args=extra_args)
        elif (
            (script is None or script == "-")
            and not any(v in _NO_PROGRAM_FLAGS for v in vals)
            and stdin is None
            and not extra_args
        ):
            self.record(words, ctx, assigns=assigns, names=names,
                        unknowable=f"{base} reads its program from standard input")  # fmt: skip
        else:
            self.record(
                words, ctx, assigns=assigns, names=names, code=stdin is not None, extra_args=extra_args
            )

    def shell(
        self,
        words: list[Word],
        ctx: _Ctx,
        assigns: list[str],
        names: list[str],
        stdin: str | None,
        extra_args: bool,
    ) -> None:
        """``bash [options] [-c CODE [NAME ARGS...] | SCRIPT ARGS... | (stdin)]``: options come first."""
        base = (words[0][0] or "").rsplit("/", 1)[-1]
        vals = [v for v, _ in words[1:]]
        i = 0
        runs_string = False
        from_stdin = False
        while i < len(vals):
            v = vals[i]
            if v is None:
                self.record(words, ctx, assigns=assigns, names=names,
                            unknowable=f"{base} has arguments only known at run time")  # fmt: skip
                return
            if v in ("-o", "+o", "-O", "+O", "--rcfile", "--init-file"):
                i += 2
                continue
            if v in ("--", "-"):
                i += 1
                break
            if v.startswith(("-", "+")) and len(v) > 1:
                if not v.startswith("--"):
                    runs_string = runs_string or "c" in v[1:]
                    from_stdin = from_stdin or "s" in v[1:] or "i" in v[1:]
                i += 1
                continue
            break
        if runs_string:
            if i >= len(vals):
                self.record(
                    words, ctx, assigns=assigns, names=names, unknowable=f"{base} -c without a command"
                )
                return
            self.shell_string(words[: i + 2], [words[i + 1]], ctx, assigns, names, f"{base} -c")
            return
        if i < len(vals) and not from_stdin:
            # a script file: the program is the script, decided by the rules like any other
            self.record(words, ctx, assigns=assigns, names=names, extra_args=extra_args)
            return
        if stdin is not None:
            self.parse_nested(stdin, words, ctx, assigns, names, f"{base} <<")
            return
        self.record(words, ctx, assigns=assigns, names=names,
                    unknowable=f"{base} reads its commands from standard input")  # fmt: skip

    def shell_string(
        self,
        head: list[Word],
        parts: list[Word],
        ctx: _Ctx,
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
        ctx: _Ctx,
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
        tree = _get_parser().parse(src)
        if tree.root_node.has_error:
            self.out.parse_error = True
        sub = _Ctx(ctx.cwd, (*ctx.via, label), ctx.depth + 1, (*ctx.assigns, *assigns))
        walker = _Walker(src, self.out, self.budget)
        walker.ints = set(self.ints)
        walker.visit(tree.root_node, sub)

    def find(
        self,
        words: list[Word],
        ctx: _Ctx,
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
                self.run(cmd, list(assigns), names, _Ctx(ctx.cwd, (*ctx.via, f"find {label}"), ctx.depth,
                                                        tuple(assigns)), None)  # fmt: skip

    def hidden_code(self, node: Node) -> None:
        """Quoted text in arithmetic or test context is evaluated, with its command substitutions."""
        stack = [node]
        while stack:
            n = stack.pop()
            if n.type in ("raw_string", "string_content", "word") and _CODE_IN_DATA.search(self.text(n)):
                self.out.hidden.append(
                    f"{self.text(n)[:40]} is evaluated as arithmetic, which runs the command in it"
                )
                return
            stack.extend(n.named_children)

    def arithmetic(self, node: Node) -> None:
        """Arithmetic evaluates a variable's value as an expression, and ``a[$(cmd)]`` in that value
        runs: every variable it reads must hold a known number (or be set in the same expression)."""
        self.hidden_code(node)
        text = self.text(node)
        # a plain assignment (x=1, not x+=1) sets the variable without reading it
        set_here = set(re.findall(r"([A-Za-z_][A-Za-z0-9_]*)\s*=(?!=)", text))
        stack = [node]
        while stack:
            n = stack.pop()
            if n.type == "variable_name":
                name = self.text(n)
                if name not in self.ints and name not in INT_VARS and name not in set_here:
                    self.out.hidden.append(
                        f"arithmetic on ${name}, whose value is not a known number, can run commands"
                    )
                    return
            elif n.type in ("command_substitution",):
                continue
            stack.extend(n.named_children)
        self.ints |= set_here

    # ---- words ----------------------------------------------------------------------------------
    def text(self, node: Node) -> str:
        return self.src[node.start_byte : node.end_byte].decode("utf-8", "surrogateescape")

    def word(self, node: Node, ctx: _Ctx, names: list[str]) -> str | None:
        """The value of a word when it is known before running; analyses substitutions inside it."""
        self.tick()
        t = node.type
        if t == "word":
            text = self.text(node)
            if text.startswith("~"):
                if text == "~" or text.startswith("~/"):
                    return os.path.expanduser("~") + _unescape(text[1:], None)
                names.append(text.split("/", 1)[0])
                return None
            return _unescape(text, None)
        if t == "raw_string":
            return self.text(node)[1:-1]
        if t == "number":
            return self.text(node)
        if t in ("string", "translated_string"):
            return self.string(node, ctx, names)
        if t == "ansi_c_string":
            return ansi_c(self.text(node)[2:-1])
        if t == "concatenation":
            kids = node.named_children
            parts = [self.word(ch, ctx, names) for ch in kids]
            if any(p is None for p in parts):
                return None
            if any(ch.type == "word" and self.text(ch) == "{" for ch in kids) and _BRACE.search(
                self.text(node)
            ):
                names.append("{brace expansion}")
                return None  # a{b,c}: several words, only known after expansion
            return "".join(p or "" for p in parts)
        if t == "simple_expansion":
            name = self.text(node)[1:]
            self.out.expanded.append(name)
            if name == "HOME":
                return os.path.expanduser("~")
            names.append(name)
            return None
        if t == "expansion":
            text = self.text(node)
            if "@P" in text or "@E" in text:
                self.out.hidden.append(f"{text} expands a prompt string, which can run commands")
            if text.startswith("${!"):
                self.out.hidden.append(
                    f"{text} expands a variable named by another variable (it may hold a secret)"
                )
            kids = node.named_children
            if len(kids) == 1 and kids[0].type == "variable_name" and self.text(kids[0]) == "HOME":
                self.out.expanded.append("HOME")
                return os.path.expanduser("~")
            for ch in kids:
                if ch.type == "variable_name":
                    names.append(self.text(ch))
                    self.out.expanded.append(self.text(ch))
                elif ch.type == "subscript":
                    self.arithmetic(ch)
                    self.visit(ch, ctx)
                else:
                    self.visit(ch, ctx)
            return None
        if t in ("command_substitution", "process_substitution"):
            self.visit(node, ctx)
            return None
        if t == "brace_expression":
            names.append("{brace expansion}")
            return None
        self.visit(node, ctx)
        return None

    def string(self, node: Node, ctx: _Ctx, names: list[str]) -> str | None:
        start = node.start_byte + (2 if node.type == "translated_string" else 1)
        end = node.end_byte - 1
        pos = start
        out: list[str] = []
        known = True
        for ch in node.named_children:
            if ch.start_byte > pos:
                out.append(_unescape(self.src[pos : ch.start_byte].decode("utf-8", "surrogateescape"), _DQ))
            if ch.type == "string_content":
                out.append(_unescape(self.text(ch), _DQ))
            else:
                value = self.word(ch, ctx, names)
                if value is None:
                    known = False
                else:
                    out.append(value)
            pos = ch.end_byte
        if end > pos:
            out.append(_unescape(self.src[pos:end].decode("utf-8", "surrogateescape"), _DQ))
        return "".join(out) if known else None


_DQ = '$`"\\\n'


def _unescape(text: str, escapable: str | None) -> str:
    """Drop the backslashes bash drops: before any character (``escapable`` None: unquoted words) or
    only before the given ones (inside double quotes); a backslash-newline joins lines."""
    if "\\" not in text:
        return text
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c == "\\" and i + 1 < n and (escapable is None or text[i + 1] in escapable):
            if text[i + 1] != "\n":
                out.append(text[i + 1])
            i += 2
            continue
        out.append(c)
        i += 1
    return "".join(out)


class _Inner(Protocol):
    def __call__(
        self, rest: list[Word], label: str, *, more_args: bool = ..., writes: list[str] | None = None
    ) -> None: ...


def _unquoted_glob(node: Node, walker: _Walker) -> bool:
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


_CODE_IN_DATA = re.compile(r"\$\(|`")
_ARITH_BUILTINS = frozenset(
    {"printf", "read", "test", "[", "let", "declare", "typeset", "local", "export", "readonly", "unset", "mapfile",
     "readarray", "wait", "shift", "exit", "return", "kill", "ulimit", "getopts"}
)  # fmt: skip
# Shell variables that are not environment settings: assigning them is harmless.
_HARMLESS_SHELL = frozenset({"_", "OPTIND", "OPTARG", "REPLY"})
_BRACE = re.compile(r"\{[^{}]*(?:,|\.\.)[^{}]*\}")
_NO_PROGRAM_FLAGS = frozenset({"-m", "--version", "-V", "-v", "--help", "-h", "-VV"})
_PY = re.compile(r"python[0-9.]*|pypy[0-9.]*")


def _interpreter(base: str) -> str | None:
    if base in INTERPRETERS:
        return base
    if _PY.fullmatch(base):
        return "python"
    return None


def analyze(command: str) -> Analysis:
    """Every program ``command`` would run, its redirects, and what cannot be known."""
    out = Analysis(command)
    if len(command) > MAX_CHARS:
        out.limit = f"the command is longer than {MAX_CHARS} characters, too long to analyse"
        return out
    src = command.encode("utf-8", "surrogateescape")
    tree = _get_parser().parse(src)
    root = tree.root_node
    out.parse_error = root.has_error
    budget = [time.perf_counter() + MAX_SECONDS, float(MAX_NODES)]
    try:
        _Walker(src, out, budget).visit(root, _Ctx())
    except RecursionError:
        out.limit = "the command nests too deeply to analyse"
    except _Limit as exc:
        out.limit = str(exc)
    return out
