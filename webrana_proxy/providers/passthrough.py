"""Relaying an OpenAI-shaped stream as it is: bytes in, the same bytes out, parsed only where usage is.

The hot path of the gateway. Each ``feed`` finds the complete events in the new bytes (a ``bytes.rfind``)
and, unless they may hold the usage chunk, an error or the end marker (three ``in`` scans, all in C),
forwards them in one piece without decoding. Only those few events are parsed. The usage chunk the
gateway asked for on the client's behalf is dropped when the client did not ask for it.
"""

from __future__ import annotations

from typing import Any

import orjson

from webrana_proxy.providers.base import JSON, Usage
from webrana_proxy.providers.chunks import error_json, sse
from webrana_proxy.sse import EventSplitter, SSEParser

_MARKERS = (b'"usage":{', b'"usage": {', b'"error"', b"[DONE]")


def usage_from(value: Any) -> Usage | None:
    """An OpenAI ``usage`` object as ``Usage`` (None when absent or malformed)."""
    if not isinstance(value, dict):
        return None
    prompt = value.get("prompt_tokens")
    completion = value.get("completion_tokens")
    total = value.get("total_tokens")
    details = value.get("prompt_tokens_details")
    cached = details.get("cached_tokens") if isinstance(details, dict) else None
    prompt = prompt if isinstance(prompt, int) else 0
    completion = completion if isinstance(completion, int) else 0
    return Usage(
        prompt_tokens=prompt,
        completion_tokens=completion,
        total_tokens=total if isinstance(total, int) else prompt + completion,
        cached_tokens=cached if isinstance(cached, int) else 0,
    )


def _delta_text(chunk: JSON) -> tuple[int, int]:
    """(characters of generated text and tool arguments, characters of the longest single piece)."""
    choices = chunk.get("choices")
    total = longest = 0
    if not isinstance(choices, list):
        return 0, 0
    for choice in choices:
        delta = choice.get("delta") if isinstance(choice, dict) else None
        if not isinstance(delta, dict):
            continue
        pieces: list[Any] = [delta.get("content"), delta.get("reasoning_content")]
        calls = delta.get("tool_calls")
        if isinstance(calls, list):
            for call in calls:
                fn = call.get("function") if isinstance(call, dict) else None
                if isinstance(fn, dict):
                    pieces.append(fn.get("arguments"))
        for piece in pieces:
            if isinstance(piece, str):
                total += len(piece)
                longest = max(longest, len(piece))
    return total, longest


class PassthroughStream:
    """``StreamTranslator`` for OpenAI-shaped upstreams (OpenAI, Qwen)."""

    __slots__ = ("_envelope", "_include_usage", "_splitter", "completion_chars", "done", "error",
                 "upstream_id", "usage")

    def __init__(self, include_usage: bool) -> None:
        self._include_usage = include_usage
        self._splitter = EventSplitter()
        # Bytes of one event minus its text: learnt from the first chunk with text, then text is
        # estimated as (bytes - events * envelope) without parsing.
        self._envelope: int | None = None
        self.usage: Usage | None = None
        self.completion_chars = 0
        self.error: JSON | None = None
        self.upstream_id: str | None = None
        self.done = False

    def feed(self, data: bytes) -> list[bytes]:
        region, count = self._splitter.feed_joined(data)
        if not count:
            return []
        envelope = self._envelope
        if envelope is not None and not any(m in region for m in _MARKERS):
            self.completion_chars += max(0, len(region) - count * envelope)
            return [region]
        return self._slow(region)

    def finish(self) -> list[bytes]:
        out: list[bytes] = []
        rest = self._splitter.rest()
        if rest:
            if self.done or self.error is not None:
                out.append(rest)  # trailing bytes after the end: forwarded as they came
            else:
                out.extend(self._slow(rest + b"\n\n"))
        if not self.done and self.error is None:
            self.error = error_json("the upstream stream ended before [DONE]", "api_error",
                                    "upstream_stream_truncated")
            out.append(sse(self.error))
        return out

    def _slow(self, region: bytes) -> list[bytes]:
        splitter = EventSplitter()
        events = splitter.feed(region)
        if splitter.rest():
            events.append(splitter.rest())
        out: list[bytes] = []
        for raw in events:
            if self._keep(raw):
                out.append(raw)
        return out

    def _keep(self, raw: bytes) -> bool:
        """Record what ``raw`` (one whole event) tells us; False when it must not reach the client."""
        parser = SSEParser()
        parsed = parser.feed(raw) + parser.close()
        if not parsed:
            return True  # comment or keep-alive
        data = parsed[-1].data
        if data == "[DONE]":
            self.done = True
            return True
        try:
            chunk = orjson.loads(data)
        except orjson.JSONDecodeError:
            return True
        if not isinstance(chunk, dict):
            return True
        if self.upstream_id is None and isinstance(chunk.get("id"), str):
            self.upstream_id = chunk["id"]
        if "error" in chunk and "choices" not in chunk:
            err = chunk["error"]
            self.error = {"error": err} if isinstance(err, dict) else error_json(str(err))
            return True
        chars, longest = _delta_text(chunk)
        self.completion_chars += chars
        if self._envelope is None and longest:
            self._envelope = max(0, len(raw) - chars)
        usage = usage_from(chunk.get("usage"))
        if usage is not None:
            self.usage = usage
            if not self._include_usage and not chunk.get("choices"):
                return False
        return True
