"""Model capabilities from the vendored ``capabilities.json``: what a translated request may ask of a model."""

from __future__ import annotations

from typing import Any

import pytest

from webrana_proxy.providers.catalogue import UNKNOWN, Capabilities, load_catalogue


@pytest.mark.parametrize(("provider", "model", "limit", "reasoning"), [
    ("openai", "gpt-4o-mini", 16384, False),
    ("openai", "gpt-4o-2024-05-13", 4096, False),  # the specific snapshot before its family
    ("openai", "gpt-4.1-nano", 32768, False),
    ("openai", "gpt-5-mini", 128000, True),
    ("openai", "gpt-5-chat-latest", 16384, False),
    ("openai", "o4-mini", 100000, True),
    ("anthropic", "claude-sonnet-4-5-20250929", 64000, True),
    ("anthropic", "claude-opus-4-1", 32000, True),
    ("anthropic", "claude-3-5-haiku-latest", 8192, False),
    ("google", "gemini-2.5-flash", 65536, True),
    ("google", "models/gemini-2.0-flash", 8192, False),
])
def test_known_models(provider: str, model: str, limit: int, reasoning: bool) -> None:
    assert load_catalogue().capabilities_of(provider, model) == Capabilities(limit, reasoning)


def test_unknown_models_are_sent_what_was_asked() -> None:
    catalogue = load_catalogue()
    assert catalogue.capabilities_of("openai", "gpt-9-ultra") is UNKNOWN
    assert catalogue.capabilities_of("qwen", "qwen-plus") is UNKNOWN
    chat: dict[str, Any] = {"max_completion_tokens": 10**6, "reasoning_effort": "high"}
    UNKNOWN.fit(chat)
    assert chat == {"max_completion_tokens": 10**6, "reasoning_effort": "high"}


def test_fit_drops_reasoning_and_lowers_output_limits() -> None:
    chat: dict[str, Any] = {"max_tokens": 32000, "max_completion_tokens": 32000, "reasoning_effort": "medium"}
    Capabilities(16384, False).fit(chat)
    assert chat == {"max_tokens": 16384, "max_completion_tokens": 16384}
    chat = {"max_completion_tokens": 1000, "reasoning_effort": "low"}
    Capabilities(16384, True).fit(chat)
    assert chat == {"max_completion_tokens": 1000, "reasoning_effort": "low"}
