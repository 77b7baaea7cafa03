"""The usage journal's file format, offline: segments, sealing, trimming, a dead process's journal, the line format."""

from __future__ import annotations

import fcntl
import os
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest

from webrana_proxy import usage_journal
from webrana_proxy.usage import LINE_FIELDS, UsageRecord, batch_line, parse_lines, records_of
from webrana_proxy.usage_journal import (
    LOCK_NAME,
    SEGMENT_BYTES,
    STAGING_GRACE_SECONDS,
    STAGING_PREFIX,
    Journal,
    claim_dead,
    segment_bytes,
)


def record(n: int) -> UsageRecord:
    return UsageRecord(request_id=f"req_{n:016x}", user_id=uuid.uuid4(), proxy_key_id=None, provider="openai",
                       model="gpt-4o-mini", endpoint="chat", stream=False, status=200, prompt_tokens=n,
                       completion_tokens=2, total_tokens=n + 2, tokens_estimated=False, latency_ms=1, ttfb_ms=None,
                       upstream_request_id=None, error_type=None, created_at=datetime(2026, 12, 6, 1, 2, 3, tzinfo=UTC),
                       cost_idr_micro=5, org_id=uuid.uuid4())


def segments(journal: Journal) -> list[Path]:
    return sorted(journal.path.glob("*.jsonl"))


def lines_in(path: Path) -> bytes:
    return segment_bytes(path.read_bytes())


def spare_ready(journal: Journal) -> None:
    """The syncer makes the next segment ahead, right after it starts."""
    deadline = time.monotonic() + 10
    while journal._spare is None:
        assert time.monotonic() < deadline, "no spare segment made"
        time.sleep(0.01)


def test_a_row_is_in_the_segment_file_as_soon_as_append_returns(tmp_path: Path) -> None:
    journal = Journal(tmp_path, 60.0)  # the syncer makes a spare segment, then sleeps through the test
    try:
        lines = [record(i).to_line() for i in range(3)]
        for line in lines:
            journal.append(line)
        in_use = segments(journal)[0]
        assert lines_in(in_use) == b"".join(lines)  # another reader of the file: the page cache has them
        # The rows overwrote zeros written ahead: the file's size never changed (no filesystem transaction).
        assert in_use.stat().st_size == SEGMENT_BYTES
        assert in_use.read_bytes()[len(b"".join(lines)):] == bytes(SEGMENT_BYTES - len(b"".join(lines)))
    finally:
        journal.close(remove=True)
    assert not journal.path.exists()


def test_sealed_segments_are_trimmed_once_committed(tmp_path: Path) -> None:
    journal = Journal(tmp_path, 60.0)
    try:
        one, two, three = (record(i).to_line() for i in (1, 2, 3))
        journal.append(one)
        journal.append(two)
        first = segments(journal)[0]
        journal.rotate()
        journal.rotate()  # nothing new: no empty segment sealed
        journal.append(three)
        assert lines_in(first) == one + two
        assert journal.trim(1) == []
        assert journal.trim(2) == [first]
        [second] = [p for p in segments(journal) if p != first and lines_in(p)]
    finally:
        journal.close(remove=False)
    assert lines_in(second) == three
    assert [p for p in segments(journal) if not lines_in(p)] == []  # the unused spare is gone


@pytest.mark.parametrize("size", [usage_journal.ZEROS_PER_WRITE * 3, usage_journal.ZEROS_PER_WRITE * 2 + 100, 100])
def test_a_segment_is_made_of_exactly_its_size_in_zeros_and_rows_overwrite_them(tmp_path: Path, size: int) -> None:
    seg = usage_journal._make_segment(tmp_path / "s.jsonl", size)  # in pieces; a last, shorter piece too
    try:
        assert (tmp_path / "s.jsonl").read_bytes() == bytes(size) and seg.capacity == size
        os.pwrite(seg.fd, b"[1]\n", 0)
        assert (tmp_path / "s.jsonl").stat().st_size == size  # overwritten in place: the file did not grow
        assert segment_bytes((tmp_path / "s.jsonl").read_bytes()) == b"[1]\n"
    finally:
        os.close(seg.fd)


def test_a_full_segment_goes_on_in_the_next_and_a_huge_line_gets_its_own(tmp_path: Path) -> None:
    journal = Journal(tmp_path, 0.05)  # the syncer makes a new spare within 50 ms of one being taken
    try:
        spare_ready(journal)
        line = record(1).to_line()
        n = SEGMENT_BYTES // len(line) + 5  # more than one segment holds
        for _ in range(n):
            journal.append(line)
        spare_ready(journal)
        spare = journal._spare
        huge = orjson.dumps([list(record(2).to_line().decode())] * 3) + b"\n"  # a line larger than a segment
        huge = huge * (SEGMENT_BYTES // len(huge) + 1)
        journal.append(huge)
        assert journal._spare is spare  # too small for it: kept for the next segment, not thrown away
        sealed = journal.trim(journal.rows)  # every row counted: every sealed segment listed, oldest first
        assert len(sealed) == 2
        assert [len(lines_in(p).splitlines()) for p in sealed] == [SEGMENT_BYTES // len(line), 5]
        [last] = [p for p in segments(journal) if p not in sealed and lines_in(p)]
        assert lines_in(last) == huge
        assert not journal.failed
    finally:
        journal.close(remove=True)


def test_a_dead_processs_journal_is_claimed_and_read_row_by_row(tmp_path: Path) -> None:
    journal = Journal(tmp_path, 60.0)
    lines = [record(i).to_line() for i in range(5)]
    for line in lines:
        journal.append(line)
    journal._stop.set()
    journal._syncer.join()
    os.close(journal._lock_fd)  # what the kernel does for a process killed with -9: the lock goes, the files stay
    [dead] = claim_dead(tmp_path, None, set())
    try:
        found = b"".join(lines_in(p) for p in dead.segments())  # the one in use, and a spare of zeros
        rows = [UsageRecord.from_json(row) for row in found.splitlines()]
        assert [r.request_id for r in rows] == [f"req_{i:016x}" for i in range(5)]
    finally:
        dead.release()


def test_the_line_is_an_array_by_position_and_older_lines_still_read() -> None:
    rec = record(7)
    line = rec.to_line()
    assert line.startswith(b"[") and line.endswith(b"\n")
    assert UsageRecord.from_json(line) == rec
    named = orjson.dumps(rec, default=str)  # journals and spill files of versions before the array
    assert UsageRecord.from_json(named) == rec
    # a version with fewer fields (before aliases and teams): the rest take their defaults
    shorter = orjson.dumps(orjson.loads(line)[:LINE_FIELDS.index("alias")])
    old = UsageRecord.from_json(shorter)
    assert old.alias is None and old.org_id is None and old.request_id == rec.request_id
    with pytest.raises(ValueError, match="more fields"):
        UsageRecord.from_json(orjson.dumps([*orjson.loads(line), "x"]))
    assert len(LINE_FIELDS) == len(orjson.loads(line))


def test_a_batch_line_holds_a_loop_turns_rows_in_order() -> None:
    rows = [record(i) for i in range(3)]
    line = batch_line(rows)
    assert line.count(b"\n") == 1 and line.startswith(b"[[")
    assert records_of(line.rstrip(b"\n")) == rows
    assert records_of(rows[0].to_line()) == [rows[0]]  # a line of one row (and the outage stream's lines)
    assert records_of(orjson.dumps(rows[1], default=str)) == [rows[1]]  # a named row of an older version
    rows_in_file, bad = parse_lines([line.rstrip(b"\n"), b'[["torn', rows[2].to_line().rstrip(b"\n")])
    assert rows_in_file == [*rows, rows[2]] and bad == [b'[["torn']


def test_staging_folders_of_processes_that_died_creating_their_journal_are_removed(tmp_path: Path) -> None:
    def staging(name: str, *, lock: bool, age: float) -> tuple[Path, int | None]:
        path = tmp_path / f"{STAGING_PREFIX}{name}"
        path.mkdir()
        fd = None
        if lock:
            fd = os.open(path / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o600)
        old = datetime.now(UTC).timestamp() - age
        os.utime(path, (old, old))
        return path, fd

    dead, fd = staging("1-dead", lock=True, age=STAGING_GRACE_SECONDS + 5)
    assert fd is not None
    os.close(fd)  # the process died: its lock went with it
    lockless, _ = staging("2-lockless", lock=False, age=STAGING_GRACE_SECONDS + 5)
    alive, held = staging("3-alive", lock=True, age=STAGING_GRACE_SECONDS + 5)
    assert held is not None
    fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
    fresh, _ = staging("4-fresh", lock=False, age=0)  # being created right now: renamed in a moment
    try:
        assert claim_dead(tmp_path, None, set()) == []
        assert not dead.exists() and not lockless.exists()
        assert alive.exists() and fresh.exists()
    finally:
        os.close(held)
