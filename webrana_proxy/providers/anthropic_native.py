"""Anthropic Messages in, Anthropic Messages out: the native lane of ``/v1/messages``.

The client's body goes upstream as it came (every field, also ones Webrana does not know: ``thinking``,
``context_management``, ``cache_control`` on blocks); only the model id may change (``anthropic/claude-...``
becomes ``claude-...``), and only then is the body re-encoded. ``anthropic-version`` and ``anthropic-beta``
are passed on; nothing else of the client's headers is (never its ``Accept-Encoding``: the pool asks for
identity bytes). Answers come back byte for byte; usage is read from ``message_start`` and ``message_delta``,
the only events parsed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import orjson

from webrana_proxy.providers.anthropic_response import thinking_of, usage_of, with_output
from webrana_proxy.providers.base import JSON, ChatResult, UpstreamRequest, Usage
from webrana_proxy.sse import EventRegions, SSEParser, find_named, walk_named

API_VERSION = "2023-06-01"  # sent when the client names none: the only stable Messages API version
PASSED_HEADERS = ("anthropic-version", "anthropic-beta")  # the client's headers that mean something upstream
# Bytes of one text_delta event around its text (``event: content_block_delta`` ... ``"text":"`` ... ``"}}``):
# the text of events relayed unparsed is estimated as their size minus this (until the stream's own envelope
# is learnt), for when usage never comes.
TEXT_DELTA_ENVELOPE = 115
# The event lines of the events the relay reads; every other event is forwarded without being looked at.
_NAMES = re.compile(rb"event: ?(message_start|message_delta|message_stop|error)\n")
_NONE: frozenset[bytes] = frozenset()


def _body(raw: bytes, body: JSON, model: str) -> bytes:
    return raw if body.get("model") == model else orjson.dumps({**body, "model": model})


def _headers(api_key: str, client_headers: Mapping[str, str]) -> dict[str, str]:
    out = {"x-api-key": api_key, "anthropic-version": API_VERSION, "Content-Type": "application/json"}
    for name in PASSED_HEADERS:
        value = client_headers.get(name)
        if value:
            out[name] = value
    return out


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _delta_chars(data: bytes | str) -> int:
    try:
        payload: Any = orjson.loads(data)
    except orjson.JSONDecodeError:
        return 0
    delta = payload.get("delta") if isinstance(payload, dict) else None
    if not isinstance(delta, dict):
        return 0
    return sum(len(v) for k, v in delta.items() if k in ("text", "partial_json", "thinking") and isinstance(v, str))


class AnthropicMessages:
    """``MessagesNative`` for Anthropic."""

    __slots__ = ()

    def messages_request(self, raw: bytes, body: JSON, model: str, api_key: str, base_url: str,
                         client_headers: Mapping[str, str]) -> UpstreamRequest:
        return UpstreamRequest("POST", f"{base_url.rstrip('/')}/v1/messages", _headers(api_key, client_headers),
                               _body(raw, body, model))

    def count_tokens_request(self, raw: bytes, body: JSON, model: str, api_key: str, base_url: str,
                             client_headers: Mapping[str, str]) -> UpstreamRequest:
        return UpstreamRequest("POST", f"{base_url.rstrip('/')}/v1/messages/count_tokens",
                               _headers(api_key, client_headers), _body(raw, body, model))

    def messages_response(self, raw: bytes) -> ChatResult:
        try:
            parsed: Any = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return ChatResult(body=raw, usage=None)
        if not isinstance(parsed, dict):
            return ChatResult(body=raw, usage=None)
        upstream_id = parsed.get("id")
        usage = usage_of(parsed.get("usage"))
        if usage is None and isinstance(parsed.get("input_tokens"), int):  # a count_tokens answer
            usage = Usage(prompt_tokens=parsed["input_tokens"], total_tokens=parsed["input_tokens"])
        return ChatResult(body=raw, usage=usage, upstream_id=upstream_id if isinstance(upstream_id, str) else None)

    def messages_stream(self) -> NativeMessagesStream:
        return NativeMessagesStream()


class NativeMessagesStream:
    """``StreamTranslator`` that relays an Anthropic stream unchanged and reads only its usage.

    ``usage`` stays None until ``message_delta`` brings the output count (a stream cut before it is billed as
    an estimate, marked so); ``done`` at ``message_stop``; ``error`` at an ``error`` event (forwarded as it is).

    Like the chat passthrough, each read's whole events go out as one region, unparsed: a region without a
    ``message_*`` or ``error`` event line (found by ``in`` scans, in C) is not looked at beyond its size; in one
    that has them, one regex scan finds those few events and only they are decoded. ``ping`` and
    ``content_block_*`` are never parsed; their text is estimated from their size (for a stream that ends
    without usage).
    """

    __slots__ = ("_envelope", "_input", "_regions", "completion_chars", "done", "error", "upstream_id", "usage")

    def __init__(self) -> None:
        self._regions = EventRegions()
        # Bytes of one delta event around its text: learnt from the first delta (its data decoded once); after
        # that a region's text is estimated as (bytes - events * envelope) without reading anything.
        self._envelope: int | None = None
        self._input: Usage | None = None
        self.usage: Usage | None = None
        self.completion_chars = 0
        self.error: JSON | None = None
        self.upstream_id: str | None = None
        self.done = False

    def feed(self, data: bytes) -> list[bytes]:
        region = self._regions.feed(data)
        if not region:
            return []
        if b"\r" in region:
            self._read_general(region)
        elif (b"event: message_" in region or b"event: error" in region or b"event:message_" in region
              or b"event:error" in region):
            self._read(region)
        elif (envelope := self._envelope) is None:
            self._estimate(region)
        else:
            size = len(region)
            # One event per read is the norm: count events only when the region is clearly several.
            chars = size - (region.count(b"\n\n") if size > 2 * envelope else 1) * envelope
            if chars > 0:
                self.completion_chars += chars
        return [region]

    def _read(self, region: bytes) -> None:
        """A region holding some of the events the relay reads: those, and only those, are decoded."""
        found = find_named(region, _NAMES)
        if found is None:
            self._read_general(region)
            return
        for name, _, data, end in found:
            self._event(name, region[data:end])
        if self.usage is None and self.error is None:  # its text counts only for a stream that ends without usage
            self._estimate(region)

    def _estimate(self, region: bytes) -> None:
        """Add the text of the region's deltas, estimated from their size (the envelope learnt on the first)."""
        walked = walk_named(region, _NONE, b"content_block_delta")
        if walked is None:  # not the plain form: every event counts as a delta
            chars = len(region) - region.count(b"\n\n") * (self._envelope or TEXT_DELTA_ENVELOPE)
        else:
            envelope = self._envelope
            if envelope is None and walked.first_delta is not None:
                _, start, data, end = walked.first_delta
                envelope = self._envelope = max(0, end + 2 - start - _delta_chars(region[data:end]))
            chars = walked.delta_bytes - walked.deltas * (TEXT_DELTA_ENVELOPE if envelope is None else envelope)
        if chars > 0:
            self.completion_chars += chars

    def _read_general(self, raw: bytes) -> None:
        """Any other form (\\r line ends, several data lines, comments; never seen from Anthropic), and the tail
        at the end: read with the full parser, correct rather than fast."""
        parser = SSEParser()
        for event in parser.feed(raw) + parser.close():
            if event.event == "content_block_delta":
                self.completion_chars += _delta_chars(event.data)
            else:
                self._event(event.event.encode(), event.data.encode())

    def _event(self, name: bytes, data: bytes) -> None:
        if name == b"message_stop":
            self.done = True
            return
        if name not in (b"message_start", b"message_delta", b"error"):
            return
        try:
            payload: Any = orjson.loads(data)
        except orjson.JSONDecodeError:
            payload = None
        if not isinstance(payload, dict):
            return
        if name == b"message_start":
            message = payload.get("message")
            if isinstance(message, dict):
                if isinstance(message.get("id"), str):
                    self.upstream_id = message["id"]
                self._input = usage_of(message.get("usage"))
        elif name == b"message_delta":
            raw_usage = payload.get("usage")
            if isinstance(raw_usage, dict):
                if "input_tokens" in raw_usage or "cache_read_input_tokens" in raw_usage:
                    fresh = usage_of(raw_usage)
                    if fresh is not None and fresh.prompt_tokens:
                        self._input = fresh
                self.usage = with_output(self._input, _int(raw_usage.get("output_tokens")), thinking_of(raw_usage))
        else:
            err = payload.get("error")
            err = err if isinstance(err, dict) else {}
            self.error = {"error": {"message": str(err.get("message") or "Anthropic stream error"),
                                   "type": str(err.get("type") or "api_error"),
                                   "code": str(err.get("type") or "upstream_stream_error"), "param": None}}

    def finish(self) -> list[bytes]:
        out: list[bytes] = []
        rest = self._regions.rest()
        if rest:  # a last event without its blank line still counts; cut-off JSON is ignored
            self._read_general(rest)
            out.append(rest)
        if not self.done and self.error is None:
            self.error = {"error": {"message": "the Anthropic stream ended before message_stop",
                                    "type": "api_error", "code": "upstream_stream_truncated", "param": None}}
            out.append(b"event: error\ndata: " + orjson.dumps(
                {"type": "error", "error": {"type": "api_error", "message": self.error["error"]["message"]}})
                + b"\n\n")
        return out
