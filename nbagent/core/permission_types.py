"""The permission vocabulary every layer shares: what a tool asks (``PermissionQuery``), what a policy
decides (``Decision``), and the policy's protocol. Foundation layer: imports no other nbagent layer."""

from __future__ import annotations

from typing import Any, Literal, Protocol

from pydantic import BaseModel, Field

from nbagent.core.config import Mode

Action = Literal["allow", "ask", "deny"]
ReplyKind = Literal["once", "always", "reject"]
HeadlessPolicy = Literal["allow", "deny"]
# How restrictive an action is: where several parts or sources decide, the highest wins.
ACTION_RANK: dict[str, int] = {"allow": 0, "ask": 1, "deny": 2}


class PermissionQuery(BaseModel):
    """What a tool asks leave for. ``permission`` is the rule key (read, edit, bash, ...)."""

    permission: str
    patterns: list[str]
    title: str = ""
    metadata: dict[str, Any] = Field(default_factory=dict)
    # acceptEdits does not cover it: it always asks unless a rule allows it (deleting a notebook cell)
    destructive: bool = False


class Decision(BaseModel):
    action: Action
    rule: str = ""  # the rule that decided, as the user wrote it (e.g. 'bash: git status*')
    reason: str = ""
    always: list[str] = Field(default_factory=list)  # scoped rules an "always" reply would save
    details: dict[str, Any] = Field(default_factory=dict)
    # Only a person may approve: --yes, bypass mode and the headless policy never do (a command the
    # analysis cannot see while deny rules exist, a request to trust a folder's code).
    person_only: bool = False


class PermissionPolicy(Protocol):
    mode: Mode

    def evaluate(self, query: PermissionQuery) -> Decision: ...

    def remember(self, query: PermissionQuery, decision: Decision) -> None:
        """Persist the scoped rules of ``decision.always`` (an "always" reply)."""
        ...
