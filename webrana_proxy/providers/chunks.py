"""OpenAI-shaped output (completions, stream chunks, in-band errors) for translated providers."""

from __future__ import annotations

from typing import Any

import orjson

from webrana_proxy.providers.base import JSON, Usage

DONE = b"data: [DONE]\n\n"


def sse(payload: JSON) -> bytes:
    """One SSE event carrying ``payload`` as JSON."""
    return b"data: " + orjson.dumps(payload) + b"\n\n"


def usage_json(usage: Usage, reasoning_tokens: int | None = None) -> JSON:
    out: JSON = {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
        "prompt_tokens_details": {"cached_tokens": usage.cached_tokens},
    }
    if reasoning_tokens is not None:
        out["completion_tokens_details"] = {"reasoning_tokens": reasoning_tokens}
    return out


def error_json(message: str, error_type: str = "api_error", code: str | None = None) -> JSON:
    return {"error": {"message": message, "type": error_type, "code": code, "param": None}}


class ChunkWriter:
    """Writes ``chat.completion.chunk`` events with one id, created time and model for the whole stream."""

    __slots__ = ("created", "id", "model")

    def __init__(self, chunk_id: str, created: int, model: str) -> None:
        self.id = chunk_id
        self.created = created
        self.model = model

    def chunk(self, delta: JSON, finish_reason: str | None = None, index: int = 0) -> bytes:
        return sse({
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [{"index": index, "delta": delta, "logprobs": None, "finish_reason": finish_reason}],
        })

    def usage_chunk(self, usage: Usage, reasoning_tokens: int | None = None) -> bytes:
        return sse({
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [],
            "usage": usage_json(usage, reasoning_tokens),
        })


def completion(chat_id: str, created: int, model: str, choices: list[JSON], usage: Usage | None,
               reasoning_tokens: int | None = None) -> bytes:
    body: dict[str, Any] = {
        "id": chat_id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": choices,
    }
    if usage is not None:
        body["usage"] = usage_json(usage, reasoning_tokens)
    return orjson.dumps(body)
