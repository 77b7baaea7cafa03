"""Relaying an OpenAI-shaped stream as it is: bytes in, the same bytes out, parsed only where usage is.

The hot path of the gateway. Each ``feed`` finds the complete events in the new bytes (a ``bytes.rfind``)
and, unless they may hold the usage chunk, an error or the end marker (three ``in`` scans, all in C),
forwards them in one piece without decoding. Only those few events are parsed. The usage chunk the
gateway asked for on the client's behalf is dropped when the client did not ask for it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

from webrana_proxy.providers.base import JSON, Usage
from webrana_proxy.providers.chunks import error_json, sse
from webrana_proxy.sse import EventSplitter, SSEParser


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def usage_from(value: Any, service_tier: Any = None) -> Usage | None:
    """An OpenAI-shaped ``usage`` object as ``Usage`` (None when absent or malformed): cache reads
    (``prompt_tokens_details.cached_tokens``), cache writes (OpenAI's ``cache_write_tokens``, DashScope's
    ``cache_creation_input_tokens``), reasoning (``completion_tokens_details.reasoning_tokens``, which is also
    how Qwen reports thinking mode) and the answer's ``service_tier``."""
    if not isinstance(value, dict):
        return None
    prompt = _int(value.get("prompt_tokens"))
    completion = _int(value.get("completion_tokens"))
    total = value.get("total_tokens")
    details = value.get("prompt_tokens_details")
    cached = written = 0
    if isinstance(details, dict):
        cached = _int(details.get("cached_tokens"))
        written = _int(details.get("cache_write_tokens")) or _int(details.get("cache_creation_input_tokens"))
    out_details = value.get("completion_tokens_details")
    reasoning = _int(out_details.get("reasoning_tokens")) if isinstance(out_details, dict) else 0
    return Usage(
        prompt_tokens=prompt,
        completion_tokens=completion,
        total_tokens=total if isinstance(total, int) else prompt + completion,
        cached_tokens=cached,
        cache_write_tokens=written,
        reasoning_tokens=reasoning,
        service_tier=service_tier if isinstance(service_tier, str) else None,
    )


def chunk_usage(chunk: JSON) -> Usage | None:
    """The usage of one OpenAI-shaped answer or chunk: its ``usage`` and ``service_tier``."""
    return usage_from(chunk.get("usage"), chunk.get("service_tier"))


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
    """``StreamTranslator`` for OpenAI-shaped upstreams. ``read_usage`` reads a provider's usage fields from a
    chunk that may carry them (the default: OpenAI's)."""

    __slots__ = ("_buf", "_envelope", "_include_usage", "_last", "_read_usage", "_splitter",
                 "completion_chars", "done", "error", "upstream_id", "usage")

    def __init__(self, include_usage: bool,
                 read_usage: Callable[[JSON], Usage | None] = chunk_usage) -> None:
        self._include_usage = include_usage
        self._read_usage = read_usage
        self._buf = b""  # an unfinished event (fast path: upstream lines end in "\n" only)
        self._splitter: EventSplitter | None = None  # the general reader, once a "\r" was seen
        # Bytes of one event minus its text: learnt from the first chunk with text; after that the text
        # is estimated as (bytes - events * envelope) without parsing anything.
        self._envelope: int | None = None
        self._last = b""  # the last region relayed unparsed, to look for a [DONE] it ended with
        self.usage: Usage | None = None
        self.completion_chars = 0
        self.error: JSON | None = None
        self.upstream_id: str | None = None
        self.done = False

    def feed(self, data: bytes) -> list[bytes]:
        if self._splitter is not None:
            return self._feed_general(data)
        buf = self._buf + data if self._buf else data
        # "\n\n" is always a blank line, whatever the line ends; other blank lines ("\r\n\r\n", "\r\r")
        # need the general reader, which takes over the first time a "\r" is left in an unfinished tail.
        cut = buf.rfind(b"\n\n") + 2
        if cut == 1:
            if b"\r" in buf:
                self._buf = b""
                return self._feed_general(buf)
            self._buf = buf
            return []
        if cut == len(buf):
            self._buf = b""
            region = buf
        else:
            tail = buf[cut:]
            if b"\r" in tail:
                self._buf = b""
                return self._feed_general(buf)
            self._buf = tail
            region = buf[:cut]
        envelope = self._envelope
        if envelope is None:
            return self._slow(region)
        return self._known(region, envelope)

    def _known(self, region: bytes, envelope: int) -> list[bytes]:
        """A region of whole events once the envelope is known. Usage, errors and [DONE] are the only events we
        must read; everything else goes as it is. A region ending in an ordinary chunk (usage null) holds none of
        them: usage, errors and [DONE] all come last. Otherwise look (inside JSON strings quotes are escaped, so
        only keys match), and read event by event only from the first event that may hold one: the deltas before
        it are counted like any other region's. A region not ending in "}" (a cut-off or broken event, a comment,
        [DONE]) is read from its last event."""
        self._last = region
        if region.endswith(b'"usage":null}\n\n'):
            first = -1
        else:
            first = min((i for i in (region.find(b'"usage":{'), region.find(b'"usage": {'), region.find(b'{"error"'))
                         if i >= 0), default=-1)
            if not region.endswith(b"}\n\n"):
                before = region.rfind(b"\n\n", 0, len(region) - 2)  # the end of the event before the last one
                last = before + 2 if before >= 0 else 0
                first = last if first < 0 else min(first, last)
        if first < 0:
            cut = len(region)
        else:  # from the start of the event holding it (0: the first event)
            before = region.rfind(b"\n\n", 0, first)
            cut = before + 2 if before >= 0 else 0
        if cut:
            size = cut
            # One event per read is the norm: count events only when the head is clearly several.
            chars = size - (region.count(b"\n\n", 0, cut) if size > 2 * envelope else 1) * envelope
            if chars > 0:
                self.completion_chars += chars
        if cut == len(region):
            return [region]
        tail = region[cut:]
        out = self._each(tail)
        if out == [tail]:
            return [region]
        return [region[:cut] + b"".join(out)] if cut else out

    def _feed_general(self, data: bytes) -> list[bytes]:
        if self._splitter is None:
            self._splitter = EventSplitter()
            data = self._buf + data
            self._buf = b""
        region, count = self._splitter.feed_joined(data)
        return self._slow(region) if count else []

    def _rest(self) -> bytes:
        return self._splitter.rest() if self._splitter is not None else self._buf

    def finish(self) -> list[bytes]:
        out: list[bytes] = []
        if not self.done and b"data: [DONE]" in self._last:
            self.done = True  # it came with bytes after it in the same read
        rest = self._rest()
        if rest:
            if self.done or self.error is not None:
                out.append(rest)  # trailing bytes after the end: forwarded as they came
            elif self._whole(rest):  # a last event that only lacks its blank line
                out.extend(self._slow(rest + b"\n\n"))
        if not self.done and self.error is None:
            self.error = error_json("the upstream stream ended before [DONE]", "api_error",
                                    "upstream_stream_truncated")
            out.append(sse(self.error))
        return out

    @staticmethod
    def _whole(tail: bytes) -> bool:
        """Whether an unterminated tail is nevertheless a complete event (cut-off JSON is dropped)."""
        parser = SSEParser()
        events = parser.feed(tail) + parser.close()
        if not events:
            return False
        data = events[-1].data
        if data == "[DONE]":
            return True
        try:
            orjson.loads(data)
        except orjson.JSONDecodeError:
            return False
        return True

    def _slow(self, region: bytes) -> list[bytes]:
        """Look at each event of ``region``; parse only those that may carry usage, an error or the end. Until the
        envelope is known, events are taken one at a time; once an event taught it, the rest of the region is
        read like any later region (``_known``), not event by event."""
        if self._envelope is not None or b"\r" in region:
            return self._each(region)
        size = len(region)
        pos = 0
        kept: list[bytes] = []
        changed = False
        while pos < size:
            end = region.find(b"\n\n", pos)
            if end == pos:  # an extra blank line: the general rule for the rest
                rest = self._each(region[pos:])
                return self._joined(region, kept, rest, changed or rest != [region[pos:]])
            nxt = size if end < 0 else end + 2
            raw = region[pos:nxt]
            out = self._keep(raw)
            changed = changed or out is not raw
            if out is not None:
                kept.append(out)
            pos = nxt
            if self.error is not None:
                return self._joined(region, kept, [], changed or pos < size)  # nothing after an error goes out
            if self._envelope is not None and pos < size:
                rest = self._known(region[pos:], self._envelope)
                return self._joined(region, kept, rest, changed or rest != [region[pos:]])
        return self._joined(region, kept, [], changed)

    @staticmethod
    def _joined(region: bytes, kept: list[bytes], rest: list[bytes], changed: bool) -> list[bytes]:
        if not changed:
            return [region]
        out = b"".join(kept) + b"".join(rest)
        return [out] if out else []

    def _each(self, region: bytes) -> list[bytes]:
        """Every event of ``region`` on its own (the envelope is known, or the region is not in the plain form)."""
        if b"\r" not in region:
            events = region.split(b"\n\n")
            if events[-1] == b"":
                events.pop()
            if any(not e for e in events):  # extra blank lines: take the general rule
                events = self._split(region)
            else:
                events = [e + b"\n\n" for e in events]
                if not region.endswith(b"\n\n"):
                    events[-1] = events[-1][:-2]
        else:
            events = self._split(region)
        changed = False
        kept: list[bytes] = []
        for raw in events:
            if (self._envelope is not None and raw.endswith(b"}\n\n") and b'"usage":{' not in raw
                    and b'"usage": {' not in raw and b'{"error"' not in raw):
                chars = len(raw) - self._envelope
                if chars > 0:
                    self.completion_chars += chars
                kept.append(raw)
                continue
            out = self._keep(raw)
            if out is not raw:
                changed = True
            if out is not None:
                kept.append(out)
            if self.error is not None:
                changed = changed or len(kept) < len(events)
                break  # nothing after an error reaches the client
        if not changed:
            return [region]
        return [b"".join(kept)] if kept else []

    @staticmethod
    def _split(region: bytes) -> list[bytes]:
        splitter = EventSplitter()
        events = splitter.feed(region)
        if splitter.rest():
            events.append(splitter.rest())
        return events

    @staticmethod
    def _data(raw: bytes) -> str | None:
        """The data of one event: sliced directly for the usual single ``data:`` line, else parsed."""
        if raw.startswith(b"data: ") and raw.find(b"\n") == len(raw) - 2 and raw.endswith(b"\n\n"):
            return raw[6:-2].decode("utf-8", "replace")
        parser = SSEParser()
        parsed = parser.feed(raw) + parser.close()
        return parsed[-1].data if parsed else None

    def _keep(self, raw: bytes) -> bytes | None:
        """Record what ``raw`` (one whole event) tells us and return what the client gets: ``raw`` itself,
        None (the usage chunk it did not ask for), or an in-band error replacing a malformed event."""
        data = self._data(raw)
        if data is None:
            return raw  # comment or keep-alive
        if data == "[DONE]":
            self.done = True
            return raw
        try:
            chunk = orjson.loads(data)
        except orjson.JSONDecodeError:
            chunk = None
        if not isinstance(chunk, dict):
            self.error = error_json("the provider sent a malformed stream event", "api_error",
                                    "upstream_malformed")
            return sse(self.error)
        if self.upstream_id is None and isinstance(chunk.get("id"), str):
            self.upstream_id = chunk["id"]
        if "error" in chunk and "choices" not in chunk:
            err = chunk["error"]
            self.error = {"error": err} if isinstance(err, dict) else error_json(str(err))
            return raw
        chars, longest = _delta_text(chunk)
        self.completion_chars += chars
        if self._envelope is None and longest:
            self._envelope = max(0, len(raw) - chars)
        usage = self._read_usage(chunk)
        if usage is not None:
            self.usage = usage
            if not self._include_usage:
                if not chunk.get("choices"):
                    return None
                if chunk.get("usage") is not None:  # usage on the last content chunk (Mistral): not asked for
                    return sse({**chunk, "usage": None})
        return raw
