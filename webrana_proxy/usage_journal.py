"""The usage journal: every usage row is appended to a file of this process's own before its answer ends.

One folder per process under ``WEBRANA_USAGE_JOURNAL_DIR`` (``journal-<pid>-<random>``), holding a ``lock`` file the
process keeps ``flock``-ed for its whole life and numbered segments of JSON lines. The rows recorded in one loop turn
cost one ``pwrite(2)`` of one line (the page cache has it: a process crash loses nothing); a thread ``fdatasync``s
every ``WEBRANA_USAGE_FSYNC_INTERVAL`` (a node crash loses at most that).

A segment is made by that thread before it is needed: ``SEGMENT_BYTES`` of zeros, written and synced. Rows then
overwrite the zeros, so an append never changes the file's size or allocates a block, and neither it nor the
periodic sync needs a filesystem journal transaction (on ext4 an appending write takes one each time, and every
sync commits them: measured here, that cost 0.1 ms of c=1 latency). Readers drop the zeros after the last line
(``segment_bytes``). The writer seals the segment in use when it is full or, at a flush, once it is
``ROTATE_SECONDS`` old, and deletes sealed segments once PostgreSQL committed every row in them.

A folder whose lock can be taken belongs to a process that is gone (the kernel drops a dead process's locks, also
after ``kill -9``): whoever takes the lock replays that journal and removes it. Pids are only part of the name;
liveness is the lock, so pid reuse and PID namespaces (pods sharing a volume) cannot fool it.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import itertools
import logging
import os
import secrets
import shutil
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("webrana.usage")
JOURNAL_PREFIX = "journal-"  # + pid-random: a live or dead process's journal
STAGING_PREFIX = ".new-journal-"  # a journal being created: renamed to journal-* only once its lock is held
LOCK_NAME = "lock"
SEGMENT_SUFFIX = ".jsonl"
OPEN_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
SEGMENT_BYTES = 1 << 20  # ~3,300 rows: under full load a segment lasts about a second
ZEROS_PER_WRITE = 64 << 10  # a segment's zeros are written in pieces this size (see _make_segment)
ROTATE_SECONDS = 2.0  # a segment in use this long is sealed at the writer's next flush, so committed rows leave disk
GROWING = sys.maxsize  # the capacity of a segment made on the loop when no spare was ready: it grows as rows come


def _segment_name(seq: int) -> str:
    return f"{seq:010d}{SEGMENT_SUFFIX}"


def segment_bytes(raw: bytes) -> bytes:
    """A segment's lines without the zeros after the last one (JSON lines never hold a zero byte)."""
    return raw.rstrip(b"\0")


@dataclass
class _Segment:
    fd: int
    path: Path
    capacity: int  # bytes: SEGMENT_BYTES, or GROWING


def _make_segment(path: Path, size: int) -> _Segment:
    """A new segment file: ``size`` zero bytes written and synced, so rows overwrite them in place (0: an empty
    file that grows, for when no spare is ready).

    The zeros go 64 KiB per write, so the page cache holds the segment in folios no larger than that. Written in one
    piece, a kernel with large folios (Linux 6.x on ext4) keeps it as one 1 MiB folio, and every row written into
    it walks all of the folio's blocks: 2.3-2.7 us instead of 1.1 us per 330-byte ``pwrite`` measured here (Linux
    6.18; 4 KiB and 16 KiB pieces measure the same as 64 KiB, and each piece is one more GIL hand-over for the
    thread that makes segments)."""
    fd = os.open(path, OPEN_FLAGS, 0o600)
    try:
        if size:
            zeros = bytes(min(size, ZEROS_PER_WRITE))
            for offset in range(0, size, ZEROS_PER_WRITE):
                piece = zeros[:size - offset]
                if os.pwrite(fd, piece, offset) != len(piece):
                    raise OSError(errno.ENOSPC, "short write")
            os.fdatasync(fd)
    except OSError:
        os.close(fd)
        path.unlink(missing_ok=True)
        raise
    return _Segment(fd, path, size or GROWING)


class Journal:
    """This process's journal. ``append`` is the hot path: one ``pwrite(2)`` into space made earlier, no lock,
    never raises."""

    def __init__(self, folder: Path, fsync_interval: float) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        name = f"{os.getpid()}-{secrets.token_hex(4)}"
        staging = folder / f"{STAGING_PREFIX}{name}"
        staging.mkdir()
        self._lock_fd = os.open(staging / LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        self.path = folder / f"{JOURNAL_PREFIX}{name}"
        os.rename(staging, self.path)  # visible to scanners only now, already locked
        self._seqs = itertools.count(1)  # segment numbers (next() is atomic: the loop and the syncer both take)
        self._seg = self._new(SEGMENT_BYTES)  # in use
        self._off = 0  # where the next line goes in it
        self._opened = time.monotonic()
        self._spare: _Segment | None = None  # made by the syncer; only the loop takes it
        self.rows = 0  # rows appended since start (also those whose write failed): positions in the writer's queue
        self._rows_at_open = 0  # self.rows when the current segment was opened
        self._sealed: deque[tuple[Path, int]] = deque()  # (segment, self.rows at its end), oldest first
        self.failed = False  # the last append failed (disk full, I/O error): its row is in memory only
        self._dirty = False
        self._retired: deque[int] = deque()  # sealed segments' descriptors: the syncer syncs and closes them
        self._stop = threading.Event()
        self._syncer = threading.Thread(target=self._sync_loop, args=(fsync_interval,), daemon=True,
                                        name="usage-journal-fsync")
        self._syncer.start()

    def _new(self, size: int) -> _Segment:
        return _make_segment(self.path / _segment_name(next(self._seqs)), size)

    def append(self, line: bytes, rows: int = 1) -> None:
        """``line`` holds ``rows`` rows (positions in the writer's queue)."""
        seg = self._seg
        if self._off + len(line) > seg.capacity:
            self._next(len(line))  # full: sealed, the spare takes over
            seg = self._seg
        self.rows += rows
        try:
            written = os.pwrite(seg.fd, line, self._off)
        except OSError as exc:
            self._failed(exc)
            return
        self._off += written
        if written != len(line):  # a short write: the disk is full; end the torn line so the next one stays whole
            with contextlib.suppress(OSError):
                self._off += os.pwrite(seg.fd, b"\n", self._off)
            self._failed(OSError("short write"))
            return
        self._dirty = True
        if self.failed:
            self.failed = False
            log.warning("usage journal writable again", extra={"path": str(self.path)})

    def _failed(self, exc: OSError) -> None:
        if not self.failed:
            self.failed = True
            log.error("usage journal write failed; rows are kept in memory only until the disk recovers",
                      extra={"path": str(self.path), "error": str(exc)})

    def rotate(self) -> None:
        """Seal the segment in use if it holds rows; later rows go to the next one."""
        if self.rows != self._rows_at_open:
            self._next(0)

    def rotate_if_due(self) -> None:
        """At a flush: seal the segment in use once it is ``ROTATE_SECONDS`` old, or if it is one that grows and a
        spare is ready (so a sealed segment is fully committed soon after, and trimmed)."""
        if (self._seg.capacity == GROWING and self._spare is not None) or \
                time.monotonic() - self._opened >= ROTATE_SECONDS:
            self.rotate()

    def _next(self, need: int) -> None:
        """Seal the segment in use (even empty: it is full) and go on in the syncer's spare, or in a file made here
        if none is ready or the line is larger than a segment (the spare then stays for later)."""
        spare = self._spare
        if spare is not None and need <= spare.capacity:
            self._spare = None  # the syncer makes the next one
        else:
            try:
                spare = self._new(0)
            except OSError as exc:
                self._failed(exc)
                return  # the rows stay in memory; the next append tries again
        self._sealed.append((self._seg.path, self.rows))
        self._retired.append(self._seg.fd)
        self._seg, self._off = spare, 0
        self._rows_at_open = self.rows
        self._opened = time.monotonic()

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
        while True:
            if self._spare is None:
                self._make_spare()
            if self._stop.wait(interval):
                return
            self._sync()

    def _make_spare(self) -> None:
        try:
            self._spare = self._new(SEGMENT_BYTES)
        except OSError as exc:  # the loop makes growing segments meanwhile, and reports if those fail too
            log.warning("usage journal segment could not be made ahead", extra={"path": str(self.path),
                                                                                  "error": str(exc)})

    def _sync(self) -> None:
        retired = self._retired
        while retired:  # popleft, not a swap of lists: the loop may be appending to it this very moment
            fd = retired.popleft()
            with contextlib.suppress(OSError):
                os.fdatasync(fd)
            with contextlib.suppress(OSError):
                os.close(fd)
        seg = self._seg  # only this thread closes descriptors: one the loop retires meanwhile stays open
        if self._dirty:
            self._dirty = False
            try:
                os.fdatasync(seg.fd)  # the rows (and a growing segment's size that reaches them); not the times
            except OSError as exc:
                log.error("usage journal fsync failed", extra={"path": str(self.path), "error": str(exc)})

    def close(self, *, remove: bool) -> None:
        """Stop the syncer, make everything durable, release the lock. ``remove``: every row is committed, the
        folder goes; otherwise it stays for whoever replays it next (a survivor, or the next start)."""
        self._stop.set()
        self._syncer.join()
        if self._spare is not None:  # never used: zeros only
            self._retired.append(self._spare.fd)
            self._spare.path.unlink(missing_ok=True)
            self._spare = None
        self._retired.append(self._seg.fd)
        self._dirty = False
        self._sync()
        if remove:
            shutil.rmtree(self.path, ignore_errors=True)
        os.close(self._lock_fd)  # after the removal: nobody replays a journal that is half gone


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
    """Journals in ``folder`` whose owner is gone, now locked by us (``held``: those we hold already). Staging
    folders of processes that died while creating their journal are removed on the way."""
    if not folder.is_dir():
        return []
    _remove_dead_staging(folder)
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


STAGING_GRACE_SECONDS = 60.0  # a staging folder without a lock this old was left by a crash, not being created


def _remove_dead_staging(folder: Path) -> None:
    """A staging folder never holds rows (segments are made after the rename). One a minute old whose lock is free
    (or missing) belongs to a process that died between ``mkdir`` and ``rename``: a live one renames it at once."""
    for path in folder.glob(STAGING_PREFIX + "*"):
        try:
            if time.time() - path.stat().st_mtime < STAGING_GRACE_SECONDS:
                continue
            fd = os.open(path / LOCK_NAME, os.O_RDWR | os.O_CLOEXEC)
        except FileNotFoundError:
            shutil.rmtree(path, ignore_errors=True)
            continue
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            continue  # held: its process is alive after all
        else:
            shutil.rmtree(path, ignore_errors=True)
        finally:
            os.close(fd)
