"""Server-sent events, read the way the HTML spec says (not by splitting on ``\\n\\n``).

Two readers:

* ``SSEParser``: a full, incremental parser. Lines end in ``\\r\\n``, ``\\n`` or ``\\r``; several ``data:``
  lines are joined with ``\\n``; lines starting with ``:`` are comments; ``event:`` names the type; a field
  may have no space after the colon. Bytes may be split anywhere, even inside a UTF-8 character: only
  complete lines are decoded, so a split character is never decoded half.
* ``EventSplitter``: the fast path for OpenAI-shaped passthrough. It only finds where complete events end
  and hands back the raw bytes untouched, so the relay can forward them without decoding or re-encoding.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import NamedTuple

_BOM = b"\xef\xbb\xbf"
# One line terminator, atomically: "\r\n" is never re-read as "\r" followed by "\n".
_TERMINATOR = re.compile(rb"\r\n|\r|\n")
# A blank line: a terminator directly followed by another (each atomic, so "\r\n" counts once).
_BLANK_LINE = re.compile(rb"(?>\r\n|\r|\n)(?>\r\n|\r|\n)")


@dataclass(frozen=True, slots=True)
class Event:
    """One dispatched event. ``event`` is ``"message"`` when the stream named no type."""

    data: str
    event: str = "message"
    id: str | None = None
    retry: int | None = None


class SSEParser:
    """Incremental SSE parser: ``feed(bytes) -> [Event]`` for any split of the stream, ``close()`` at end."""

    __slots__ = ("_buf", "_data", "_event", "_last_id", "_retry", "_skip_lf", "_started")

    def __init__(self) -> None:
        self._buf = b""
        self._data: list[str] = []
        self._event = ""
        self._last_id: str | None = None
        self._retry: int | None = None
        self._skip_lf = False  # the previous chunk ended in "\r": a leading "\n" belongs to it
        self._started = False  # the optional BOM is only looked for at the very start

    def feed(self, chunk: bytes) -> list[Event]:
        buf = self._buf + chunk if self._buf else chunk
        if not self._started:
            if len(buf) < len(_BOM) and _BOM.startswith(buf):
                self._buf = buf
                return []
            self._started = True
            if buf.startswith(_BOM):
                buf = buf[len(_BOM):]
        if self._skip_lf and buf:
            self._skip_lf = False
            if buf[:1] == b"\n":
                buf = buf[1:]
        events: list[Event] = []
        pos = 0
        end = len(buf)
        while pos < end:
            m = _TERMINATOR.search(buf, pos)
            if m is None:
                break
            line = buf[pos:m.start()]
            if m.group() == b"\r" and m.end() == end:
                self._skip_lf = True  # "\r" at the end: a "\n" may follow in the next chunk
            pos = m.end()
            ev = self._line(line)
            if ev is not None:
                events.append(ev)
        self._buf = buf[pos:]
        return events

    def close(self) -> list[Event]:
        """End of stream. Per the spec an unterminated last event is dropped; we are lenient and
        dispatch a final event whose last line was complete or whose data line merely lacks its newline."""
        events: list[Event] = []
        if self._buf:
            ev = self._line(self._buf)
            self._buf = b""
            if ev is not None:
                events.append(ev)
        ev = self._dispatch()
        if ev is not None:
            events.append(ev)
        return events

    def _line(self, raw: bytes) -> Event | None:
        if not raw:
            return self._dispatch()
        if raw[:1] == b":":
            return None  # comment / keep-alive
        line = raw.decode("utf-8", "replace")
        name, sep, value = line.partition(":")
        if sep and value[:1] == " ":
            value = value[1:]
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id":
            if "\x00" not in value:
                self._last_id = value
        elif name == "retry" and value.isascii() and value.isdigit():
            self._retry = int(value)
        return None

    def _dispatch(self) -> Event | None:
        if not self._data:
            self._event = ""
            return None
        ev = Event(data="\n".join(self._data), event=self._event or "message", id=self._last_id,
                   retry=self._retry)
        self._data = []
        self._event = ""
        return ev


class EventSplitter:
    """Finds complete events in a byte stream without decoding them.

    ``feed`` returns the bytes of every event completed so far (each including its terminating blank line);
    the concatenation of everything returned plus ``rest()`` always equals the input. The common OpenAI
    case (only ``\\n`` line ends) is a plain ``bytes.find``; a ``\\r`` anywhere switches to the general rule.
    """

    __slots__ = ("_buf", "_cr")

    def __init__(self) -> None:
        self._buf = b""
        self._cr = False

    def feed(self, chunk: bytes) -> list[bytes]:
        buf = self._buf + chunk if self._buf else chunk
        if not self._cr and b"\r" in chunk:
            self._cr = True
        out: list[bytes] = []
        pos = 0
        if not self._cr:
            while True:
                i = buf.find(b"\n\n", pos)
                if i < 0:
                    break
                out.append(buf[pos:i + 2])
                pos = i + 2
        else:
            end = len(buf)
            while True:
                m = _BLANK_LINE.search(buf, pos)
                if m is None:
                    break
                stop = m.end()
                # "...\r" at the very end: wait, a "\n" may still belong to this terminator.
                if stop == end and buf[stop - 1:stop] == b"\r":
                    break
                out.append(buf[pos:stop])
                pos = stop
        self._buf = buf[pos:] if pos else buf
        return out

    def feed_joined(self, chunk: bytes) -> tuple[bytes, int]:
        """Like ``feed`` but returns all complete events as one bytes object and how many there are
        (no per-event slicing: the cheapest form when the caller forwards them as they are)."""
        buf = self._buf + chunk if self._buf else chunk
        if not self._cr and b"\r" in chunk:
            self._cr = True
        if self._cr:
            events = self._split_cr(buf)
            return b"".join(events), len(events)
        cut = buf.rfind(b"\n\n")
        if cut < 0:
            self._buf = buf
            return b"", 0
        cut += 2
        self._buf = buf[cut:]
        done = buf[:cut] if self._buf else buf
        return done, done.count(b"\n\n")

    def _split_cr(self, buf: bytes) -> list[bytes]:
        self._buf = b""
        return self.feed(buf)

    def rest(self) -> bytes:
        """Bytes received after the last complete event (an unterminated tail)."""
        return self._buf


class EventRegions:
    """Cuts a byte stream into regions of whole events without reading them: the native relays' framing.

    ``feed`` returns every event the new bytes completed, as one ``bytes`` (``b""`` when none), exactly as they
    came; concatenating everything returned and ``rest()`` gives the input back. The usual case (lines end in
    ``\\n`` only) is one ``bytes.rfind``; an event arriving over many reads (a final response object of
    megabytes) is kept as a list of pieces and only the new bytes are searched, so it costs O(size), not
    O(size x reads). The first ``\\r`` hands the stream to ``EventSplitter``'s general rule.
    """

    __slots__ = ("_parts", "_splitter")

    def __init__(self) -> None:
        self._parts: list[bytes] = []  # an unfinished event, in the pieces it came in
        self._splitter: EventSplitter | None = None  # the general reader, once a "\r" was seen

    def feed(self, data: bytes) -> bytes:
        if self._splitter is not None:
            return self._splitter.feed_joined(data)[0]
        parts = self._parts
        if b"\r" in data:
            self._splitter = EventSplitter()
            if parts:
                data = b"".join(parts) + data
                parts.clear()
            return self._splitter.feed_joined(data)[0]
        cut = data.rfind(b"\n\n")
        if parts:
            # The pieces held hold no blank line: only the new bytes (and the seam) can end the event.
            if cut < 0 and (data[:1] != b"\n" or parts[-1][-1:] != b"\n"):
                if data:
                    parts.append(data)
                return b""
            head = b"".join(parts)
            parts.clear()
            cut = len(head) + cut if cut >= 0 else len(head) - 1
            data = head + data
        elif cut < 0:
            if data:
                parts.append(data)
            return b""
        cut += 2
        if cut == len(data):
            return data
        parts.append(data[cut:])
        return data[:cut]

    def rest(self) -> bytes:
        """Bytes received after the last complete event (an unterminated tail)."""
        if self._splitter is not None:
            return self._splitter.rest()
        return b"".join(self._parts)


# One named event found in a region: (name, where the event starts, where its data starts, where its data line
# ends: the event's "\n\n" is at that index).
Named = tuple[bytes, int, int, int]


def find_named(region: bytes, names: re.Pattern[bytes]) -> list[Named] | None:
    """The events of ``region`` (whole events, ``\\n`` line ends) whose ``event:`` line ``names`` matches, found
    with one regex scan instead of reading every event.

    ``names`` matches a whole event line: ``event: ?(NAME|...)\\n``. Inside JSON a newline is escaped, so such a
    line is never text; one that is not at a line start is part of another line and skipped. None when a named
    event is not in the plain form ``event: NAME\\ndata: DATA\\n\\n`` (the caller then reads the region with
    ``SSEParser``). Suits regions of many small events; ``walk_named`` suits a few large ones."""
    found: list[Named] = []
    for m in names.finditer(region):
        start, line_end = m.span()
        if start:
            if region[start - 1] != 0x0A:
                continue
            if start > 1 and region[start - 2] != 0x0A:
                return None  # another field line comes first
        if region[line_end:line_end + 5] != b"data:":
            return None
        data = line_end + 6 if region[line_end + 5] == 0x20 else line_end + 5
        end = region.find(b"\n", data)
        if region[end + 1] != 0x0A:
            return None  # more lines follow its data line
        found.append((m[1], start, data, end))
    return found


class Walked(NamedTuple):
    found: list[Named]  # the named events
    deltas: int  # how many events are named ``...suffix`` (text deltas)
    delta_bytes: int  # their bytes, event lines included
    first_delta: Named | None  # the first of them


def walk_named(region: bytes, names: frozenset[bytes], suffix: bytes) -> Walked | None:
    """Like ``find_named`` for regions of a few large events: steps from event to event with ``bytes.find`` of
    a newline (memchr) rather than scanning every byte of the data lines with a regex. Also counts the events
    named ``...suffix`` and their bytes (the text deltas, for an estimate). None when any event of the region
    is not in the plain form."""
    found: list[Named] = []
    first: Named | None = None
    pos, size, deltas, delta_bytes = 0, len(region), 0, 0
    cut = -len(suffix)
    while pos < size:
        if region[pos] == 0x0A:  # an extra blank line
            pos += 1
            continue
        line_end = region.find(b"\n", pos)
        if region[pos:pos + 6] != b"event:" or region[line_end + 1:line_end + 6] != b"data:":
            return None
        data = line_end + 7 if region[line_end + 6] == 0x20 else line_end + 6
        end = region.find(b"\n", data)
        if region[end + 1] != 0x0A:
            return None
        name = region[pos + 7 if region[pos + 6] == 0x20 else pos + 6:line_end]
        if name in names:
            found.append((name, pos, data, end))
        elif name[cut:] == suffix:
            if first is None:
                first = (name, pos, data, end)
            deltas += 1
            delta_bytes += end + 2 - pos
        pos = end + 2
    return Walked(found, deltas, delta_bytes, first)
