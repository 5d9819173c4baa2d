"""Programs that run other programs, for the command walker: wrappers from the table (``nice``,
``timeout``, ``flock -c``, ... ``wrappers.py``), ``env`` (assignments, ``-C``, ``-S``), interpreters
(inline code, scripts, stdin) and shells (``-c`` strings, scripts, stdin). A mixin of
``bash_commands.CommandWalker``."""

from __future__ import annotations

from typing import Protocol

from nbagent.permissions.bash_types import Ctx, FoundCommand, Word, join_cwd
from nbagent.permissions.options import parse_options
from nbagent.permissions.programs import INTERPRETERS
from nbagent.permissions.wrappers import STRING_LONG, WRAPPERS, wrapper_table

_NO_PROGRAM_FLAGS = frozenset({"-m", "--version", "-V", "-v", "--help", "-h", "-VV"})


class _Inner(Protocol):
    def __call__(
        self, rest: list[Word], label: str, *, more_args: bool = ..., writes: list[str] | None = None
    ) -> None: ...


def streamed(script: str) -> bool:
    """A script that is a stream (process substitution, stdin): its code cannot be read beforehand."""
    return script in ("-", "/dev/stdin") or script.startswith(("/dev/fd/", "/proc/self/fd/", "<(", "$("))


class ProgramRunners:
    """What these methods use of the walker (defined in ``CommandWalker``)."""

    def record(
        self,
        words: list[Word],
        ctx: Ctx,
        *,
        assigns: list[str] | None = None,
        names: list[str] | None = None,
        **flags: object,
    ) -> FoundCommand:
        raise NotImplementedError

    def run(
        self,
        words: list[Word],
        assigns: list[str],
        names: list[str],
        ctx: Ctx,
        stdin: str | None,
        extra_args: bool = False,
    ) -> None:
        raise NotImplementedError

    def shell_string(
        self, head: list[Word], parts: list[Word], ctx: Ctx, assigns: list[str], names: list[str], label: str
    ) -> None:
        raise NotImplementedError

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
        raise NotImplementedError

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
                found.code = found.code or streamed(script)

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
            if script is not None and streamed(script):
                found.code = True  # <(...), /dev/stdin: code nbagent cannot read
            found.script = script
            return
        if stdin is not None:
            self.parse_nested(stdin, words, ctx, assigns, names, f"{base} <<")
            return
        self.record(words, ctx, assigns=assigns, names=names,
                    unknowable=f"{base} reads its commands from standard input")  # fmt: skip
