"""The pieces a permission decision is made of: the rule that matched, and each part's verdict."""

from __future__ import annotations

from dataclasses import dataclass, field

from nbagent.core.permission_types import ACTION_RANK
from nbagent.permissions.patterns import CATCH_ALL

RANK = ACTION_RANK


@dataclass
class Hit:
    """The rule that decided: its action, how to show it, its pattern and its layer."""

    action: str
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
class Part:
    """One part's verdict (a command of a pipeline, a path, a redirect): the most restrictive wins."""

    action: str  # allow | ask | deny
    rule: str
    reason: str = ""
    always: list[tuple[str, str]] = field(default_factory=list)
    protected: bool = False
    label: str = ""
    minor: bool = False  # says little (a wrapper allowed): another part at the same level names the decision
    person_only: bool = False  # only a person may approve it (not --yes, bypass or a headless policy)


def most_restrictive(parts: list[Part]) -> Part | None:
    best: Part | None = None
    for part in parts:
        if (
            best is None
            or RANK[part.action] > RANK[best.action]
            or (RANK[part.action] == RANK[best.action] and best.minor and not part.minor)
        ):
            best = part
    return best
