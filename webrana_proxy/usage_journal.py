"""The usage journal: every usage row is appended to a file of this process's own before its answer ends.

One folder per process under ``WEBRANA_USAGE_JOURNAL_DIR`` (``journal-<pid>-<random>``), holding a ``lock`` file the
process keeps ``flock``-ed for its whole life and numbered segments of JSON lines. A segment is a file reserved on
disk and mapped into memory: a row costs one copy of its line into the map, no system call (the map is the page
cache: a process crash loses nothing); a thread ``fsync``s every ``WEBRANA_USAGE_FSYNC_INTERVAL`` (a node crash
loses at most that) and cuts sealed segments to their rows. A segment of a process that died keeps its zero tail,
which readers skip (``rows_of``). The writer seals the segment in use before each
flush and deletes sealed segments once PostgreSQL committed every row in them.

A folder whose lock can be taken belongs to a process that is gone (the kernel drops a dead process's locks, also
after ``kill -9``): whoever takes the lock replays that journal and removes it. Pids are only part of the name;
liveness is the lock, so pid reuse and PID namespaces (pods sharing a volume) cannot fool it.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import mmap
import os
import secrets
import shutil
import threading
from collections import deque
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("webrana.usage")
JOURNAL_PREFIX = "journal-"  # + pid-random: a live or dead process's journal
STAGING_PREFIX = ".new-journal-"  # a journal being created: renamed to journal-* only once its lock is held
LOCK_NAME = "lock"
SEGMENT_SUFFIX = ".jsonl"
SEGMENT_BYTES = 4 << 20  # a segment: ~13,000 rows; the writer seals one at every flush, so it rarely fills


def _segment_name(seq: int) -> str:
    return f"{seq:010d}{SEGMENT_SUFFIX}"


class _Segment:
    """One segment: a file of ``SEGMENT_BYTES`` reserved on disk (``posix_fallocate``: a full disk is an error here,
    never a SIGBUS on a later write), mapped shared; a row is a copy into the map (the page cache holds it the
    moment the copy ends), rows follow each other, the rest of the file is zeros until the syncer cuts it off."""

    __slots__ = ("fd", "map", "path", "used")

    def __init__(self, path: Path) -> None:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            os.posix_fallocate(fd, 0, SEGMENT_BYTES)
            self.map = mmap.mmap(fd, SEGMENT_BYTES)
        except BaseException:
            os.close(fd)
            with contextlib.suppress(OSError):
                path.unlink()
            raise
        self.fd = fd
        self.path = path
        self.used = 0

    def sync(self) -> None:
        """Make the rows on disk: an ``fsync`` of the file writes the map's dirty pages (and releases the GIL,
        which ``mmap.flush`` does not)."""
        os.fsync(self.fd)

    def retire(self) -> None:
        """Durable, cut to its rows, unmapped, closed (the syncer's work: never on the event loop)."""
        with contextlib.suppress(OSError):
            os.fsync(self.fd)
        with contextlib.suppress(OSError, ValueError):
            self.map.close()
        with contextlib.suppress(OSError):
            os.ftruncate(self.fd, self.used)
        with contextlib.suppress(OSError):
            os.close(self.fd)


class Journal:
    """This process's journal. ``append`` is the hot path: a copy into a mapped file, no system call, never
    raises."""

    def __init__(self, folder: Path, fsync_interval: float) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        name = f"{os.getpid()}-{secrets.token_hex(4)}"
        staging = folder / f"{STAGING_PREFIX}{name}"
        staging.mkdir()
        self._lock_fd = os.open(staging / LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        self.path = folder / f"{JOURNAL_PREFIX}{name}"
        os.rename(staging, self.path)  # visible to scanners only now, already locked
        self._seq = 1
        self._segment: _Segment | None = _Segment(self.path / _segment_name(self._seq))
        self.rows = 0  # rows appended since start (also those whose write failed): positions in the writer's queue
        self._rows_at_open = 0  # self.rows when the current segment was opened
        self._sealed: deque[tuple[Path, int]] = deque()  # (segment, self.rows at its end), oldest first
        self.failed = False  # the last append failed (disk full, I/O error): its row is in memory only
        self._dirty = False
        self._retired: deque[_Segment] = deque()  # sealed segments: the syncer makes them durable and closes them
        self._stop = threading.Event()
        self._syncer = threading.Thread(target=self._sync_loop, args=(fsync_interval,), daemon=True,
                                        name="usage-journal-fsync")
        self._syncer.start()

    def append(self, line: bytes) -> None:
        self.rows += 1
        segment = self._segment
        size = len(line)
        if segment is None or segment.used + size > SEGMENT_BYTES:
            segment = self._next_segment(size)
            if segment is None:
                return
        end = segment.used + size
        segment.map[segment.used:end] = line
        segment.used = end
        self._dirty = True
        if self.failed:
            self.failed = False
            log.warning("usage journal writable again", extra={"path": str(self.path)})

    def _next_segment(self, size: int) -> _Segment | None:
        """The segment in use is full (or could not be made): seal it and start the next one."""
        if size > SEGMENT_BYTES:
            self._failed(OSError(f"a usage row of {size} bytes is larger than a journal segment"))
            return None
        self.rows -= 1  # the row that did not fit belongs to the next segment
        self.rotate()
        self.rows += 1
        if self._segment is None or self._segment.used + size > SEGMENT_BYTES:
            return None  # rotate() failed and said so
        return self._segment

    def _failed(self, exc: OSError) -> None:
        if not self.failed:
            self.failed = True
            log.error("usage journal write failed; rows are kept in memory only until the disk recovers",
                      extra={"path": str(self.path), "error": str(exc)})

    def rotate(self) -> None:
        """Seal the segment in use if it holds rows; later rows go to a new one. Called by the writer (on the loop)
        before each flush, so a segment is fully committed soon after it is sealed."""
        if self.rows == self._rows_at_open and self._segment is not None:
            return
        old = self._segment
        try:
            new = _Segment(self.path / _segment_name(self._seq + 1))
        except OSError as exc:
            self._failed(exc)
            if old is not None and old.used + 1 > SEGMENT_BYTES:
                self._seal(old)
                self._segment = None  # full and no room for another: rows stay in memory until one can be made
            return
        self._seq += 1
        if old is not None:
            self._seal(old)
        self._segment = new
        self._rows_at_open = self.rows

    def _seal(self, segment: _Segment) -> None:
        self._sealed.append((segment.path, self.rows))
        self._retired.append(segment)

    def trim(self, committed: int) -> list[Path]:
        """Sealed segments every row of which is committed (``committed`` = queue positions done): to delete."""
        done = []
        while self._sealed and self._sealed[0][1] <= committed:
            done.append(self._sealed.popleft()[0])
        return done

    def shed(self) -> list[Path]:
        """Seal the segment in use and hand over every sealed segment: the caller replays them from disk (memory
        is full). Rows appended later go on as usual."""
        self.rotate()
        out = [p for p, _ in self._sealed]
        self._sealed.clear()
        return out

    def _sync_loop(self, interval: float) -> None:
        while not self._stop.wait(interval):
            self._sync()

    def _sync(self) -> None:
        while self._retired:
            self._retired.popleft().retire()
        segment = self._segment
        if self._dirty and segment is not None:
            self._dirty = False
            try:
                segment.sync()
            except (OSError, ValueError) as exc:
                log.error("usage journal fsync failed", extra={"path": str(self.path), "error": str(exc)})

    def close(self, *, remove: bool) -> None:
        """Stop the syncer, make everything durable, release the lock. ``remove``: every row is committed, the
        folder goes; otherwise it stays for whoever replays it next (a survivor, or the next start)."""
        self._stop.set()
        self._syncer.join()
        if self._segment is not None:
            self._retired.append(self._segment)
            self._segment = None
        self._dirty = False
        self._sync()
        if remove:
            shutil.rmtree(self.path, ignore_errors=True)
        os.close(self._lock_fd)  # after the removal: nobody replays a journal that is half gone


def rows_of(raw: bytes) -> list[bytes]:
    """The lines of a segment or spill file as read from disk: the zeros of a segment's unused reserve (a process
    that died before its segment was cut) are not lines."""
    return [line for line in raw.rstrip(b"\0").splitlines() if line.strip(b"\0")]


@dataclass
class DeadJournal:
    """The journal of a process that is gone, claimed by holding its lock (nobody else replays it meanwhile)."""

    path: Path
    lock_fd: int

    def segments(self) -> list[Path]:
        return sorted(self.path.glob("*" + SEGMENT_SUFFIX))

    def remove(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)
        self.release()

    def release(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self.lock_fd)


def claim_dead(folder: Path, own: Path | None, held: set[Path]) -> list[DeadJournal]:
    """Journals in ``folder`` whose owner is gone, now locked by us (``held``: those we hold already)."""
    if not folder.is_dir():
        return []
    claimed = []
    for path in sorted(folder.glob(JOURNAL_PREFIX + "*")):
        if path == own or path in held:
            continue
        try:
            fd = os.open(path / LOCK_NAME, os.O_RDWR | os.O_CLOEXEC)
        except (FileNotFoundError, NotADirectoryError):
            continue  # being removed by whoever replayed it
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)  # alive, or being replayed by another process
            continue
        if os.fstat(fd).st_nlink == 0:  # replayed and removed between our open and our lock
            os.close(fd)
            continue
        claimed.append(DeadJournal(path, fd))
    return claimed
