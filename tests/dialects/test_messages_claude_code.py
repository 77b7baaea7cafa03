"""What Claude Code sends on /v1/messages for models it does not know (e.g. ``--model gpt-4o-mini``), turned
into the chat form the translated lane sends on (shapes observed from Claude Code 2.1.332)."""

from __future__ import annotations

from typing import Any

from webrana_proxy.dialects.messages_request import to_chat
from webrana_proxy.providers.gemini_request import to_gemini


def _body(**extra: Any) -> dict[str, Any]:
    return {"model": "gpt-4o-mini", "max_tokens": 32000, "stream": True,
            "system": [{"type": "text", "text": "You are a Claude agent.", "cache_control": {"type": "ephemeral"}}],
            "messages": [
                {"role": "user", "content": [{"type": "text", "text": "<system-reminder>x</system-reminder>"}]},
                {"role": "system", "content": [{"type": "text", "text": "# Environment\nPlatform: linux"},
                                               {"type": "text", "text": "Model: gpt-4o-mini",
                                                "cache_control": {"type": "ephemeral"}}]},
                {"role": "user", "content": [{"type": "text", "text": "What does note.txt say?"}]}],
            **extra}


def test_system_messages_in_the_conversation_stay_in_place() -> None:
    messages = to_chat(_body(), "gpt-4o-mini")["messages"]
    ephemeral = {"type": "ephemeral"}  # the cache markers stay on their parts (Qwen and OpenRouter read them)
    assert messages == [
        {"role": "system", "content": [{"type": "text", "text": "You are a Claude agent.",
                                        "cache_control": ephemeral}]},
        {"role": "user", "content": "<system-reminder>x</system-reminder>"},
        {"role": "system", "content": [{"type": "text", "text": "# Environment\nPlatform: linux"},
                                       {"type": "text", "text": "\n\nModel: gpt-4o-mini", "cache_control": ephemeral}]},
        {"role": "user", "content": "What does note.txt say?"},
    ]


def test_system_messages_reach_gemini_as_system_instruction() -> None:
    gemini = to_gemini(to_chat(_body(), "gemini-2.5-flash"))
    assert gemini["systemInstruction"] == {"parts": [{"text": "You are a Claude agent."},
                                                     {"text": "# Environment\nPlatform: linux\n\nModel: gpt-4o-mini"}]}
    assert [c["role"] for c in gemini["contents"]] == ["user"]
