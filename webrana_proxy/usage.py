"""Usage rows, written off the hot path.

The gateway calls ``UsageWriter.record`` (synchronous, O(1)): the row goes on an in-memory deque. A background
task writes batches in one transaction: the raw rows (``COPY``), the daily roll-up per user/provider/model
(Asia/Jakarta days), and each proxy key's request count and last use. If PostgreSQL is down, rows wait in
memory up to ``usage_queue_max``; beyond that they spill to a local JSON-lines file, read back once the
database answers again. Shutdown drains everything. A row is only dropped from memory after its batch commits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import uuid
from collections import deque
from collections.abc import Awaitable
from dataclasses import asdict, dataclass
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import asyncpg
import orjson

from webrana_proxy.db import Conn
from webrana_proxy.metrics import Metrics

log = logging.getLogger("webrana.usage")
JAKARTA = timezone(timedelta(hours=7))
BATCH_MAX = 2_000  # rows per transaction: large enough for 5k rows/s, small enough to commit fast
FLUSH_INTERVAL = 0.2  # seconds between flushes when the queue is not full
STOP_WAIT = 5.0  # seconds stop() waits for a write in progress (then 10 s of drain): within the chart's margin
PREP_SLICE = 128  # rows prepared between yields to the event loop (a 2,000-row batch never stalls it for long)
RETRY_MAX_DELAY = 5.0  # seconds between attempts while PostgreSQL is away
SPILL_SCAN_INTERVAL = 2.0  # seconds between looks for spill files another (dead) worker left behind
SPILL_PREFIX = "usage-spill-"  # + pid-random.jsonl; a claimed file is renamed to end in .replay-<pid>
REFUSED_FILE = "usage-refused.jsonl"  # rows PostgreSQL refused to store, kept for an operator
# No "id": PostgreSQL's DEFAULT gen_random_uuid() fills it during COPY, so Python never makes one per row.
# Calls that are not billable: a row each, but not in usage_daily.requests (which rebuilds the month's quota).
UNBILLED_ENDPOINTS = ("count_tokens",)
COLUMNS = ("request_id", "user_id", "proxy_key_id", "provider", "model", "endpoint", "stream", "status",
           "prompt_tokens", "completion_tokens", "total_tokens", "tokens_estimated", "latency_ms",
           "ttfb_ms", "upstream_request_id", "error_type", "created_at", "updated_at",
           "cached_tokens", "cache_write_tokens", "cache_write_1h_tokens", "reasoning_tokens", "service_tier",
           "cost_usd_nano", "cost_idr_micro", "usd_to_idr", "price_source", "price_version",
           "attempt", "failed_attempt", "alias", "org_id")
# cost_idr (whole rupiah) is left at its default 0: it holds only what rows priced before sql/0006 carry.


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

    def as_row(self) -> tuple[Any, ...]:
        return (_text(self.request_id), self.user_id, self.proxy_key_id, _text(self.provider),
                _text(self.model), self.endpoint, self.stream, self.status, self.prompt_tokens,
                self.completion_tokens, self.total_tokens, self.tokens_estimated, self.latency_ms,
                self.ttfb_ms, _text(self.upstream_request_id), _text(self.error_type), self.created_at,
                self.created_at, self.cached_tokens, self.cache_write_tokens, self.cache_write_1h_tokens,
                self.reasoning_tokens, _text(self.service_tier), self.cost_usd_nano, self.cost_idr_micro,
                self.usd_to_idr, self.price_source, _text(self.price_version), self.attempt, self.failed_attempt,
                _text(self.alias), self.org_id)

    def to_json(self) -> bytes:
        return orjson.dumps(asdict(self), default=str)  # asyncpg's UUID type is not orjson's uuid.UUID

    @classmethod
    def from_json(cls, raw: bytes) -> UsageRecord:
        d = orjson.loads(raw)
        legacy = d.pop("cost_idr", None)  # a row spilled before sql/0006: whole rupiah
        if legacy and not d.get("cost_idr_micro"):
            d["cost_idr_micro"] = legacy * 1_000_000
        d["user_id"] = uuid.UUID(d["user_id"])
        d["proxy_key_id"] = uuid.UUID(d["proxy_key_id"]) if d["proxy_key_id"] else None
        d["org_id"] = uuid.UUID(d["org_id"]) if d.get("org_id") else None
        d["created_at"] = datetime.fromisoformat(d["created_at"])
        return cls(**d)


def _text(value: str | None) -> str | None:
    """PostgreSQL text cannot hold NUL; provider-supplied strings could. Never let one poison a batch."""
    return value.replace("\x00", "\ufffd") if value and "\x00" in value else value


def jakarta_day(ts: datetime) -> date:
    return ts.astimezone(JAKARTA).date()


async def write_batch(conn: Conn, batch: list[UsageRecord]) -> None:
    """Write rows, roll-ups and key counters in one transaction (all or nothing)."""
    rollup: dict[tuple[uuid.UUID, date, str, str, uuid.UUID | None], list[int]] = {}
    keys: dict[uuid.UUID, tuple[int, datetime]] = {}
    rows: list[tuple[Any, ...]] = []
    for i, r in enumerate(batch):
        if i % PREP_SLICE == PREP_SLICE - 1:
            await asyncio.sleep(0)  # ~3 us of Python per row: let calls in flight run between slices
        rows.append(r.as_row())
        if r.failed_attempt:
            continue  # its own row only: the call it belongs to is counted (and charged) once, by its last row
        key = (r.user_id, jakarta_day(r.created_at), _text(r.provider) or "", _text(r.model) or "", r.org_id)
        acc = rollup.setdefault(key, [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0])
        acc[0] += r.endpoint not in UNBILLED_ENDPOINTS
        acc[1] += r.status >= 400
        acc[2] += r.prompt_tokens
        acc[3] += r.completion_tokens
        acc[4] += r.total_tokens
        acc[5] += r.cost_idr_micro
        acc[6] += r.cost_usd_nano
        acc[7] += r.cached_tokens
        acc[8] += r.cache_write_tokens
        acc[9] += r.reasoning_tokens
        acc[10] += r.price_source == "fallback"
        if r.proxy_key_id is not None:
            n, last = keys.get(r.proxy_key_id, (0, r.created_at))
            keys[r.proxy_key_id] = (n + 1, max(last, r.created_at))
    async with conn.transaction():
        await conn.copy_records_to_table("proxy_requests", records=rows, columns=COLUMNS)
        k = list(rollup)
        v = list(rollup.values())
        await conn.execute(
            """INSERT INTO usage_daily (user_id, day, provider, model, requests, errors, prompt_tokens,
                                        completion_tokens, total_tokens, cost_idr_micro, cost_usd_nano,
                                        cached_tokens, cache_write_tokens, reasoning_tokens, fallback_requests, org_id)
               SELECT * FROM unnest($1::uuid[], $2::date[], $3::text[], $4::text[], $5::bigint[], $6::bigint[],
                                    $7::bigint[], $8::bigint[], $9::bigint[], $10::bigint[], $11::bigint[],
                                    $12::bigint[], $13::bigint[], $14::bigint[], $15::bigint[], $16::uuid[])
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
                   fallback_requests = usage_daily.fallback_requests + EXCLUDED.fallback_requests""",
            [x[0] for x in k], [x[1] for x in k], [x[2] for x in k], [x[3] for x in k],
            *([x[i] for x in v] for i in range(11)), [x[4] for x in k])
        if keys:
            await conn.execute(
                """UPDATE proxy_api_keys AS k SET request_count = k.request_count + v.n,
                          last_used_at = GREATEST(k.last_used_at, v.ts)
                   FROM unnest($1::uuid[], $2::bigint[], $3::timestamptz[]) AS v(id, n, ts)
                   WHERE k.id = v.id""",
                list(keys), [n for n, _ in keys.values()], [ts for _, ts in keys.values()])


class UsageWriter:
    def __init__(self, pool: asyncpg.Pool, metrics: Metrics, *, max_queue: int, spill_dir: str) -> None:
        self._pool = pool
        self._metrics = metrics
        self._max_queue = max_queue
        # One spill file per writer (workers share the folder); replays claim files by renaming them.
        self._spill_dir = Path(spill_dir)
        self._spill_path = self._spill_dir / f"{SPILL_PREFIX}{os.getpid()}-{secrets.token_hex(4)}.jsonl"
        self._queue: deque[UsageRecord] = deque()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._spill_lock = asyncio.Lock()
        self._writing = asyncio.Lock()  # held by a write cycle; stop() takes it before cancelling the loop
        self._next_scan = 0.0
        self.pending_spill = False

    def __len__(self) -> int:
        return len(self._queue)

    def record(self, rec: UsageRecord) -> None:
        """Queue one row. Never blocks, never raises, never touches the database."""
        self._queue.append(rec)
        if len(self._queue) >= BATCH_MAX:
            self._wake.set()

    def start(self) -> None:
        self.pending_spill = _has_spills(self._spill_dir)
        self._task = asyncio.create_task(self._run(), name="usage-writer")

    async def stop(self) -> None:
        """Flush everything queued (waiting for PostgreSQL if it is away), then stop."""
        if self._task is not None:
            # Never cancel a write half-way: a batch whose COMMIT went through but whose answer was cut off
            # would be written again and refused as duplicates.
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
        if self._queue:
            try:
                await asyncio.wait_for(self._drain(), timeout=10)
            except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                await self._spill(list(self._queue))
                self._queue.clear()

    async def _drain(self) -> None:
        while self._queue:
            await self._flush_once()

    async def _run(self) -> None:
        delay = FLUSH_INTERVAL
        while True:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=delay)
            self._wake.clear()
            async with self._writing:  # stop() waits for a write in progress instead of cutting it off
                delay = await self._cycle(delay)

    async def _cycle(self, delay: float) -> float:
        """Replay spills if any, write what is queued; returns the wait before the next cycle."""
        loop = asyncio.get_running_loop()
        if not self.pending_spill and loop.time() >= self._next_scan:
            # Spills left by a worker that died are picked up by the survivors, not only at restart.
            self._next_scan = loop.time() + SPILL_SCAN_INTERVAL
            self.pending_spill = await asyncio.to_thread(_has_spills, self._spill_dir)
        if self.pending_spill:
            try:
                await self._unspill()
            except Exception as exc:  # the replay must never stop live rows from being written
                log.warning("spilled usage rows not replayed yet; will retry",
                            extra={"error": type(exc).__name__})
        try:
            while self._queue:
                await self._flush_once()
            delay = FLUSH_INTERVAL
        except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            self._metrics.usage_write_failures.inc()
            log.warning("usage write failed; rows kept for retry",
                        extra={"queued": len(self._queue), "error": type(exc).__name__})
            await self._guarded(self._bound_memory())
            delay = min(RETRY_MAX_DELAY, delay * 2)
        except Exception:  # a bug must not kill the writer: rows stay queued and are retried
            self._metrics.usage_write_failures.inc()
            log.exception("usage writer error; rows kept for retry", extra={"queued": len(self._queue)})
            delay = min(RETRY_MAX_DELAY, delay * 2)
        self._metrics.usage_queue_depth.set(len(self._queue))
        return delay

    async def _guarded(self, work: Awaitable[None]) -> None:
        try:
            await work
        except Exception:  # e.g. the spill disk is full: keep the rows in memory rather than lose them
            log.exception("could not spill usage rows to disk; keeping them in memory")

    async def _flush_once(self) -> None:
        n = min(BATCH_MAX, len(self._queue))
        batch = [self._queue[i] for i in range(n)]
        await self._write(batch)
        for _ in range(n):
            self._queue.popleft()
        self._metrics.usage_rows_written.inc(n)
        self._metrics.usage_queue_depth.set(len(self._queue))

    async def _write(self, batch: list[UsageRecord]) -> None:
        """Write a batch; rows PostgreSQL refuses (bad data, a duplicate after a crashed replay, a deleted user)
        are written aside to a file for an operator, never blocking the rows after them."""
        async with self._pool.acquire(timeout=5) as conn:
            try:
                await write_batch(conn, batch)
                return
            except (asyncpg.DataError, asyncpg.IntegrityConstraintViolationError):
                pass
            refused = []
            for row in batch:
                try:
                    await write_batch(conn, [row])
                except (asyncpg.DataError, asyncpg.IntegrityConstraintViolationError):
                    refused.append(row)
        if refused:
            await self._set_aside([r.to_json() for r in refused])

    async def _set_aside(self, lines: list[bytes]) -> None:
        path = self._spill_dir / REFUSED_FILE
        await asyncio.to_thread(_append, path, b"".join(line + b"\n" for line in lines))
        log.error("usage rows refused by PostgreSQL set aside", extra={"rows": len(lines), "path": str(path)})

    async def _bound_memory(self) -> None:
        excess = len(self._queue) - self._max_queue
        if excess > 0:
            # Spill the oldest rows first, and drop them from memory only once they are on disk.
            await self._spill([self._queue[i] for i in range(excess)])
            for _ in range(excess):
                self._queue.popleft()

    async def _spill(self, rows: list[UsageRecord]) -> None:
        data = b"".join(r.to_json() + b"\n" for r in rows)
        async with self._spill_lock:
            await asyncio.to_thread(_append, self._spill_path, data)
        self.pending_spill = True
        log.warning("usage rows spilled to disk until PostgreSQL returns",
                    extra={"rows": len(rows), "path": str(self._spill_path)})

    async def _unspill(self) -> None:
        """Replay every spill file in the folder that no live writer is replaying: claim it by renaming it
        (only one worker wins), write it in batches, then delete it."""
        async with self._spill_lock:
            claimed = await asyncio.to_thread(_claim_spills, self._spill_dir)
            for path in claimed:
                raw = await asyncio.to_thread(_read_all, path)
                rows: list[UsageRecord] = []
                bad: list[bytes] = []
                for line in raw.splitlines():
                    if not line.strip():
                        continue
                    try:
                        rows.append(UsageRecord.from_json(line))
                    except (ValueError, TypeError, KeyError):  # a torn line (crash or full disk mid-append)
                        bad.append(line)
                if bad:
                    await self._set_aside(bad)
                for i in range(0, len(rows), BATCH_MAX):
                    await self._write(rows[i:i + BATCH_MAX])
                    # Keep what is left on disk after each committed batch, so a crash never loses a row.
                    await asyncio.to_thread(_rewrite, path, rows[i + BATCH_MAX:])
                await asyncio.to_thread(path.unlink, True)
            self.pending_spill = False  # anything spilled meanwhile, or left by others, is found by the next scan


def _has_spills(folder: Path) -> bool:
    return folder.is_dir() and any(folder.glob(SPILL_PREFIX + "*"))


def _claim_spills(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    me = os.getpid()
    claimed = []
    for path in sorted(folder.glob(SPILL_PREFIX + "*")):
        name = path.name
        if ".replay-" in name:
            owner = int(name.rsplit(".replay-", 1)[1])
            if owner != me and _alive(owner):
                continue  # another live worker is replaying it
        elif name.split("-")[2].isdigit() and int(name.split("-")[2]) != me and _alive(int(name.split("-")[2])):
            continue  # a live worker's own spill: it replays it itself
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
    return path.read_bytes() if path.exists() else b""


def _rewrite(path: Path, rows: list[UsageRecord]) -> None:
    if not rows:
        path.unlink(missing_ok=True)
        return
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(b"".join(r.to_json() + b"\n" for r in rows))
    os.replace(tmp, path)
