"""Plugins through pluggy: installed packages that add tools, commands, agents, providers and hooks.

A plugin is a module (or object) registered under the entry point group ``nbagent``::

    # pyproject.toml of the plugin package
    [project.entry-points.nbagent]
    myplugin = "myplugin"

    # myplugin.py
    from nbagent.ext.plugins import hookimpl, Refuse

    @hookimpl
    def register_tools():
        return [MyTool()]

    @hookimpl
    def tool_before(tool, tool_input):
        if tool == "bash" and "rm -rf" in tool_input.get("command", ""):
            return Refuse("no rm -rf here")

Every hook is optional. A plugin that fails to load, or whose hook raises, is reported with its name
and disabled for the rest of the session; it never takes the session down. ``"plugins": {"disabled":
["name"]}`` in nbagent.json skips installed plugins by name. Installed packages are the user's own
choice (like any installed program), so entry point plugins need no folder trust.
"""

from __future__ import annotations

import inspect
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any

import pluggy

from nbagent.core.config import Config

GROUP = "nbagent"
hookspec = pluggy.HookspecMarker(GROUP)
hookimpl = pluggy.HookimplMarker(GROUP)

__all__ = ["GROUP", "PluginInfo", "Plugins", "Refuse", "hookimpl", "load_plugins"]


@dataclass(frozen=True)
class Refuse:
    """Returned by ``tool_before``: the call does not run; the model gets ``reason`` as the error."""

    reason: str


class Specs:
    """The hooks a plugin may implement (each optional; arguments may be left out of an impl)."""

    @hookspec
    def register_tools(self) -> list[Any]:  # type: ignore[empty-body]
        """Tools (``nbagent.tools.base.Tool`` instances, or ``@custom_tools.tool`` functions) to offer."""

    @hookspec
    def register_commands(self) -> dict[str, Any]:  # type: ignore[empty-body]
        """Slash commands: ``{"name": "prompt template with $ARGUMENTS"}`` or a callable
        ``(session, args) -> str`` whose returned markdown is shown."""

    @hookspec
    def register_agents(self) -> list[dict[str, Any]]:  # type: ignore[empty-body]
        """Agents, as the ``"agent"`` config section shapes them: ``{"name": ..., "prompt": ..., ...}``."""

    @hookspec
    def register_providers(self) -> dict[str, Any]:  # type: ignore[empty-body]
        """Model providers: ``{"prefix": factory}``, a factory ``(model, config) -> Provider``."""

    @hookspec
    def tool_before(self, tool: str, tool_input: dict[str, Any], session_id: str) -> Any:
        """Before a call runs: return a new input dict to rewrite it, ``Refuse(reason)`` to refuse it,
        or None to leave it."""

    @hookspec
    def tool_after(self, tool: str, tool_input: dict[str, Any], output: str, session_id: str) -> Any:
        """After a call succeeded: return a new output string to rewrite the result, or None."""

    @hookspec
    def system_prompt(self, root: str) -> Any:
        """Text appended to the system prompt (fixed for the session), or None."""

    @hookspec
    def on_event(self, event: Any) -> None:
        """Observe every event of the session (``nbagent.core.events``); the return value is ignored."""

    @hookspec
    def compaction(self, session_id: str) -> Any:
        """Context to add to a compaction summary (text), or None."""


@dataclass
class PluginInfo:
    name: str
    origin: str  # "entry point <dist> <version>" or what registered it
    hooks: list[str] = field(default_factory=list)
    error: str = ""  # why it was disabled

    @property
    def enabled(self) -> bool:
        return not self.error


class Plugins:
    """The loaded plugins; every call runs each plugin's hook on its own, a failing one is disabled."""

    def __init__(self, disabled: set[str] | None = None) -> None:
        self.pm = pluggy.PluginManager(GROUP)
        self.pm.add_hookspecs(Specs)
        self.info: dict[str, PluginInfo] = {}
        self.disabled = disabled or set()
        self.notices: list[str] = []  # problems to show the user once

    # -- registering ---------------------------------------------------------------------------------

    def register(self, plugin: Any, name: str, origin: str = "registered") -> bool:
        if name in self.disabled:
            self.info[name] = PluginInfo(name, origin, error="disabled in nbagent.json (plugins.disabled)")
            return False
        try:
            self.pm.register(plugin, name=name)
        except Exception as exc:  # pluggy validates hook names and signatures
            self._failed(name, origin, f"{type(exc).__name__}: {exc}")
            return False
        hooks = sorted(c.name for c in self.pm.get_hookcallers(plugin) or [])
        self.info[name] = PluginInfo(name, origin, hooks=hooks)
        return True

    def load_entry_points(self) -> None:
        if not _may_have_entry_points():
            return
        for ep in entry_points(group=GROUP):
            dist = getattr(ep, "dist", None)
            origin = f"entry point {ep.value}" + (f" ({dist.name} {dist.version})" if dist else "")
            if ep.name in self.disabled:
                self.register(None, ep.name, origin)
                continue
            try:
                plugin = ep.load()
            except BaseException as exc:  # an import error, a SystemExit in a module body...
                if isinstance(exc, KeyboardInterrupt):
                    raise
                self._failed(ep.name, origin, f"could not be loaded: {type(exc).__name__}: {exc}")
                continue
            self.register(plugin, ep.name, origin)

    def _failed(self, name: str, origin: str, error: str) -> None:
        info = self.info.get(name) or PluginInfo(name, origin)
        info.error = error
        self.info[name] = info
        self.notices.append(
            f"Plugin {name!r} disabled: {error}. Fix or uninstall it, or list it in"
            f' nbagent.json "plugins": {{"disabled": [{name!r}]}}.'
        )

    # -- calling -------------------------------------------------------------------------------------

    def _impls(self, hook: str) -> list[tuple[str, Callable[..., Any], list[str]]]:
        caller = getattr(self.pm.hook, hook)
        out = []
        for impl in reversed(caller.get_hookimpls()):  # registration order
            if self.info.get(impl.plugin_name, PluginInfo("", "")).enabled:
                out.append((impl.plugin_name, impl.function, list(impl.argnames)))
        return out

    def _disable(self, name: str, hook: str, exc: BaseException) -> None:
        plugin = self.pm.get_plugin(name)
        if plugin is not None:
            self.pm.unregister(plugin, name=name)
        self._failed(name, self.info.get(name, PluginInfo(name, "")).origin, f"{hook} raised {exc!r}")

    def call(self, hook: str, **kwargs: Any) -> list[tuple[str, Any]]:
        """``(plugin, result)`` for each enabled plugin implementing ``hook`` (None results left out)."""
        results = []
        for name, function, argnames in self._impls(hook):
            try:
                value = function(**{k: kwargs[k] for k in argnames})
            except Exception as exc:
                self._disable(name, hook, exc)
                continue
            if value is not None:
                results.append((name, value))
        return results

    async def acall(self, hook: str, **kwargs: Any) -> list[tuple[str, Any]]:
        """``call``, awaiting the results of async implementations."""
        results = []
        for name, function, argnames in self._impls(hook):
            try:
                value = function(**{k: kwargs[k] for k in argnames})
                if inspect.isawaitable(value):
                    value = await value
            except Exception as exc:
                self._disable(name, hook, exc)
                continue
            if value is not None:
                results.append((name, value))
        return results

    def take_notices(self) -> list[str]:
        notices, self.notices = self.notices, []
        return notices

    # -- the hooks, as the session uses them ---------------------------------------------------------

    def tools(self) -> list[Any]:
        from nbagent.ext.custom_tools import as_tool

        found = []
        for name, value in self.call("register_tools"):
            try:
                found += [as_tool(t) for t in value]
            except (TypeError, ValueError) as exc:
                self._disable(name, "register_tools", exc)
        return found

    def agents(self) -> list[Any]:
        """``register_agents``: ``AgentDef`` fields (subagents unless ``mode`` says otherwise)."""
        from pydantic import ValidationError

        from nbagent.ext.agents import AgentDef

        found = []
        for name, value in self.call("register_agents"):
            for fields in value if isinstance(value, list) else [value]:
                try:
                    found.append(
                        AgentDef.model_validate({"mode": "subagent", "source": f"plugin {name}", **fields})
                    )
                except (TypeError, ValidationError) as exc:
                    self.notices.append(f"Plugin {name!r}: an agent was left out ({exc}).")
        return found

    def commands(self) -> dict[str, tuple[str, Any]]:
        """``register_commands``: command name -> (plugin, a prompt template or a callable)."""
        found: dict[str, tuple[str, Any]] = {}
        for name, value in self.call("register_commands"):
            if not isinstance(value, dict):
                self._disable(
                    name, "register_commands", TypeError(f"returned {type(value).__name__}, not a dict")
                )
                continue
            for command, body in value.items():
                if isinstance(body, str) or callable(body):
                    found.setdefault(str(command), (name, body))
        return found

    def provider_factory(self, model: str) -> Callable[..., Any] | None:
        """``register_providers``: the factory ``(model, config) -> Provider`` for ``model``'s prefix."""
        prefix = model.partition("/")[0]
        for _name, value in self.call("register_providers"):
            factory = value.get(prefix) if isinstance(value, dict) else None
            if callable(factory):
                return factory  # type: ignore[no-any-return]
        return None

    def system_prompt(self, root: str) -> list[str]:
        return [str(text).strip() for _, text in self.call("system_prompt", root=root) if str(text).strip()]

    async def tool_before(
        self, tool: str, tool_input: dict[str, Any], session_id: str
    ) -> dict[str, Any] | Refuse:
        """The input after every plugin's ``tool_before`` (each sees the previous rewrite), or the first
        refusal."""
        current = tool_input
        for name, function, argnames in self._impls("tool_before"):
            args = {"tool": tool, "tool_input": dict(current), "session_id": session_id}
            ok, value = await self._call(name, "tool_before", function, argnames, args)
            if not ok:
                continue
            if isinstance(value, Refuse):
                return Refuse(f"{value.reason} (plugin {name})")
            if isinstance(value, dict):
                current = value
        return current

    async def tool_after(self, tool: str, tool_input: dict[str, Any], output: str, session_id: str) -> str:
        for name, function, argnames in self._impls("tool_after"):
            args = {"tool": tool, "tool_input": tool_input, "output": output, "session_id": session_id}
            ok, value = await self._call(name, "tool_after", function, argnames, args)
            if ok and isinstance(value, str):
                output = value
        return output

    async def _call(
        self, name: str, hook: str, function: Any, argnames: Any, args: dict[str, Any]
    ) -> tuple[bool, Any]:
        """One plugin's implementation of ``hook`` with the arguments it asks for, awaited if async;
        (False, None) when it raised: the plugin is disabled and the others go on."""
        try:
            value = function(**{k: args[k] for k in argnames})
            if inspect.isawaitable(value):
                value = await value
        except Exception as exc:
            self._disable(name, hook, exc)
            return False, None
        return True, value

    def on_event(self, event: Any) -> None:
        if self.info:
            self.call("on_event", event=event)

    def compaction(self, session_id: str) -> str:
        return "\n\n".join(
            str(t) for _, t in self.call("compaction", session_id=session_id) if str(t).strip()
        )

    def listing(self) -> str:
        """``nbagent plugins``: each plugin, where it came from, its hooks or why it is disabled."""
        if not self.info:
            return f"No plugins installed (entry point group {GROUP!r})."
        lines = []
        for info in self.info.values():
            state = f"hooks: {', '.join(info.hooks) or 'none'}" if info.enabled else f"DISABLED: {info.error}"
            lines.append(f"{info.name}  [{info.origin}]  {state}")
        return "\n".join(lines)


def _may_have_entry_points() -> bool:
    """A quick look (~3 ms) at the installed distributions for an ``[nbagent]`` entry point section, so a
    session without plugins skips ``importlib.metadata``'s full scan (~180 ms on a cold start)."""
    for folder in sys.path:
        if os.path.isfile(folder):
            return True  # a zip on the path: only importlib.metadata can tell
        try:
            entries = os.scandir(folder or ".")
        except OSError:
            continue
        with entries:
            for entry in entries:
                if not entry.name.endswith((".dist-info", ".egg-info")):
                    continue
                try:
                    with open(os.path.join(entry.path, "entry_points.txt"), encoding="utf-8") as fh:
                        if f"[{GROUP}]" in fh.read():
                            return True
                except OSError:
                    continue
    return False


def load_plugins(config: Config) -> Plugins:
    """The installed plugins (entry point group ``nbagent``), minus ``plugins.disabled``."""
    disabled = config.plugins.get("disabled", [])
    plugins = Plugins({str(n) for n in disabled} if isinstance(disabled, list) else set())
    plugins.load_entry_points()
    return plugins
