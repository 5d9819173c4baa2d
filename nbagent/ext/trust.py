"""Trust before running a project's code: hooks (later MCP servers, plugins, custom tools).

A cloned repository may define commands in its ``nbagent.json`` or ``.claude/settings*.json``; they
run only once the user trusts the folder. Trust is remembered per folder (its real path) *and* per
digest of the project-provided code config, so a changed config asks again. The question goes through
the permission broker as a person-only request: ``--yes``, bypass mode and headless policies never
answer it. ``--trust-project`` / ``NBAGENT_TRUST_PROJECT=1`` trust for one run without saving.

Saved trust lives in ``user_config_dir()/trust.json`` (0600, in a 0700 folder).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError

from nbagent.core.config import CONFIG_NAME, Config, user_config_dir
from nbagent.core.errors import ConfigError
from nbagent.core.permission_types import PermissionQuery, ReplyKind
from nbagent.core.private import private_dir, write_private
from nbagent.ext.mcp_import import loads_jsonc, opencode_project_files

ENV = "NBAGENT_TRUST_PROJECT"
TRUST_FILE = "trust.json"
PERMISSION = "trust"
# The keys of a config file that make a project run code; any other file counts as code as a whole
# (e.g. a future .nbagent/tools/*.py).
CODE_KEYS: dict[str, tuple[str, ...]] = {
    CONFIG_NAME: ("hooks", "mcp", "plugins"),
    "settings.json": ("hooks",),
    "settings.local.json": ("hooks",),
    ".mcp.json": ("mcpServers",),  # issue 14 (M1)
    "opencode.json": ("mcp",),  # issue 14: OpenCode's project config (JSONC, like opencode.jsonc)
    "opencode.jsonc": ("mcp",),
}
CLAUDE_SETTINGS = ("settings.json", "settings.local.json")
MAX_LISTED = 20

# Asks the person (query, reason, what "always" saves) -> the reply; PermissionBroker.ask_person.
Ask = Callable[[PermissionQuery, str, list[str]], Awaitable[ReplyKind]]


def folder_key(root: Path) -> str:
    """A folder as trust knows it: its resolved real path."""
    return os.path.realpath(root)


def user_config_file() -> Path:
    return user_config_dir() / CONFIG_NAME


def project_config_file(root: Path) -> Path | None:
    """The project's ``nbagent.json``, unless there is none or it is the user's own config file."""
    path = root / CONFIG_NAME
    if not path.is_file():
        return None
    user = user_config_file()
    if user.is_file() and os.path.samefile(path, user):
        return None
    return path


def project_code_sources(root: Path, config: Config) -> list[Path]:
    """The project files whose code config is in effect: ``nbagent.json`` and, with
    ``hooks.use_claude_settings``, ``.claude/settings.json`` / ``settings.local.json``."""
    sources: list[Path] = []
    own = project_config_file(root)
    if own is not None:
        sources.append(own)
    if config.hooks.get("use_claude_settings") is True:
        sources += [p for name in CLAUDE_SETTINGS if (p := root / ".claude" / name).is_file()]
    if (root / ".mcp.json").is_file():  # issue 14 (M1): the project's MCP servers (Claude Code's shape)
        sources.append(root / ".mcp.json")
    sources += [p for p in opencode_project_files(root) if p.is_file()]  # issue 14: OpenCode's MCP servers
    return sources


def _code_sections(path: Path) -> dict[str, Any] | None:
    """The code-defining sections of a config file, or None when the file counts as a whole."""
    keys = CODE_KEYS.get(path.name)
    if keys is None:
        return None
    try:
        text = path.read_text(encoding="utf-8")
        data = loads_jsonc(text) if path.name.startswith("opencode.") else json.loads(text)
    except (OSError, ValueError):
        return None  # unreadable: the raw bytes stand for it
    if not isinstance(data, dict):
        return None
    return {key: data[key] for key in keys if key in data}


def _label(root: Path, path: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


def project_code_digest(root: Path, config_sources: Sequence[Path]) -> str:
    """sha256 over the project-provided code config: the ``hooks``/``mcp``/``plugins`` sections of the
    project ``nbagent.json``, the ``hooks`` of ``.claude/settings*.json``, any other source file whole."""
    digest = hashlib.sha256(b"nbagent-trust-v1\n")
    for path in sorted(config_sources, key=lambda p: _label(root, p)):
        sections = _code_sections(path)
        if sections is None:
            try:
                body = path.read_bytes()
            except OSError:
                body = b""
        else:
            body = json.dumps(sections, sort_keys=True, separators=(",", ":")).encode()
        for part in (_label(root, path).encode(), body):
            digest.update(len(part).to_bytes(8, "big") + part)
    return digest.hexdigest()


def _printable(text: str, limit: int = 200) -> str:
    """Control characters shown escaped, so a command cannot hide itself from the question."""
    out = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
    return out if len(out) <= limit else out[: limit - 1] + "…"


def _hook_commands(section: Any) -> list[str]:
    commands: list[str] = []
    entries = section.items() if isinstance(section, dict) else []
    for _event, matchers in entries:
        for matcher in matchers if isinstance(matchers, list) else []:
            hooks = matcher.get("hooks") if isinstance(matcher, dict) else None
            for hook in hooks if isinstance(hooks, list) else []:
                if isinstance(hook, dict) and isinstance(hook.get("command"), str):
                    commands.append(_printable(hook["command"]))
    return list(dict.fromkeys(commands))


def describe_project_code(root: Path, config_sources: Sequence[Path]) -> list[tuple[str, list[str]]]:
    """What the project would run, per source: ``("nbagent.json defines hooks", [commands...])``."""
    found: list[tuple[str, list[str]]] = []
    for path in config_sources:
        label = _label(root, path)
        sections = _code_sections(path)
        if sections is None:
            found.append((f"{label} is project code", []))
            continue
        for key, value in sections.items():
            items = _hook_commands(value) if key == "hooks" else [_printable(str(k)) for k in _names(value)]
            if items:
                found.append((f"{label} defines {key}", items))
    return found


def _names(value: Any) -> list[Any]:
    if isinstance(value, dict):
        return list(value)
    return list(value) if isinstance(value, list) else []


# -- the store -----------------------------------------------------------------------------------------


class TrustEntry(BaseModel):
    digest: str = Field(pattern=r"^[0-9a-f]{64}$")
    trusted_at: float = Field(description="Unix time of the trust.")


class TrustFile(BaseModel):
    version: Literal[1] = 1
    folders: dict[str, TrustEntry] = Field(default_factory=dict)


def _write_private(path: Path, text: str) -> None:
    """Write atomically: a 0600 file in nbagent's own 0700 folder."""
    private_dir(path.parent)
    write_private(path, text)


class TrustStore:
    """Folders the user trusted, each with the digest of the code config it trusted."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or user_config_dir() / TRUST_FILE

    def load(self) -> TrustFile:
        try:
            raw = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return TrustFile()
        except OSError as exc:
            raise ConfigError(f"{self.path}: cannot be read ({exc.strerror})") from exc
        try:
            return TrustFile.model_validate_json(raw)
        except ValidationError as exc:
            raise ConfigError(
                f"{self.path}: not a valid trust file ({exc.error_count()} problem(s))",
                "Delete it and trust your folders again with `nbagent trust PATH`.",
            ) from exc

    def is_trusted(self, root: Path, digest: str) -> bool:
        entry = self.load().folders.get(folder_key(root))
        return entry is not None and entry.digest == digest

    def trust(self, root: Path, digest: str) -> None:
        data = self.load()
        data.folders[folder_key(root)] = TrustEntry(digest=digest, trusted_at=time.time())
        _write_private(self.path, data.model_dump_json(indent=2) + "\n")

    def revoke(self, root: Path) -> bool:
        data = self.load()
        if data.folders.pop(folder_key(root), None) is None:
            return False
        _write_private(self.path, data.model_dump_json(indent=2) + "\n")
        return True


def is_trusted(root: Path, digest: str, store: TrustStore | None = None) -> bool:
    return (store or TrustStore()).is_trusted(root, digest)


def trusted_by_env() -> bool:
    return os.environ.get(ENV, "").strip().lower() in ("1", "true", "yes")


# -- the gate ------------------------------------------------------------------------------------------


class ProjectTrust:
    """Whether this session may run the project's code; decided once, when that code first would run.

    ``forced``: trusted for this run (``--trust-project``, ``NBAGENT_TRUST_PROJECT=1``), not saved.
    The config is read now, next to the session's config, so what is asked about and saved is what runs.
    """

    def __init__(
        self, root: Path, sources: Sequence[Path], *, forced: bool = False, store: TrustStore | None = None
    ) -> None:
        self.root = root
        self.sources = list(sources)
        self.forced = forced or trusted_by_env()
        self.store = store or TrustStore()
        self.state: Literal["unknown", "trusted", "refused"] = "trusted" if self.forced else "unknown"
        self.digest = project_code_digest(root, self.sources)
        self.described = describe_project_code(root, self.sources)
        self._lock = asyncio.Lock()

    def trusted_now(self) -> bool:
        """Trusted without asking: for this session, or saved earlier for the same project code."""
        if self.state != "unknown":
            return self.state == "trusted"
        try:
            return self.store.is_trusted(self.root, self.digest)
        except ConfigError:
            return False

    def question(self) -> tuple[PermissionQuery, str, list[str]]:
        """The permission query, its reason and what an "always" answer saves."""
        folder = folder_key(self.root)
        described = self.described
        commands = [c for _, items in described for c in items]
        summary = "; ".join(
            f"{what}: " + ", ".join(items[:5]) + (f" (+{len(items) - 5} more)" if len(items) > 5 else "")
            for what, items in described
        )
        reason = "\n".join(f"{what}: " + ", ".join(items[:MAX_LISTED]) for what, items in described)
        query = PermissionQuery(
            permission=PERMISSION,
            patterns=[folder],
            title=f"Trust this folder to run its hooks? {folder}: {summary or 'project code config'}",
            metadata={"commands": commands[:MAX_LISTED], "folder": folder},
        )
        return query, reason or "the project defines code to run", [f"{PERMISSION}: {folder}"]

    async def resolve(self, ask: Ask, notice: Callable[[str], None], *, can_ask: bool = True) -> bool:
        """True when the project's code may run; asks the person the first time (not when ``can_ask`` is
        false: then the code is skipped this time and the question waits for a turn)."""
        async with self._lock:
            if self.state != "unknown":
                return self.state == "trusted"
            try:
                if self.store.is_trusted(self.root, self.digest):
                    self.state = "trusted"
                    return True
            except ConfigError as exc:
                notice(f"{exc} {exc.hint}".strip())
            if not can_ask:
                return False
            query, reason, always = self.question()
            reply = await ask(query, reason, always)
            if reply == "reject":
                self.state = "refused"
                folder = folder_key(self.root)
                notice(
                    f"Project hooks were not run: {folder} is not trusted ({reason.splitlines()[0]}). To run"
                    f" them, trust the folder when asked, run `nbagent trust {folder}`, or pass --trust-project"
                    f" (env {ENV}=1) for one run; --yes does not trust a folder."
                )
                return False
            self.state = "trusted"
            if reply == "always":
                try:
                    self.store.trust(self.root, self.digest)
                except (ConfigError, OSError) as exc:
                    notice(f"Trusted for this session only: could not save the trust ({exc}).")
            return True


# -- `nbagent trust` --------------------------------------------------------------------------------------


def _sources_for(root: Path) -> list[Path]:
    from nbagent.core.config import load_config

    return project_code_sources(root, load_config(root))


def trust_command(path: Path | None, *, revoke: bool = False, list_: bool = False) -> int:
    """``nbagent trust [PATH]``, ``--revoke [PATH]``, ``--list``; returns the exit code."""
    store = TrustStore()
    if list_:
        folders = store.load().folders
        if not folders:
            print(f"No trusted folders ({store.path}).")
        for folder, entry in sorted(folders.items()):
            when = time.strftime("%Y-%m-%d %H:%M", time.localtime(entry.trusted_at))
            state = ""
            if not Path(folder).is_dir():
                state = "  (folder gone)"
            else:
                with contextlib.suppress(ConfigError):
                    current = project_code_digest(Path(folder), _sources_for(Path(folder)))
                    state = "" if current == entry.digest else "  (config changed since: will ask again)"
            print(f"{folder}  {when}  {entry.digest[:12]}{state}")
        return 0
    root = (path or Path.cwd()).expanduser()
    if not root.is_dir():
        raise ConfigError(f"{root}: no such folder", "Pass the project folder: nbagent trust PATH")
    folder = folder_key(root)
    if revoke:
        if store.revoke(root):
            print(f"No longer trusted: {folder}")
        else:
            print(f"{folder} was not trusted; nothing to revoke.")
        return 0
    sources = _sources_for(root)
    described = describe_project_code(root, sources)
    store.trust(root, project_code_digest(root, sources))
    print(f"Trusted: {folder}")
    for what, items in described:
        print(f"  {what}:")
        for item in items:
            print(f"    {item}")
    if not described:
        print("  (it defines no hooks yet; any it adds later will be asked about)")
    else:
        print("  A change to these asks again.")
    return 0
