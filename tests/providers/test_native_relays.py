"""The native relays' fast path (Anthropic Messages, OpenAI Responses): regions of whole events go out as they
came, only the few events that carry the id, usage, an error or the end are read, found by byte scans. These
fixtures cover where that could go wrong: events split across reads, regions of several events, usage in a
region of deltas, CRLF line ends, lookalike text, forms other than the plain one, a huge final response."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.fakes.anthropic import Answer, stream_events
from tests.fakes.openai_like import responses_answer, responses_error_event
from tests.fakes.scenario import Behaviour, FakeState
from webrana_proxy.providers.anthropic_native import NativeMessagesStream
from webrana_proxy.providers.base import Usage
from webrana_proxy.providers.openai_responses import NativeResponsesStream, locate_usage
from webrana_proxy.sse import EventRegions, find_named, walk_named

MESSAGES_USAGE = Usage(prompt_tokens=16, completion_tokens=5, total_tokens=21, cached_tokens=3,
                       cache_write_tokens=2, service_tier="standard")


def _messages(text: str = "satu dua tiga empat lima") -> bytes:
    a = Answer(id="msg_01", model="claude-sonnet-4-5", text=text, calls=(), call_ids=(), args_json=(),
               stop_reason="end_turn", input_tokens=11, output_tokens=5, cache_creation=2, cache_read=3)
    return b"".join(stream_events(a, Behaviour()))


def _responses(text: str = "satu dua tiga empat lima", size: int | None = None) -> tuple[list[bytes], Usage]:
    b = Behaviour(text=text, answer_size=size, words_per_chunk=1 if size is None else 64)
    _, usage, events = responses_answer(FakeState(), {"model": "gpt-4o", "input": "satu dua"}, b)
    return events, Usage(usage.prompt_tokens, usage.completion_tokens, usage.total_tokens)


def _relay(relay: NativeMessagesStream | NativeResponsesStream, parts: list[bytes]) -> bytes:
    return b"".join(b"".join(relay.feed(part)) for part in parts) + b"".join(relay.finish())


def _pieces(data: bytes, size: int) -> list[bytes]:
    return [data[i:i + size] for i in range(0, len(data), size)]


# ---- the framing and the scans (sse.py) ----

@settings(max_examples=200, deadline=None)
@given(events=st.lists(st.sampled_from([b"event: a\ndata: {}\n\n", b"data: x\n\n", b"\n", b"event: b\ndata: \n\n"]),
                       max_size=8),
       tail=st.sampled_from([b"", b"event: a\nda", b"data: {\"x\":1}\n"]),
       cuts=st.lists(st.integers(min_value=0, max_value=200), max_size=8))
def test_regions_give_back_every_byte_and_only_whole_events(events: list[bytes], tail: bytes,
                                                             cuts: list[int]) -> None:
    raw = b"".join(events) + tail
    points = sorted({c % (len(raw) + 1) for c in cuts})
    regions = EventRegions()
    out = [regions.feed(raw[a:b]) for a, b in zip([0, *points], [*points, len(raw)], strict=True)]
    assert b"".join(out) + regions.rest() == raw
    assert all(r.endswith(b"\n\n") for r in out if r)


def test_a_large_event_over_many_reads_comes_out_whole_once_and_the_seam_counts() -> None:
    big = b"event: a\ndata: " + b"x" * 100_000 + b"\n"
    regions = EventRegions()
    assert [regions.feed(p) for p in _pieces(big, 1_000)] == [b""] * 101
    assert regions.feed(b"\nevent: b\n") == big + b"\n"  # the blank line across the seam of two reads
    assert regions.rest() == b"event: b\n"


def test_a_carriage_return_hands_the_stream_to_the_general_rule() -> None:
    regions = EventRegions()
    assert regions.feed(b"event: a\ndata: 1") == b""
    assert regions.feed(b"\r\n\r\nevent: b\r\ndata: 2\r\n\r") == b"event: a\ndata: 1\r\n\r\n"
    assert regions.feed(b"\n") == b"event: b\r\ndata: 2\r\n\r\n"


def test_named_events_are_found_at_line_starts_and_other_forms_are_refused() -> None:
    import re
    names = re.compile(rb"event: ?(stop|usage)\n")
    region = (b'event: delta\ndata: {"t":"event: stop\\n"}\n\n'  # inside JSON: escaped, never an event line
              b"event: usage\ndata: 7\n\nevent:stop\ndata:{}\n\n")
    usage, stop = region.index(b"event: usage"), region.index(b"event:stop")
    expected = [(b"usage", usage, usage + 19, usage + 20), (b"stop", stop, stop + 16, stop + 18)]
    assert find_named(region, names) == expected
    assert region[usage + 19:usage + 20] == b"7" and region[stop + 16:stop + 18] == b"{}"
    assert find_named(b"id: 1\nevent: stop\ndata: {}\n\n", names) is None  # another field line first
    assert find_named(b"event: stop\ndata: 1\ndata: 2\n\n", names) is None  # two data lines
    walked = walk_named(region, frozenset((b"usage", b"stop")), b"delta")
    assert walked is not None
    assert walked.found == expected
    assert (walked.deltas, walked.delta_bytes, walked.first_delta) == (1, usage, (b"delta", 0, 19, usage - 2))
    assert walk_named(b": comment\n\nevent: stop\ndata: {}\n\n", frozenset(), b"delta") is None


# ---- Messages ----

@pytest.mark.parametrize("size", [1, 7, 64, 10_000])
def test_messages_split_across_reads_of_any_size(size: int) -> None:
    raw = _messages()
    relay = NativeMessagesStream()
    assert _relay(relay, _pieces(raw, size)) == raw
    assert relay.done and relay.error is None and relay.upstream_id == "msg_01" and relay.usage == MESSAGES_USAGE


def test_messages_usage_in_a_region_of_deltas_and_the_end_in_the_next() -> None:
    raw = _messages()
    stop = raw.index(b"event: message_stop")
    relay = NativeMessagesStream()
    assert b"".join(relay.feed(raw[:stop])) == raw[:stop]  # message_start ... deltas ... message_delta
    assert relay.usage == MESSAGES_USAGE and not relay.done
    assert b"".join(relay.feed(raw[stop:])) == raw[stop:]
    assert relay.done and relay.finish() == []


def test_messages_with_crlf_line_ends_and_a_last_event_without_its_blank_line() -> None:
    raw = _messages().replace(b"\n", b"\r\n")[:-2]  # message_stop ends the body without its blank line
    relay = NativeMessagesStream()
    assert _relay(relay, _pieces(raw, 50)) == raw
    assert relay.done and relay.error is None and relay.usage == MESSAGES_USAGE


def test_messages_other_forms_are_read_the_general_way() -> None:
    raw = _messages()
    start = raw.index(b"event: message_delta")
    end = raw.index(b"\n\n", start) + 2
    event = raw[start:end]
    name, data = event.split(b"\n", 1)
    odd = raw[:start] + b": keep-alive\n" + data[:-1] + name + b"\n\n" + raw[end:]  # data first, then event
    relay = NativeMessagesStream()
    assert _relay(relay, [odd]) == odd
    assert relay.done and relay.usage == MESSAGES_USAGE


def test_messages_text_that_looks_like_an_event_line_is_text() -> None:
    raw = _messages("x\nevent: message_stop\ndata: {}\n\n")
    cut = raw[:raw.index(b"event: message_delta")]
    relay = NativeMessagesStream()
    out = _relay(relay, [cut])
    assert out.startswith(cut) and not relay.done and relay.error is not None  # truncated, not ended by the text
    assert relay.error["error"]["code"] == "upstream_stream_truncated"


def test_messages_error_in_a_region_of_deltas() -> None:
    raw = _messages()
    cut = raw.index(b"event: content_block_stop")
    error = b'event: error\ndata: {"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}\n\n'
    relay = NativeMessagesStream()
    assert b"".join(relay.feed(raw[:cut] + error)) == raw[:cut] + error
    assert relay.error is not None and relay.error["error"]["code"] == "overloaded_error"


@pytest.mark.parametrize("one_read", [True, False])
def test_messages_text_of_a_cut_stream_is_estimated_from_its_size(one_read: bool) -> None:
    text = "kata " * 80
    raw = _messages(text)
    cut = raw[:raw.index(b"event: message_delta")]
    relay = NativeMessagesStream()
    _relay(relay, [cut] if one_read else [e + b"\n\n" for e in cut.split(b"\n\n")[:-1]])
    assert relay.usage is None
    assert len(text) * 0.8 <= relay.completion_chars <= len(text) * 1.2


# ---- Responses ----

@pytest.mark.parametrize("size", [1, 9, 100, 100_000])
def test_responses_split_across_reads_of_any_size(size: int) -> None:
    events, usage = _responses()
    raw = b"".join(events)
    relay = NativeResponsesStream()
    seen: list[str] = []
    relay.on_id = seen.append
    assert _relay(relay, _pieces(raw, size)) == raw
    assert relay.done and relay.error is None and relay.usage == usage
    assert seen == [relay.upstream_id] and seen[0].startswith("resp_")


def test_responses_huge_final_object_in_small_reads() -> None:
    events, usage = _responses(size=400_000)
    raw = b"".join(events)
    assert len(events[-1]) > 400_000  # the whole answer repeated in the final response object
    relay = NativeResponsesStream()
    assert _relay(relay, _pieces(raw, 16_384)) == raw
    assert relay.done and relay.usage == usage and relay.response_id is not None


def test_responses_with_crlf_line_ends() -> None:
    events, usage = _responses()
    raw = b"".join(events).replace(b"\n", b"\r\n")
    relay = NativeResponsesStream()
    assert _relay(relay, _pieces(raw, 300)) == raw
    assert relay.done and relay.usage == usage and relay.response_id is not None


def test_responses_error_after_deltas_in_one_region() -> None:
    events, _ = _responses()
    head = b"".join(events[:-3]) + responses_error_event("Overloaded", sequence=len(events) - 3)
    relay = NativeResponsesStream()
    assert b"".join(relay.feed(head)) == head
    assert relay.error is not None and relay.error["error"]["message"] == "Overloaded"
    assert relay.finish() == []


def test_responses_text_that_looks_like_the_final_event_is_text() -> None:
    events, _ = _responses("event: response.completed\ndata: {}\n\n")
    cut = b"".join(events[:-1])
    relay = NativeResponsesStream()
    out = _relay(relay, [cut])
    assert out.startswith(cut) and not relay.done and relay.error is not None


@pytest.mark.parametrize("one_read", [True, False])
def test_responses_text_of_a_cut_stream_counts_the_deltas_only(one_read: bool) -> None:
    # output_text.done, the part and the item repeat the whole text: not counted again
    text = "kata " * 80
    events, _ = _responses(text)
    cut = events[:-1]
    relay = NativeResponsesStream()
    _relay(relay, [b"".join(cut)] if one_read else cut)
    assert relay.usage is None
    assert len(text) * 0.8 <= relay.completion_chars <= len(text) * 1.2


def test_usage_is_located_inside_bounds_and_deeper_usage_objects_still_read() -> None:
    events, usage = _responses()
    final = events[-1]
    data = final.index(b"data: ") + 6
    assert locate_usage(final, data, len(final) - 2) == usage
    assert locate_usage(final, 0, data) is None  # the usage lies outside the bounds
    deep: dict[str, Any] = {"input_tokens": 3, "output_tokens": 4, "total_tokens": 7,
                            "input_tokens_details": {"cached_tokens": 1, "by_modality": {"text": {"n": 1}}}}
    assert locate_usage(orjson.dumps({"output": [], "usage": deep})) == Usage(3, 4, 7, cached_tokens=1)
