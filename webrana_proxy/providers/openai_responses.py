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
from webrana_proxy.sse import SSEParser, event_fields

# Bytes of one output_text.delta event around its text (event line, type, sequence_number, item_id, indexes,
# logprobs, obfuscation): the text of events relayed unparsed is estimated as their size minus this.
TEXT_DELTA_ENVELOPE = 200
# Events the relay must read; every other event goes through without being looked at. Inside JSON strings a
# newline is escaped, so "\nevent: " never matches text; each marker ends with its line end (no prefix matches).
_FINAL = ("response.completed", "response.incomplete", "response.failed")
_WATCHED = tuple(m for name in ("response.created", *_FINAL, "error")
                 for m in (f"event: {name}\n".encode(), f"event:{name}\n".encode()))
_USAGE_KEY = re.compile(rb'"usage"\s*:\s*')
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


def _object_end(data: bytes, start: int) -> int:
    """The index after the JSON object starting at ``data[start]`` (``{``), or -1 when it is cut off."""
    depth = 0
    i, end = start, len(data)
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


def locate_usage(data: bytes) -> Usage | None:
    """The response's ``usage`` found in ``data`` (a response object, or the data of its final event) without
    decoding the rest. The top-level ``usage`` comes after ``output`` and ``tools``, so the last ``"usage":``
    key holding an object with ``input_tokens`` is it (inside JSON strings quotes are escaped: never a match)."""
    pos = data.rfind(b'"usage"')
    while pos >= 0:
        m = _USAGE_KEY.match(data, pos)
        if m is not None and data[m.end():m.end() + 1] == b"{":
            end = _object_end(data, m.end())
            if end > 0:
                try:
                    usage = usage_of(orjson.loads(data[m.end():end]))
                except orjson.JSONDecodeError:
                    usage = None
                if usage is not None:
                    return usage
        pos = data.rfind(b'"usage"', 0, pos)
    return None


def response_id_in(data: bytes) -> str | None:
    """The first ``resp_...`` id in ``data``: a response object (or event) starts with its own id."""
    m = _RESPONSE_ID.search(data)
    return m.group(1).decode() if m else None


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
        return ChatResult(body=raw, usage=locate_usage(raw), upstream_id=response_id_in(raw[:400]))

    def responses_stream(self) -> NativeResponsesStream:
        return NativeResponsesStream()


class NativeResponsesStream:
    """``StreamTranslator`` that relays an OpenAI Responses stream unchanged and reads only its usage.

    ``usage`` stays None until the final event (a stream cut before it is billed as an estimate, marked so);
    ``done`` at ``response.completed`` / ``.incomplete``; ``error`` at ``response.failed`` or an ``error``
    event (both forwarded as they are); ``on_id`` is called once with the id from ``response.created``.
    """

    __slots__ = ("_last", "_parser", "_tail", "completion_chars", "done", "error", "on_id", "response_id",
                 "upstream_id", "usage")

    def __init__(self) -> None:
        self._tail = b""  # bytes after the last complete event
        self._last = b""  # the last complete region relayed: where the last sequence_number is
        self._parser: SSEParser | None = None  # only for streams whose lines end in "\r"
        self.on_id: Callable[[str], None] | None = None
        self.response_id: str | None = None
        self.usage: Usage | None = None
        self.completion_chars = 0
        self.error: JSON | None = None
        self.upstream_id: str | None = None
        self.done = False

    def feed(self, data: bytes) -> list[bytes]:
        buf = self._tail + data if self._tail else data
        if self._parser is not None or b"\r" in buf:
            return self._feed_general(buf)
        cut = buf.rfind(b"\n\n") + 2
        if cut == 1:
            self._tail = buf
            return []
        region = buf[:cut] if cut < len(buf) else buf
        self._tail = buf[cut:] if cut < len(buf) else b""
        self._last = region
        if not any(marker in region for marker in _WATCHED):
            chars = len(region) - region.count(b"\n\n") * TEXT_DELTA_ENVELOPE
            if chars > 0:
                self.completion_chars += chars
            return [region]
        self._read(region.split(b"\n\n"))
        return [region]

    def _feed_general(self, buf: bytes) -> list[bytes]:
        """Streams with "\\r" line ends (never seen from OpenAI; kept correct, not fast)."""
        self._tail = b""
        if self._parser is None:
            self._parser = SSEParser()
        for event in self._parser.feed(buf):
            self._event(event.event, event.data.encode())
        self._last = buf
        return [buf]

    def _read(self, raws: list[bytes]) -> None:
        for raw in raws:
            if raw:
                self._event(*event_fields(raw))

    def _event(self, name: str, data: bytes) -> None:
        if name.endswith(".delta"):  # only in the few regions read anyway: counted exactly
            try:
                payload: Any = orjson.loads(data)
            except orjson.JSONDecodeError:
                return
            delta = payload.get("delta") if isinstance(payload, dict) else None
            self.completion_chars += len(delta) if isinstance(delta, str) else 0
        elif name == "response.created":
            found = response_id_in(data[:400])
            if found is not None and self.response_id is None:
                self.response_id = self.upstream_id = found
                if self.on_id is not None:
                    self.on_id(found)
        elif name in _FINAL:
            self.usage = locate_usage(data) or self.usage
            if self.upstream_id is None:
                self.upstream_id = response_id_in(data[:400])
            if name == "response.failed":
                self.error = {"error": {"message": "the response failed at OpenAI", "type": "api_error",
                                        "code": "response_failed", "param": None}}
            else:
                self.done = True
        elif name == "error":
            try:
                payload = orjson.loads(data)
            except orjson.JSONDecodeError:
                payload = None
            payload = payload if isinstance(payload, dict) else {}
            err = payload.get("error") if isinstance(payload.get("error"), dict) else payload
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
        if self._tail:
            self._read([self._tail])
            out.append(self._tail)
            self._last = self._tail
            self._tail = b""
        if not self.done and self.error is None:
            self.error = {"error": {"message": "the OpenAI stream ended before response.completed",
                                    "type": "api_error", "code": "upstream_stream_truncated", "param": None}}
            out.append(error_event(self.next_sequence(), self.error["error"]["message"],
                                   "upstream_stream_truncated"))
        return out
