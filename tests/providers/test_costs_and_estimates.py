"""Cost in whole rupiah from the one price table; token estimates for when usage never came."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from webrana_proxy.providers import Usage, cost_idr, estimate_prompt_tokens, estimate_tokens
from webrana_proxy.providers.catalogue import CATALOGUE, DEFAULT_MODEL, price_of


def test_cost_of_a_million_tokens_each_way() -> None:
    usage = Usage(prompt_tokens=1_000_000, completion_tokens=1_000_000, total_tokens=2_000_000)
    # gpt-4o-mini: 0.15 + 0.60 = 0.75 USD -> 12,375 IDR at 16,500
    assert cost_idr("openai", "gpt-4o-mini", usage, 16_500) == 12_375
    # claude-sonnet-4-5: 3 + 15 = 18 USD
    assert cost_idr("anthropic", "claude-sonnet-4-5", usage, 16_000) == 288_000


def test_rounds_half_up_to_whole_rupiah() -> None:
    # 100 prompt tokens of gpt-4o at 2.50/M = 0.00025 USD; x 2000 IDR = 0.5 IDR -> 1
    assert cost_idr("openai", "gpt-4o", Usage(prompt_tokens=100), 2000) == 1
    # x 1999 = 0.49975 -> 0
    assert cost_idr("openai", "gpt-4o", Usage(prompt_tokens=100), 1999) == 0


def test_dated_snapshot_priced_as_its_family() -> None:
    usage = Usage(prompt_tokens=1_000_000)
    assert cost_idr("openai", "gpt-4o-mini-2024-07-18", usage, 10_000) == 1_500
    assert cost_idr("anthropic", "claude-sonnet-4-5-20250929", usage, 10_000) == 30_000
    assert price_of("openai", "gpt-4.1-mini-2025-04-14").id == "gpt-4.1-mini"  # type: ignore[union-attr]


def test_unknown_model_priced_as_the_provider_default() -> None:
    usage = Usage(prompt_tokens=1_000_000, completion_tokens=1_000_000)
    for provider, default in DEFAULT_MODEL.items():
        unknown = cost_idr(provider, "brand-new-model-x", usage, 16_500)
        assert unknown == cost_idr(provider, default, usage, 16_500)
        assert unknown > 0


def test_unknown_provider_costs_nothing() -> None:
    assert cost_idr("nope", "x", Usage(prompt_tokens=10**6), 16_500) == 0


def test_every_default_model_is_in_its_catalogue() -> None:
    for provider, default in DEFAULT_MODEL.items():
        assert default in {m.id for m in CATALOGUE[provider]}


@given(st.sampled_from(sorted(CATALOGUE)), st.integers(0, 10**8), st.integers(0, 10**8), st.integers(1, 30_000))
def test_cost_is_an_integer_that_never_decreases_with_more_tokens(
    provider: str, prompt: int, completion: int, rate: int
) -> None:
    model = DEFAULT_MODEL[provider]
    base = cost_idr(provider, model, Usage(prompt_tokens=prompt, completion_tokens=completion), rate)
    more = cost_idr(provider, model, Usage(prompt_tokens=prompt + 1000, completion_tokens=completion), rate)
    assert isinstance(base, int) and 0 <= base <= more


def test_estimate_tokens() -> None:
    assert estimate_tokens(0) == 0
    assert estimate_tokens(1) == 1
    assert estimate_tokens(4) == 1
    assert estimate_tokens(5) == 2
    assert estimate_tokens(400) == 100


def test_estimate_prompt_tokens_for_chat_and_embeddings() -> None:
    chat = {
        "model": "x",
        "messages": [
            {"role": "system", "content": "a" * 40},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "b" * 40},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,AA"}},
                ],
            },
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}],
            },
        ],
    }
    assert estimate_prompt_tokens(chat) == estimate_tokens(83) + 3 * 4 + 765
    assert estimate_prompt_tokens({"input": "abcdefgh"}) == 2
    assert estimate_prompt_tokens({"input": ["abcd", "abcdefgh"]}) == 3
    assert estimate_prompt_tokens({"input": [1, 2, 3]}) == 3
    assert estimate_prompt_tokens({"input": [[1, 2], [3]]}) == 3
    assert estimate_prompt_tokens({"messages": "junk"}) == 0
