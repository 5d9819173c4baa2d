"""How long a permission decision on a shell command takes: the parse and analysis alone, and the full
decision of the policy (tables, paths, globs), p50 and p95 over typical commands an agent runs.

.venv/bin/python -m bench.permission_analysis
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from nbagent.core.config import Config
from nbagent.permissions.bash import analyze
from nbagent.permissions.policy import RulePolicy
from nbagent.tools.base import PermissionQuery

TYPICAL = [
    "ls -la",
    "git status",
    "git diff HEAD~1 -- src/app.py",
    "git log --oneline -20",
    "cat README.md",
    "grep -n foo src/app.py",
    "sed -n 1,20p src/app.py",
    "npm run test -- --watch=false",
    "python -m pytest -q tests/test_api.py -k 'login and not slow'",
    "grep -n 'TODO' src/app.py | head -20",
    "cd frontend && npm install && npm run build",
    "find . -name '*.pyc' -exec rm {} \\;",
    "cat package.json | jq '.dependencies'",
    'git commit -m "Fix the parser: handle $(nested) quotes"',
    "docker compose up -d && docker compose logs -f api > logs/api.log 2>&1",
    "for f in src/*.py; do echo $f; wc -l $f; done",
]
ROUNDS = 300


def _samples(fn: Callable[[str], object]) -> list[float]:
    out: list[float] = []
    for _ in range(ROUNDS):
        for command in TYPICAL:
            t0 = time.perf_counter()
            fn(command)
            out.append((time.perf_counter() - t0) * 1e6)
    return sorted(out)


def _p(samples: list[float], q: float) -> float:
    return samples[min(len(samples) - 1, int(q * len(samples)))]


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "src").mkdir()
        for name in ("app.py", "b.py", "c.py"):
            (root / "src" / name).write_text("x = 1\n")
        (root / "README.md").write_text("# x\n")
        (root / "package.json").write_text("{}\n")
        policy = RulePolicy(root, Config.model_validate({"permission": {"bash": {"rm -rf *": "deny"}}}))
        for label, fn in (
            ("analyze()", analyze),
            (
                "full bash decision",
                lambda c: policy.evaluate(PermissionQuery(permission="bash", patterns=[c])),
            ),
        ):
            s = _samples(fn)
            print(f"{label:20s} p50 {_p(s, 0.5):7.0f} µs   p95 {_p(s, 0.95):7.0f} µs   "
                  f"mean {statistics.fmean(s):7.0f} µs  ({len(s)} decisions)")  # fmt: skip


if __name__ == "__main__":
    main()
