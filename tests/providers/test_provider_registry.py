"""Model names route to the right provider; only the registry names providers."""

from __future__ import annotations

from datetime import date

import pytest

from webrana_proxy.errors import BadRequest, NotFound
from webrana_proxy.providers import build_registry
from webrana_proxy.providers.catalogue import load_catalogue


@pytest.mark.parametrize(
    ("model", "provider"),
    [
        ("gpt-4o-mini", "openai"),
        ("gpt-5", "openai"),
        ("chatgpt-4o-latest", "openai"),
        ("o1", "openai"),
        ("o1-mini", "openai"),
        ("o3-mini", "openai"),
        ("o4-mini", "openai"),
        ("text-embedding-3-small", "openai"),
        ("ft:gpt-4o-mini:acme::abc123", "openai"),
        ("claude-sonnet-4-5", "anthropic"),
        ("claude-3-5-haiku-latest", "anthropic"),
        ("gemini-2.5-flash", "google"),
        ("gemini-embedding-001", "google"),
        ("text-embedding-004", "google"),
        ("qwen-plus", "qwen"),
        ("qwen3-max", "qwen"),
        ("qwq-plus", "qwen"),
        ("text-embedding-v3", "qwen"),
        ("text-embedding-v4", "qwen"),
        ("deepseek-chat", "deepseek"),
        ("deepseek-v4-pro", "deepseek"),
        ("mistral-large-latest", "mistral"),
        ("codestral-latest", "mistral"),
        ("magistral-medium-latest", "mistral"),
        ("mistral-embed", "mistral"),
        ("grok-4.7", "xai"),
        ("grok-code-fast-1", "xai"),
    ],
)
def test_model_name_picks_the_provider(model: str, provider: str) -> None:
    route = build_registry().route(model)
    assert route.provider.id == provider
    assert route.model == model
    assert route.requested == model


@pytest.mark.parametrize(
    ("model", "provider", "upstream"),
    [
        ("anthropic/claude-sonnet-4-5", "anthropic", "claude-sonnet-4-5"),
        ("openai/gpt-4o", "openai", "gpt-4o"),
        ("google/gemini-2.5-pro", "google", "gemini-2.5-pro"),
        ("gemini/gemini-2.5-pro", "google", "gemini-2.5-pro"),
        ("qwen/qwen-max", "qwen", "qwen-max"),
        ("openai/my-custom-deployment", "openai", "my-custom-deployment"),
        ("OpenAI/gpt-4o", "openai", "gpt-4o"),
        ("openrouter/anthropic/claude-sonnet-5.5", "openrouter", "anthropic/claude-sonnet-5.5"),
        ("groq/llama-3.3-70b-versatile", "groq", "llama-3.3-70b-versatile"),
        ("groq/openai/gpt-oss-120b", "groq", "openai/gpt-oss-120b"),
        ("xai/grok-4.7", "xai", "grok-4.7"),
        ("grok/grok-4.7", "xai", "grok-4.7"),
        ("mistral/open-mistral-nemo", "mistral", "open-mistral-nemo"),
        ("deepseek/deepseek-chat", "deepseek", "deepseek-chat"),
    ],
)
def test_explicit_provider_prefix_is_stripped(model: str, provider: str, upstream: str) -> None:
    route = build_registry().route(model)
    assert (route.provider.id, route.model, route.requested) == (provider, upstream, model)


@pytest.mark.parametrize("model", ["llama-3-70b", "gsk-llama", "", "   ", "acme/gpt-4o", "anthropic/", "groq/",
                                   "openrouter/"])
def test_unknown_model_is_a_400_naming_the_accepted_forms(model: str) -> None:
    with pytest.raises(BadRequest) as caught:
        build_registry().route(model)
    assert caught.value.status == 400
    assert caught.value.param == "model"
    if model.strip() and not model.endswith("/"):
        assert "claude-*" in caught.value.message and "provider/model" in caught.value.message


def test_non_string_model_is_a_400() -> None:
    with pytest.raises(BadRequest):
        build_registry().route(42)


def test_get_ids_and_all() -> None:
    registry = build_registry()
    assert registry.ids() == ("openai", "anthropic", "google", "qwen", "deepseek", "openrouter", "mistral", "groq",
                              "xai")
    assert [p.id for p in registry.all()] == list(registry.ids())
    assert registry.get("qwen").display_name == "Qwen"
    assert registry.find("nope") is None
    assert registry.find("gemini") is None  # an alias in "gemini/<model>", never a stored provider id
    with pytest.raises(NotFound):
        registry.get("nope")


def test_every_current_catalogue_model_routes_to_its_own_provider() -> None:
    registry = build_registry()
    catalogue = load_catalogue()
    for provider in registry.all():
        current = catalogue.current(provider.id, date(2026, 12, 6))
        assert current, provider.id
        for info in current:
            assert registry.route(registry.public_name(provider, info.id)).provider is provider, info.id


@pytest.mark.parametrize(
    ("provider", "key", "ok"),
    [
        ("openai", "sk-proj-" + "a" * 40, True),
        ("openai", "sk-" + "a" * 40, True),
        ("openai", "sk-ant-api03-" + "a" * 40, False),
        ("openai", "sk-short", False),
        ("openai", "AIza" + "a" * 35, False),
        ("anthropic", "sk-ant-api03-" + "a" * 40, True),
        ("anthropic", "sk-" + "a" * 40, False),
        ("google", "AIzaSyD-" + "a" * 31, True),
        ("google", "AIza" + "a" * 10, False),
        ("qwen", "sk-" + "0123456789abcdef" * 2, True),
        ("qwen", "sk-ant-" + "a" * 30, False),
    ],
)
def test_key_format_check(provider: str, key: str, ok: bool) -> None:
    registry = build_registry()
    assert registry.get(provider).accepts_key(key) is ok
    assert key.startswith(registry.get(provider).key_prefixes) or not ok


def test_embeddings_support_flags() -> None:
    registry = build_registry()
    assert {p.id: p.supports_embeddings for p in registry.all()} == {
        "openai": True,
        "anthropic": False,
        "google": True,
        "qwen": True,
        "deepseek": False,
        "openrouter": False,
        "mistral": True,
        "groq": False,
        "xai": False,
    }
