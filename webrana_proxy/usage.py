"""Usage rows, written off the hot path, and never only in memory.

The gateway calls ``UsageWriter.record`` (synchronous, O(1)): the row is appended to this process's journal (one
``write(2)``, ``usage_journal.py``) and put on an in-memory deque. A background task writes batches in one
transaction, idempotently: the rows go to a staging table (``COPY``) and into ``proxy_requests`` with
``ON CONFLICT (request_id) DO NOTHING``, and only the rows actually inserted move the daily roll-up per
user/provider/model (Asia/Jakarta days) and each proxy key's request count and last use. A row leaves memory only
after its batch commits; its journal segment is deleted once every row in it is committed.

What survives what:
- a crash of the process (``kill -9``, OOM): every answered call's row is in the journal (page cache); the next
  start, or a surviving worker of the same group, replays journals whose owner is gone (``flock`` tells).
- a crash of the node: all but the last ``WEBRANA_USAGE_FSYNC_INTERVAL`` of rows, if the journal folder survives.
- PostgreSQL away: rows wait in memory (up to ``usage_queue_max``; beyond that memory lets go of them and they are
  replayed from the journal), and from the first failed write also in a Redis stream every replica drains when
  PostgreSQL returns (``usage_redis.py``): a pod deleted mid-outage leaves its rows there.
Replays of rows already written are no-ops, so a row that arrives twice (journal and stream) counts once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import operator
import os
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Generator
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import asyncpg
import orjson
from redis.asyncio import Redis
from redis.exceptions import RedisError

from webrana_proxy.db import Conn
from webrana_proxy.metrics import Metrics
from webrana_proxy.usage_journal import DeadJournal, Journal, claim_dead, segment_bytes
from webrana_proxy.usage_redis import OutageStream

log = logging.getLogger("webrana.usage")
JAKARTA = timezone(timedelta(hours=7))
BATCH_MAX = 2_000  # rows per transaction: large enough for 5k rows/s, small enough to commit fast
FLUSH_INTERVAL = 0.2  # seconds between flushes when the queue is not full
STOP_WAIT = 5.0  # seconds stop() waits for a write in progress (then 10 s of drain): within the chart's margin
PREP_SLICE = 128  # rows prepared between yields to the event loop (a 2,000-row batch never stalls it for long)
RETRY_MAX_DELAY = 5.0  # seconds between attempts while PostgreSQL is away
SCAN_INTERVAL = 2.0  # seconds between looks for journals of dead processes and for rows in the outage stream
MIRROR_WAIT = 2.0  # seconds readiness and stop() wait for the rows held to reach the outage stream
MIRROR_RETRY = 1.0  # seconds between attempts to reach Redis with rows for the outage stream
SPILL_PREFIX = "usage-spill-"  # spill files of versions before the journal: replayed, never written any more
REFUSED_FILE = "usage-refused.jsonl"  # rows PostgreSQL refused to store, kept for an operator
# Calls that are not billable: a row each, but not in usage_daily.requests (which rebuilds the month's quota).
UNBILLED_ENDPOINTS = ("count_tokens",)
# No "id": PostgreSQL's DEFAULT gen_random_uuid() fills it, so Python never makes one per row.
COLUMNS = ("request_id", "user_id", "proxy_key_id", "provider", "model", "endpoint", "stream", "status",
           "prompt_tokens", "completion_tokens", "total_tokens", "tokens_estimated", "latency_ms",
           "ttfb_ms", "upstream_request_id", "error_type", "created_at", "updated_at",
           "cached_tokens", "cache_write_tokens", "cache_write_1h_tokens", "reasoning_tokens", "service_tier",
           "cost_usd_nano", "cost_idr_micro", "usd_to_idr", "price_source", "price_version",
           "attempt", "failed_attempt", "alias", "org_id")
# cost_idr (whole rupiah) is left at its default 0: it holds only what rows priced before sql/0006 carry.
DB_ERRORS = (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError)


class UnpriceableRow(ValueError):
    """A row whose tokens cannot be priced (a damaged line of a replayed journal): set aside, never retried."""


REFUSALS = (asyncpg.DataError, asyncpg.IntegrityConstraintViolationError, UnpriceableRow)  # can never be stored


@dataclass(slots=True)
class UsageRecord:
    request_id: str
    user_id: uuid.UUID
    proxy_key_id: uuid.UUID | None
    provider: str
    model: str
    endpoint: str
    stream: bool
    status: int
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    tokens_estimated: bool
    latency_ms: int
    ttfb_ms: int | None
    upstream_request_id: str | None
    error_type: str | None
    created_at: datetime
    # What the call cost and why (sql/0006). Defaults keep rows spilled by an older version readable.
    cost_idr_micro: int = 0
    cost_usd_nano: int = 0
    usd_to_idr: int | None = None
    price_source: str | None = None  # catalogue | override | fallback | provider
    price_version: str | None = None
    cached_tokens: int = 0
    cache_write_tokens: int = 0
    cache_write_1h_tokens: int = 0
    reasoning_tokens: int = 0
    service_tier: str | None = None
    # Attempts (sql/0012): this row's attempt number; a failed attempt the call moved on from (not charged, not
    # in usage_daily: the call counts once); the alias the client called.
    attempt: int | None = None
    failed_attempt: bool = False
    alias: str | None = None
    org_id: uuid.UUID | None = None  # the team whose workspace the call was made in (sql/0014); None: personal
    # Pricing's inputs beyond the tokens, and whether the cost fields are filled in yet: the gateway journals a
    # row before its answer ends and prices it after; the writer prices any row still unpriced (a replay, an
    # outage stream's row) before storing it. Not columns.
    thinking_mode: bool = False
    provider_cost_usd_nano: int | None = None
    priced: bool = True

    def as_row(self) -> tuple[Any, ...]:
        return (_text(self.request_id), self.user_id, self.proxy_key_id, _text(self.provider),
                _text(self.model), self.endpoint, self.stream, self.status, self.prompt_tokens,
                self.completion_tokens, self.total_tokens, self.tokens_estimated, self.latency_ms,
                self.ttfb_ms, _text(self.upstream_request_id), _text(self.error_type), self.created_at,
                self.created_at, self.cached_tokens, self.cache_write_tokens, self.cache_write_1h_tokens,
                self.reasoning_tokens, _text(self.service_tier), self.cost_usd_nano, self.cost_idr_micro,
                self.usd_to_idr, self.price_source, _text(self.price_version), self.attempt, self.failed_attempt,
                _text(self.alias), self.org_id)

    def to_line(self) -> bytes:
        """One journal line, newline-terminated: a JSON array of the fields in their declared order (~1 us, ~310
        bytes; half the time and size of an object with names). asyncpg's UUID type is not one orjson knows."""
        return orjson.dumps(_LINE_FIELDS(self), default=str, option=orjson.OPT_APPEND_NEWLINE)

    @classmethod
    def from_json(cls, raw: bytes) -> UsageRecord:
        """A row from a line of one row: an array (``to_line``) or an object with names (spill files and
        journals of versions before the array)."""
        return cls.from_parsed(orjson.loads(raw))

    @classmethod
    def from_fields(cls, fields: list[Any]) -> UsageRecord:
        """A row from its array: fields only ever appended, so an array written by an older version, shorter,
        takes the defaults of the rest."""
        if len(fields) > len(LINE_FIELDS):
            raise ValueError("a journal line with more fields than this version knows")
        return cls.from_parsed(dict(zip(LINE_FIELDS, fields, strict=False)))

    @classmethod
    def from_parsed(cls, parsed: Any) -> UsageRecord:
        if isinstance(parsed, list):
            return cls.from_fields(parsed)
        d = dict(parsed)
        legacy = d.pop("cost_idr", None)  # a row spilled before sql/0006: whole rupiah
        if legacy and not d.get("cost_idr_micro"):
            d["cost_idr_micro"] = legacy * 1_000_000
        d["user_id"] = uuid.UUID(d["user_id"])
        d["proxy_key_id"] = uuid.UUID(d["proxy_key_id"]) if d["proxy_key_id"] else None
        d["org_id"] = uuid.UUID(d["org_id"]) if d.get("org_id") else None
        d["created_at"] = datetime.fromisoformat(d["created_at"])
        return cls(**d)


# A journal line's fields, in order. New fields go at the end (a line is read by position).
LINE_FIELDS = tuple(UsageRecord.__dataclass_fields__)
_LINE_FIELDS = operator.attrgetter(*LINE_FIELDS)


class _OneTurn:
    """Awaited, gives the loop one turn: what ``asyncio.sleep(0)`` does, without its two coroutine frames (a call
    waits for the journal's write at the bottom of a dozen frames, each of which a resumption passes through)."""

    __slots__ = ()

    def __await__(self) -> Generator[None, None, None]:
        yield  # a bare yield: the task is scheduled again (call_soon), after the callbacks queued before it


class _NoWait:
    """Awaited, returns at once."""

    __slots__ = ()

    def __await__(self) -> Generator[None, None, None]:
        return
        yield  # a generator, done at its first step


ONE_TURN: Awaitable[None] = _OneTurn()
NO_WAIT: Awaitable[None] = _NoWait()


def batch_line(records: list[UsageRecord]) -> bytes:
    """One journal line holding several rows: a JSON array of ``to_line``'s arrays."""
    return orjson.dumps([_LINE_FIELDS(r) for r in records], default=str, option=orjson.OPT_APPEND_NEWLINE)


def records_of(raw: bytes) -> list[UsageRecord]:
    """The rows of one journal line: a batch (an array of arrays), one row (an array), or one row with names
    (spill files and journals of earlier versions)."""
    parsed = orjson.loads(raw)
    if isinstance(parsed, list) and parsed and isinstance(parsed[0], list):
        return [UsageRecord.from_fields(fields) for fields in parsed]
    return [UsageRecord.from_parsed(parsed)]


Pricer = Callable[[UsageRecord], None]  # fills in an unpriced row's cost fields (``pricing.RowPricer``)


def _text(value: str | None) -> str | None:
    """PostgreSQL text cannot hold NUL; provider-supplied strings could. Never let one poison a batch."""
    return value.replace("\x00", "\ufffd") if value and "\x00" in value else value


def jakarta_day(ts: datetime) -> date:
    return ts.astimezone(JAKARTA).date()



# The staging table: per connection, emptied at each commit. COPY cannot skip duplicates; INSERT ... SELECT can.
STAGE_SQL = """
CREATE TEMP TABLE IF NOT EXISTS usage_stage ON COMMIT DELETE ROWS AS
SELECT request_id, user_id, proxy_key_id, provider, model, endpoint, stream, status, prompt_tokens,
       completion_tokens, total_tokens, tokens_estimated, latency_ms, ttfb_ms, upstream_request_id, error_type,
       created_at, updated_at, cached_tokens, cache_write_tokens, cache_write_1h_tokens, reasoning_tokens,
       service_tier, cost_usd_nano, cost_idr_micro, usd_to_idr, price_source, price_version, attempt,
       failed_attempt, alias, org_id
FROM proxy_requests WITH NO DATA"""

# One statement: insert the staged rows that are new, then move the counters by exactly those rows (RETURNING).
# Counters derived from rows belong here, so a replayed duplicate never moves them. Jakarta is UTC+7, no DST.
# A failed attempt's row (the call went on to another key or hop) is its own row only: the call it belongs to is
# counted (and charged) once, by its last row.
INSERT_SQL = """
WITH ins AS (
    INSERT INTO proxy_requests (request_id, user_id, proxy_key_id, provider, model, endpoint, stream, status,
                                prompt_tokens, completion_tokens, total_tokens, tokens_estimated, latency_ms,
                                ttfb_ms, upstream_request_id, error_type, created_at, updated_at, cached_tokens,
                                cache_write_tokens, cache_write_1h_tokens, reasoning_tokens, service_tier,
                                cost_usd_nano, cost_idr_micro, usd_to_idr, price_source, price_version, attempt,
                                failed_attempt, alias, org_id)
    SELECT * FROM usage_stage
    ON CONFLICT (request_id) DO NOTHING
    RETURNING user_id, proxy_key_id, provider, model, endpoint, status, prompt_tokens, completion_tokens,
              total_tokens, cost_idr_micro, cost_usd_nano, cached_tokens, cache_write_tokens, reasoning_tokens,
              price_source, created_at, failed_attempt, org_id
), daily AS (
    INSERT INTO usage_daily (user_id, org_id, day, provider, model, requests, errors, prompt_tokens,
                             completion_tokens, total_tokens, cost_idr_micro, cost_usd_nano, cached_tokens,
                             cache_write_tokens, reasoning_tokens, fallback_requests)
    SELECT user_id, org_id, ((created_at AT TIME ZONE 'UTC') + interval '7 hours')::date, provider, model,
           count(*) FILTER (WHERE endpoint <> ALL ($1::text[])), count(*) FILTER (WHERE status >= 400),
           sum(prompt_tokens), sum(completion_tokens), sum(total_tokens), sum(cost_idr_micro), sum(cost_usd_nano),
           sum(cached_tokens), sum(cache_write_tokens), sum(reasoning_tokens),
           count(*) FILTER (WHERE price_source = 'fallback')
    FROM ins WHERE NOT failed_attempt GROUP BY 1, 2, 3, 4, 5
    ON CONFLICT (user_id, org_id, day, provider, model) DO UPDATE SET
        requests = usage_daily.requests + EXCLUDED.requests,
        errors = usage_daily.errors + EXCLUDED.errors,
        prompt_tokens = usage_daily.prompt_tokens + EXCLUDED.prompt_tokens,
        completion_tokens = usage_daily.completion_tokens + EXCLUDED.completion_tokens,
        total_tokens = usage_daily.total_tokens + EXCLUDED.total_tokens,
        cost_idr_micro = usage_daily.cost_idr_micro + EXCLUDED.cost_idr_micro,
        cost_usd_nano = usage_daily.cost_usd_nano + EXCLUDED.cost_usd_nano,
        cached_tokens = usage_daily.cached_tokens + EXCLUDED.cached_tokens,
        cache_write_tokens = usage_daily.cache_write_tokens + EXCLUDED.cache_write_tokens,
        reasoning_tokens = usage_daily.reasoning_tokens + EXCLUDED.reasoning_tokens,
        fallback_requests = usage_daily.fallback_requests + EXCLUDED.fallback_requests
), keys AS (
    UPDATE proxy_api_keys AS k SET request_count = k.request_count + v.n,
                                   last_used_at = GREATEST(k.last_used_at, v.ts)
    FROM (SELECT proxy_key_id, count(*) AS n, max(created_at) AS ts FROM ins
          WHERE proxy_key_id IS NOT NULL AND NOT failed_attempt GROUP BY proxy_key_id) AS v
    WHERE k.id = v.proxy_key_id
)
SELECT count(*) FROM ins"""


async def write_batch(conn: Conn, batch: list[UsageRecord], price: Pricer | None = None) -> int:
    """Write rows, roll-ups and key counters in one transaction (all or nothing); rows whose request id is already
    stored are skipped and count nowhere. ``price`` fills in the cost of rows not yet priced; a row it cannot
    price (or any unpriced row, without it) raises ``UnpriceableRow``, one of the ``REFUSALS``: it is never stored
    at a cost it was not priced at. Returns the rows inserted."""
    rows: list[tuple[Any, ...]] = []
    for i, r in enumerate(batch):
        if i % PREP_SLICE == PREP_SLICE - 1:
            await asyncio.sleep(0)  # let calls in flight run between slices
        if not r.priced:
            if price is None:
                raise UnpriceableRow(f"usage row {r.request_id!r} is unpriced and there is no price book")
            try:
                price(r)
            except Exception as exc:  # bad values from a damaged line: this row only, never the batch for ever
                raise UnpriceableRow(f"usage row {r.request_id!r} cannot be priced: {exc!r}") from exc
        rows.append(r.as_row())
    async with conn.transaction():
        await conn.execute(STAGE_SQL)
        await conn.copy_records_to_table("usage_stage", records=rows, columns=COLUMNS)
        inserted: int = await conn.fetchval(INSERT_SQL, list(UNBILLED_ENDPOINTS))
    return inserted


def parse_lines(lines: list[bytes]) -> tuple[list[UsageRecord], list[bytes]]:
    """Rows from journal lines; the lines that are not rows (torn by a crash or a full disk) apart."""
    rows: list[UsageRecord] = []
    bad: list[bytes] = []
    for line in lines:
        if not line.strip():
            continue
        try:
            rows.extend(records_of(line))
        except (ValueError, TypeError, KeyError, AttributeError):
            bad.append(line)
    return rows, bad


class UsageWriter:
    def __init__(self, pool: asyncpg.Pool, metrics: Metrics, *, max_queue: int, journal_dir: str, price: Pricer,
                 fsync_interval: float = 0.1, redis: Redis | None = None) -> None:
        """``journal_dir`` empty: no journal (rows live only in memory until written; for measurements).
        ``price``: fills in the cost of a row recorded unpriced (the gateway prices its rows after the answer)."""
        self._pool = pool
        self.price = price
        self._metrics = metrics
        self._max_queue = max_queue
        self._folder = Path(journal_dir) if journal_dir else None
        self._fsync_interval = fsync_interval
        self._journal: Journal | None = None
        self.journaled = False  # True once the journal is open: calls write their row before their answer ends
        self._stream = OutageStream(redis) if redis is not None else None
        self._queue: deque[UsageRecord] = deque()
        self._pending: list[UsageRecord] = []  # recorded this loop turn, journaled at the start of the next
        self._turn_rows = 0  # rows recorded in this loop turn
        self._busy = False  # the last turn recorded more than one: batch them all
        self._done = 0  # queue positions committed or handed to the journal's backlog (the journal's trim mark)
        self._backlog: list[Path] = []  # own journal segments memory let go of: replayed from disk
        self._dead: list[DeadJournal] = []  # claimed journals of processes that are gone
        self._spills: list[Path] = []  # claimed spill files of older versions
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._writing = asyncio.Lock()  # held by a write cycle; stop() takes it before cancelling the loop
        self._next_scan = 0.0
        # The outage stream: rows to add, and the stream ids of this writer's rows not yet committed.
        self._outage = False
        self._to_mirror: list[tuple[str, bytes]] = []
        self._mirrored: dict[str, bytes] = {}
        self._unmirror: list[bytes] = []
        self._mirror_wake = asyncio.Event()
        self._mirror_lock = asyncio.Lock()
        self._mirror_task: asyncio.Task[None] | None = None

    def __len__(self) -> int:
        return len(self._queue)

    def record(self, rec: UsageRecord) -> None:
        """Journal and queue one row. Under load the rows recorded in one loop turn are journaled together at the
        start of the next turn (one line, one ``write(2)``), which ``durable`` waits for; when the last turn had
        one row at most (low load), the first row of a turn is written at once and its call does not wait. Never
        blocks, never raises, never touches the database."""
        if self._journal is not None:
            self._turn_rows += 1
            first = self._turn_rows == 1
            if first:  # the turn's end is queued now, before any call that waits for it
                asyncio.get_running_loop().call_soon(self._end_turn)
            if first and not self._busy:  # the last turn had one row at most: this one likely too, write it now
                self._journal.append(rec.to_line())
            else:
                self._pending.append(rec)
        if self._outage:
            self._to_mirror.append((rec.request_id, rec.to_line()))
            self._mirror_wake.set()
        self._queue.append(rec)
        if len(self._queue) >= BATCH_MAX:
            self._wake.set()

    def _end_turn(self) -> None:
        """At the start of the next turn: the turn's rows written, as one line."""
        self._busy = self._turn_rows > 1
        self._turn_rows = 0
        self._journal_pending()

    def _journal_pending(self) -> None:
        """The rows recorded since the last turn, as one journal line."""
        pending = self._pending
        if pending and self._journal is not None:
            self._pending = []
            self._journal.append(batch_line(pending), len(pending))

    def durable(self) -> Awaitable[None]:
        """Done once every row recorded so far is in the journal (the page cache): a call awaits this before the
        last bytes of its answer. The end of the turn (``_end_turn``, which writes the turn's rows) was queued when
        the turn's first row was recorded, so it runs before the awaiting call resumes: one loop turn, shared by
        every call of that turn; with nothing waiting, no turn."""
        return ONE_TURN if self._pending else NO_WAIT

    async def start(self) -> None:
        if self._folder is not None:
            self._journal = await asyncio.to_thread(Journal, self._folder, self._fsync_interval)
            self.journaled = True
        self._task = asyncio.create_task(self._run(), name="usage-writer")
        if self._stream is not None:
            self._mirror_task = asyncio.create_task(self._mirror_loop(), name="usage-outage-stream")

    async def stop(self) -> None:
        """Flush everything queued (waiting a while for PostgreSQL), then stop. Rows PostgreSQL did not take stay
        in the journal (replayed by a survivor or the next start) and go to the outage stream."""
        if self._task is not None:
            # Never cancel a write half-way (the rows would stay queued and be written again: harmless now, but
            # a write that hangs is what the timeout is for).
            try:
                async with asyncio.timeout(STOP_WAIT):
                    await self._writing.acquire()
            except TimeoutError:  # a write hung (PostgreSQL stalled): cut it off, its rows stay queued
                pass
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            if self._writing.locked():
                self._writing.release()
        if self._mirror_task is not None:
            self._mirror_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._mirror_task
        if self._queue or self._backlog:
            try:
                await asyncio.wait_for(self._drain(), timeout=10)
            except Exception as exc:  # PostgreSQL away (or a bug): the rows are safe in the journal either way
                log.warning("usage rows not written before stop; left in the journal and the outage stream",
                            extra={"rows": len(self._queue), "error": type(exc).__name__})
                self._begin_outage()
        if self._stream is not None and (self._to_mirror or self._unmirror):
            await self._push_bounded()
        for dead in self._dead:
            dead.release()  # someone else replays them
        if self._journal is not None:
            self._journal_pending()
            clean = not self._queue and not self._backlog
            await asyncio.to_thread(self._journal.close, remove=clean)

    async def database_down(self) -> None:
        """Readiness found PostgreSQL down: from now on rows also go to the outage stream, and every row held
        now is there before this returns (within MIRROR_WAIT)."""
        if self._stream is None:
            return
        self._begin_outage()
        await self._push_bounded()

    async def _drain(self) -> None:
        while self._queue:
            await self._flush_once()
        if self._backlog:
            await self._replay_disk()  # memory let go of them during an outage: this journal can go as a whole

    async def _run(self) -> None:
        delay = FLUSH_INTERVAL
        while True:
            # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow stop()'s cancel when the wake fires at the
            # same moment (bpo-42130), and the loop would then wait for the lock stop() holds, for ever.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._wake.wait()
            self._wake.clear()
            async with self._writing:  # stop() waits for a write in progress instead of cutting it off
                delay = await self._cycle(delay)

    async def _cycle(self, delay: float) -> float:
        """Write what is queued, replay what others left; returns the wait before the next cycle."""
        loop = asyncio.get_running_loop()
        scan = loop.time() >= self._next_scan
        if scan:
            self._next_scan = loop.time() + SCAN_INTERVAL
            await self._claim()
        wrote = bool(self._queue or self._backlog or self._dead or self._spills)
        try:
            while self._queue:
                await self._flush_once()
            if self._backlog or self._dead or self._spills:
                await self._replay_disk()  # after the live rows: a replay never holds them up
            delay = FLUSH_INTERVAL
        except DB_ERRORS as exc:
            self._metrics.usage_write_failures.inc()
            log.warning("usage write failed; rows kept for retry",
                        extra={"queued": len(self._queue), "error": type(exc).__name__})
            self._begin_outage()
            self._bound_memory()
            delay = min(RETRY_MAX_DELAY, delay * 2)
        except Exception:  # a bug must not kill the writer: rows stay queued and are retried
            self._metrics.usage_write_failures.inc()
            log.exception("usage writer error; rows kept for retry", extra={"queued": len(self._queue)})
            delay = min(RETRY_MAX_DELAY, delay * 2)
        else:
            if wrote:  # PostgreSQL took a write (an empty cycle proves nothing: readiness may have seen it down)
                self._end_outage()
            if scan and self._stream is not None:
                await self._guarded(self._drain_stream(), "outage stream not drained yet; will retry")
        self._metrics.usage_queue_depth.set(len(self._queue))
        return delay

    async def _guarded(self, work: Any, message: str) -> None:
        try:
            await work
        except Exception as exc:  # replays must never stop live rows from being written
            log.warning(message, extra={"error": type(exc).__name__})

    async def _flush_once(self) -> None:
        journal = self._journal
        if journal is not None:
            self._journal_pending()  # a turn's rows stay in the segment their queue positions say
            journal.rotate_if_due()  # sealed every couple of seconds under steady load too: it gets trimmed
        n = min(BATCH_MAX, len(self._queue))
        batch = [self._queue[i] for i in range(n)]
        inserted = await self._write(batch)
        for _ in range(n):
            self._queue.popleft()
        self._done += n
        if journal is not None and (done := journal.trim(self._done)):
            await asyncio.to_thread(_unlink_all, done)
        if self._mirrored:
            for r in batch:
                entry = self._mirrored.pop(r.request_id, None)
                if entry is not None:
                    self._unmirror.append(entry)
            if self._unmirror:
                self._mirror_wake.set()
        self._metrics.usage_rows_written.inc(inserted)
        self._metrics.usage_queue_depth.set(len(self._queue))

    async def _write(self, batch: list[UsageRecord]) -> int:
        """Write a batch idempotently; rows PostgreSQL refuses (bad data, a deleted user) are written aside to a
        file for an operator, never blocking the rows after them. Returns the rows inserted."""
        async with self._pool.acquire(timeout=5) as conn:
            try:
                return await write_batch(conn, batch, self.price)
            except REFUSALS:
                pass
            refused = []
            inserted = 0
            for row in batch:
                try:
                    inserted += await write_batch(conn, [row], self.price)
                except REFUSALS:
                    refused.append(row)
        if refused:
            await self._set_aside([r.to_line().rstrip(b"\n") for r in refused])
        return inserted

    async def _write_lines(self, lines: list[bytes]) -> int:
        rows, bad = parse_lines(lines)
        if bad:
            await self._set_aside(bad)
        inserted = 0
        for i in range(0, len(rows), BATCH_MAX):
            inserted += await self._write(rows[i:i + BATCH_MAX])
        return inserted

    async def _set_aside(self, lines: list[bytes]) -> None:
        if self._folder is None:
            log.error("usage rows refused by PostgreSQL", extra={"rows": [x.decode("utf-8", "replace")
                                                                          for x in lines]})
            return
        path = self._folder / REFUSED_FILE
        await asyncio.to_thread(_append, path, b"".join(line + b"\n" for line in lines))
        log.error("usage rows refused by PostgreSQL set aside", extra={"rows": len(lines), "path": str(path)})

    def _bound_memory(self) -> None:
        excess = len(self._queue) - self._max_queue
        if excess <= 0:
            return
        if self._journal is not None and not self._journal.failed:
            # Every queued row is in the journal: let memory go of all of them, replay them from disk later.
            self._journal_pending()
            self._backlog.extend(self._journal.shed())
            self._done += len(self._queue)
            log.warning("usage queue full; rows wait in the journal until PostgreSQL returns",
                        extra={"rows": len(self._queue), "path": str(self._journal.path)})
            self._queue.clear()
        elif self._journal is None:
            for _ in range(excess):
                self._queue.popleft()
            self._done += excess
            log.error("usage queue full and no journal: oldest rows dropped", extra={"rows": excess})
        # else: the journal cannot be written either; memory is the only copy, so it keeps every row

    # --- rows on disk: this writer's backlog, journals of dead processes, old spill files -------------------------

    async def _claim(self) -> None:
        if self._folder is None:
            return
        own = self._journal.path if self._journal is not None else None
        held = {d.path for d in self._dead}
        try:
            dead, spills = await asyncio.to_thread(_claim_all, self._folder, own, held)
        except OSError as exc:
            log.warning("could not look for usage journals to replay", extra={"error": str(exc)})
            return
        self._dead.extend(dead)
        self._spills.extend(spills)

    async def _replay_disk(self) -> None:
        while self._backlog:
            await self._replay_file(self._backlog[0])
            self._backlog.pop(0)
        while self._dead:
            dead = self._dead[0]
            rows = inserted = 0
            for segment in await asyncio.to_thread(dead.segments):
                n, k = await self._replay_file(segment)
                rows, inserted = rows + n, inserted + k
            await asyncio.to_thread(dead.remove)
            self._dead.pop(0)
            log.info("usage journal of a stopped process replayed",
                     extra={"path": str(dead.path), "rows": rows, "inserted": inserted})
        while self._spills:
            await self._replay_file(self._spills[0])
            self._spills.pop(0)

    async def _replay_file(self, path: Path) -> tuple[int, int]:
        """Write every row of a file (idempotently), then delete it. Rows already written are skipped."""
        raw = await asyncio.to_thread(_read_all, path)
        lines = raw.splitlines()
        inserted = await self._write_lines(lines)
        await asyncio.to_thread(path.unlink, True)
        return len(lines), inserted

    # --- the outage stream -------------------------------------------------------------------------------------

    def _begin_outage(self) -> None:
        if self._outage or self._stream is None:
            return
        self._outage = True
        self._to_mirror.extend((r.request_id, r.to_line()) for r in self._queue)
        self._mirror_wake.set()
        log.warning("usage rows also go to the Redis outage stream until PostgreSQL takes writes again",
                    extra={"queued": len(self._queue)})

    def _end_outage(self) -> None:
        if self._outage:
            self._outage = False
            self._mirrored.clear()  # entries of rows shed to disk meanwhile stay; a drain finds them written

    async def _mirror_loop(self) -> None:
        while True:
            await self._mirror_wake.wait()
            self._mirror_wake.clear()
            try:
                await self._push()
            except (RedisError, OSError) as exc:
                log.warning("could not reach Redis with usage rows; will retry", extra={"error": type(exc).__name__})
                await asyncio.sleep(MIRROR_RETRY)
                self._mirror_wake.set()

    async def _push_bounded(self) -> None:
        try:
            async with asyncio.timeout(MIRROR_WAIT):
                await self._push()
        except (RedisError, OSError) as exc:  # TimeoutError is an OSError
            log.warning("usage rows not all in the outage stream", extra={"error": type(exc).__name__})

    async def _push(self) -> None:
        assert self._stream is not None
        async with self._mirror_lock:
            if self._unmirror:
                ids, self._unmirror = self._unmirror, []
                try:
                    await self._stream.delete(ids)
                except BaseException:
                    self._unmirror[:0] = ids
                    raise
            if self._to_mirror:
                items, self._to_mirror = self._to_mirror, []
                try:
                    ids = await self._stream.add([line for _, line in items])
                except BaseException:
                    keep = self._max_queue - len(self._to_mirror)  # they are in the journal too; memory is bounded
                    self._to_mirror[:0] = items[-keep:] if keep > 0 else []
                    raise
                if self._outage:
                    self._mirrored.update(zip((rid for rid, _ in items), ids, strict=True))

    async def _drain_stream(self) -> None:
        assert self._stream is not None
        if await self._stream.length():
            drained = await self._stream.drain(self._write_lines, BATCH_MAX)
            if drained:
                log.info("usage rows from the outage stream written", extra={"rows": drained})


def _claim_all(folder: Path, own: Path | None, held: set[Path]) -> tuple[list[DeadJournal], list[Path]]:
    return claim_dead(folder, own, held), _claim_spills(folder)


def _claim_spills(folder: Path) -> list[Path]:
    """Spill files an older version left, once their writer is gone: claimed by renaming (one claimant wins)."""
    if not folder.is_dir():
        return []
    me = os.getpid()
    claimed = []
    for path in sorted(folder.glob(SPILL_PREFIX + "*")):
        name = path.name
        owner_part = name.rsplit(".replay-", 1)[1] if ".replay-" in name else name.split("-")[2]
        if owner_part.isdigit() and int(owner_part) != me and _alive(int(owner_part)):
            continue  # its writer (or a replayer) is alive
        if name.endswith(f".replay-{me}"):
            continue  # ours already
        target = path.with_name(f"{name.split('.replay-')[0]}.replay-{me}")
        try:
            os.rename(path, target)
        except FileNotFoundError:
            continue  # someone else claimed it first
        claimed.append(target)
    return claimed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _append(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("ab") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _read_all(path: Path) -> bytes:
    return segment_bytes(path.read_bytes()) if path.exists() else b""


def _unlink_all(paths: list[Path]) -> None:
    for path in paths:
        path.unlink(missing_ok=True)
