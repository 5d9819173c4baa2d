"""Analysis of a typical command stays well under a millisecond."""

from __future__ import annotations

import statistics
import time
from pathlib import Path

from nbagent.core.config import Config
from nbagent.permissions.bash import analyze
from nbagent.permissions.policy import RulePolicy
from nbagent.tools.base import PermissionQuery

TYPICAL = [
    "ls -la",
    "git status",
    "git diff HEAD~1 -- src/app.py",
    "npm run test -- --watch=false",
    "python -m pytest -q tests/test_api.py -k 'login and not slow'",
    "grep -rn 'TODO' src | head -20",
    "cd frontend && npm install && npm run build",
    "find . -name '*.pyc' -exec rm {} \\;",
    "cat package.json | jq '.dependencies'",
    'git commit -m "Fix the parser: handle $(nested) quotes"',
    "docker compose up -d && docker compose logs -f api > logs/api.log 2>&1",
    "for f in src/*.py; do echo $f; wc -l $f; done",
]


def _median_us(fn: object, rounds: int = 200) -> float:
    samples = []
    for _ in range(rounds):
        for command in TYPICAL:
            t0 = time.perf_counter()
            fn(command)  # type: ignore[operator]
            samples.append((time.perf_counter() - t0) * 1e6)
    return statistics.median(samples)


def test_analysis_is_well_under_a_millisecond(project: Path) -> None:
    analysis_us = _median_us(analyze)
    policy = RulePolicy(project, Config())
    decision_us = _median_us(lambda c: policy.evaluate(PermissionQuery(permission="bash", patterns=[c])))
    print(f"\nmedian analyze(): {analysis_us:.0f} µs; median full bash decision: {decision_us:.0f} µs")
    assert analysis_us < 500
    assert decision_us < 1000
