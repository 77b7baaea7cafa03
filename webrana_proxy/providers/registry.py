"""The one place that names providers: which exist, and which model goes to which.

Core code asks ``registry.route(model)`` and talks to the ``Provider`` it gets back; it never compares
provider ids itself. Adding a provider is one module and one line in ``build_registry``.
"""

from __future__ import annotations

from collections.abc import Iterable

from webrana_proxy.errors import BadRequest, NotFound
from webrana_proxy.providers.anthropic import AnthropicProvider
from webrana_proxy.providers.base import Provider, Route
from webrana_proxy.providers.gemini import GeminiProvider
from webrana_proxy.providers.openai import OpenAIProvider
from webrana_proxy.providers.qwen import QwenProvider

MAX_MODEL_LENGTH = 200  # the longest real model ids are well under 100 characters

# Other spellings of a provider id accepted in the explicit "provider/model" form.
ALIASES = {"gemini": "google", "claude": "anthropic", "dashscope": "qwen"}

ACCEPTED_FORMS = (
    "gpt-*, chatgpt-*, o1*, o3*, o4*, text-embedding-* (OpenAI); claude-* (Anthropic); "
    "gemini-*, text-embedding-004, gemini-embedding-* (Google); qwen*, text-embedding-v* (Qwen); "
    "or provider/model with provider one of: "
)


class Registry:
    """The providers this process serves, and the model -> provider rule."""

    __slots__ = ("_by_id", "_order")

    def __init__(self, providers: Iterable[Provider]) -> None:
        self._order: tuple[Provider, ...] = tuple(providers)
        self._by_id: dict[str, Provider] = {p.id: p for p in self._order}

    def route(self, model: object) -> Route:
        """The provider and upstream model name for what the client asked; ``BadRequest`` naming the
        accepted forms when nothing serves it."""
        if not isinstance(model, str) or not model.strip():
            raise BadRequest("'model' is required: " + self._forms(), param="model")
        if not model.isprintable() or len(model) > MAX_MODEL_LENGTH:
            raise BadRequest(f"'model' must be printable text of at most {MAX_MODEL_LENGTH} characters",
                             param="model", code="invalid_model")
        prefix, sep, rest = model.partition("/")
        if sep:
            provider = self._by_id.get(ALIASES.get(prefix.lower(), prefix.lower()))
            if provider is not None:
                if not rest:
                    raise BadRequest(f"model '{model}' names no model after the provider", param="model")
                return Route(provider=provider, model=rest, requested=model)
        for provider in self._order:
            if provider.owns_model(model):
                return Route(provider=provider, model=model, requested=model)
        raise BadRequest(f"unknown model '{model}'. Accepted: " + self._forms(), param="model",
                         code="model_not_found")

    def get(self, provider_id: str) -> Provider:
        provider = self._by_id.get(provider_id)
        if provider is None:
            raise NotFound(f"unknown provider '{provider_id}'; known: {', '.join(self.ids())}",
                           param="provider")
        return provider

    def find(self, provider_id: str) -> Provider | None:
        return self._by_id.get(provider_id)

    def all(self) -> tuple[Provider, ...]:
        return self._order

    def ids(self) -> tuple[str, ...]:
        return tuple(p.id for p in self._order)

    def _forms(self) -> str:
        return ACCEPTED_FORMS + ", ".join(self.ids()) + " (e.g. anthropic/claude-sonnet-5-5)"


def build_registry() -> Registry:
    # Order matters only for overlapping prefixes: OpenAI's text-embedding-* excludes Gemini's and Qwen's.
    return Registry([OpenAIProvider(), AnthropicProvider(), GeminiProvider(), QwenProvider()])
