"""The command half of the shell analysis: what a simple command runs, seen through wrappers (``sudo``,
``env``, ``xargs``, ``nice``, ``timeout``, ... ``wrappers.py``), shells and ``eval`` (their strings are
parsed in turn), interpreters and ``find -exec``. A mixin of the walker in ``bash_walk.py``."""

from __future__ import annotations

import os
import re
from typing import Protocol

from tree_sitter import Node

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
from nbagent.permissions.options import parse_options
from nbagent.permissions.programs import INT_VARS, INTERPRETERS, SHELLS
from nbagent.permissions.wrappers import STRING_LONG, WRAPPERS, wrapper_table


class CommandWalker:
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
            if script is None or _streamed(script):
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

    def wrapper(self, base: str, words: list[Word], assigns: list[str], names: list[str], ctx: Ctx,
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
                sub = Ctx(None, (*ctx.via, base), ctx.depth, tuple(assigns))
                self.run(inner_words, list(assigns), names, sub, stdin, extra_args)
            return
        if rest_at >= len(args):
            self.record(words, ctx, assigns=assigns, names=names, writes=writes)
            return
        inner(args[rest_at:], base, writes=writes)

    def env(self, words: list[Word], assigns: list[str], names: list[str], ctx: Ctx, stdin: str | None,
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
                cwd = join_cwd(cwd, target) if target is not None else None
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
                sub = Ctx(cwd, (*ctx.via, "env -S"), ctx.depth, tuple(assigns + env_assigns))
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
        sub = Ctx(cwd, (*ctx.via, "env"), ctx.depth, tuple(assigns + env_assigns))
        self.run(args[i:], assigns + env_assigns, names, sub, stdin, extra_args)

    def interpreter(self, interp: str, base: str, words: list[Word], ctx: Ctx, assigns: list[str],
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
            found = self.record(
                words, ctx, assigns=assigns, names=names, code=stdin is not None, extra_args=extra_args
            )
            if script is not None and script != "-" and not any(v in _NO_PROGRAM_FLAGS for v in vals):
                found.script = script
                found.code = found.code or _streamed(script)

    def shell(
        self,
        words: list[Word],
        ctx: Ctx,
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
            # a script file: the program is the script, decided by the rules like any other; its
            # content is read for deny rules after the walk (``bash.analyze``)
            found = self.record(words, ctx, assigns=assigns, names=names, extra_args=extra_args)
            script = vals[i]
            if script is not None and _streamed(script):
                found.code = True  # <(...), /dev/stdin: code nbagent cannot read
            found.script = script
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


class _Inner(Protocol):
    def __call__(
        self, rest: list[Word], label: str, *, more_args: bool = ..., writes: list[str] | None = None
    ) -> None: ...


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


def _streamed(script: str) -> bool:
    """A script that is a stream (process substitution, stdin): its code cannot be read beforehand."""
    return script in ("-", "/dev/stdin") or script.startswith(("/dev/fd/", "/proc/self/fd/", "<(", "$("))


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
_NO_PROGRAM_FLAGS = frozenset({"-m", "--version", "-V", "-v", "--help", "-h", "-VV"})
_PY = re.compile(r"python[0-9.]*|pypy[0-9.]*")


def _interpreter(base: str) -> str | None:
    if base in INTERPRETERS:
        return base
    if _PY.fullmatch(base):
        return "python"
    return None
