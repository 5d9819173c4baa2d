"""Scrubber figures: time to scrub 1 MB of several kinds of text, and to build / refresh a scrubber.

.venv/bin/python -m bench.scrub

Target: every 1 MB text well under 50 ms; building a session's scrubber about a millisecond.
"""

from __future__ import annotations

import base64
import os
import random
import statistics
import string
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from nbagent.core.scrub import Scrubber

MB = 1_000_000
RUNS = 7

CODE = '''\
def load(path: str, api_key: str | None = None, token: Optional[str] = None) -> dict[str, Any]:
    """Read the settings; the key comes from the environment."""
    api_key = api_key or os.environ["OPENAI_API_KEY"]
    headers = {"Authorization": f"Bearer {api_key}", "x-request-id": str(uuid.uuid4())}
    for key, value in sorted(data.items(), key=lambda kv: kv[0]):
        cache_key = f"{key}:{value}"  # max_tokens=100, sort_key=lambda x: x
        tokenizer.pad_token = tokenizer.eos_token
    return {"path": "/home/user/project/src/settings.py", "password": password}
'''
LOG = """\
commit 3f2a9c1e5b7d9f1a3c5e7b9d1f3a5c7e9b1d3f5a
Author: Someone <someone@example.com>
2024-05-01T12:00:00Z INFO request 123e4567-e89b-12d3-a456-426614174000 GET /api/items?page=2 200 12ms
2024-05-01T12:00:01Z WARN retrying https://api.example.com/v1/chat (attempt 2 of 5)
"""
SECRETS = """\
OPENAI_API_KEY=sk-proj-AbCdEf0123456789AbCdEf0123456789
DATABASE_URL=postgres://app:s3cret-pass@db.internal:5432/app
Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.abcdefghijk
"""


def _repeat(chunk: str, size: int = MB) -> str:
    return (chunk * (size // len(chunk) + 1))[:size]


def _prose(size: int = MB) -> str:
    rng = random.Random(1)
    words = ["the", "token", "key", "model", "password", "reads", "a", "file", "and", "secret", "passes"]
    out: list[str] = []
    while sum(map(len, out)) < size:
        out.append(" ".join(rng.choice(words) for _ in range(12)) + ".\n")
    return "".join(out)[:size]


def _random_ascii(size: int = MB) -> str:
    rng = random.Random(2)
    return "".join(rng.choice(string.printable) for _ in range(size))


def _files(folder: Path, pattern: str, size: int = MB) -> str:
    out: list[str] = []
    total = 0
    for path in sorted(folder.rglob(pattern)):
        text = path.read_text(encoding="utf-8", errors="replace")
        out.append(text)
        total += len(text)
        if total >= size:
            break
    return "".join(out)[:size]


def _git_log(size: int = MB) -> str:
    root = Path(__file__).resolve().parent.parent
    done = subprocess.run(
        ["git", "-C", str(root), "log", "-p", "--no-color", "-n", "500"], capture_output=True, text=True
    )
    return _repeat(done.stdout or LOG, size)


def inputs() -> dict[str, str]:
    """Real text where it can be had (installed packages, this repository's history), and the
    synthetic worst cases: code and prose dense with secret words, random data."""
    import litellm  # its sources use api_key everywhere; its price table is JSON full of *_tokens

    lib = Path(litellm.__file__).parent
    blob = base64.b64encode(random.Random(3).randbytes(3 * MB // 4)).decode()
    return {
        "litellm sources": _files(lib / "llms", "*.py"),
        "JSON price table": _repeat(_files(lib, "model_prices_and_context_window_backup.json")),
        "git log -p": _git_log(),
        "logs, ids, hashes": _repeat(LOG),
        "code dense w/ secrets": _repeat(CODE + LOG + SECRETS),
        "prose of secret words": _prose(),
        "base64 blob": blob[:MB],
        "random printable": _random_ascii(),
    }


def _ms(action: Callable[[], object], runs: int = RUNS) -> float:
    """The median time of ``runs`` calls, in milliseconds."""
    return statistics.median(_samples(action, runs))


def _samples(action: Callable[[], object], runs: int = RUNS) -> list[float]:
    out = []
    for _ in range(runs):
        start = time.perf_counter()
        action()
        out.append((time.perf_counter() - start) * 1000)
    return out


def main() -> None:
    environ = {**os.environ, "EXAMPLE_API_KEY": "qz-9f8e7d6c5b4a39281706", "DB_PASSWORD": "hunter2-hunter2"}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / ".env").write_text("STRIPE_KEY=rk_live_0123456789abcdef\nPIN=4821\nDEBUG=true\n")
        for i in range(20):
            (root / f"pkg{i}").mkdir()
        build = _ms(lambda: Scrubber.for_project(root, None, "session-key-0123", environ=dict(environ)))
        scrubber = Scrubber.for_project(root, None, "session-key-0123", environ=environ)
        cached = _ms(lambda: Scrubber.for_project(root, None, "session-key-0123", environ=environ))

        def refresh_now() -> Scrubber:
            scrubber._checked = 0.0  # as if REFRESH_EVERY had passed
            return scrubber.refreshed()

        refresh = _ms(refresh_now)
        print(f"known values: {len(scrubber.values)}")
        print(f"build (cold .env cache miss on first run): {build:7.2f} ms")
        print(f"build (cached):                           {cached:7.2f} ms")
        print(f"refresh check (nothing changed):          {refresh:7.2f} ms")
        print("text, 1 MB of ...                      median      best")
        for name, text in inputs().items():
            took = _samples(lambda text=text: scrubber.text(text))  # type: ignore[misc]
            print(f"  {name:<34} {statistics.median(took):7.2f} ms {min(took):7.2f} ms")
        image = {"data": {"image/png": inputs()["base64 blob"], "text/plain": "<Figure>"}}
        print(f"json, 1 MB image/png output                 {_ms(lambda: scrubber.json(image)):7.2f} ms")


if __name__ == "__main__":
    main()
