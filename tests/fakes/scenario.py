"""What a fake upstream should do next, and what it has seen.

A test holds one ``FakeState`` per fake server. Every request the fake receives is recorded
(``state.requests``); each request takes the next matching scripted ``Behaviour`` from the queue
(``state.script(...)``), or ``state.default`` when none matches. The default answers
``"echo: <last user text>"`` with exact, deterministic usage:

* prompt tokens     = whitespace-separated words in every text of the request (system included), at least 1;
* completion tokens = words in the answer (for tool calls: words in each name and each arguments JSON),
  plus ``reasoning_tokens``;

and streams one word per event. What the fake reported is kept on the record
(``RecordedRequest.usage``), so tests can compare without recomputing.

Behaviours are provider-neutral: ``http_error(429)`` becomes OpenAI's ``rate_limit_exceeded``,
Anthropic's ``rate_limit_error`` or Gemini's ``RESOURCE_EXHAUSTED`` depending on which fake serves it.
"""

from __future__ import annotations

import asyncio
import base64
import re
import struct
import time
import zlib
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

FaultKind = Literal["stall", "reset", "malformed", "inband_error"]
WORD_RE = re.compile(r"\s*\S+\s*")
EMBEDDING_DIMENSIONS = 8  # small and deterministic; real sizes would only slow tests down


@dataclass(frozen=True, slots=True)
class ToolCall:
    """One function call the fake model makes. ``arguments`` is the JSON object of the call."""

    name: str
    arguments: Mapping[str, Any]
    id: str | None = None  # None: the fake makes one up in the provider's style


@dataclass(frozen=True, slots=True)
class HttpError:
    """Answer with this HTTP status and the provider's own error body for it."""

    status: int
    message: str | None = None  # None: the provider's usual message for the status
    retry_after: str | None = None  # sent as ``retry-after`` (Gemini: also as RetryInfo in the body)
    body: bytes | None = None  # verbatim body instead of the provider's
    headers: Mapping[str, str] = field(default_factory=dict)
    error_type: str | None = None  # override the provider's error type/status string


@dataclass(frozen=True, slots=True)
class Fault:
    """Something that goes wrong in the middle of an answer, after ``after_events`` events were sent.

    stall: sleep ``seconds`` then continue; reset: abort the TCP connection (no terminator);
    malformed: send ``payload`` (a broken SSE event) then close, or continue if ``then_continue``;
    inband_error: send the provider's in-stream error event then close.
    """

    kind: FaultKind
    after_events: int
    seconds: float = 0.0
    payload: bytes = b'data: {"id": "broken", "choices": [{"delta": {"content": \n\n'
    then_continue: bool = False
    message: str = "Overloaded"


@dataclass(frozen=True, slots=True)
class Behaviour:
    """One scripted answer. Fields combine: e.g. text + chunk_delay + fault."""

    text: str | None = None  # None: echo the last user text
    tool_calls: tuple[ToolCall, ...] = ()
    error: HttpError | None = None
    stall_before_first_byte: float = 0.0  # seconds before anything (not even headers) is sent
    fault: Fault | None = None
    chunk_delay: float = 0.0  # seconds between stream events (paced stream)
    words_per_chunk: int = 1
    answer_size: int | None = None  # bytes: a generated answer this large instead of ``text``
    send_usage: bool = True  # False: the upstream omits usage (where the wire lets it)
    truncated: bool = False  # finish as length / max_tokens / MAX_TOKENS
    reasoning_tokens: int = 0  # thinking tokens, counted into completion
    cached_tokens: int = (
        0  # cache-read prompt tokens (OpenAI cached_tokens, Anthropic cache_read, Gemini cached)
    )
    cache_creation_tokens: int = 0  # Anthropic cache_creation_input_tokens
    # matching: a queued behaviour applies only to requests it matches
    provider: str | None = None  # "openai" | "qwen" | "anthropic" | "gemini"
    key_contains: str | None = None

    def matches(self, provider: str, key: str) -> bool:
        if self.provider is not None and self.provider != provider:
            return False
        return self.key_contains is None or self.key_contains in key

    @property
    def is_instant(self) -> bool:
        return self.chunk_delay == 0.0 and self.fault is None

    def answer_text(self, echo_of: str) -> str:
        if self.answer_size is not None:
            return large_text(self.answer_size)
        if self.text is not None:
            return self.text
        return f"echo: {echo_of}"


# ---- constructors (each returns a Behaviour; use ``dataclasses.replace`` or keywords to combine) ----


def text(answer: str, **kw: Any) -> Behaviour:
    return Behaviour(text=answer, **kw)


def tool_calls(*calls: ToolCall | tuple[str, Mapping[str, Any]], **kw: Any) -> Behaviour:
    made = tuple(c if isinstance(c, ToolCall) else ToolCall(c[0], c[1]) for c in calls)
    return Behaviour(tool_calls=made, **kw)


def http_error(
    status: int,
    *,
    message: str | None = None,
    retry_after: str | None = None,
    body: bytes | None = None,
    headers: Mapping[str, str] | None = None,
    error_type: str | None = None,
    **kw: Any,
) -> Behaviour:
    err = HttpError(status, message, retry_after, body, dict(headers or {}), error_type)
    return Behaviour(error=err, **kw)


def rate_limited(retry_after: str = "1", **kw: Any) -> Behaviour:
    return http_error(429, retry_after=retry_after, **kw)


def stall_first_byte(seconds: float, **kw: Any) -> Behaviour:
    return Behaviour(stall_before_first_byte=seconds, **kw)


def stall_mid_stream(after_events: int, seconds: float, **kw: Any) -> Behaviour:
    return Behaviour(fault=Fault("stall", after_events, seconds=seconds), **kw)


def reset_mid_stream(after_events: int, **kw: Any) -> Behaviour:
    return Behaviour(fault=Fault("reset", after_events), **kw)


def malformed_sse(
    after_events: int, *, payload: bytes | None = None, then_continue: bool = False, **kw: Any
) -> Behaviour:
    fault = Fault("malformed", after_events, then_continue=then_continue)
    if payload is not None:
        fault = replace(fault, payload=payload)
    return Behaviour(fault=fault, **kw)


def inband_error(after_events: int, message: str = "Overloaded", **kw: Any) -> Behaviour:
    return Behaviour(fault=Fault("inband_error", after_events, message=message), **kw)


def large_answer(size: int, words_per_chunk: int = 64, **kw: Any) -> Behaviour:
    return Behaviour(answer_size=size, words_per_chunk=words_per_chunk, **kw)


def paced(chunk_delay: float, **kw: Any) -> Behaviour:
    return Behaviour(chunk_delay=chunk_delay, **kw)


# ---- what was seen ----


@dataclass(frozen=True, slots=True)
class Usage:
    """What the fake reported, normalised: prompt includes cached; completion includes reasoning."""

    prompt_tokens: int
    completion_tokens: int

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(slots=True)
class RecordedRequest:
    provider: str
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # lower-cased names
    body: Any  # parsed JSON, or None
    key: str  # the credential presented ("" when none)
    at: float  # time.monotonic() on arrival
    usage: Usage | None = None  # what the fake reported (None for errors / no usage)
    generation: int = 0  # FakeState.reset() count when it arrived (late events of older ones are ignored)
    request_id: str = ""  # the upstream request id the fake answered with (header, or Gemini responseId)
    outcome: str = (
        "pending"  # pending | ok | error | disconnected | reset | stalled | malformed | inband_error
    )
    raw: bytes = b""  # the body exactly as it arrived (when ``record_requests``)


@dataclass(frozen=True, slots=True)
class Disconnect:
    provider: str
    path: str
    at: float  # time.monotonic() when the fake noticed
    events_sent: int


@dataclass
class FakeState:
    """Per-server script queue and record. Not thread-safe; one event loop."""

    default: Behaviour = field(default_factory=Behaviour)
    record_requests: bool = True  # benchmarks may turn this off (requests still counted)
    gemini_invalid_key_status: int = 400  # real Gemini: 400 INVALID_ARGUMENT / API_KEY_INVALID
    requests: list[RecordedRequest] = field(default_factory=list)
    disconnects: list[Disconnect] = field(default_factory=list)
    request_count: int = 0
    active: int = 0  # handlers currently running
    key_rules: list[tuple[str, Behaviour]] = field(default_factory=list)
    _queue: deque[Behaviour] = field(default_factory=deque)
    _seq: int = 0
    _generation: int = 0
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    def script(self, *behaviours: Behaviour, times: int = 1) -> None:
        """Queue behaviours; each is used by one matching request (``times`` copies of each)."""
        for b in behaviours:
            self._queue.extend([b] * times)

    def rule_for_key(self, key_contains: str, behaviour: Behaviour) -> None:
        """Requests whose key contains ``key_contains`` (and match nothing queued) get ``behaviour``."""
        self.key_rules.append((key_contains, behaviour))

    @property
    def pending(self) -> int:
        return len(self._queue)

    def reset(self) -> None:
        """Forget scripts, rules and records; handlers still running from before no longer count."""
        self._generation += 1
        self.gemini_invalid_key_status = 400
        self._queue.clear()
        self.key_rules.clear()
        self.requests.clear()
        self.disconnects.clear()
        self.default = Behaviour()

    def next_behaviour(self, provider: str, key: str) -> Behaviour:
        for i, b in enumerate(self._queue):
            if b.matches(provider, key):
                del self._queue[i]
                return b
        for needle, b in self.key_rules:
            if needle in key and (b.provider is None or b.provider == provider):
                return b
        return self.default

    def next_id(self) -> int:
        self._seq += 1
        return self._seq

    def record(self, rec: RecordedRequest) -> RecordedRequest:
        self.request_count += 1
        rec.generation = self._generation
        if self.record_requests:
            self.requests.append(rec)
        return rec

    def note_disconnect(self, rec: RecordedRequest, events_sent: int) -> None:
        rec.outcome = "disconnected"
        if rec.generation != self._generation:
            return
        self.disconnects.append(Disconnect(rec.provider, rec.path, time.monotonic(), events_sent))
        self._changed.set()

    async def wait_for_disconnects(self, count: int = 1, timeout: float = 5.0) -> Disconnect:
        """Wait until ``count`` disconnects were seen in total; return the last one."""
        deadline = time.monotonic() + timeout
        while len(self.disconnects) < count:
            self._changed.clear()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"saw {len(self.disconnects)} disconnects, wanted {count}")
            try:
                await asyncio.wait_for(self._changed.wait(), remaining)
            except TimeoutError:
                continue
        return self.disconnects[-1]

    def requests_for(self, provider: str) -> list[RecordedRequest]:
        return [r for r in self.requests if r.provider == provider]

    @property
    def last(self) -> RecordedRequest:
        return self.requests[-1]


# ---- pure helpers shared by the fakes ----


def count_words(texts: Iterable[str]) -> int:
    return sum(len(t.split()) for t in texts)


def prompt_tokens(texts: Iterable[str]) -> int:
    return max(1, count_words(texts))


def completion_tokens(answer: str, calls: Iterable[ToolCall], args_json: Iterable[str]) -> int:
    return count_words([answer]) + sum(len(c.name.split()) for c in calls) + count_words(args_json)


def split_pieces(answer: str, words_per_chunk: int = 1) -> list[str]:
    """Split into stream pieces of ``words_per_chunk`` words; joined they give back ``answer`` exactly."""
    words = WORD_RE.findall(answer)
    if not words:
        return [answer] if answer else []
    consumed = sum(len(w) for w in words)
    if consumed < len(answer):  # only trailing/leading-less whitespace can be missing: keep it
        words[-1] += answer[consumed:]
    n = max(1, words_per_chunk)
    return ["".join(words[i : i + n]) for i in range(0, len(words), n)]


def split_json_fragments(args_json: str, size: int = 8) -> list[str]:
    """Cut an arguments JSON string into fragments the way OpenAI streams them (arbitrary cut points)."""
    return [args_json[i : i + size] for i in range(0, len(args_json), size)] or [""]


def large_text(size: int) -> str:
    unit = "lorem ipsum dolor sit amet consectetur adipiscing elit "
    reps = size // len(unit) + 1
    return (unit * reps)[:size]


def embedding_vector(text_in: str, dimensions: int = EMBEDDING_DIMENSIONS) -> list[float]:
    """A deterministic small vector for a text (same text, same vector)."""
    seed = zlib.crc32(text_in.encode())
    out: list[float] = []
    for i in range(dimensions):
        seed = (seed * 1103515245 + 12345 + i) & 0x7FFFFFFF
        out.append(round((seed / 0x7FFFFFFF) * 2 - 1, 6))
    return out


def floats_to_base64(values: list[float]) -> str:
    return base64.b64encode(struct.pack(f"<{len(values)}f", *values)).decode()
