"""The model half of a session: which model answers, through which provider, at which endpoint with
which key; switching (the user's ``/model``, a failover, the switch back after a cool-down). A mixin
of ``Session``.

Each model gets the path that serves it (the native client or litellm), made once per session. Its
endpoint and key come from ``models.<name>``: ``api_base``, and ``api_key_env``, the variable the key
is read from at each request (never written anywhere). The top-level ``api_base`` and ``--api-key``
belong to the configured model's provider: they never go to another provider's model.
"""

from __future__ import annotations

import contextlib
import os
from typing import TYPE_CHECKING, Any, Literal

from nbagent.core.context.budget import Limits, model_limits
from nbagent.core.errors import NbagentError, ProviderError
from nbagent.core.events import ModelSwitched
from nbagent.core.failover import (
    ModelChain,
    Rests,
    failover_message,
    switch_back_message,
    user_switch_message,
)

if TYPE_CHECKING:
    from nbagent.core.config import Config
    from nbagent.core.events import Event
    from nbagent.providers.base import Provider
    from nbagent.store import SessionStore


def uses_native(config: Config, model: str | None = None) -> bool:
    """Whether the native HTTP client serves ``model`` (default: the configured one); litellm serves
    the rest."""
    from nbagent.providers.native import supports

    model = model or config.model or ""
    choice = os.environ.get("NBAGENT_PROVIDER") or config.provider
    return choice == "native" or (choice == "auto" and bool(model) and supports(model))


def make_provider(config: Config, model: str | None = None) -> Provider:
    """The native HTTP client where it serves the model (fast start, low overhead), litellm elsewhere."""
    if uses_native(config, model):
        from nbagent.providers.native import NativeProvider

        return NativeProvider()
    from nbagent.providers.litellm_provider import LiteLLMProvider

    return LiteLLMProvider()


SwitchReason = Literal["failover", "switch_back", "user"]


def _provider_prefix(model: str | None) -> str:
    return (model or "").partition("/")[0]


class SessionModels:
    """What the model methods use of the session (set in ``Session.__init__``)."""

    id: str
    model: str
    config: Config
    api_key: str | None
    provider: Provider
    limits: Limits
    store: SessionStore | None
    _prefix_start: int
    _wire: dict[str, tuple[int, list[dict[str, Any]], int]]

    def _emit(self, event: Event) -> None:
        raise NotImplementedError

    def _init_models(self, provider: Provider | None) -> None:
        """Before ``self.model`` is read: the chain, the provider(s), the model to start on."""
        # a provider passed in serves every model (tests, the demo)
        self._given_provider = self._with_text_tools(provider) if provider is not None else None
        self._providers: dict[str, Provider] = {}
        self.chain = ModelChain(self.config, self.model, Rests.for_user())
        self._switches: list[ModelSwitched] = []  # told at the next step
        start = self.chain.start() if self.chain.has_fallback else self.model
        if start != self.model:
            message = (
                f"{self.model} is resting after a failure; continuing on {start} until its cool-down ends."
            )
            self._switches.append(self._switched(start, "failover", message))
            self.model = start
        self.provider = self.provider_for(self.model)

    def _switched(self, target: str, reason: SwitchReason, message: str) -> ModelSwitched:
        return ModelSwitched(
            session_id=self.id, from_model=self.model, to_model=target, reason=reason, message=message
        )

    def _store_model(self, model: str) -> None:
        """The store records the user's model: a resumed session starts on it."""
        if self.store is not None:
            with contextlib.suppress(NbagentError):  # a full disk: the next save says so
                self.store.update_session(self.id, model=model)

    def resumed_on_another_model(self, stored: str) -> None:
        """The session was stored on ``stored`` and resumes on the configured model (``--model``): the
        store learns it, the user is told at the first step."""
        self._store_model(self.chain.primary)
        message = user_switch_message(stored, self.chain.primary)
        self._switches.insert(
            0,
            ModelSwitched(
                session_id=self.id,
                from_model=stored,
                to_model=self.chain.primary,
                reason="user",
                message=message,
            ),
        )

    @property
    def has_fallback(self) -> bool:
        """Whether another model can take over a turn (``fallback`` in nbagent.json)."""
        return self.chain.has_fallback

    def provider_for(self, model: str) -> Provider:
        """The provider serving ``model``: one per path, made on first use and kept for the session."""
        if self._given_provider is not None:
            return self._given_provider
        plugins = getattr(getattr(self, "setup", None), "plugins", None)  # issue 14 (M3): register_providers
        factory = plugins.provider_factory(model) if plugins is not None else None
        path = "native" if uses_native(self.config, model) else "litellm"
        path = f"plugin:{_provider_prefix(model)}" if factory is not None else path
        found = self._providers.get(path)
        if found is None:
            made = factory(model, self.config) if factory is not None else make_provider(self.config, model)
            found = self._providers[path] = self._with_text_tools(made)
        return found

    def _with_text_tools(self, provider: Provider) -> Provider:
        """``provider`` with the text tool protocol for models without native tool calling (per model
        ``tools``; ``auto`` switches when the server rejects tools, and the user is told)."""
        from nbagent.core.events import Notice
        from nbagent.providers.text_tools import TextToolProvider, tool_mode

        def notify(message: str) -> None:
            self._emit(Notice(session_id=self.id, level="warning", message=message))

        return TextToolProvider(provider, lambda model: tool_mode(self.config, model), notify)

    async def close_providers(self) -> None:
        for provider in {id(p): p for p in [self.provider, *self._providers.values()]}.values():
            await provider.close()

    # -- endpoint and key -------------------------------------------------------------------------

    def endpoint(self, model: str | None = None) -> tuple[str | None, str | None]:
        """(api_base, api_key) for ``model`` (default: the current one). Raises ``ProviderError`` when the
        key variable it names is not set."""
        model = model or self.model
        settings = self.config.models.get(model)
        own = _provider_prefix(model) == _provider_prefix(self.config.model)
        base = settings.api_base if settings is not None and settings.api_base else None
        if base is None and own:
            base = self.config.api_base
        if settings is not None and settings.api_key_env:
            key = os.environ.get(settings.api_key_env, "").strip()
            if not key:
                raise ProviderError(
                    f"No API key for {model}: {settings.api_key_env} is not set.",
                    f"Set {settings.api_key_env} in the environment (models.{model}.api_key_env in"
                    " nbagent.json names it).",
                    kind="auth",
                )
            return base, key
        return base, self.api_key if own else None

    def model_keys(self) -> tuple[str, ...]:
        """The keys of the configured models' key variables (hidden from commands' environments)."""
        names = {s.api_key_env for s in self.config.models.values() if s.api_key_env}
        return tuple(v for v in (os.environ.get(n, "").strip() for n in sorted(names)) if v)

    # -- switching --------------------------------------------------------------------------------

    def _use_model(self, model: str) -> None:
        """Go on with ``model``: its limits and provider; the wire form of the history is rebuilt (it can
        differ between models)."""
        self.model = model
        self.limits = model_limits(model, self.config)
        self.provider = self.provider_for(model)
        self._wire.clear()
        self._prefix_start = -1

    def set_model(self, model: str) -> ModelSwitched | None:
        """The user's switch (``/model``, ``--model`` on a resumed session, a front-end's picker): the
        history carries over, the model leads the fallback chain. Returns the event to show (None when
        the model does not change)."""
        before = self.model
        self._switches.clear()
        self.chain.choose(model)
        self._store_model(model)
        if model == before:
            return None
        event = self._switched(model, "user", user_switch_message(before, model))
        self._use_model(model)
        return event

    def fail_over(self, error: ProviderError) -> ModelSwitched | None:
        """``error`` ended the current model's attempts: continue on the next model of the chain (the
        event to show), or None, the error's hint then saying how a fallback would help."""
        target = self.chain.after_failure(self.model, error)
        if target is None:
            self.chain.explain_stop(self.model, error)
            return None
        event = self._switched(target, "failover", failover_message(self.model, target, error))
        self._use_model(target)
        return event

    def model_switches(self) -> list[ModelSwitched]:
        """Before a step: the switches to tell (the session resumed on another model, or started on a
        fallback while its model rests), and the switch back to an earlier model of the chain whose
        cool-down is over."""
        out, self._switches = self._switches, []
        self.chain.new_step()
        if self.model != self.chain.primary and self.chain.has_fallback:
            target = self.chain.due_back(self.model)
            if target is not None:
                out.append(self._switched(target, "switch_back", switch_back_message(self.model, target)))
                self._use_model(target)
        return out
