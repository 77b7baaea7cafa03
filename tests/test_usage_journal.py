"""The usage journal's file format, offline: segments, sealing, trimming, a dead process's journal, the line format."""

from __future__ import annotations

import fcntl
import os
import uuid
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest

from webrana_proxy.usage import LINE_FIELDS, UsageRecord, batch_line, parse_lines, records_of
from webrana_proxy.usage_journal import LOCK_NAME, STAGING_GRACE_SECONDS, STAGING_PREFIX, Journal, claim_dead


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
        assert segment.read_bytes() == b"".join(lines)  # another reader of the file: the page cache has them
    finally:
        journal.close(remove=True)
    assert not journal.path.exists()


def test_sealed_segments_are_trimmed_once_committed(tmp_path: Path) -> None:
    journal = Journal(tmp_path, 60.0)
    try:
        one, two, three = (record(i).to_line() for i in (1, 2, 3))
        journal.append(one)
        journal.append(two)
        journal.rotate()
        journal.rotate()  # nothing new: no empty segment sealed
        journal.append(three)
        first, second = segments(journal)
        assert first.read_bytes() == one + two
        assert journal.trim(1) == []
        assert journal.trim(2) == [first]
    finally:
        journal.close(remove=False)
    assert second.read_bytes() == three


def test_a_dead_processs_journal_is_claimed_and_read_row_by_row(tmp_path: Path) -> None:
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
        rows = [UsageRecord.from_json(row) for row in segment.read_bytes().splitlines()]
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
