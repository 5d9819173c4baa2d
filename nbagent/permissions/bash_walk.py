"""The statement and word half of the shell analysis: lists, pipelines, subshells, redirects, heredocs,
assignments, declarations, arithmetic, and the value of each word when it is known before running."""

from __future__ import annotations

import os
import re
import time

from tree_sitter import Node

from nbagent.permissions.bash_commands import _BRACE, CommandWalker, _brace_command
from nbagent.permissions.bash_types import CODE_IN_DATA, Analysis, Ctx, FoundCommand, Limit, Redirect, Word
from nbagent.permissions.expand import ansi_c
from nbagent.permissions.programs import INT_VARS, risky_var


class _Walker(CommandWalker):
    def __init__(self, src: bytes, out: Analysis, budget: list[float]) -> None:
        self.src = src
        self.out = out
        self.budget = budget  # [deadline, nodes left]: shared by nested walkers
        self.ints: set[str] = set()  # variables known to hold plain numbers

    def tick(self) -> None:
        self.budget[1] -= 1
        if self.budget[1] <= 0:
            raise Limit("the command is too large to analyse")
        if self.budget[1] % 512 == 0 and time.perf_counter() > self.budget[0]:
            raise Limit("the command takes too long to analyse")

    # ---- statements -------------------------------------------------------------------------
    def visit(self, node: Node, ctx: Ctx) -> None:
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

    def error(self, node: Node, ctx: Ctx) -> None:
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

    def redirected(self, node: Node, ctx: Ctx) -> None:
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

    def heredoc(self, node: Node, ctx: Ctx, extras: list[Word]) -> str | None:
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

    def herestring(self, node: Node, ctx: Ctx) -> str | None:
        value: str | None = None
        for ch in node.named_children:
            value = self.word(ch, ctx, [])
        return value

    def redirect(self, node: Node, ctx: Ctx) -> list[Word]:
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

    def assignment(self, node: Node, ctx: Ctx, statement: bool) -> str:
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
                if value is not None and CODE_IN_DATA.search(value):
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

    def declaration(self, node: Node, ctx: Ctx) -> None:
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
        if "i" in flags and argv[0] != "unset":
            self.out.hidden.append(
                f"{argv[0]} -i makes later assignments arithmetic, which can run commands held in a value"
            )
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

    def hidden_code(self, node: Node) -> None:
        """Quoted text in arithmetic or test context is evaluated, with its command substitutions."""
        stack = [node]
        while stack:
            n = stack.pop()
            if n.type in ("raw_string", "string_content", "word") and CODE_IN_DATA.search(self.text(n)):
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

    def word(self, node: Node, ctx: Ctx, names: list[str]) -> str | None:
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
            offset = _OFFSET.match(text)
            if offset is not None:  # ${x:OFFSET:LENGTH} evaluates both as arithmetic
                for name in re.findall(r"[A-Za-z_][A-Za-z0-9_]*", offset.group(1)):
                    if name not in self.ints and name not in INT_VARS:
                        self.out.hidden.append(
                            f"{text} evaluates ${name} as arithmetic; its value is not a known number"
                        )
                        break
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

    def string(self, node: Node, ctx: Ctx, names: list[str]) -> str | None:
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


_OFFSET = re.compile(r"\$\{#?[A-Za-z_@*][A-Za-z0-9_]*(?:\[[^\]]*\])?:(?![-=?+])([^}]*)\}\Z")
# Shell variables that are not environment settings: assigning them is harmless.
_HARMLESS_SHELL = frozenset({"_", "OPTIND", "OPTARG", "REPLY"})
