"""Permission requests as awaited futures: the loop asks, a front-end (or the headless policy) answers.

The *policy* (rules, shell analysis, modes: ``nbagent.permissions``) decides allow / ask / deny;
the *broker* turns an "ask" into a ``PermissionAsked`` event and waits for ``reply``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

from nbagent.core.config import Mode
from nbagent.core.errors import PermissionRejected
from nbagent.core.events import Event, PermissionAsked, PermissionReplied
from nbagent.core.messages import new_id
from nbagent.core.permission_types import (
    Action,
    Decision,
    HeadlessPolicy,
    PermissionPolicy,
    PermissionQuery,
    ReplyKind,
)

Emit = Callable[[Event], None]
__all__ = [
    "Action",
    "AllowAll",
    "Decision",
    "HeadlessPolicy",
    "PermissionBroker",
    "PermissionPolicy",
    "ReplyKind",
]


class AllowAll:
    """Everything runs, but a doom loop still asks (for embedding the core without rules)."""

    mode: Mode = "bypass"

    def evaluate(self, query: PermissionQuery) -> Decision:
        if query.permission == "doom_loop":
            return Decision(
                action="ask", reason="the same tool call was repeated 3 times", rule="doom_loop: ask"
            )
        return Decision(action="allow", rule="default: allow")

    def remember(self, query: PermissionQuery, decision: Decision) -> None:
        return None


@dataclass
class _Pending:
    query: PermissionQuery
    decision: Decision
    future: asyncio.Future[tuple[ReplyKind, str]]
    remember: bool = True  # an "always" reply saves the decision's rules through the policy


class PermissionBroker:
    def __init__(
        self,
        policy: PermissionPolicy,
        emit: Emit,
        *,
        session_id: str = "",
        headless: HeadlessPolicy | None = None,
    ) -> None:
        self.policy = policy
        self.emit = emit
        self.session_id = session_id
        self.headless = headless
        self._pending: dict[str, _Pending] = {}

    @property
    def pending(self) -> list[str]:
        return list(self._pending)

    async def check(self, query: PermissionQuery, call_id: str | None = None, *, force_ask: str = "") -> None:
        """Return when the call may run; raise ``PermissionRejected`` otherwise.

        ``force_ask`` (a reason) turns an allow into a question, as a PreToolUse hook may ask.
        """
        decision = self.policy.evaluate(query)
        if decision.action == "allow" and force_ask:
            decision = decision.model_copy(update={"action": "ask", "reason": force_ask})
        if decision.action == "allow":
            return
        target = ", ".join(query.patterns) or query.permission
        if decision.action == "deny":
            why = decision.reason or f"denied by rule {decision.rule}"
            raise PermissionRejected(f"Permission denied for {query.permission} {target}: {why}.")
        request_id = new_id("perm")
        self.emit(
            PermissionAsked(
                session_id=self.session_id,
                request_id=request_id,
                call_id=call_id,
                tool=query.permission,
                title=query.title or f"{query.permission} {target}",
                patterns=query.patterns,
                reason=decision.reason or decision.rule,
                always=decision.always,
                details={**query.metadata, **decision.details},
                person_only=decision.person_only,
            )
        )
        if self.headless is not None:
            allow = self.headless == "allow" and not decision.person_only
            reply: ReplyKind = "once" if allow else "reject"
            by = f"headless policy: {self.headless}" + (
                " (only a person may approve this)" if decision.person_only else ""
            )
            self.emit(
                PermissionReplied(session_id=self.session_id, request_id=request_id, reply=reply, by=by)
            )
            if reply == "reject":
                if decision.person_only:
                    raise PermissionRejected(
                        f"Permission for {query.permission} {target} was refused: only a person may approve it"
                        f" ({decision.reason or decision.rule}), and no one can answer prompts in this run;"
                        " --yes does not approve it. Change the request, or run interactively."
                    )
                raise PermissionRejected(
                    f"Permission for {query.permission} {target} was refused: no one can answer prompts in this"
                    " run (headless policy: deny). Run with --yes, or allow it in nbagent.json."
                )
            return
        future: asyncio.Future[tuple[ReplyKind, str]] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = _Pending(query, decision, future)
        try:
            kind, feedback = await future
        finally:
            self._pending.pop(request_id, None)
        if kind == "reject":
            raise PermissionRejected(
                f"The user refused {query.permission} {target}.", feedback, stops_turn=True
            )

    async def ask_person(
        self, query: PermissionQuery, reason: str, always: list[str] | None = None
    ) -> ReplyKind:
        """Ask a person directly, past the policy: no rule, mode, --yes or headless policy answers this
        (trusting a folder's code). Headless runs get "reject". The caller acts on the reply, an "always"
        included: nothing is saved as a permission rule."""
        decision = Decision(action="ask", reason=reason, always=always or [], person_only=True)
        request_id = new_id("perm")
        self.emit(
            PermissionAsked(
                session_id=self.session_id,
                request_id=request_id,
                tool=query.permission,
                title=query.title or f"{query.permission} {', '.join(query.patterns)}",
                patterns=query.patterns,
                reason=reason,
                always=decision.always,
                details=dict(query.metadata),
                person_only=True,
            )
        )
        if self.headless is not None:
            by = f"headless policy: {self.headless} (only a person may approve this)"
            self.emit(
                PermissionReplied(session_id=self.session_id, request_id=request_id, reply="reject", by=by)
            )
            return "reject"
        future: asyncio.Future[tuple[ReplyKind, str]] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = _Pending(query, decision, future, remember=False)
        try:
            kind, _feedback = await future
        finally:
            self._pending.pop(request_id, None)
        return kind

    def reply(self, request_id: str, kind: ReplyKind, feedback: str = "", by: str = "user") -> None:
        pending = self._pending.get(request_id)
        if pending is None or pending.future.done():
            raise KeyError(f"No pending permission request {request_id}")
        self.emit(
            PermissionReplied(
                session_id=self.session_id, request_id=request_id, reply=kind, feedback=feedback, by=by
            )
        )
        pending.future.set_result((kind, feedback))
        if kind == "always" and pending.remember:
            self.policy.remember(pending.query, pending.decision)
            saved = ", ".join(pending.decision.always)
            for other_id, other in list(self._pending.items()):
                covered = other_id != request_id and not other.future.done()
                if covered and self.policy.evaluate(other.query).action == "allow":
                    self.reply(other_id, "once", by=f"covered by the rule just saved ({saved})")

    def cancel_all(self) -> None:
        for pending in self._pending.values():
            if not pending.future.done():
                pending.future.cancel()
