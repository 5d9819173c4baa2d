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

import os
from collections.abc import Callable
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from nbagent.core.config import Config, Mode
from nbagent.core.permission_types import Decision, PermissionQuery
from nbagent.permissions.config import Action, Rules, agent_rules, config_rules, parse_rules
from nbagent.permissions.defaults import DEFAULT_PERMISSION, KEY_ALIASES, PATH_KEYS, config_kind, secret_kind
from nbagent.permissions.parts import RANK, Hit, Part, most_restrictive
from nbagent.permissions.patterns import CATCH_ALL, has_glob, match_plain, path_pattern, static_prefix
from nbagent.permissions.shell_policy import ShellRules, matches_bash
from nbagent.permissions.store import LocalRules


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
class _PathInfo:
    raw: str
    abs: str  # normalised, symlinks kept
    real: str  # symlinks resolved
    rel: str | None  # relative to the root (posix), None when outside
    inside: bool


def _under(path: str, base: str) -> bool:
    return path == base or path.startswith(base.rstrip("/") + "/")


class RulePolicy(ShellRules):
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
                parts = [self._path_query(key, p) for p in query.patterns or ["."]]
                if query.destructive:
                    parts = [_not_by_mode(p) for p in parts]
                return self._decide(parts, key)
            return self._decide([self._plain(key, p) for p in query.patterns or [""]], key)
        except Exception as exc:  # a policy must answer; an unexpected input asks a person, never --yes
            return Decision(
                action="ask",
                rule="error",
                reason=f"could not evaluate the request ({exc!r})",
                person_only=True,
            )

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
    def _lookup(self, key: str, matches: Callable[[str], bool]) -> Hit:
        """The deciding rule: the highest layer with a match (saved > agent > config > defaults), except
        that an agent's deny beats a saved approval (an "always" given to another agent)."""
        for i in range(len(self._layers) - 1, -1, -1):
            hit = self._layer_hit(self._layers[i], key, lambda pat, _act: matches(pat))
            if hit is None:
                continue
            if hit.layer == "saved" and len(self._layers) > 3:
                agent_hit = self._layer_hit(self._layers[2], key, lambda pat, _act: matches(pat))
                if agent_hit is not None and agent_hit.action == "deny":
                    return agent_hit
            return hit
        return Hit("ask", "default: ask", "*", "default")

    @staticmethod
    def _layer_hit(layer: _Layer, key: str, matches: Callable[[str, str], bool]) -> Hit | None:
        # Tool-name keys with a wildcard ("mcp__github__*") cover the tools they match (issue 14, M1).
        globs = [k for k in reversed(layer.rules) if "*" in k and k != "*" and fnmatchcase(key, k)]
        for k in (key, *globs, "*"):
            for pattern, action in reversed(layer.rules.get(k, ())):
                if matches(pattern, action):
                    return Hit(action, layer.describe(k, pattern, action), pattern, layer.name)
        return None

    def _mode_part(self, part: Part) -> Part:
        if self.mode == "bypass" and part.action == "ask":
            if part.protected or part.person_only:
                why = "protected paths need a yes" if part.protected else "only a person may approve this"
                return Part("deny", part.rule, (part.reason + "; " if part.reason else "")
                            + f"bypass mode cannot ask, and {why}", [], part.protected, part.label)  # fmt: skip
            return Part("allow", f"mode bypass ({part.rule})", part.reason, [], False, part.label)
        return part

    def _decide(self, parts: list[Part], key: str, details: dict[str, Any] | None = None) -> Decision:
        parts = [self._mode_part(p) for p in parts]
        top = most_restrictive(parts)
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
            person_only=top.action == "ask" and any(p.person_only for p in parts if p.action == "ask"),
        )

    # ---- plain keys: webfetch, python, task, skill, doom_loop, MCP tools -------------------------
    def _plain(self, key: str, subject: str) -> Part:
        hit = self._lookup(key, lambda pat: match_plain(pat, subject))
        part = Part(hit.action, hit.rule, label=subject)
        if self.mode == "plan" and key == "python" and part.action != "deny":
            return Part(
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

    def _path_hit(self, key: str, info: _PathInfo) -> Hit:
        hit = self._lookup(key, lambda pat: path_pattern(pat, self._root).match(info.rel, info.abs))
        if info.real != info.abs:
            rel_real = os.path.relpath(info.real, self._root_real) if info.inside else None
            other = self._lookup(key, lambda pat: path_pattern(pat, self._root).match(rel_real, info.real))
            if RANK[other.action] > RANK[hit.action]:
                return other
        return hit

    def _names_protected(self, hit: Hit) -> bool:
        """Does the rule that decided name a protected location itself (``.env``, ``~/.ssh/**``)?"""
        if hit.is_default or hit.catch_all:
            return False
        for fill in ("", "x"):
            text = hit.pattern.replace("**", fill).replace("*", fill).replace("?", fill).removeprefix("./")
            info = self._resolve(text or ".")
            if info is not None and (secret_kind(info.abs) or config_kind(info.abs, info.rel, self._root)):
                return True
        return False

    def _path_query(self, key: str, raw: str) -> Part:
        if key in ("glob", "grep") and has_glob(raw):
            raw = static_prefix(raw)
        access = "write" if key == "edit" else "list" if key in ("glob", "list") else "read"
        return self._path_part(key, raw, "", access)

    def _path_part(self, key: str, raw: str, cwd: str | None, access: str, deny_only: bool = False) -> Part:
        """One path: ``access`` is read, write or list; ``deny_only`` keeps only deny rules of ``key``."""
        info = self._resolve(raw, cwd)
        if info is None:
            return Part("ask", "unknown directory", f"cannot tell where {raw} is: the directory is only known at run time",
                         label=raw)  # fmt: skip
        shown = info.rel if info.rel is not None else info.abs
        hit = self._path_hit(key, info)
        if deny_only and hit.action != "deny":
            hit = Hit("allow", "", "*", "default")
        part = Part(hit.action, hit.rule, label=shown)
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
            part = Part("ask", f"protected path: {shown}", f"{why}; it asks even when a rule allows it",
                         [(key, exact)], True, shown)  # fmt: skip
        # outside the project: external_directory decides too, unless the rule named that place itself
        named_outside = (
            not hit.is_default and not hit.catch_all and path_pattern(hit.pattern, self._root).absolute
        )
        if not info.inside and not named_outside and part.action != "deny":
            ext = self._path_hit("external_directory", info)
            if ext.action == "deny":
                part = Part("deny", ext.rule, f"{shown} is outside the project", label=shown)
            elif ext.action == "ask":
                if part.action == "allow":
                    part = Part("ask", ext.rule, f"{shown} is outside the project", [], False, shown)
                else:
                    part.reason += " (outside the project)"
                if folder:
                    part.always.append(("external_directory", folder))
        # modes
        if access == "write" and key == "edit":
            if self.mode == "plan" and part.action != "deny":
                return Part("deny", "mode plan", f"plan mode is read-only: no edits ({shown})", label=shown)
            if self.mode == "acceptEdits" and part.action == "ask" and info.inside and not part.protected:
                return Part("allow", "mode acceptEdits", label=shown)
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

    # ---- shell rule lookup (the rest of the shell logic is in shell_policy.py) ---------------------
    def _bash_lookup(self, texts: list[str], argvs: list[list[str]]) -> Hit:
        """The deciding bash rule. Deny rules also match normalised forms (``rm -r -f`` for ``rm -rf *``),
        and a deny of the configuration or an agent beats a saved "always" approval."""
        top: Hit | None = None
        for layer in reversed(self._layers):
            if layer.name == "saved":
                continue
            top = self._layer_hit(layer, "bash", lambda pat, act: matches_bash(pat, act, texts, argvs))
            if top is not None:
                break
        if top is not None and top.action == "deny":
            return top
        saved = self._layer_hit(self._saved, "bash", lambda pat, act: matches_bash(pat, act, texts, argvs))
        return saved or top or Hit("ask", "default: ask", "*", "default")

    def _bash_deny_patterns(self) -> list[str]:
        """Deny patterns of bash (and of "*") the user configured, for commands the analysis cannot see."""
        out: list[str] = []
        for layer in self._layers:
            if layer.name in ("default", "saved"):
                continue
            for key in ("bash", "*"):
                out += [p for p, a in layer.rules.get(key, ()) if a == "deny"]
        return out


def _not_by_mode(part: Part) -> Part:
    """A destructive change (deleting a notebook cell) asks even where acceptEdits would allow it."""
    if part.action == "allow" and part.rule == "mode acceptEdits":
        return Part("ask", "default: ask", f"delete in {part.label} (acceptEdits does not cover deleting)",
                    [], False, part.label)  # fmt: skip
    return part


def _plain_always(key: str, subject: str) -> str:
    if key == "webfetch":
        parts = urlsplit(subject)
        if parts.scheme and parts.netloc:
            return f"{parts.scheme}://{parts.netloc}/*"
    if key == "python":
        return "*"  # kernel code has no narrower scope than "this project's kernel"
    return subject or "*"
