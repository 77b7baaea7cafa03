"""Token estimates for when a provider never reported usage (cut-off streams, Gemini embeddings).

About four characters per token for English-like text: good enough to bill a cut-off stream fairly, and
always marked as estimated where it is stored.
"""

from __future__ import annotations

import contextlib
from typing import Any

import orjson

CHARS_PER_TOKEN = 4  # the usual rule of thumb for BPE tokenizers on English and Indonesian text
MESSAGE_OVERHEAD_TOKENS = 4  # role and separators each message costs in chat formats
IMAGE_TOKENS = 765  # what OpenAI charges a 1024x1024 high-detail image; a fair middle for any provider


def estimate_tokens(text_chars: int) -> int:
    """Tokens for ``text_chars`` characters: ceil(chars / 4), so at least 1 when there is any text."""
    if text_chars <= 0:
        return 0
    return (text_chars + CHARS_PER_TOKEN - 1) // CHARS_PER_TOKEN


def _content_chars(content: Any) -> tuple[int, int]:
    """(characters of text, number of images) in an OpenAI message content."""
    if isinstance(content, str):
        return len(content), 0
    chars = images = 0
    if isinstance(content, list):
        for part in content:
            if not isinstance(part, dict):
                continue
            text = part.get("text")
            if isinstance(text, str):
                chars += len(text)
            elif part.get("type") == "image_url":
                images += 1
    return chars, images


def _input_tokens(value: Any) -> int:
    """Embeddings ``input``: a string, strings, token ids, or lists of token ids."""
    if isinstance(value, str):
        return estimate_tokens(len(value))
    if isinstance(value, list):
        total = 0
        for item in value:
            if isinstance(item, str):
                total += estimate_tokens(len(item))
            elif isinstance(item, int):
                total += 1
            elif isinstance(item, list):
                total += len(item)
        return total
    return 0


def estimate_prompt_tokens(body: dict[str, Any]) -> int:
    """Prompt tokens of an OpenAI-shaped chat or embeddings request body."""
    if "messages" not in body:
        return _input_tokens(body.get("input"))
    messages = body.get("messages")
    if not isinstance(messages, list):
        return 0
    chars = images = 0
    count = 0
    for message in messages:
        if not isinstance(message, dict):
            continue
        count += 1
        c, i = _content_chars(message.get("content"))
        chars += c
        images += i
        calls = message.get("tool_calls")
        if isinstance(calls, list):
            for call in calls:
                fn = call.get("function") if isinstance(call, dict) else None
                if isinstance(fn, dict):
                    chars += len(str(fn.get("name", ""))) + len(str(fn.get("arguments", "")))
    tools = body.get("tools")
    if isinstance(tools, list) and tools:
        with contextlib.suppress(TypeError):
            chars += len(orjson.dumps(tools))
    return estimate_tokens(chars) + count * MESSAGE_OVERHEAD_TOKENS + images * IMAGE_TOKENS
