"""Token estimates for when usage never came (prices: tests/providers/test_prices.py)."""

from __future__ import annotations

from webrana_proxy.providers import estimate_prompt_tokens, estimate_tokens


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
