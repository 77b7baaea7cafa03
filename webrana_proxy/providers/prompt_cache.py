"""Prompt-cache markers in the chat form: ``cache_control`` on content parts (and on tools), as Anthropic and
Qwen read them. Providers that cache on their own (OpenAI, DeepSeek, Mistral, Groq, xAI) refuse unknown fields in
a content part, so the markers are taken out before the request goes to them."""

from __future__ import annotations

from typing import Any

from webrana_proxy.errors import BadRequest
from webrana_proxy.providers.base import JSON

MARKER = "cache_control"


def marker_of(item: Any, param: str) -> JSON | None:
    """The ``cache_control`` of a part or tool (None when it has none); a 400 naming it when it is not an object."""
    if not isinstance(item, dict):
        return None
    marker = item.get(MARKER)
    if marker is None:
        return None
    if not isinstance(marker, dict) or not isinstance(marker.get("type"), str):
        raise BadRequest(f"{param}.{MARKER} must be an object with a 'type' (e.g. {{\"type\": \"ephemeral\"}})",
                         param=f"{param}.{MARKER}")
    return marker


def _unmarked_parts(content: Any) -> list[Any] | None:
    """The content parts without markers (None: no part had one)."""
    if not isinstance(content, list) or not any(isinstance(p, dict) and MARKER in p for p in content):
        return None
    return [{k: v for k, v in p.items() if k != MARKER} if isinstance(p, dict) and MARKER in p else p
            for p in content]


def without_markers(body: JSON) -> JSON:
    """``body`` without any ``cache_control`` on message parts or tools (``body`` itself when there was none;
    never mutated). One pass over the messages; string contents are skipped at once."""
    out = body
    messages = body.get("messages")
    if isinstance(messages, list):
        fixed: list[Any] | None = None
        for i, message in enumerate(messages):
            if not isinstance(message, dict):
                continue
            parts = _unmarked_parts(message.get("content"))
            if parts is not None or MARKER in message:
                if fixed is None:
                    fixed = list(messages)
                fixed[i] = {k: v for k, v in message.items() if k != MARKER}
                if parts is not None:
                    fixed[i]["content"] = parts
        if fixed is not None:
            out = {**out, "messages": fixed}
    tools = body.get("tools")
    if isinstance(tools, list) and any(isinstance(t, dict) and MARKER in t for t in tools):
        out = {**out, "tools": [{k: v for k, v in t.items() if k != MARKER} if isinstance(t, dict) else t
                                for t in tools]}
    return out
