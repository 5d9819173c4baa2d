"""Approvals that stick: "always" replies saved in ``.nbagent/permissions.local.json``.

The file has the shape of the ``permission`` section (``{"permission": {"bash": {"git commit *":
"allow"}}}``), is loaded at startup as the highest-priority project rules, and is written atomically
(temporary file + rename). A ``.nbagent/.gitignore`` keeps it out of git: it is one person's choice.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from nbagent.core.errors import ConfigError
from nbagent.permissions.config import Rules, parse_rules

LOCAL_NAME = "permissions.local.json"


class LocalRules:
    def __init__(self, root: Path) -> None:
        self.dir = root / ".nbagent"
        self.path = self.dir / LOCAL_NAME

    def _read(self) -> dict[str, Any]:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise ConfigError(f"{self.path}: cannot be read ({exc.strerror})") from exc
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(
                f"{self.path}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})",
                "Fix the file or delete it (it only holds saved 'always' approvals).",
            ) from exc
        if not isinstance(data, dict):
            raise ConfigError(f"{self.path}: the top level must be a JSON object")
        return data

    def load(self) -> Rules:
        data = self._read()
        return parse_rules(data.get("permission", {}), "permission", str(self.path))

    def add(self, rules: list[tuple[str, str]]) -> None:
        """Save ``(key, pattern)`` pairs as allow rules."""
        data = self._read()
        section = data.setdefault("permission", {})
        for key, pattern in rules:
            entry = section.get(key)
            if not isinstance(entry, dict):
                entry = {"*": entry} if isinstance(entry, str) else {}
                section[key] = entry
            entry.pop(pattern, None)  # re-insert last: the newest rule wins
            entry[pattern] = "allow"
        self.dir.mkdir(parents=True, exist_ok=True)
        self._ensure_gitignore()
        fd, tmp = tempfile.mkstemp(prefix=".permissions-", suffix=".tmp", dir=self.dir)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(data, fh, indent=2, ensure_ascii=False)
                fh.write("\n")
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def _ensure_gitignore(self) -> None:
        ignore = self.dir / ".gitignore"
        try:
            text = ignore.read_text(encoding="utf-8")
        except FileNotFoundError:
            text = ""
        if LOCAL_NAME not in text.splitlines():
            with ignore.open("a", encoding="utf-8") as fh:
                fh.write(("\n" if text and not text.endswith("\n") else "") + f"{LOCAL_NAME}\n")
