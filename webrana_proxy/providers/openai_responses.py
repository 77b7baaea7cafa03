"""OpenAI Responses in, OpenAI Responses out: the native lane of ``/v1/responses``.

The client's body goes to OpenAI's ``/v1/responses`` as it came (``store``, ``include``, ``reasoning``, built-in
tools, ``previous_response_id``... every field); only the model id may change, and only then is the body
re-encoded. None of the client's headers is passed on (never its ``Accept-Encoding``: the pool asks for
identity bytes). Answers come back byte for byte. Usage is read from the final event (``response.completed``,
``.incomplete`` or ``.failed``) by locating the ``usage`` object in its bytes: the final event repeats the whole
response (every output item, the instructions, every tool), which is never decoded. The response id is read the
same way from ``response.created``, so the gateway can remember which key created a stored response.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import orjson

from webrana_proxy.providers.base import JSON, ChatResult, UpstreamRequest, Usage
from webrana_proxy.sse import EventRegions, SSEParser, Walked, find_named, walk_named

# Bytes of one output_text.delta event around its text (event line, type, sequence_number, item_id, indexes,
# logprobs, obfuscation): the text of events relayed unparsed is estimated as their size minus this until the
# stream's own envelope is learnt from its first delta.
TEXT_DELTA_ENVELOPE = 200
# The events the relay reads; every other event goes through without being looked at. Inside JSON strings a
# newline is escaped, so an event line (ending in its newline) is never text.
_FINAL = (b"response.completed", b"response.incomplete", b"response.failed")
_NAME_SET = frozenset((b"response.created", *_FINAL, b"error"))
_NONE: frozenset[bytes] = frozenset()
_NAMES = re.compile(rb"event: ?(response\.created|response\.completed|response\.incomplete|response\.failed|error)\n")
# A region larger than this is walked line by line (memchr) instead of scanned: a final response object.
_LARGE = 16_384
_USAGE_KEY = re.compile(rb'"usage"\s*:\s*')
# A JSON object nested at most two deep (a usage object: its details are objects of numbers), strings skipped
# whole; one match (possessive, so never backtracking) instead of a byte-by-byte walk. Deeper objects fall back
# to ``_object_end``.
_STRING = rb'"(?:[^"\\]++|\\.)*+"'
_SHALLOW_OBJECT = re.compile(rb'\{(?:[^{}"]++|' + _STRING + rb'|\{(?:[^{}"]++|' + _STRING + rb')*+\})*+\}', re.DOTALL)
_RESPONSE_ID = re.compile(rb'"id"\s*:\s*"(resp_[A-Za-z0-9_\-]{1,200})"')
_SEQUENCE = re.compile(rb'"sequence_number"\s*:\s*(\d{1,18})')

def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def usage_of(value: Any) -> Usage | None:
    """A Responses ``usage`` object (``input_tokens`` includes the cached ones, ``output_tokens`` the
    reasoning ones) as ``Usage``, cache reads (``input_tokens_details.cached_tokens``) and reasoning
    (``output_tokens_details.reasoning_tokens``) included; None when it is not one."""
    if not isinstance(value, dict) or "input_tokens" not in value:
        return None
    prompt, completion = _int(value.get("input_tokens")), _int(value.get("output_tokens"))
    details = value.get("input_tokens_details")
    cached = _int(details.get("cached_tokens")) if isinstance(details, dict) else 0
    out_details = value.get("output_tokens_details")
    reasoning = _int(out_details.get("reasoning_tokens")) if isinstance(out_details, dict) else 0
    total = value.get("total_tokens")
    return Usage(prompt_tokens=prompt, completion_tokens=completion,
                 total_tokens=total if isinstance(total, int) and not isinstance(total, bool) else prompt + completion,
                 cached_tokens=cached, reasoning_tokens=reasoning)


def _object_end(data: bytes, start: int, end: int) -> int:
    """The index after the JSON object starting at ``data[start]`` (``{``) and ending before ``end``, or -1 when
    it is cut off."""
    shallow = _SHALLOW_OBJECT.match(data, start, end)
    if shallow is not None:
        return shallow.end()
    depth = 0
    i = start
    while i < end:
        c = data[i]
        if c == 0x22:  # a string: skip it, escapes included
            i += 1
            while i < end and data[i] != 0x22:
                i += 2 if data[i] == 0x5C else 1
        elif c == 0x7B:
            depth += 1
        elif c == 0x7D:
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    return -1


def locate_usage(data: bytes, start: int = 0, end: int | None = None) -> Usage | None:
    """The response's ``usage`` found in ``data[start:end]`` (a response object, or the data of its final event)
    without decoding the rest. The top-level ``usage`` comes after ``output`` and ``tools``, so the last
    ``"usage":`` key holding an object with ``input_tokens`` is it (inside JSON strings quotes are escaped:
    never a match). Only the usage object itself is decoded."""
    stop = len(data) if end is None else end
    pos = data.rfind(b'"usage"', start, stop)
    while pos >= 0:
        m = _USAGE_KEY.match(data, pos, stop)
        if m is not None and data[m.end():m.end() + 1] == b"{":
            close = _object_end(data, m.end(), stop)
            if close > 0:
                try:
                    usage = usage_of(orjson.loads(data[m.end():close]))
                except orjson.JSONDecodeError:
                    usage = None
                if usage is not None:
                    return usage
        pos = data.rfind(b'"usage"', start, pos)
    return None


def response_id_in(data: bytes, start: int = 0, end: int | None = None) -> str | None:
    """The first ``resp_...`` id in ``data[start:end]``: a response object (or event) starts with its own id."""
    m = _RESPONSE_ID.search(data, start, len(data) if end is None else end)
    return m.group(1).decode() if m else None


def _delta_length(data: bytes) -> int:
    """The length of a delta event's ``delta`` text (0 when it has none)."""
    try:
        payload: Any = orjson.loads(data)
    except orjson.JSONDecodeError:
        return 0
    delta = payload.get("delta") if isinstance(payload, dict) else None
    return len(delta) if isinstance(delta, str) else 0


def error_event(sequence: int, message: str, code: str, error_type: str = "server_error") -> bytes:
    """An in-band ``error`` event as OpenAI sends it: the error object nested under ``error`` (which the openai
    SDK raises on) and its fields repeated at the top level (as the published schema has them)."""
    err = {"type": error_type, "code": code, "message": message, "param": None}
    return b"event: error\ndata: " + orjson.dumps({"type": "error", "sequence_number": sequence, "error": err,
                                                     "code": code, "message": message, "param": None}) + b"\n\n"


def _headers(api_key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"}


class OpenAIResponsesNative:
    """``ResponsesNative`` for OpenAI."""

    __slots__ = ()

    def responses_request(self, raw: bytes, body: JSON, model: str, api_key: str,
                          base_url: str) -> UpstreamRequest:
        data = raw if body.get("model") == model else orjson.dumps({**body, "model": model})
        return UpstreamRequest("POST", f"{base_url.rstrip('/')}/responses", _headers(api_key), data)

    def stored_request(self, method: str, response_id: str, query: str, api_key: str,
                       base_url: str) -> UpstreamRequest:
        url = f"{base_url.rstrip('/')}/responses/{quote(response_id, safe='')}"
        return UpstreamRequest(method, f"{url}?{query}" if query else url, _headers(api_key))

    def responses_response(self, raw: bytes) -> ChatResult:
        return ChatResult(body=raw, usage=locate_usage(raw), upstream_id=response_id_in(raw, 0, 400))

    def responses_stream(self) -> NativeResponsesStream:
        return NativeResponsesStream()


class NativeResponsesStream:
    """``StreamTranslator`` that relays an OpenAI Responses stream unchanged and reads only its usage.

    ``usage`` stays None until the final event (a stream cut before it is billed as an estimate, marked so);
    ``done`` at ``response.completed`` / ``.incomplete``; ``error`` at ``response.failed`` or an ``error``
    event (both forwarded as they are); ``on_id`` is called once with the id from ``response.created``.

    Like the chat passthrough, each read's whole events go out as one region, unparsed. Only ``response.created``
    (its id), the final event (its usage, located in its bytes) and ``error`` are read; a region that may hold
    one (``in`` scans, in C) is searched for them with one regex scan, or, when it is large (a final response
    object), by stepping from line to line with memchr. Every other event is never decoded; its text is
    estimated from its size (for a stream that ends without usage).
    """

    __slots__ = ("_envelope", "_last", "_regions", "completion_chars", "done", "error", "on_id", "response_id",
                 "upstream_id", "usage")

    def __init__(self) -> None:
        self._regions = EventRegions()
        # Bytes of one delta event around its text: learnt from the first delta (its data decoded once); after
        # that a region's text is estimated as (bytes - events * envelope) without reading anything.
        self._envelope: int | None = None
        self._last = b""  # the last complete region relayed: where the last sequence_number is
        self.on_id: Callable[[str], None] | None = None
        self.response_id: str | None = None
        self.usage: Usage | None = None
        self.completion_chars = 0
        self.error: JSON | None = None
        self.upstream_id: str | None = None
        self.done = False

    def feed(self, data: bytes) -> list[bytes]:
        region = self._regions.feed(data)
        if not region:
            return []
        self._last = region
        size = len(region)
        if b"\r" in region:
            self._read_general(region)
        elif size > _LARGE:
            self._read_large(region)
        elif (b"response.c" in region or b"response.failed" in region or b"response.incomplete" in region
              or b"event: error" in region or b"event:error" in region):
            self._read(region)
        elif b".delta\n" in region:  # text deltas; other events (items added and done, parts) are not text
            envelope = self._envelope
            if envelope is None or b".done\n" in region or b".added\n" in region:
                self._estimate(region)
            else:
                # One event per read is the norm: count events only when the region is clearly several.
                chars = size - (region.count(b"\n\n") if size > 2 * envelope else 1) * envelope
                if chars > 0:
                    self.completion_chars += chars
        return [region]

    def _read(self, region: bytes) -> None:
        """A region that may hold some of the events the relay reads: those, and only those, are read."""
        found = find_named(region, _NAMES)
        if found is None:
            self._read_general(region)
            return
        for name, _, data, end in found:
            self._event(name, region, data, end)
        if self.usage is None and self.error is None:  # its text counts only for a stream that ends without usage
            self._estimate(region)

    def _read_large(self, region: bytes) -> None:
        """A large region (a final response object, a long instructions text repeated in ``response.created``):
        stepped through event by event with memchr, never scanned byte by byte."""
        walked = walk_named(region, _NAME_SET, b".delta")
        if walked is None:
            self._read_general(region)
            return
        for name, _, data, end in walked.found:
            self._event(name, region, data, end)
        if self.usage is None and self.error is None:
            self._add_deltas(region, walked)

    def _estimate(self, region: bytes) -> None:
        """Add the text of the region's deltas, estimated from their size (the envelope learnt on the first)."""
        walked = walk_named(region, _NONE, b".delta")
        if walked is None:  # not the plain form: every event counts as a delta
            chars = len(region) - region.count(b"\n\n") * (self._envelope or TEXT_DELTA_ENVELOPE)
            if chars > 0:
                self.completion_chars += chars
        else:
            self._add_deltas(region, walked)

    def _add_deltas(self, region: bytes, walked: Walked) -> None:
        envelope = self._envelope
        if envelope is None and walked.first_delta is not None:
            _, start, data, end = walked.first_delta
            envelope = self._envelope = max(0, end + 2 - start - _delta_length(region[data:end]))
        chars = walked.delta_bytes - walked.deltas * (TEXT_DELTA_ENVELOPE if envelope is None else envelope)
        if chars > 0:
            self.completion_chars += chars

    def _read_general(self, raw: bytes) -> None:
        """Any other form (\\r line ends, several data lines, comments; never seen from OpenAI), and the tail at
        the end: read with the full parser, correct rather than fast."""
        parser = SSEParser()
        for event in parser.feed(raw) + parser.close():
            data = event.data.encode()
            if event.event.endswith(".delta"):
                self.completion_chars += _delta_length(data)
            else:
                self._event(event.event.encode(), data, 0, len(data))

    def _event(self, name: bytes, region: bytes, start: int, end: int) -> None:
        """The event ``name`` whose data is ``region[start:end]`` (read in place: it may be megabytes)."""
        if name == b"response.created":
            if self.response_id is None:
                found = response_id_in(region, start, min(end, start + 400))
                if found is not None:
                    self.response_id = self.upstream_id = found
                    if self.on_id is not None:
                        self.on_id(found)
        elif name in _FINAL:
            self.usage = locate_usage(region, start, end) or self.usage
            if self.upstream_id is None:
                self.upstream_id = response_id_in(region, start, min(end, start + 400))
            if name == b"response.failed":
                self.error = {"error": {"message": "the response failed at OpenAI", "type": "api_error",
                                        "code": "response_failed", "param": None}}
            else:
                self.done = True
        elif name == b"error":
            try:
                parsed: Any = orjson.loads(region[start:end])
            except orjson.JSONDecodeError:
                parsed = None
            payload: JSON = parsed if isinstance(parsed, dict) else {}
            nested = payload.get("error")
            err: JSON = nested if isinstance(nested, dict) else payload
            self.error = {"error": {"message": str(err.get("message") or "OpenAI stream error"),
                                    "type": str(err.get("type") or "api_error"),
                                    "code": str(err.get("code") or "upstream_stream_error"), "param": None}}

    def next_sequence(self) -> int:
        """The sequence number for an event the relay adds after what it relayed (an in-band error)."""
        last = self._last
        start = last.rfind(b"\n\n", 0, max(0, len(last) - 2)) + 2  # the last event (0 when it is the only one)
        m = _SEQUENCE.search(last, start if start >= 2 else 0, start + 400 if start >= 2 else 400)
        return int(m.group(1)) + 1 if m else 0

    def inband_error(self, chat_error: JSON) -> bytes:
        """The relay's own errors (idle timeout, a broken upstream) as a Responses ``error`` event."""
        err: JSON = chat_error["error"] if isinstance(chat_error.get("error"), dict) else {}
        return error_event(self.next_sequence(), str(err.get("message") or "stream error"),
                           str(err.get("code") or "upstream_stream_error"))

    def finish(self) -> list[bytes]:
        out: list[bytes] = []
        rest = self._regions.rest()
        if rest:  # a last event without its blank line still counts; cut-off JSON is ignored
            self._read_general(rest)
            out.append(rest)
            self._last = rest
        if not self.done and self.error is None:
            self.error = {"error": {"message": "the OpenAI stream ended before response.completed",
                                    "type": "api_error", "code": "upstream_stream_truncated", "param": None}}
            out.append(error_event(self.next_sequence(), self.error["error"]["message"],
                                   "upstream_stream_truncated"))
        return out
