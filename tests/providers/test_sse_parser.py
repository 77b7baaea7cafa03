"""The SSE parser follows the HTML spec and gives the same events however the bytes are split."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from tests.providers.provider_testkit import split_at
from webrana_proxy.sse import Event, EventSplitter, SSEParser


def parse_all(pieces: list[bytes]) -> list[Event]:
    parser = SSEParser()
    events: list[Event] = []
    for piece in pieces:
        events.extend(parser.feed(piece))
    return events + parser.close()


def test_data_lines_are_joined_with_newlines() -> None:
    assert parse_all([b"data: one\ndata: two\n\n"]) == [Event(data="one\ntwo")]


def test_all_three_line_endings_are_understood() -> None:
    events = parse_all([b"data: a\r\n\r\ndata: b\r\rdata: c\n\ndata: d\r\n\n"])
    assert [e.data for e in events] == ["a", "b", "c", "d"]


def test_comments_are_skipped_and_event_names_kept() -> None:
    events = parse_all([b": keep-alive\n\nevent: ping\ndata: {}\n\n", b':x\nevent:message_stop\ndata:{"a":1}\n\n'])
    assert events == [Event(data="{}", event="ping"), Event(data='{"a":1}', event="message_stop")]


def test_field_without_space_and_value_with_extra_space() -> None:
    events = parse_all([b"data:x\n\ndata:  y\n\n"])
    assert [e.data for e in events] == ["x", " y"]


def test_event_without_data_is_not_dispatched_and_type_resets() -> None:
    events = parse_all([b"event: ping\n\ndata: z\n\n"])
    assert events == [Event(data="z", event="message")]


def test_empty_data_line_dispatches_an_empty_event() -> None:
    assert parse_all([b"data:\n\n"]) == [Event(data="")]


def test_id_and_retry_are_read() -> None:
    events = parse_all([b"id: 7\nretry: 1500\ndata: q\n\n"])
    assert events == [Event(data="q", id="7", retry=1500)]


def test_utf8_character_split_between_reads_is_decoded_whole() -> None:
    raw = "data: kopi ☕ enak\n\n".encode()
    cut = raw.index("☕".encode()) + 1
    assert parse_all([raw[:cut], raw[cut:]]) == [Event(data="kopi ☕ enak")]


def test_cr_at_end_of_read_then_lf_is_one_line_end() -> None:
    assert [e.data for e in parse_all([b"data: a\r", b"\ndata: b\r", b"\n\r", b"\n"])] == ["a\nb"]


def test_leading_bom_is_dropped_even_when_split() -> None:
    assert parse_all([b"\xef\xbb", b"\xbfdata: a\n\n"]) == [Event(data="a")]


def test_unterminated_last_event_is_dispatched_on_close() -> None:
    assert [e.data for e in parse_all([b"data: a\n\ndata: tail"])] == ["a", "tail"]


_line_end = st.sampled_from([b"\n", b"\r\n", b"\r"])
_text = st.text(alphabet=st.characters(blacklist_characters="\r\n", blacklist_categories=("Cs",)), max_size=20)


@st.composite
def sse_streams(draw: st.DrawFn) -> bytes:
    out = b""
    for _ in range(draw(st.integers(0, 6))):
        for _ in range(draw(st.integers(0, 3))):
            kind = draw(st.sampled_from(["data", "data", "event", "comment", "id"]))
            value = draw(_text).encode()
            sep = draw(st.sampled_from([b": ", b":"]))
            line = b":" + value if kind == "comment" else kind.encode() + sep + value
            out += line + draw(_line_end)
        out += draw(_line_end)
    return out


@given(sse_streams(), st.lists(st.integers(0, 400), max_size=12))
def test_same_events_however_the_bytes_are_split(stream: bytes, cuts: list[int]) -> None:
    assert parse_all(split_at(stream, cuts)) == parse_all([stream])


@given(sse_streams(), st.lists(st.integers(0, 400), max_size=12))
def test_byte_at_a_time_gives_the_same_events(stream: bytes, cuts: list[int]) -> None:
    assert parse_all([stream[i : i + 1] for i in range(len(stream))]) == parse_all([stream])


@given(sse_streams(), st.lists(st.integers(0, 400), max_size=12))
def test_splitter_returns_whole_events_that_rejoin_to_the_input(stream: bytes, cuts: list[int]) -> None:
    splitter = EventSplitter()
    events: list[bytes] = []
    for piece in split_at(stream, cuts):
        events.extend(splitter.feed(piece))
    assert b"".join(events) + splitter.rest() == stream
    # Each event on its own parses to what the whole stream gives for it.
    # (the last event id carries over between events, so compare type and data only)
    whole = [(e.event, e.data) for e in parse_all([stream])]
    separately = [(e.event, e.data) for raw in events for e in parse_all([raw])]
    assert separately == whole[: len(separately)]


@given(sse_streams(), st.lists(st.integers(0, 400), max_size=12))
def test_splitter_joined_form_gives_the_same_events(stream: bytes, cuts: list[int]) -> None:
    listed, joined = EventSplitter(), EventSplitter()
    a: list[bytes] = []
    b = b""
    for piece in split_at(stream, cuts):
        a.extend(listed.feed(piece))
        region, _count = joined.feed_joined(piece)
        b += region
    assert b + joined.rest() == stream
    assert [e.data for e in parse_all([b])] == [e.data for e in parse_all([b"".join(a)])]


def test_splitter_fast_path_on_openai_bytes() -> None:
    splitter = EventSplitter()
    assert splitter.feed(b'data: {"a":1}\n\ndata: {"b"') == [b'data: {"a":1}\n\n']
    assert splitter.feed(b":2}\n\n") == [b'data: {"b":2}\n\n']
    assert splitter.rest() == b""
