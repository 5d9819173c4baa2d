"""How ``RulePolicy`` decides a shell command: every part of it, the most restrictive part wins.

Allowed without asking only when proven harmless: every program is in the read-only tables with
options they list (``readonly.py``), every path it reads, lists or reads recursively is allowed
(protected files ask, outside folders ask), no variable outside a small safe set is expanded, no
environment variable that changes what runs is set, and nothing is hidden from the analysis.
Deny rules are matched after normalisation (``deny.py``); where the analysis cannot see a program or
hits a limit, a deny rule that could match the text denies, and otherwise only a person may approve.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from nbagent.core.config import Mode
from nbagent.core.permission_types import Decision
from nbagent.permissions.bash_types import join_cwd
from nbagent.permissions.defaults import secret_kind
from nbagent.permissions.deny import could_match, flag_match, strip_git_globals
from nbagent.permissions.globbing import could_match_protected, expand, first_protected, has_magic
from nbagent.permissions.options import OptionTable, parse_options
from nbagent.permissions.parts import Hit, Part, most_restrictive
from nbagent.permissions.patterns import match_command, static_prefix
from nbagent.permissions.programs import FS_EDIT_COMMANDS, SAFE_VARS, always_prefix, safe_assign
from nbagent.permissions.readonly import ANY_ARGS, is_read_only_program, view
from nbagent.permissions.view import View

if TYPE_CHECKING:  # the bash analysis (tree-sitter) loads when the first command is checked
    from nbagent.permissions.bash import Analysis, FoundCommand, Redirect

SYSTEM_BIN = ("/bin/", "/usr/bin/", "/usr/local/bin/", "/sbin/", "/usr/sbin/", "/usr/local/sbin/")
_DECLARATIONS = frozenset({"export", "local", "declare", "readonly", "typeset", "unset"})
HARMLESS_TARGETS = frozenset({"/dev/null", "/dev/stdout", "/dev/stderr", "/dev/tty", "/dev/zero"})
# acceptEdits: the options of the file-system commands it allows (links and other targets ask).
_FS_OPTIONS = {
    "mkdir": OptionTable.parse("-p -v -m= --parents --verbose --mode="),
    "touch": OptionTable.parse("-a -c -m -h -d= -t= --no-create --date= --no-dereference --time="),
    "cp": OptionTable.parse(
        "-r -R -a -f -i -n -p -v -u -T -P -d --recursive --archive --force --interactive"
        " --no-clobber --preserve? --no-preserve= --verbose --update? --no-target-directory"
        " --no-dereference --parents --sparse= --reflink? --strip-trailing-slashes"
    ),
    "mv": OptionTable.parse(
        "-f -i -n -v -u -T --force --interactive --no-clobber --verbose --update?"
        " --no-target-directory --strip-trailing-slashes"
    ),
}
# Names that, copied or moved into place, change what runs or what is allowed.
_CONTROL_NAMES = frozenset(
    {".git", ".nbagent", ".claude", ".opencode", "nbagent.json", ".mcp.json", ".envrc"}
)


class ShellRules:
    """The shell half of ``RulePolicy`` (a mixin: the path checks and rule layers are the policy's)."""

    mode: Mode
    _root: str

    # ---- provided by RulePolicy -------------------------------------------------------------------
    def _path_part(self, key: str, raw: str, cwd: str | None, access: str, deny_only: bool = False) -> Part:
        raise NotImplementedError

    def _mode_part(self, part: Part) -> Part:
        raise NotImplementedError

    def _decide(self, parts: list[Part], key: str, details: dict[str, Any] | None = None) -> Decision:
        raise NotImplementedError

    def _bash_lookup(self, texts: list[str], argvs: list[list[str]]) -> Hit:
        raise NotImplementedError

    def _bash_deny_patterns(self) -> list[str]:
        raise NotImplementedError

    # ---- shell commands -----------------------------------------------------------------------------
    def _bash(self, commands: list[str]) -> Decision:
        parts: list[Part] = []
        found: list[dict[str, Any]] = []
        from nbagent.permissions.bash import analyze

        for command in commands:
            analysis = analyze(command, self._root)
            cmd_parts, listed = self._analysis_parts(analysis)
            if analysis.opaque and self._bash_deny_patterns():
                # a deny rule could be dodged by what nbagent cannot see: only a person may approve
                for part in cmd_parts:
                    part.person_only = part.person_only or part.action == "ask"
            parts += cmd_parts
            found += listed
        return self._decide(parts, "bash", {"commands": found})

    def _analysis_parts(self, a: Analysis) -> tuple[list[Part], list[dict[str, Any]]]:
        parts: list[Part] = []
        listed: list[dict[str, Any]] = []
        for c in a.commands:
            cparts = self._command_parts(c, a)
            top = most_restrictive([self._mode_part(p) for p in cparts]) or Part("allow", "")
            listed.append({"command": c.text, "action": top.action, "rule": top.rule, "reason": top.reason,
                           "via": c.via, "wrapper": c.wrapper})  # fmt: skip
            parts += cparts
        for r in a.redirects:
            rp = self._redirect_part(r)
            listed.append({"redirect": f"{r.op} {r.target}", "action": self._mode_part(rp).action,
                           "rule": rp.rule, "reason": rp.reason})  # fmt: skip
            parts.append(rp)
        for name in dict.fromkeys(a.risky):
            parts.append(
                Part(
                    "ask",
                    "changes what runs",
                    f"sets {name}, which changes which programs run or what they load",
                )
            )
        secret = [v for v in dict.fromkeys(a.expanded) if v not in SAFE_VARS and v not in a.assigned]
        if secret:
            parts.append(Part("ask", "expands a variable", f"expands ${secret[0]}, which may hold a secret"))
        why = a.opaque
        if why:
            denied = [p for p in self._bash_deny_patterns() if could_match(p, a.command)]
            if denied:
                parts.append(Part("deny", f'bash "{denied[0]}": deny',
                                  f"nbagent cannot see every program this runs ({why[0]}), and the deny rule"
                                  f" '{denied[0]}' could match it"))  # fmt: skip
        # what no single command stands for: code hidden in data, a misread, a limit
        hidden = [*a.hidden, *(["the command does not parse as bash"] if a.parse_error else []),
                  *([a.limit] if a.limit else [])]  # fmt: skip
        if hidden:
            parts.append(Part("ask", "cannot see what runs", hidden[0]))
        return parts, listed

    def _texts(self, c: FoundCommand) -> tuple[list[str], list[list[str]]]:
        """The command as rules see it: system paths and git's global options removed."""
        argv = list(c.argv)
        if os.path.dirname(argv[0]) + "/" in SYSTEM_BIN:
            argv[0] = c.program
        argvs = [strip_git_globals(argv)]
        if argv[0] != c.program:  # ./tool, .venv/bin/x: rules on the bare name still apply
            argvs.append(strip_git_globals([c.program, *c.args]))
        return [" ".join(v) for v in argvs], argvs

    def _command_parts(self, c: FoundCommand, a: Analysis) -> list[Part]:
        label = c.text
        program = c.program
        texts, argvs = self._texts(c)
        argv = argvs[0]
        hit = self._bash_lookup(texts, argvs)
        if c.unknowable:
            if hit.action == "deny":
                return [Part("deny", hit.rule, f"{label}: denied", label=label)]
            return [Part("ask", "cannot see what runs", c.unknowable, label=label)]
        parts: list[Part] = []
        unsafe = [n for n in dict.fromkeys(c.assigns) if not safe_assign(n)]
        if unsafe and hit.action != "deny":
            parts.append(Part("ask", "changes what runs",
                              f"sets {', '.join(unsafe)} for {program}, which can change what it runs or loads",
                              label=label))  # fmt: skip
        if c.wrapper or program in a.functions:
            # only runs what is found separately (sudo excepted); explicit rules may still decide it
            if hit.catch_all and hit.action != "deny":
                what = (
                    "sets shell variables"
                    if program in _DECLARATIONS
                    else f"{program} runs the command after it"
                )
                parts.append(Part("allow", what, label=label, minor=True))
            else:
                parts.append(Part(hit.action, hit.rule, label=label))
            parts += self._write_parts(c)
            return parts

        action, rule, reason = hit.action, hit.rule, ""
        seen = (
            view(program, c.args)
            if argv[0] == program
            else View(problem=f"{argv[0]} is not a system program")
        )
        if c.code:
            seen = View(problem=f"{program} runs inline code")
        elif seen.problem is None and c.dynamic and program not in ANY_ARGS:
            which = next(
                (w for w, lit in zip(c.argv, c.literal, strict=False) if not lit), "input from a pipe"
            )
            seen = View(problem=f"cannot check what {program} does ({which} is only known at run time)")
        read_only = seen.problem is None
        if action == "ask":
            reason = (
                f"run {' '.join(argv)}"
                if seen.problem is None or not is_read_only_program(program)
                else seen.problem
            )
            if hit.catch_all and read_only:
                action, rule, reason = "allow", f"read-only command: {program}", ""
            elif hit.catch_all and self.mode == "acceptEdits" and program in FS_EDIT_COMMANDS:
                fs = self._fs_edit_parts(c)
                if fs is not None:
                    return [*parts, Part("allow", "mode acceptEdits", label=label), *fs]
        if self.mode == "plan" and not read_only and action != "deny":
            action, rule = "deny", "mode plan"
            reason = f"plan mode is read-only: {program} may change things ({seen.problem})"
        part = Part(action, rule, reason, label=label)
        if action == "ask" and not unsafe:
            part.always = [("bash", _command_always(argv))]
        parts.append(part)
        parts += self._write_parts(c)
        if read_only:
            parts += self._read_parts(c, seen)
        else:
            parts += self._deny_paths(c)
        return parts

    # ---- paths --------------------------------------------------------------------------------------
    def _write_parts(self, c: FoundCommand) -> list[Part]:
        parts = [self._path_part("edit", t, c.cwd, "write") for t in c.writes if t not in HARMLESS_TARGETS]
        if c.cwd != "" and c.program not in ("cd", "pushd", "popd") and not c.wrapper:
            # runs in another folder (after cd): that folder is what it reads by default
            base = self._path_part("read", c.cwd or ".", "" if c.cwd is not None else None, "list")
            if base.action != "allow":
                parts.append(base)
        return [p for p in parts if p.action != "allow"]

    def _read_parts(self, c: FoundCommand, seen: View) -> list[Part]:
        cwd = c.cwd
        parts: list[Part] = []
        if seen.cwd is not None:  # git -C DIR
            parts.append(self._path_part("read", seen.cwd, cwd, "list"))
            cwd = join_cwd(cwd, seen.cwd)
        for path in seen.reads:
            parts += self._glob_parts(path, cwd, "read")
        for path in seen.lists:
            parts += self._glob_parts(path, cwd, "list")
        for path in seen.recursive:
            parts += self._recursive_parts(path, cwd, seen)
        return [p for p in parts if p.action != "allow"]

    def _glob_parts(self, path: str, cwd: str | None, access: str) -> list[Part]:
        if not path or "://" in path:
            return []
        if not has_magic(path):
            return [self._path_part("read", path, cwd, access)]
        parts = [self._path_part("read", static_prefix(path), cwd, "list")]
        if cwd is None:
            return [*parts, Part("ask", "unknown directory", f"cannot tell what {path} matches", label=path)]
        base = cwd if os.path.isabs(cwd) else os.path.join(self._root, cwd)
        matches, complete = expand(path, base, limit=10_000)
        if parts[0].action == "allow":
            matches = self._needs_check(matches, base)
        for match in matches:
            part = self._path_part("read", match, cwd, access)
            if part.action != "allow":
                return [*parts, part]
        if access == "read":
            sample = could_match_protected(path)
            if sample is not None and (sample.startswith(".") or not complete):
                parts.append(Part("ask", f"protected path: {path}",
                                  f"{path} could match protected files such as {sample}", label=path))  # fmt: skip
        if not complete:
            parts.append(Part("ask", "too many files", f"{path} matches too many files to check", label=path))
        return parts

    def _needs_check(self, matches: list[str], base: str) -> list[str]:
        """The glob matches a full check could decide otherwise than the folder's: links, secret names,
        anything outside the project. Plain files in checked folders inside the project are skipped."""
        root = os.path.realpath(self._root)
        inside: dict[str, bool] = {}
        out: list[str] = []
        for match in matches:
            full = os.path.normpath(os.path.join(base, match))
            parent = os.path.dirname(full)
            if parent not in inside:
                real = os.path.realpath(parent)
                inside[parent] = real == root or real.startswith(root + "/")
            if not inside[parent] or os.path.islink(full) or secret_kind(full) is not None:
                out.append(match)
        return out

    def _recursive_parts(self, path: str, cwd: str | None, seen: View) -> list[Part]:
        part = self._path_part("read", path, cwd, "list")
        if part.action != "allow":
            return [part]
        if cwd is None:
            return [Part("ask", "unknown directory", f"cannot tell which folder {path} is", label=path)]
        base = cwd if os.path.isabs(cwd) else os.path.join(self._root, cwd)
        folder = os.path.normpath(os.path.join(base, os.path.expanduser(path)))
        root_real = os.path.realpath(self._root)

        def protected(p: str) -> str | None:
            real = os.path.realpath(p)
            if not (real == root_real or real.startswith(root_real + "/")):
                return f"{os.path.relpath(p, self._root)} leads outside the project"
            return secret_kind(p) or secret_kind(real)

        why, complete = first_protected(folder, protected, hidden=seen.hidden, follow=seen.follow)
        if why is not None:
            return [Part("ask", f"protected path in {path}",
                         f"reads every file in {path}, and {why}; it asks even when a rule allows it",
                         protected=True, label=path)]  # fmt: skip
        if not complete:
            return [
                Part(
                    "ask", "too many files", f"reads {path} recursively: too many files to check", label=path
                )
            ]
        return []

    def _deny_paths(self, c: FoundCommand) -> list[Part]:
        """Arguments of a command that is not read-only: only deny rules of ``edit`` decide here."""
        parts: list[Part] = []
        for arg, literal in zip(c.args, c.literal[1:], strict=False):
            if not literal or not arg or arg.startswith("-") or "://" in arg:
                continue
            part = self._path_part(
                "edit", static_prefix(arg) if has_magic(arg) else arg, c.cwd, "write", deny_only=True
            )
            if part.action != "allow":
                parts.append(part)
        return parts

    def _fs_edit_parts(self, c: FoundCommand) -> list[Part] | None:
        """acceptEdits: mkdir/touch/cp/mv inside the project. None: not provably such an edit (asks)."""
        table = _FS_OPTIONS[c.program]
        if c.dynamic:
            return None
        parsed = parse_options(c.args, table)
        if parsed.problem or not parsed.operands:
            return None
        ops = parsed.operands
        parts: list[Part] = []
        writes = list(ops) if c.program in ("mkdir", "touch", "mv") else [ops[-1]]
        reads = ops[:-1] if c.program in ("cp", "mv") else []
        if c.program in ("cp", "mv") and len(ops) < 2:
            return None
        target_dir = c.program in ("cp", "mv") and (len(ops) > 2 or self._is_dir(ops[-1], c.cwd))
        if target_dir:
            writes += [os.path.join(ops[-1], os.path.basename(s.rstrip("/"))) for s in reads]
        for path in writes:
            for target in self._expansions(path, c.cwd):
                part = self._path_part("edit", target, c.cwd, "write")
                if not self._inside(target, c.cwd):
                    return None
                parts.append(part)
        for src in reads:
            for target in self._expansions(src, c.cwd):
                parts.append(self._path_part("read", target, c.cwd, "read"))
                found = self._control_inside(target, c.cwd)
                if found:
                    parts.append(Part("ask", f"protected path: {found}",
                                      f"{c.program} would put {found} in place, which changes what runs or what is allowed",
                                      protected=True, label=found))  # fmt: skip
        return [p for p in parts if p.action != "allow"]

    def _abs(self, path: str, cwd: str | None) -> str:
        base = cwd if cwd and os.path.isabs(cwd) else os.path.join(self._root, cwd or "")
        return os.path.normpath(os.path.join(base, os.path.expanduser(path)))

    def _inside(self, path: str, cwd: str | None) -> bool:
        real = os.path.realpath(self._abs(path, cwd))
        root = os.path.realpath(self._root)
        return real == root or real.startswith(root + "/")

    def _is_dir(self, path: str, cwd: str | None) -> bool:
        return path.endswith("/") or os.path.isdir(self._abs(path, cwd))

    def _expansions(self, path: str, cwd: str | None) -> list[str]:
        if not has_magic(path):
            return [path]
        matches, _ = expand(path, self._abs(".", cwd))
        return [*matches, path] if matches else [path]

    def _control_inside(self, path: str, cwd: str | None) -> str | None:
        """A name that controls what runs (.git, nbagent.json, ...) at or under a copied source."""
        top = self._abs(path, cwd)
        if os.path.basename(top) in _CONTROL_NAMES:
            return os.path.basename(top)
        if not os.path.isdir(top):
            return None
        seen = 0
        for folder, dirs, files in os.walk(top):
            for name in dirs + files:
                seen += 1
                if name in _CONTROL_NAMES or seen > 10_000:
                    return os.path.relpath(os.path.join(folder, name), self._root)
        return None

    def _redirect_part(self, r: Redirect) -> Part:
        shown = f"{r.op} {r.target}"
        if not r.literal:
            return Part(
                "ask", "unknown redirect target", f"{shown}: the file is only known at run time", label=shown
            )
        if r.target in HARMLESS_TARGETS or r.target.startswith("/dev/fd/"):
            return Part("allow", "harmless redirect", label=shown)
        if r.write:
            return self._path_part("edit", r.target, r.cwd, "write")
        parts = self._glob_parts(r.target, r.cwd, "read")
        return most_restrictive(parts) or Part("allow", "read", label=shown)


def _command_always(argv: list[str]) -> str:
    if argv[0] in ("sudo", "doas"):
        i = 1
        while i < len(argv) and argv[i].startswith("-"):
            i += 2 if argv[i] in ("-u", "-g") else 1
        rest = argv[i:]
        return " ".join([argv[0], *(always_prefix(rest) if rest else [])]) + " *"
    return " ".join(always_prefix(argv)) + " *"


def matches_bash(pattern: str, action: str, texts: list[str], argvs: list[list[str]]) -> bool:
    """Does a bash rule match? Deny rules also match their flag-normalised forms."""
    if any(match_command(pattern, t) for t in texts):
        return True
    return action == "deny" and any(flag_match(pattern, a) for a in argvs)
