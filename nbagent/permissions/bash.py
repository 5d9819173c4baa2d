"""Shell command analysis with tree-sitter-bash: every program a command line would run.

``analyze(command)`` parses once and walks the tree, passing context (the directory, the wrappers) down
rather than climbing parents. It sees through quoting (``'rm'``, ``\\rm``, ``r\\m``), paths
(``/bin/rm``), environment assignments (``X=1 rm``) and wrappers that run their argument (``sudo``,
``env``, ``xargs``, ``bash -c``, ``eval``, ``find -exec``, ...), and marks what it cannot know
(``eval "$VAR"``, ``$CMD``, ``| sh``) as *unknowable*. It knows nothing about rules: the policy decides.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

import tree_sitter_bash
from tree_sitter import Language, Node, Parser

from nbagent.permissions.programs import INTERPRETERS, SHELLS, risky_var

MAX_DEPTH = 8  # nested bash -c / eval strings

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
    cwd: str | None = (
        ""  # where it runs: "" the start directory, a path (relative to it or absolute), None unknown
    )
    via: list[str] = field(default_factory=list)  # wrappers it runs under: sudo, xargs, bash -c, ...
    assigns: list[str] = field(default_factory=list)  # NAME=value prefixes (X=1 cmd)
    vars: list[str] = field(default_factory=list)  # variables expanded in its words
    writes: list[str] = field(default_factory=list)  # arguments it writes to (tee FILE, time -o FILE)
    unknowable: str = ""  # why the program that really runs cannot be known
    wrapper: bool = False  # only runs another command (found separately): env, nohup, xargs, bash -c, ...
    code: bool = False  # runs inline code (python -c, node -e, awk)
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
    # statement-level assignments that change what runs (PATH=...)
    risky: list[str] = field(default_factory=list)
    # code hidden in data the shell may still run: x='$(cmd)' then $((x)), ${x@P}, printf -v 'a[$(cmd)]'
    hidden: list[str] = field(default_factory=list)
    # variables the command line sets itself, and functions it defines (their bodies are analysed)
    assigned: set[str] = field(default_factory=set)
    functions: set[str] = field(default_factory=set)

    @property
    def unknowable(self) -> list[str]:
        return [c.unknowable for c in self.commands if c.unknowable] + self.hidden

    def summary(self) -> dict[str, object]:
        return {
            "commands": [c.text for c in self.commands if not c.wrapper],
            "redirects": [f"{r.op} {r.target}" for r in self.redirects],
            "unknowable": self.unknowable,
            "hidden": self.hidden,
            "parse_error": self.parse_error,
        }


class _Ctx:
    __slots__ = ("cwd", "depth", "via")

    def __init__(self, cwd: str | None = "", via: tuple[str, ...] = (), depth: int = 0) -> None:
        self.cwd = cwd
        self.via = via
        self.depth = depth

    def copy(self) -> _Ctx:
        return _Ctx(self.cwd, self.via, self.depth)


_ANSI_C = re.compile(r"\\(x[0-9a-fA-F]{1,2}|u[0-9a-fA-F]{1,4}|U[0-9a-fA-F]{1,8}|[0-7]{1,3}|c.|.)", re.DOTALL)
_ANSI_SIMPLE = {"n": "\n", "t": "\t", "r": "\r", "a": "\a", "b": "\b", "e": "\x1b", "E": "\x1b", "f": "\f",
                "v": "\v", "\\": "\\", "'": "'", '"': '"', "?": "?"}  # fmt: skip


def _ansi_c(body: str) -> str:
    def sub(m: re.Match[str]) -> str:
        s = m.group(1)
        if s[0] in "xuU":
            return chr(int(s[1:], 16))
        if s[0].isdigit():
            return chr(int(s, 8) & 0xFF)
        if s[0] == "c":
            return chr(ord(s[1]) & 0x1F)
        return _ANSI_SIMPLE.get(s, "\\" + s)

    return _ANSI_C.sub(sub, body)


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


def _unescape_unquoted(text: str) -> str:
    return _unescape(text, None)


def _unescape_dquoted(text: str) -> str:
    return _unescape(text, '$`"\\\n')


def _join_cwd(cwd: str | None, target: str) -> str | None:
    if cwd is None:
        return None
    if target.startswith("/"):
        return os.path.normpath(target)
    return os.path.normpath(os.path.join(cwd, target)) if cwd else os.path.normpath(target)


class _Walker:
    def __init__(self, src: bytes, out: Analysis) -> None:
        self.src = src
        self.out = out

    # ---- statements -------------------------------------------------------------------------
    def visit(self, node: Node, ctx: _Ctx) -> None:
        t = node.type
        if t == "command":
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
        elif t in ("test_command", "arithmetic_expansion") or (
            t == "compound_statement" and self.text(node).startswith("((")
        ):
            self.hidden_code(node)
            for ch in node.named_children:
                self.visit(ch, ctx)
        elif t == "for_statement":
            var = node.child_by_field_name("variable")
            if var is not None:
                self.out.assigned.add(self.text(var))
            for ch in node.named_children:
                self.visit(ch, ctx)
        elif t in ("comment", "word", "number", "raw_string", "ansi_c_string", "variable_name", "string_content",
                   "heredoc_content", "heredoc_start", "heredoc_end", "file_descriptor", "extglob_pattern",
                   "special_variable_name", "test_operator", "regex"):  # fmt: skip
            return
        elif t in ("simple_expansion", "expansion", "string", "concatenation"):
            self.word(node, ctx, [])
        else:  # program, list, compound statements, loops, ERROR, heredoc bodies, test commands, ...
            for ch in node.named_children:
                self.visit(ch, ctx)

    def redirected(self, node: Node, ctx: _Ctx) -> None:
        body: Node | None = None
        extras: list[tuple[str | None, str]] = []
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

    def heredoc(self, node: Node, ctx: _Ctx, extras: list[tuple[str | None, str]]) -> str | None:
        quoted = False
        strip_tabs = False
        body: str | None = None
        for ch in node.children:
            t = ch.type
            if t == "<<-":
                strip_tabs = True
            elif t == "heredoc_start":
                quoted = any(q in self.text(ch) for q in "'\"\\")
            elif t == "heredoc_body":
                if quoted or not any(c.type != "heredoc_content" for c in ch.named_children):
                    body = self.text(ch)
                else:
                    self.visit(ch, ctx.copy())
            elif t == "file_redirect":
                extras += self.redirect(ch, ctx)
            elif ch.is_named and t not in ("heredoc_end", "heredoc_content"):
                self.visit(ch, ctx)
        if body is not None and strip_tabs:
            body = "\n".join(line.lstrip("\t") for line in body.split("\n"))
        return body

    def herestring(self, node: Node, ctx: _Ctx) -> str | None:
        value: str | None = None
        for ch in node.named_children:
            value = self.word(ch, ctx, [])
        return value

    def redirect(self, node: Node, ctx: _Ctx) -> list[tuple[str | None, str]]:
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
        for ch in node.named_children:
            if ch.type in ("variable_name", "subscript") and not name:
                name = self.text(ch).split("[", 1)[0]
                if ch.type == "subscript":
                    self.hidden_code(ch)
            else:
                value = self.word(ch, ctx, [])
                if value is not None and _CODE_IN_DATA.search(value):
                    self.out.hidden.append(
                        f"{name} is set to text holding a command ({value[:40]}), which the shell may run later"
                    )
        self.out.assigned.add(name)
        if statement and risky_var(name):
            self.out.risky.append(name)
        return name

    def declaration(self, node: Node, ctx: _Ctx) -> None:
        argv: list[str] = []
        for ch in node.children:
            if not ch.is_named:
                if not argv:
                    argv.append(ch.type)  # export, local, declare, unset, ...
                continue
            if ch.type == "variable_assignment":
                argv.append(self.assignment(ch, ctx, statement=True) + "=...")
            elif ch.type == "variable_name":
                name = self.text(ch)
                self.out.assigned.add(name)
                argv.append(name)
            else:
                value = self.word(ch, ctx, [])
                argv.append(value if value is not None else self.text(ch))
        if argv:
            # setting or marking variables changes only this shell; printing them (export, declare -p)
            # may show secrets, so that is a command of its own
            sets = len(argv) > 1 and not any(
                a.startswith("-") and any(f in a for f in "pfF") for a in argv[1:]
            )
            self.out.commands.append(
                FoundCommand(argv, [True] * len(argv), ctx.cwd, list(ctx.via), wrapper=sets)
            )

    # ---- commands -----------------------------------------------------------------------------
    def command(self, node: Node, ctx: _Ctx, extras: list[tuple[str | None, str]], stdin: str | None) -> None:
        assigns: list[str] = []
        words: list[tuple[str | None, str]] = []
        names: list[str] = []
        for ch in node.named_children:
            t = ch.type
            if t == "variable_assignment":
                assigns.append(self.assignment(ch, ctx, statement=False))
            elif t == "command_name":
                for part in ch.named_children:
                    value = self.word(part, ctx, names)
                    if value is not None and _unquoted_glob(part, self):
                        value = None  # /bin/r? expands to a program we cannot name
                    words.append((value, self.text(part)))
            elif t == "file_redirect":
                extras = extras + self.redirect(ch, ctx)
            elif t == "herestring_redirect":
                stdin = self.herestring(ch, ctx)
            elif t == "heredoc_redirect":
                stdin = self.heredoc(ch, ctx, extras)
            elif t == "comment":
                continue
            else:
                words.append((self.word(ch, ctx, names), self.text(ch)))
        words += extras
        if not words:
            for name in assigns:
                if risky_var(name):
                    self.out.risky.append(name)
            return
        self.run(words, assigns, names, ctx, stdin)

    def record(
        self,
        words: list[tuple[str | None, str]],
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
        words: list[tuple[str | None, str]],
        assigns: list[str],
        names: list[str],
        ctx: _Ctx,
        stdin: str | None,
        extra_args: bool = False,
    ) -> None:
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
            rest: list[tuple[str | None, str]],
            label: str,
            more_args: bool = extra_args,
            writes: list[str] | None = None,
        ) -> FoundCommand:
            """Record the wrapper (its own words only), then analyse the command it runs."""
            found = self.record(words, ctx, assigns=assigns, names=names, wrapper=True, extra_args=extra_args)
            found.argv = found.argv[: len(words) - len(rest)]
            found.literal = found.literal[: len(found.argv)]
            found.writes = writes or []
            if rest:
                sub = _Ctx(ctx.cwd, (*ctx.via, label), ctx.depth)
                self.run(rest, [], names, sub, stdin, more_args)
            return found

        if base in ("sudo", "doas"):
            i = _skip_options(
                vals, {"-u", "-g", "-C", "-D", "-h", "-p", "-r", "-t", "-U", "-T", "--user", "--group"}
            )
            self.record(words, ctx, assigns=assigns, names=names, extra_args=extra_args)
            if any(v in ("-i", "-s", "--login", "--shell") for v in vals[:i]) and i >= len(args):
                self.out.commands[-1].unknowable = f"{base} -i/-s starts an interactive shell"
            if i < len(args):
                self.run(args[i:], [], names, _Ctx(ctx.cwd, (*ctx.via, base), ctx.depth), stdin, extra_args)
            return
        if base == "env":
            i = 0
            env_assigns: list[str] = []
            while i < len(vals):
                v = vals[i]
                if v is None:
                    break
                if v in ("-u", "--unset", "-C", "--chdir"):
                    i += 2
                    continue
                if v in ("-S", "--split-string") or v.startswith("--split-string="):
                    self.record(
                        words,
                        ctx,
                        assigns=assigns,
                        names=names,
                        unknowable="env -S splits a string into a command",
                    )
                    return
                if v == "--":
                    i += 1
                    break
                if v.startswith("-"):
                    i += 1
                    continue
                if "=" in v and not v.startswith("="):
                    env_assigns.append(v.split("=", 1)[0])
                    i += 1
                    continue
                break
            if i >= len(args):
                self.record(words, ctx, assigns=assigns + env_assigns, names=names)
                return
            self.record(words[: i + 1], ctx, assigns=assigns, names=names, wrapper=True)
            sub = _Ctx(ctx.cwd, (*ctx.via, "env"), ctx.depth)
            self.run(args[i:], assigns + env_assigns, names, sub, stdin, extra_args)
            return
        if base == "command":
            if any(v in ("-v", "-V") for v in vals):
                self.record(words, ctx, assigns=assigns, names=names)
                return
            i = _skip_options(vals, set())
            inner(args[i:], "command")
            return
        if base in ("builtin", "nohup", "coproc", "unbuffer", "setsid"):
            inner(args[_skip_options(vals, set()) if base == "setsid" else 0 :], base)
            return
        if base == "exec":
            inner(args[_skip_options(vals, {"-a"}) :], base)
            return
        if base == "time":
            i = 0
            writes: list[str] = []
            while i < len(vals) and vals[i] is not None and str(vals[i]).startswith("-"):
                v = str(vals[i])
                if v in ("-o", "--output") and i + 1 < len(vals):
                    writes.append(vals[i + 1] or args[i + 1][1])
                    i += 2
                    continue
                if v.startswith("--output="):
                    writes.append(v.split("=", 1)[1])
                elif v in ("-f", "--format"):
                    i += 1
                i += 1
            inner(args[i:], base, writes=writes)
            return
        if base in ("nice", "ionice", "stdbuf", "chronic"):
            takes = {"nice": {"-n", "--adjustment"}, "ionice": {"-c", "-n", "--class", "--classdata"},
                     "stdbuf": {"-i", "-o", "-e"}, "chronic": set()}[base]  # fmt: skip
            inner(args[_skip_options(vals, takes) :], base)
            return
        if base == "timeout":
            i = _skip_options(vals, {"-s", "-k", "--signal", "--kill-after"})
            inner(args[i + 1 :], base)  # skip the duration
            return
        if base == "xargs":
            takes = {"-I", "-L", "-n", "-P", "-s", "-d", "-E", "-a", "--arg-file", "--delimiter", "--max-args",
                     "--max-lines", "--max-procs", "--max-chars", "--replace", "--process-slot-var"}  # fmt: skip
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
            self.shell_string(words, args, ctx, assigns, names, "eval")
            return
        if base == "busybox" and args:
            inner(args, base)
            return
        if base in SHELLS:
            self.shell(words, ctx, assigns, names, stdin, extra_args)
            return
        interp = _interpreter(base)
        if interp is not None:
            flags = INTERPRETERS[interp]
            has_code_flag = any(v in flags or (v or "").startswith(tuple(f + "=" for f in flags if f.startswith("--")))
                                for v in vals)  # fmt: skip
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
        if base == "read":
            for v in vals:
                if v is not None and not v.startswith("-"):
                    self.out.assigned.add(v)
        found = self.record(words, ctx, assigns=assigns, names=names, extra_args=extra_args)
        if base == "tee":
            found.writes = [
                v if v is not None else raw for v, raw in args if v is None or not v.startswith("-")
            ]

    def shell(
        self,
        words: list[tuple[str | None, str]],
        ctx: _Ctx,
        assigns: list[str],
        names: list[str],
        stdin: str | None,
        extra_args: bool,
    ) -> None:
        base = (words[0][0] or "").rsplit("/", 1)[-1]
        vals = [v for v, _ in words[1:]]
        i = 0
        while i < len(vals):
            v = vals[i]
            if v is None:
                break
            if v in ("-o", "+o", "-O", "+O", "--rcfile", "--init-file"):
                i += 2
                continue
            if v == "--":
                i += 1
                break
            if v.startswith(("-", "+")) and len(v) > 1:
                if not v.startswith("--") and "c" in v[1:]:
                    code = words[i + 2] if i + 1 < len(vals) else (None, "")
                    if i + 1 >= len(vals):
                        self.record(
                            words,
                            ctx,
                            assigns=assigns,
                            names=names,
                            unknowable=f"{base} -c without a command",
                        )
                        return
                    self.shell_string(words[: i + 2], [code], ctx, assigns, names, f"{base} -c")
                    return
                if not v.startswith("--") and ("s" in v[1:] or "i" in v[1:]):
                    break
                i += 1
                continue
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
        head: list[tuple[str | None, str]],
        parts: list[tuple[str | None, str]],
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
        head: list[tuple[str | None, str]],
        ctx: _Ctx,
        assigns: list[str],
        names: list[str],
        label: str,
    ) -> None:
        found = self.record(head, ctx, assigns=assigns, names=names, wrapper=True)
        if ctx.depth >= MAX_DEPTH:
            found.wrapper = False
            found.unknowable = f"{label} nests shell code too deeply to follow"
            return
        src = code.encode("utf-8", "surrogateescape")
        tree = _get_parser().parse(src)
        if tree.root_node.has_error:
            self.out.parse_error = True
        sub = _Ctx(ctx.cwd, (*ctx.via, label), ctx.depth + 1)
        _Walker(src, self.out).visit(tree.root_node, sub)

    def find(
        self,
        words: list[tuple[str | None, str]],
        ctx: _Ctx,
        assigns: list[str],
        names: list[str],
        extra_args: bool,
    ) -> None:
        i = 1
        own: list[tuple[str | None, str]] = [words[0]]
        execs: list[tuple[str, list[tuple[str | None, str]]]] = []
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
                self.run(cmd, [], names, _Ctx(ctx.cwd, (*ctx.via, f"find {label}"), ctx.depth), None)

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

    # ---- words ----------------------------------------------------------------------------------
    def text(self, node: Node) -> str:
        return self.src[node.start_byte : node.end_byte].decode("utf-8", "surrogateescape")

    def word(self, node: Node, ctx: _Ctx, names: list[str]) -> str | None:
        """The value of a word when it is known before running; analyses substitutions inside it."""
        t = node.type
        if t == "word":
            text = self.text(node)
            if text.startswith("~"):
                if text == "~" or text.startswith("~/"):
                    return os.path.expanduser("~") + _unescape_unquoted(text[1:])
                names.append(text.split("/", 1)[0])
                return None
            return _unescape_unquoted(text)
        if t == "raw_string":
            return self.text(node)[1:-1]
        if t == "number":
            return self.text(node)
        if t in ("string", "translated_string"):
            return self.string(node, ctx, names)
        if t == "ansi_c_string":
            return _ansi_c(self.text(node)[2:-1])
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
            if name == "HOME":
                return os.path.expanduser("~")
            names.append(name)
            return None
        if t == "expansion":
            if "@P" in self.text(node):
                self.out.hidden.append(f"{self.text(node)} expands a prompt string, which can run commands")
            kids = node.named_children
            if len(kids) == 1 and kids[0].type == "variable_name" and self.text(kids[0]) == "HOME":
                return os.path.expanduser("~")
            for ch in kids:
                if ch.type == "variable_name":
                    names.append(self.text(ch))
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
                out.append(
                    _unescape_dquoted(self.src[pos : ch.start_byte].decode("utf-8", "surrogateescape"))
                )
            if ch.type == "string_content":
                out.append(_unescape_dquoted(self.text(ch)))
            else:
                value = self.word(ch, ctx, names)
                if value is None:
                    known = False
                else:
                    out.append(value)
            pos = ch.end_byte
        if end > pos:
            out.append(_unescape_dquoted(self.src[pos:end].decode("utf-8", "surrogateescape")))
        return "".join(out) if known else None


def _unquoted_glob(node: Node, walker: _Walker) -> bool:
    """Does a command word hold an unquoted glob character (``/bin/r?``)?"""
    if node.type == "word":
        text = walker.text(node).replace("\\\\", "")
        return any(c in text.replace("\\*", "").replace("\\?", "").replace("\\[", "") for c in "*?[")
    if node.type == "concatenation":
        return any(_unquoted_glob(ch, walker) for ch in node.named_children)
    return False


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
    src = command.encode("utf-8", "surrogateescape")
    tree = _get_parser().parse(src)
    root = tree.root_node
    out.parse_error = root.has_error
    try:
        _Walker(src, out).visit(root, _Ctx())
    except RecursionError:
        out.parse_error = True
        out.commands.append(
            FoundCommand(["(too deeply nested)"], [False], unknowable="the command nests too deeply")
        )
    return out
