"""One event of the chat-chunk stream a provider's translator yields, read once for the dialects' stream writers
(``messages_response.MessagesStream``, ``responses_response.ResponsesStream``). Pure."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from webrana_proxy.providers.base import JSON


@dataclass(frozen=True, slots=True)
class ChatChunk:
    chunk: JSON  # the parsed chunk ({} for the end marker)
    end: bool = False  # ``[DONE]``: the chat stream ended normally
    error: JSON | None = None  # an in-band error, in chat shape (``{"error": {message, type, code}}``)
    pieces: tuple[str | JSON, ...] = ()  # in stream order: generated text (str) and tool-call deltas (dict)
    finish: Any = None  # the chunk's last ``finish_reason``; None when it has none


def read_chunk(data: str) -> ChatChunk | None:
    """An event's ``data`` as a ``ChatChunk``; None when it is not a chat chunk (the writers skip it)."""
    if data == "[DONE]":
        return ChatChunk({}, end=True)
    try:
        chunk: Any = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(chunk, dict):
        return None
    if "error" in chunk and "choices" not in chunk:
        err = chunk["error"] if isinstance(chunk["error"], dict) else {"message": str(chunk["error"])}
        return ChatChunk(chunk, error={"error": err})
    pieces: list[str | JSON] = []
    finish: Any = None
    choices = chunk.get("choices")
    for choice in choices if isinstance(choices, list) else ():
        if not isinstance(choice, dict):
            continue
        delta = choice.get("delta")
        if isinstance(delta, dict):
            text = delta.get("content")
            if isinstance(text, str) and text:
                pieces.append(text)
            calls = delta.get("tool_calls")
            pieces.extend(call for call in (calls if isinstance(calls, list) else ()) if isinstance(call, dict))
        if choice.get("finish_reason") is not None:
            finish = choice["finish_reason"]
    return ChatChunk(chunk, pieces=tuple(pieces), finish=finish)
