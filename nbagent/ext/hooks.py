"""Shell-command hooks, compatible with Claude Code's protocol.

Configured in ``nbagent.json``::

    "hooks": {
      "use_claude_settings": false,
      "PreToolUse": [{"matcher": "bash|edit", "hooks": [{"type": "command", "command": "./check.sh", "timeout": 60}]}]
    }

Each matching hook runs with the event as JSON on stdin (session_id, cwd, hook_event_name, tool_name,
tool_input, tool_response, prompt, ...), in the project root. Exit code 2 blocks, with stderr as the
reason; exit 0 may print JSON: ``{"decision": "block", "reason": ...}``, ``{"continue": false,
"stopReason": ...}``, ``{"hookSpecificOutput": {"permissionDecision": "allow"|"deny"|"ask",
"permissionDecisionReason": ..., "updatedInput": {...}, "additionalContext": ...}}``. Any other exit
code, invalid JSON or a timeout is a non-blocking error, reported in ``HookOutcome.errors``.
With ``use_claude_settings`` the hooks of ``.claude/settings.json`` (and ``settings.local.json``) run too.

Project hooks (from the project's ``nbagent.json`` or its ``.claude`` settings) run only in a trusted
folder (``nbagent.ext.trust``); hooks from the user's own config always run.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from nbagent.core.config import Config
from nbagent.core.errors import ConfigError
from nbagent.core.permission_types import ACTION_RANK
from nbagent.ext.trust import project_code_sources, project_config_file
from nbagent.permissions.config import model_check, validate_section

HookEvent = Literal["PreToolUse", "PostToolUse", "UserPromptSubmit", "Stop", "SessionStart", "PreCompact"]
EVENTS: tuple[str, ...] = (
    "PreToolUse",
    "PostToolUse",
    "UserPromptSubmit",
    "Stop",
    "SessionStart",
    "PreCompact",
)
# Events where exit code 2 blocks (for SessionStart it is only shown).
BLOCKING = frozenset({"PreToolUse", "PostToolUse", "UserPromptSubmit", "Stop", "PreCompact"})
# Events whose plain (non-JSON) stdout becomes context for the model.
STDOUT_IS_CONTEXT = frozenset({"UserPromptSubmit", "SessionStart"})
MAX_OUTPUT = 20_000
# Claude Code's tool names, so matchers written for it ("Bash", "Edit|Write") also match nbagent's.
CLAUDE_NAMES = {
    "bash": "Bash", "edit": "Edit", "write": "Write", "read": "Read", "glob": "Glob", "grep": "Grep",
    "webfetch": "WebFetch", "task": "Task", "todowrite": "TodoWrite", "notebook_edit": "NotebookEdit",
    "apply_patch": "Edit", "skill": "Skill", "websearch": "WebSearch",
}  # fmt: skip
_DECISIONS: dict[str, Literal["allow", "deny", "ask"]] = {
    "allow": "allow", "ask": "ask", "deny": "deny", "approve": "allow", "block": "deny"
}  # fmt: skip


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class HookCommand(_Strict):
    type: Literal["command"] = "command"
    command: str = Field(min_length=1, description="Shell command; the event JSON arrives on stdin.")
    timeout: float = Field(60, gt=0, le=3600, description="Seconds before the hook is killed.")


class HookMatcher(_Strict):
    matcher: str = Field("", description='Regex on the tool name; "" or "*" matches every tool.')
    hooks: list[HookCommand]

    @field_validator("matcher")
    @classmethod
    def _regex(cls, value: str) -> str:
        if value not in ("", "*"):
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"not a valid regular expression ({exc})") from exc
        return value


class HooksConfig(_Strict):
    use_claude_settings: bool = False
    PreToolUse: list[HookMatcher] = Field(default_factory=list)
    PostToolUse: list[HookMatcher] = Field(default_factory=list)
    UserPromptSubmit: list[HookMatcher] = Field(default_factory=list)
    Stop: list[HookMatcher] = Field(default_factory=list)
    SessionStart: list[HookMatcher] = Field(default_factory=list)
    PreCompact: list[HookMatcher] = Field(default_factory=list)


class HookOutcome(BaseModel):
    """What the hooks of one event decided, combined: any block wins; deny > ask > allow.

    ``blocked``: stop this action (PreToolUse: do not run the tool; UserPromptSubmit: drop the prompt;
    Stop: keep going; PostToolUse: tell the model ``reason``). ``permission_decision`` (PreToolUse): a
    hook's answer to the permission question; "deny" refuses the call with ``reason``.
    ``updated_input``: the tool input to use instead (the last hook that rewrote it, in config order).
    ``stop``: end the turn (``"continue": false``), ``stop_reason`` shown to the user.
    """

    blocked: bool = False
    reason: str = ""
    permission_decision: Literal["allow", "deny", "ask"] | None = None
    updated_input: dict[str, Any] | None = None
    additional_context: str = ""
    stop: bool = False
    stop_reason: str = ""
    messages: list[str] = Field(default_factory=list)  # systemMessage lines for the user
    errors: list[str] = Field(default_factory=list)  # non-blocking failures (exit codes, timeouts, bad JSON)
    ran: int = 0
    skipped: int = 0  # project hooks not run: the folder is not trusted


class _Result(BaseModel):
    command: str
    exit_code: int | None = None
    stdout: str = ""
    stderr: str = ""
    timed_out: bool = False
    error: str = ""


def hooks_config(root: Path, config: Config) -> HooksConfig:
    return validate_section(root, config.hooks, ("hooks",), model_check(HooksConfig, "hooks"))


def _project_events(root: Path) -> set[str]:
    """The events whose hooks the project's ``nbagent.json`` sets (its lists replace the user's)."""
    path = project_config_file(root)
    if path is None:
        return set()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return set(EVENTS)  # unreadable: count every hook as the project's
    hooks = data.get("hooks") if isinstance(data, dict) else None
    return {event for event in EVENTS if isinstance(hooks, dict) and event in hooks}


def _claude_hooks(root: Path) -> tuple[list[tuple[str, HookMatcher]], list[str]]:
    """Hooks from ``.claude/settings.json`` / ``settings.local.json``; unsupported parts are skipped."""
    found: list[tuple[str, HookMatcher]] = []
    notes: list[str] = []
    for name in ("settings.json", "settings.local.json"):
        path = root / ".claude" / name
        if not path.is_file():
            continue
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ConfigError(
                f"{path}: not valid JSON ({exc})", "Fix it or turn off hooks.use_claude_settings."
            ) from exc
        hooks = data.get("hooks") if isinstance(data, dict) else None
        if not isinstance(hooks, dict):
            continue
        for event, entries in hooks.items():
            if event not in EVENTS:
                notes.append(f"{path}: hook event {event} is not supported by nbagent; skipped")
                continue
            for i, entry in enumerate(entries if isinstance(entries, list) else []):
                if not isinstance(entry, dict):
                    continue
                commands = [
                    h
                    for h in entry.get("hooks", [])
                    if isinstance(h, dict) and h.get("type", "command") == "command" and h.get("command")
                ]
                try:
                    matcher = HookMatcher(
                        matcher=str(entry.get("matcher", "")),
                        hooks=[
                            HookCommand(command=str(h["command"]), timeout=float(h.get("timeout", 60)))
                            for h in commands
                        ],
                    )
                except ValueError as exc:
                    raise ConfigError(f"{path}: key 'hooks.{event}.{i}': {exc}") from exc
                found.append((event, matcher))
    return found, notes


def _matches(matcher: str, target: str | None) -> bool:
    if matcher in ("", "*") or target is None:
        return True
    names = [target]
    if target in CLAUDE_NAMES:
        names.append(CLAUDE_NAMES[target])
    return any(re.fullmatch(matcher, n, re.IGNORECASE) for n in names)


class HookRunner:
    """Runs the configured hooks of an event and combines what they say.

    ``trusted``: the project's hooks may run without asking (else ``run`` asks its ``trust`` callback
    the first time one would run, and skips them when there is none or it says no).
    """

    def __init__(
        self,
        config: Config,
        root: Path,
        session_id: str,
        transcript_path: str | None = None,
        *,
        trusted: bool = False,
    ) -> None:
        self.root = root
        self.session_id = session_id
        self.transcript_path = transcript_path
        self.trusted = trusted
        cfg = hooks_config(root, config)
        project = _project_events(root)
        # (event, matcher, from the project)
        self.entries: list[tuple[str, HookMatcher, bool]] = [
            (ev, m, ev in project) for ev in EVENTS for m in getattr(cfg, ev)
        ]
        self.notes: list[str] = []
        if cfg.use_claude_settings:
            extra, self.notes = _claude_hooks(root)
            self.entries += [(ev, m, True) for ev, m in extra]
        # The project files whose code config these hooks come from (what trusting the folder covers).
        self.project_sources = project_code_sources(root, config)

    @property
    def has_project_hooks(self) -> bool:
        return any(project for _, _, project in self.entries)

    def matching(self, event: str, target: str | None) -> list[tuple[HookCommand, bool]]:
        """The hooks that run for ``event`` on ``target`` (a tool name), duplicates removed, each with
        whether it comes from the project."""
        out: list[tuple[HookCommand, bool]] = []
        seen: set[str] = set()
        for ev, matcher, project in self.entries:
            if ev == event and _matches(matcher.matcher, target):
                for hook in matcher.hooks:
                    if hook.command not in seen:
                        seen.add(hook.command)
                        out.append((hook, project))
        return out

    def commands(self, event: str, target: str | None) -> list[HookCommand]:
        return [hook for hook, _ in self.matching(event, target)]

    async def run(
        self,
        event: str,
        payload: dict[str, Any],
        tool_name: str | None = None,
        *,
        trust: Callable[[], Awaitable[bool]] | None = None,
    ) -> HookOutcome:
        """Run the hooks of ``event``. Project hooks run when the runner is ``trusted`` or ``trust()``
        (called only when one would run) says so; otherwise they are skipped and counted."""
        if event not in EVENTS:
            raise ValueError(f"unknown hook event {event!r}; one of {', '.join(EVENTS)}")
        target = tool_name or payload.get("source") or payload.get("trigger")
        matching = self.matching(event, target if isinstance(target, str) else None)
        skipped = 0
        untrusted = any(project for _, project in matching) and not self.trusted
        if untrusted and (trust is None or not await trust()):
            skipped = sum(1 for _, project in matching if project)
            matching = [(hook, project) for hook, project in matching if not project]
        hooks = [hook for hook, _ in matching]
        if not hooks:
            return HookOutcome(skipped=skipped)
        data: dict[str, Any] = {
            "session_id": self.session_id,
            "transcript_path": self.transcript_path,
            "cwd": str(self.root),
            "hook_event_name": event,
            **payload,
        }
        if tool_name is not None:
            data["tool_name"] = tool_name
        stdin = json.dumps(data, default=str).encode()
        results = await asyncio.gather(*(self._run_one(h, stdin) for h in hooks))
        outcome = _combine(event, results)
        outcome.skipped = skipped
        return outcome

    async def _run_one(self, hook: HookCommand, stdin: bytes) -> _Result:
        shell = shutil.which("bash") or "/bin/sh"
        env = {**os.environ, "NBAGENT_PROJECT_DIR": str(self.root), "CLAUDE_PROJECT_DIR": str(self.root)}
        try:
            proc = await asyncio.create_subprocess_exec(
                shell, "-c", hook.command,
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
                cwd=self.root, env=env, start_new_session=True,
            )  # fmt: skip
        except OSError as exc:
            return _Result(command=hook.command, error=f"could not start: {exc}")
        try:
            out, err = await asyncio.wait_for(proc.communicate(stdin), timeout=hook.timeout)
        except TimeoutError:
            _kill_group(proc.pid)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(proc.communicate(), timeout=5)
            return _Result(
                command=hook.command, timed_out=True, error=f"timed out after {hook.timeout:g}s; killed"
            )
        except asyncio.CancelledError:
            _kill_group(proc.pid)
            raise
        return _Result(
            command=hook.command,
            exit_code=proc.returncode,
            stdout=out.decode("utf-8", "replace")[:MAX_OUTPUT],
            stderr=err.decode("utf-8", "replace")[:MAX_OUTPUT],
        )


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def _combine(event: str, results: list[_Result]) -> HookOutcome:
    out = HookOutcome(ran=len(results))
    reasons: list[str] = []
    contexts: list[str] = []
    why: dict[str, list[str]] = {"allow": [], "ask": [], "deny": []}
    for r in results:
        name = r.command if len(r.command) <= 60 else r.command[:57] + "..."
        if r.error:
            out.errors.append(f"hook `{name}` {r.error}")
            continue
        if r.exit_code == 2:
            message = r.stderr.strip() or f"blocked by hook `{name}`"
            if event in BLOCKING:
                out.blocked = True
                reasons.append(message)
            else:
                out.errors.append(f"hook `{name}`: {message}")
            continue
        if r.exit_code != 0:
            detail = r.stderr.strip().splitlines()
            out.errors.append(
                f"hook `{name}` failed (exit {r.exit_code})" + (f": {detail[-1]}" if detail else "")
            )
            continue
        text = r.stdout.strip()
        if not text:
            continue
        if not text.startswith("{"):
            if event in STDOUT_IS_CONTEXT:
                contexts.append(text)
            continue
        try:
            data = json.loads(text)
        except ValueError:
            out.errors.append(f"hook `{name}` printed invalid JSON")
            continue
        if not isinstance(data, dict):
            continue
        _apply_json(event, data, out, reasons, contexts, why)
    if reasons:
        out.reason = "\n".join(dict.fromkeys(reasons))
    elif out.permission_decision is not None:
        out.reason = "\n".join(dict.fromkeys(why[out.permission_decision]))
    out.additional_context = "\n".join(contexts)
    return out


def _apply_json(
    event: str,
    data: dict[str, Any],
    out: HookOutcome,
    reasons: list[str],
    contexts: list[str],
    why: dict[str, list[str]],
) -> None:
    if data.get("continue") is False:
        out.stop = True
        out.stop_reason = str(data.get("stopReason") or out.stop_reason or "a hook stopped the turn")
    if isinstance(data.get("systemMessage"), str):
        out.messages.append(data["systemMessage"])
    decision = data.get("decision")
    reason = str(data.get("reason") or "")
    if decision == "block":
        out.blocked = True
        reasons.append(reason or "blocked by a hook")
    elif decision == "approve" and event == "PreToolUse":  # Claude Code's older form
        _permission(out, "allow", reason, why)
    specific = data.get("hookSpecificOutput")
    if not isinstance(specific, dict):
        return
    raw = specific.get("permissionDecision")
    permission = _DECISIONS.get(raw) if isinstance(raw, str) else None
    if permission is not None:
        _permission(out, permission, str(specific.get("permissionDecisionReason") or ""), why)
    updated = specific.get("updatedInput")
    if isinstance(updated, dict):
        out.updated_input = updated
    context = specific.get("additionalContext")
    if isinstance(context, str) and context.strip():
        contexts.append(context.strip())


def _permission(
    out: HookOutcome, decision: Literal["allow", "deny", "ask"], reason: str, why: dict[str, list[str]]
) -> None:
    current = out.permission_decision
    if current is None or ACTION_RANK[decision] > ACTION_RANK[current]:
        out.permission_decision = decision
    if reason:
        why[decision].append(reason)
