"""``RulePolicy``: permission rules as data, evaluated last-match-wins, plus modes and shell analysis.

Rule layers, lowest first: built-in defaults, the configuration (user + project), the agent's
overrides, the saved "always" approvals. The highest layer with a matching rule decides; within a
layer the tool's own key is tried before the ``"*"`` key, and within a key the last matching pattern
wins. Then come, in order: protected paths (ask even when a broad rule allows), paths outside the
project (``external_directory``), the mode, and for shell commands every part of the command line:
the decision is the most restrictive part.

Modes: ``default``; ``acceptEdits`` (edits inside the project, and mkdir/touch/cp/mv there, are
allowed); ``plan`` (read-only: edits, kernel code and commands outside the read-only set are denied);
``bypass`` (nothing asks: what would ask is allowed, except protected paths, which are denied since no
one can be asked; deny rules still deny).
"""

from __future__ import annotations

import glob
import itertools
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from nbagent.core.config import Config, Mode
from nbagent.core.permission import Decision
from nbagent.permissions.bash import Analysis, FoundCommand, Redirect, analyze
from nbagent.permissions.config import Action, Rules, agent_rules, config_rules, parse_rules
from nbagent.permissions.defaults import DEFAULT_PERMISSION, KEY_ALIASES, PATH_KEYS, config_kind, secret_kind
from nbagent.permissions.patterns import (
    CATCH_ALL,
    has_glob,
    match_command,
    match_plain,
    path_pattern,
    static_prefix,
)
from nbagent.permissions.programs import (
    FS_EDIT_COMMANDS,
    NO_FILE_ARGS,
    SAFE_VARS,
    always_prefix,
    git_subcommand,
    pattern_positions,
    read_only_problem,
    risky_var,
)
from nbagent.permissions.store import LocalRules
from nbagent.tools.base import PermissionQuery

_RANK = {"allow": 0, "ask": 1, "deny": 2}
SYSTEM_BIN = ("/bin/", "/usr/bin/", "/usr/local/bin/", "/sbin/", "/usr/sbin/", "/usr/local/sbin/")
_DECLARATIONS = frozenset({"export", "local", "declare", "readonly", "typeset", "unset"})
HARMLESS_TARGETS = frozenset({"/dev/null", "/dev/stdout", "/dev/stderr", "/dev/tty", "/dev/zero"})


@dataclass
class _Layer:
    name: str  # default | config | agent <name> | saved
    rules: Rules

    def describe(self, key: str, pattern: str, action: Action) -> str:
        rule = f"{key}: {action}" if pattern == "*" else f'{key} "{pattern}": {action}'
        if self.name == "default":
            return "default: " + action if key == "*" else f"default {rule}"
        if self.name == "saved":
            return f"{rule} (saved)"
        if self.name.startswith("agent"):
            return f"{self.name}: {rule}"
        return rule


@dataclass
class _Hit:
    action: Action
    rule: str
    pattern: str
    layer: str

    @property
    def catch_all(self) -> bool:
        return self.pattern in CATCH_ALL

    @property
    def is_default(self) -> bool:
        return self.layer == "default"


@dataclass
class _Part:
    action: Action
    rule: str
    reason: str = ""
    always: list[tuple[str, str]] = field(default_factory=list)
    protected: bool = False
    label: str = ""
    minor: bool = False  # says little (a wrapper allowed): another part at the same level names the decision


@dataclass
class _PathInfo:
    raw: str
    abs: str  # normalised, symlinks kept
    real: str  # symlinks resolved
    rel: str | None  # relative to the root (posix), None when outside
    inside: bool


def _most_restrictive(parts: list[_Part]) -> _Part | None:
    best: _Part | None = None
    for part in parts:
        if (
            best is None
            or _RANK[part.action] > _RANK[best.action]
            or (_RANK[part.action] == _RANK[best.action] and best.minor and not part.minor)
        ):
            best = part
    return best


def _under(path: str, base: str) -> bool:
    return path == base or path.startswith(base.rstrip("/") + "/")


class RulePolicy:
    """The ``PermissionPolicy`` of nbagent. ``mode`` may be switched at any time."""

    def __init__(
        self, root: Path, config: Config, *, agent: str | None = None, mode: Mode | None = None
    ) -> None:
        self.root = Path(os.path.normpath(os.path.abspath(root)))
        self._root = str(self.root)
        self._root_real = os.path.realpath(self._root)
        self.agent = agent
        self.mode: Mode = mode or config.mode
        self.store = LocalRules(self.root)
        self._layers = [
            _Layer("default", parse_rules(DEFAULT_PERMISSION, "permission", "defaults")),
            _Layer("config", config_rules(self.root, config.permission)),
        ]
        if agent:
            self._layers.append(_Layer(f"agent {agent}", agent_rules(self.root, config.agent, agent)))
        self._saved = _Layer("saved", self.store.load())
        self._layers.append(self._saved)

    # ---- the protocol --------------------------------------------------------------------------
    def evaluate(self, query: PermissionQuery) -> Decision:
        key = KEY_ALIASES.get(query.permission, query.permission)
        try:
            if key == "bash":
                return self._bash(query.patterns)
            if key in PATH_KEYS:
                return self._decide([self._path_query(key, p) for p in query.patterns or ["."]], key)
            return self._decide([self._plain(key, p) for p in query.patterns or [""]], key)
        except Exception as exc:  # a policy must answer; an unexpected input asks rather than crashes
            return Decision(action="ask", rule="error", reason=f"could not evaluate the request ({exc!r})")

    def remember(self, query: PermissionQuery, decision: Decision) -> None:
        key = KEY_ALIASES.get(query.permission, query.permission)
        raw = decision.details.get("always_rules")
        pairs: list[tuple[str, str]] = []
        if isinstance(raw, list):
            pairs = [(str(r["permission"]), str(r["pattern"])) for r in raw if isinstance(r, dict)]
        else:
            pairs = [(key, p) for p in decision.always]
        pairs = [
            (k, p)
            for k, p in pairs
            if p.strip() and not (p.strip() in CATCH_ALL and k in PATH_KEYS | {"bash"})
        ]
        if not pairs:
            return
        self.store.add(pairs)
        self._saved.rules = self.store.load()

    # ---- rule lookup ----------------------------------------------------------------------------
    def _lookup(self, key: str, matches: Callable[[str], bool]) -> _Hit:
        """The deciding rule: the highest layer with a match (saved > agent > config > defaults), except
        that an agent's deny beats a saved approval (an "always" given to another agent)."""
        for i in range(len(self._layers) - 1, -1, -1):
            hit = self._layer_hit(self._layers[i], key, matches)
            if hit is None:
                continue
            if hit.layer == "saved" and len(self._layers) > 3:
                agent_hit = self._layer_hit(self._layers[2], key, matches)
                if agent_hit is not None and agent_hit.action == "deny":
                    return agent_hit
            return hit
        return _Hit("ask", "default: ask", "*", "default")

    @staticmethod
    def _layer_hit(layer: _Layer, key: str, matches: Callable[[str], bool]) -> _Hit | None:
        for k in (key, "*"):
            for pattern, action in reversed(layer.rules.get(k, ())):
                if matches(pattern):
                    return _Hit(action, layer.describe(k, pattern, action), pattern, layer.name)
        return None

    def _mode_part(self, part: _Part) -> _Part:
        if self.mode == "bypass" and part.action == "ask":
            if part.protected:
                return _Part("deny", part.rule, (part.reason + "; " if part.reason else "")
                             + "bypass mode cannot ask, and protected paths need a yes", [], True, part.label)  # fmt: skip
            return _Part("allow", f"mode bypass ({part.rule})", part.reason, [], False, part.label)
        return part

    def _decide(self, parts: list[_Part], key: str, details: dict[str, Any] | None = None) -> Decision:
        parts = [self._mode_part(p) for p in parts]
        top = _most_restrictive(parts)
        if top is None:
            return Decision(action="allow", rule="nothing to run", details=details or {})
        reasons: list[str] = []
        for p in parts:
            if p.action == top.action and p.reason and p.reason not in reasons:
                reasons.append(p.reason)
        always: list[tuple[str, str]] = []
        if top.action == "ask":
            for p in parts:
                for pair in p.always if p.action == "ask" else ():
                    if pair not in always:
                        always.append(pair)
        out = dict(details or {})
        if always:
            out["always_rules"] = [{"permission": k, "pattern": p} for k, p in always]
        return Decision(
            action=top.action,
            rule=top.rule,
            reason="; ".join(reasons[:4]) + ("; ..." if len(reasons) > 4 else ""),
            always=[p if k == key else f"{k}: {p}" for k, p in always],
            details=out,
        )

    # ---- plain keys: webfetch, python, task, skill, doom_loop, MCP tools -------------------------
    def _plain(self, key: str, subject: str) -> _Part:
        hit = self._lookup(key, lambda pat: match_plain(pat, subject))
        part = _Part(hit.action, hit.rule, label=subject)
        if self.mode == "plan" and key == "python" and part.action != "deny":
            return _Part(
                "deny", "mode plan", "plan mode is read-only: kernel code does not run", label=subject
            )
        if part.action == "ask":
            part.always = [(key, _plain_always(key, subject))]
            shown = subject if len(subject) <= 80 else subject[:77] + "..."
            part.reason = (
                f"{subject} was called with the same input several times in a row"
                if key == "doom_loop"
                else f"{key} {shown}".strip()
            )
        return part

    # ---- paths ----------------------------------------------------------------------------------
    def _resolve(self, raw: str, cwd: str | None = "") -> _PathInfo | None:
        path = os.path.expanduser(raw)
        if not os.path.isabs(path):
            if cwd is None:
                return None
            base = cwd if os.path.isabs(cwd) else os.path.join(self._root, cwd)
            path = os.path.join(base, path)
        norm = os.path.normpath(path)
        if norm.startswith("//"):
            norm = "/" + norm.lstrip("/")
        real = os.path.realpath(norm)
        inside = _under(real, self._root_real)
        rel: str | None = None
        if inside:
            if _under(norm, self._root):
                rel = os.path.relpath(norm, self._root)
            else:
                rel = os.path.relpath(real, self._root_real)
        return _PathInfo(raw, norm, real, rel, inside)

    def _path_hit(self, key: str, info: _PathInfo) -> _Hit:
        hit = self._lookup(key, lambda pat: path_pattern(pat, self._root).match(info.rel, info.abs))
        if info.real != info.abs:
            rel_real = os.path.relpath(info.real, self._root_real) if info.inside else None
            other = self._lookup(key, lambda pat: path_pattern(pat, self._root).match(rel_real, info.real))
            if _RANK[other.action] > _RANK[hit.action]:
                return other
        return hit

    def _names_protected(self, hit: _Hit) -> bool:
        """Does the rule that decided name a protected location itself (``.env``, ``~/.ssh/**``)?"""
        if hit.is_default or hit.catch_all:
            return False
        for fill in ("", "x"):
            text = hit.pattern.replace("**", fill).replace("*", fill).replace("?", fill).removeprefix("./")
            info = self._resolve(text or ".")
            if info is not None and (secret_kind(info.abs) or config_kind(info.abs, info.rel, self._root)):
                return True
        return False

    def _path_query(self, key: str, raw: str) -> _Part:
        if key in ("glob", "grep") and has_glob(raw):
            raw = static_prefix(raw)
        access = "write" if key == "edit" else "list" if key in ("glob", "list") else "read"
        return self._path_part(key, raw, "", access)

    def _path_part(self, key: str, raw: str, cwd: str | None, access: str, deny_only: bool = False) -> _Part:
        """One path: ``access`` is read, write or list; ``deny_only`` keeps only deny rules of ``key``."""
        info = self._resolve(raw, cwd)
        if info is None:
            return _Part("ask", "unknown directory", f"cannot tell where {raw} is: the directory is only known at run time",
                         label=raw)  # fmt: skip
        shown = info.rel if info.rel is not None else info.abs
        hit = self._path_hit(key, info)
        if deny_only and hit.action != "deny":
            hit = _Hit("allow", "", "*", "default")
        part = _Part(hit.action, hit.rule, label=shown)
        folder = self._dir_pattern(info)
        if part.action == "ask":
            part.reason = f"{'edit' if access == 'write' else key} {shown}"
            part.always = [(key, folder)] if folder else []
        # protected paths ask even when a broad rule allows them
        why = None if access == "list" else secret_kind(info.abs) or secret_kind(info.real)
        if why is None and access == "write":
            why = config_kind(info.abs, info.rel, self._root) or config_kind(info.real, None, self._root)
        if (
            why is not None
            and part.action != "deny"
            and not (part.action == "allow" and self._names_protected(hit))
        ):
            exact = "./" + info.rel if info.rel is not None else info.abs
            part = _Part("ask", f"protected path: {shown}", f"{why}; it asks even when a rule allows it",
                         [(key, exact)], True, shown)  # fmt: skip
        # outside the project: external_directory decides too, unless the rule named that place itself
        named_outside = (
            not hit.is_default and not hit.catch_all and path_pattern(hit.pattern, self._root).absolute
        )
        if not info.inside and not named_outside and part.action != "deny":
            ext = self._path_hit("external_directory", info)
            if ext.action == "deny":
                part = _Part("deny", ext.rule, f"{shown} is outside the project", label=shown)
            elif ext.action == "ask":
                if part.action == "allow":
                    part = _Part("ask", ext.rule, f"{shown} is outside the project", [], False, shown)
                else:
                    part.reason += " (outside the project)"
                if folder:
                    part.always.append(("external_directory", folder))
        # modes
        if access == "write" and key == "edit":
            if self.mode == "plan" and part.action != "deny":
                return _Part("deny", "mode plan", f"plan mode is read-only: no edits ({shown})", label=shown)
            if self.mode == "acceptEdits" and part.action == "ask" and info.inside and not part.protected:
                return _Part("allow", "mode acceptEdits", label=shown)
        return part

    def _dir_pattern(self, info: _PathInfo) -> str | None:
        """The folder an "always" covers: ``src/pkg/**`` for ``src/pkg/a.py``, ``./a.py`` at the top."""
        is_dir = os.path.isdir(info.real)
        if info.inside and info.rel is not None:
            folder = info.rel if is_dir else os.path.dirname(info.rel)
            if folder in ("", "."):
                return "./**" if is_dir else "./" + info.rel
            return folder + "/**"
        if info.abs in ("/", os.path.expanduser("~")):
            return None  # never offer to allow the whole disk or home folder
        folder = info.abs if is_dir else os.path.dirname(info.abs)
        if folder in ("/", os.path.expanduser("~")):
            return info.abs
        return folder.rstrip("/") + "/**"

    # ---- shell commands ---------------------------------------------------------------------------
    def _bash(self, commands: list[str]) -> Decision:
        parts: list[_Part] = []
        found: list[dict[str, Any]] = []
        for command in commands:
            analysis = analyze(command)
            cmd_parts, listed = self._analysis_parts(analysis)
            parts += cmd_parts
            found += listed
        return self._decide(parts, "bash", {"commands": found})

    def _analysis_parts(self, a: Analysis) -> tuple[list[_Part], list[dict[str, Any]]]:
        parts: list[_Part] = []
        listed: list[dict[str, Any]] = []
        for c in a.commands:
            cparts = self._command_parts(c, a)
            top = _most_restrictive([self._mode_part(p) for p in cparts]) or _Part("allow", "")
            listed.append({"command": c.text, "action": top.action, "rule": top.rule, "reason": top.reason,
                           "via": c.via, "wrapper": c.wrapper})  # fmt: skip
            parts += cparts
        for r in a.redirects:
            rp = self._redirect_part(r)
            listed.append({"redirect": f"{r.op} {r.target}", "action": self._mode_part(rp).action,
                           "rule": rp.rule, "reason": rp.reason})  # fmt: skip
            parts.append(rp)
        for name in a.risky:
            parts.append(
                _Part(
                    "ask",
                    "changes what runs",
                    f"sets {name}, which changes which programs run or what they load",
                )
            )
        for why in a.hidden:
            parts.append(_Part("ask", "cannot see what runs", why))
        if a.parse_error:
            parts.append(
                _Part("ask", "does not parse", "the command does not parse as bash, so it cannot be checked")
            )
        return parts, listed

    def _match_argv(self, c: FoundCommand, a: Analysis) -> list[str]:
        argv = list(c.argv)
        if os.path.dirname(argv[0]) + "/" in SYSTEM_BIN:
            argv[0] = c.program
        if argv[0] == "git":
            out = ["git"]
            i = 1
            while i < len(argv):
                w = argv[i]
                if w in ("--no-pager", "-P"):
                    i += 1
                    continue
                if w == "-C" and i + 1 < len(argv):
                    i += 2
                    continue
                out += argv[i:]
                break
            argv = out
        return argv

    def _command_parts(self, c: FoundCommand, a: Analysis) -> list[_Part]:
        label = c.text
        program = c.program
        argv = self._match_argv(c, a)
        text = " ".join(argv)
        hit = self._lookup("bash", lambda pat: match_command(pat, text))
        base_hit = hit
        if argv[0] != program:  # ./tool, .venv/bin/x: deny rules on the bare name still apply
            base_text = " ".join([program, *c.args])
            base_hit = self._lookup("bash", lambda pat: match_command(pat, base_text))
            if base_hit.action == "deny" and hit.action != "deny":
                hit = base_hit
        if c.unknowable:
            if hit.action == "deny":
                return [_Part("deny", hit.rule, f"{label}: denied", label=label)]
            return [_Part("ask", "cannot see what runs", c.unknowable, label=label)]

        parts: list[_Part] = []
        if c.wrapper or program in a.functions:
            # only runs what is found separately (sudo excepted); explicit rules may still decide it
            if hit.catch_all:
                what = (
                    "sets shell variables"
                    if c.program in _DECLARATIONS
                    else f"{program} runs the command after it"
                )
                return [_Part("allow", what, label=label, minor=True), *self._arg_parts(c, read_only=True)]
            return [_Part(hit.action, hit.rule, label=label), *self._arg_parts(c, read_only=True)]

        action, rule, reason = hit.action, hit.rule, ""
        problem = (
            read_only_problem(program, c.args) if argv[0] == program else f"{argv[0]} is not a system program"
        )
        if c.code:
            problem = f"{program} runs inline code"
        read_only = problem is None
        if action == "ask":
            reason = f"run {text}"
            if hit.catch_all and read_only:
                blocker = self._read_only_blocker(c, a)
                if blocker is None:
                    action, rule, reason = "allow", f"read-only command: {program}", ""
                else:
                    reason = blocker
            elif (
                hit.catch_all and self.mode == "acceptEdits" and program in FS_EDIT_COMMANDS and not c.dynamic
            ):
                action, rule, reason = "allow", "mode acceptEdits", ""
        risky = [n for n in c.assigns if risky_var(n)]
        if risky and action == "allow":
            action, rule = "ask", "changes what runs"
            reason = f"sets {', '.join(risky)}, which changes which programs run or what they load"
        if self.mode == "plan" and not read_only and action != "deny":
            action, rule = "deny", "mode plan"
            reason = f"plan mode is read-only: {program} may change things ({problem})"
        part = _Part(action, rule, reason, label=label)
        if action == "ask" and not risky:
            part.always = [("bash", self._command_always(argv))]
        parts.append(part)
        parts += self._arg_parts(c, read_only=read_only)
        return parts

    def _read_only_blocker(self, c: FoundCommand, a: Analysis) -> str | None:
        """Why a read-only command still asks: arguments it cannot check, variables that may hold secrets."""
        if c.program not in NO_FILE_ARGS and c.dynamic:
            which = next(
                (w for w, lit in zip(c.argv, c.literal, strict=False) if not lit), "input from a pipe"
            )
            return f"cannot check which files {c.program} reads ({which} is only known at run time)"
        secret_vars = [v for v in c.vars if v not in SAFE_VARS and v not in a.assigned]
        if secret_vars:
            return f"expands ${secret_vars[0]}, which may hold a secret"
        return None

    def _command_always(self, argv: list[str]) -> str:
        if argv[0] in ("sudo", "doas"):
            i = 1
            while i < len(argv) and argv[i].startswith("-"):
                i += 2 if argv[i] in ("-u", "-g") else 1
            rest = argv[i:]
            return " ".join([argv[0], *(always_prefix(rest) if rest else [])]) + " *"
        return " ".join(always_prefix(argv)) + " *"

    def _arg_parts(self, c: FoundCommand, read_only: bool) -> list[_Part]:
        parts: list[_Part] = []
        for target in c.writes:
            if target not in HARMLESS_TARGETS:
                parts.append(self._path_part("edit", target, c.cwd, "write"))
        if c.program in NO_FILE_ARGS or c.wrapper:
            return parts
        if c.cwd != "" and c.program not in ("cd", "pushd", "popd"):
            # runs in another folder (after cd): that folder is what it reads by default
            cwd_part = (
                self._path_part("read", c.cwd, "", "list")
                if c.cwd is not None
                else self._path_part("read", ".", None, "list")
            )
            if cwd_part.action != "allow":
                parts.append(cwd_part)
        skip = pattern_positions(c.program, c.args)
        if c.program == "git":
            skip.add(git_subcommand(c.args)[0])
        writes = set(c.writes)
        after_dashes = False
        for i, (arg, literal) in enumerate(zip(c.args, c.literal[1:], strict=False)):
            if not literal or i in skip or arg in writes:
                continue
            if not after_dashes and arg == "--":
                after_dashes = True
                continue
            if not after_dashes and arg.startswith("-"):
                if arg.startswith("--") and "=" in arg:
                    value = arg.split("=", 1)[1]
                    if value.startswith(("/", "~", "../")) or value == "..":
                        arg = value
                    else:
                        continue
                else:
                    continue
            if "://" in arg or not arg or arg == "{}":
                continue
            glob_arg = has_glob(arg)
            part = self._arg_path(static_prefix(arg) if glob_arg else arg, c.cwd, read_only)
            if part.action == "allow" and glob_arg:  # the folder is fine: check what the shell would expand
                for match in self._expand(arg, c.cwd):
                    part = self._arg_path(match, c.cwd, read_only)
                    if part.action != "allow":
                        break
            if part.action != "allow":
                parts.append(part)
        return parts

    def _arg_path(self, path: str, cwd: str | None, read_only: bool) -> _Part:
        if read_only:
            return self._path_part("read", path, cwd, "read")
        return self._path_part("edit", path, cwd, "write", deny_only=True)

    def _expand(self, pattern: str, cwd: str | None, limit: int = 200) -> list[str]:
        """The files a glob argument matches now (bash rules: ``*`` skips dotfiles), at most ``limit``."""
        if cwd is None:
            return []
        base = cwd if os.path.isabs(cwd) else os.path.join(self._root, cwd)
        try:
            if os.path.isabs(pattern):
                found = itertools.islice(glob.iglob(pattern), limit)
            else:
                found = itertools.islice(glob.iglob(pattern, root_dir=base), limit)
            return list(found)
        except (OSError, ValueError, RecursionError):
            return []

    def _redirect_part(self, r: Redirect) -> _Part:
        shown = f"{r.op} {r.target}"
        if not r.literal:
            return _Part(
                "ask", "unknown redirect target", f"{shown}: the file is only known at run time", label=shown
            )
        if r.target in HARMLESS_TARGETS or r.target.startswith("/dev/fd/"):
            return _Part("allow", "harmless redirect", label=shown)
        if r.write:
            return self._path_part("edit", r.target, r.cwd, "write")
        return self._path_part("read", r.target, r.cwd, "read")


def _plain_always(key: str, subject: str) -> str:
    if key == "webfetch":
        parts = urlsplit(subject)
        if parts.scheme and parts.netloc:
            return f"{parts.scheme}://{parts.netloc}/*"
    if key == "python":
        return "*"  # kernel code has no narrower scope than "this project's kernel"
    return subject or "*"
