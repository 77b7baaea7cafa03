"""The one place that lists providers: which exist, and which model goes to which.

Core code asks ``registry.route(model)`` and talks to the ``Provider`` it gets back; it never compares
provider ids itself. Adding a provider is one module (its ``ProviderSpec`` and what differs) and one line in
``SPECS``; settings, the OpenAPI enum, ``/api/meta`` (the console's list) and the test fakes read the specs.
"""

from __future__ import annotations

from collections.abc import Iterable

from webrana_proxy.errors import BadRequest, NotFound
from webrana_proxy.providers import anthropic, deepseek, gemini, groq, mistral, openai, openrouter, qwen, xai
from webrana_proxy.providers.base import Provider, Route
from webrana_proxy.providers.spec import ProviderSpec

MAX_MODEL_LENGTH = 200  # the longest real model ids are well under 100 characters

# Order matters only where prefixes overlap: OpenAI's text-embedding-* excludes Gemini's and Qwen's.
SPECS: tuple[ProviderSpec, ...] = (
    openai.SPEC,
    anthropic.SPEC,
    gemini.SPEC,
    qwen.SPEC,
    deepseek.SPEC,
    openrouter.SPEC,
    mistral.SPEC,
    groq.SPEC,
    xai.SPEC,
)


def provider_ids() -> tuple[str, ...]:
    return tuple(s.id for s in SPECS)


class Registry:
    """The providers this process serves, and the model -> provider rule."""

    __slots__ = ("_by_id", "_forms", "_order")

    def __init__(self, providers: Iterable[Provider]) -> None:
        self._order: tuple[Provider, ...] = tuple(providers)
        self._by_id: dict[str, Provider] = {}
        for p in self._order:
            for name in (p.id, *p.spec.aliases):
                self._by_id[name] = p
        self._forms = ("; ".join(p.spec.forms() for p in self._order)
                       + "; or provider/model with provider one of: " + ", ".join(self.ids())
                       + " (e.g. anthropic/claude-sonnet-5-5)")

    def route(self, model: object) -> Route:
        """The provider and upstream model name for what the client asked; ``BadRequest`` naming the
        accepted forms when nothing serves it."""
        if not isinstance(model, str) or not model.strip():
            raise BadRequest("'model' is required: " + self._forms, param="model")
        if not model.isprintable() or len(model) > MAX_MODEL_LENGTH:
            raise BadRequest(f"'model' must be printable text of at most {MAX_MODEL_LENGTH} characters",
                             param="model", code="invalid_model")
        prefix, sep, rest = model.partition("/")
        if sep:
            provider = self._by_id.get(prefix.lower())
            if provider is not None:
                if not rest:
                    raise BadRequest(f"model '{model}' names no model after the provider", param="model")
                return Route(provider=provider, model=rest, requested=model)
        for provider in self._order:
            if provider.owns_model(model):
                return Route(provider=provider, model=model, requested=model)
        raise BadRequest(f"unknown model '{model}'. Accepted: " + self._forms, param="model",
                         code="model_not_found")

    def public_name(self, provider: Provider, model_id: str) -> str:
        """The name a client calls ``model_id`` of ``provider`` by: the bare id when it routes there, else
        ``<provider>/<id>`` (Groq's and OpenRouter's models, or a bare name another provider's prefix takes)."""
        if "/" not in model_id and provider.owns_model(model_id):
            for other in self._order:
                if other.owns_model(model_id):
                    if other is provider:
                        return model_id
                    break
        return f"{provider.id}/{model_id}"

    def get(self, provider_id: str) -> Provider:
        provider = self.find(provider_id)
        if provider is None:
            raise NotFound(f"unknown provider '{provider_id}'; known: {', '.join(self.ids())}",
                           param="provider")
        return provider

    def find(self, provider_id: str) -> Provider | None:
        """The provider with this id (not an alias: ids are what is stored)."""
        provider = self._by_id.get(provider_id)
        return provider if provider is not None and provider.id == provider_id else None

    def all(self) -> tuple[Provider, ...]:
        return self._order

    def ids(self) -> tuple[str, ...]:
        return tuple(p.id for p in self._order)


def build_registry(specs: Iterable[ProviderSpec] = SPECS) -> Registry:
    return Registry([spec.make(spec) for spec in specs])
