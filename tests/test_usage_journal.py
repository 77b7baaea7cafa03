"""The usage journal's file format, offline: mapped segments, their zero tails, sealing, and the line format."""

from __future__ import annotations

import os
import uuid
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest

from webrana_proxy import usage_journal
from webrana_proxy.usage import LINE_FIELDS, UsageRecord
from webrana_proxy.usage_journal import SEGMENT_BYTES, Journal, claim_dead, rows_of


def record(n: int) -> UsageRecord:
    return UsageRecord(request_id=f"req_{n:016x}", user_id=uuid.uuid4(), proxy_key_id=None, provider="openai",
                       model="gpt-4o-mini", endpoint="chat", stream=False, status=200, prompt_tokens=n,
                       completion_tokens=2, total_tokens=n + 2, tokens_estimated=False, latency_ms=1, ttfb_ms=None,
                       upstream_request_id=None, error_type=None, created_at=datetime(2026, 12, 6, 1, 2, 3, tzinfo=UTC),
                       cost_idr_micro=5, org_id=uuid.uuid4())


def segments(journal: Journal) -> list[Path]:
    return sorted(journal.path.glob("*.jsonl"))


def test_a_row_is_in_the_segment_file_as_soon_as_append_returns(tmp_path: Path) -> None:
    journal = Journal(tmp_path, 60.0)  # the syncer never runs during the test
    try:
        lines = [record(i).to_line() for i in range(3)]
        for line in lines:
            journal.append(line)
        [segment] = segments(journal)
        raw = segment.read_bytes()  # another reader of the file: what the page cache holds, without any sync
        assert len(raw) == SEGMENT_BYTES  # reserved on disk up front
        assert rows_of(raw) == [line.rstrip(b"\n") for line in lines]
    finally:
        journal.close(remove=True)
    assert not journal.path.exists()


def test_sealed_segments_are_cut_to_their_rows_and_trimmed_once_committed(tmp_path: Path) -> None:
    journal = Journal(tmp_path, 60.0)
    try:
        one, two, three = (record(i).to_line() for i in (1, 2, 3))
        journal.append(one)
        journal.append(two)
        journal.rotate()
        journal.rotate()  # nothing new: no empty segment sealed
        journal.append(three)
        first, second = segments(journal)
        journal._sync()  # the syncer's round: the sealed segment is made durable and cut
        assert first.read_bytes() == one + two
        assert len(second.read_bytes()) == SEGMENT_BYTES
        assert journal.trim(1) == []
        assert journal.trim(2) == [first]
    finally:
        journal.close(remove=False)
    assert second.read_bytes() == three  # close cuts the segment in use too


def test_a_full_segment_rolls_over_without_losing_or_splitting_a_row(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(usage_journal, "SEGMENT_BYTES", 1000)
    journal = Journal(tmp_path, 60.0)
    try:
        lines = [record(i).to_line() for i in range(10)]  # ~300 bytes each: three to a segment
        for line in lines:
            journal.append(line)
        assert not journal.failed
        found = [row for path in segments(journal) for row in rows_of(path.read_bytes())]
        assert found == [line.rstrip(b"\n") for line in lines]
        assert len(segments(journal)) == 4
        assert journal.rows == 10
        assert journal.trim(9) == segments(journal)[:3]  # the sealed ones hold rows 1-3, 4-6, 7-9
    finally:
        journal.close(remove=True)


def test_a_dead_processs_journal_with_its_zero_tail_is_read_row_by_row(tmp_path: Path) -> None:
    journal = Journal(tmp_path, 60.0)
    lines = [record(i).to_line() for i in range(5)]
    for line in lines:
        journal.append(line)
    journal._stop.set()
    journal._syncer.join()
    os.close(journal._lock_fd)  # what the kernel does for a process killed with -9: the lock goes, the file stays
    [dead] = claim_dead(tmp_path, None, set())
    try:
        [segment] = dead.segments()
        rows = [UsageRecord.from_json(row) for row in rows_of(segment.read_bytes())]
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
    shorter = orjson.dumps(orjson.loads(line)[:-2])  # a version with fewer fields: the rest take their defaults
    old = UsageRecord.from_json(shorter)
    assert old.alias is None and old.org_id is None and old.request_id == rec.request_id
    with pytest.raises(ValueError, match="more fields"):
        UsageRecord.from_json(orjson.dumps([*orjson.loads(line), "x"]))
    assert len(LINE_FIELDS) == len(orjson.loads(line))
