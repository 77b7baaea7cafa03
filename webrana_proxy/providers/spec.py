"""What a provider is, as data: one frozen ``ProviderSpec`` per provider, listed once in ``registry.SPECS``.

Everything that used to repeat a provider list reads it from the specs: the settings (``base_url_env`` and
``default_base_url``), the model -> provider rule and the "accepted forms" message (``model_prefixes``,
``aliases``), the key format check, the OpenAPI provider enum, ``/api/meta`` (which the console reads for its
provider list) and the test fakes. Adding a provider is its module (a spec and, when its wire format differs,
a small class) and one line in ``registry.SPECS``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from webrana_proxy.providers.keyformat import KeyFormat

if TYPE_CHECKING:
    from webrana_proxy.providers.base import Provider


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What a provider's API offers beyond chat completions (shown in docs and read by tests)."""

    embeddings: bool = False
    tools: bool = True
    vision: bool = True
    reasoning_text: bool = False  # answers carry ``reasoning_content`` (DeepSeek, Qwen, xAI's mini models)
    reports_cost: bool = False  # usage carries the call's cost, preferred over our price data (OpenRouter)


@dataclass(frozen=True, slots=True)
class ProviderSpec:
    id: str  # stored in api_keys.provider and proxy_requests.provider: never change an existing one
    display_name: str  # shown in the console and in error messages
    base_url_env: str  # the setting that points it elsewhere (a proxy, a region, the test fakes)
    default_base_url: str
    key_format: KeyFormat
    make: Callable[[ProviderSpec], Provider] = field(repr=False, compare=False)  # the translators
    model_prefixes: tuple[str, ...] = ()  # bare model names it serves; empty: only "<id>/<model>"
    excluded_prefixes: tuple[str, ...] = ()  # names starting with a prefix above that belong to others
    aliases: tuple[str, ...] = ()  # other spellings of the id accepted in "<alias>/<model>"
    explicit_form: str = ""  # how the "<id>/..." form reads in help texts, e.g. "openrouter/<vendor>/<model>"
    capabilities: Capabilities = field(default_factory=Capabilities)
    docs_url: str = ""  # the provider's API reference (docs/providers.md has the wire facts)

    def owns_model(self, model: str) -> bool:
        return (bool(self.model_prefixes) and model.startswith(self.model_prefixes)
                and not (self.excluded_prefixes and model.startswith(self.excluded_prefixes)))

    def forms(self) -> str:
        """The model names it takes, for the "unknown model" message."""
        shown = [f"{p}*" for p in self.model_prefixes] or [self.explicit_form or f"{self.id}/<model>"]
        return f"{', '.join(shown)} ({self.display_name})"
