"""The shared outage buffer: usage rows in a Redis stream while PostgreSQL is away.

From a writer's first failed write (or readiness finding PostgreSQL down) until it writes again, every row it holds
and every new one is also added to one stream all replicas share. A pod deleted mid-outage leaves its rows there,
not only on its disk. When PostgreSQL answers, any replica drains the stream (one at a time, under a lock) and
deletes what it committed; each writer also deletes the entries of its own rows once they are committed. Rows
are inserted idempotently (by request id), so a row that arrives both ways is counted once.

Only as durable as Redis: with AOF (``appendonly yes``) a Redis restart keeps the stream.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable, Sequence
from typing import cast

from redis.asyncio import Redis

STREAM = "webrana:usage:outage"  # entries {r: one usage row as the journal writes it}
DRAIN_LOCK = "webrana:usage:outage:drain"
DRAIN_LOCK_MS = 60_000  # a drainer that died lets another take over after this
FIELD = b"r"
PIPELINE_MAX = 1_000  # entries per round trip
RELEASE_SCRIPT = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"

Entry = tuple[bytes, bytes]  # (stream id, row line)


class OutageStream:
    def __init__(self, redis: Redis) -> None:
        self._redis = redis

    async def add(self, lines: Sequence[bytes]) -> list[bytes]:
        """Append rows; their stream ids, in order."""
        ids: list[bytes] = []
        for i in range(0, len(lines), PIPELINE_MAX):
            async with self._redis.pipeline(transaction=False) as pipe:
                for line in lines[i:i + PIPELINE_MAX]:
                    pipe.xadd(STREAM, {FIELD: line})
                ids.extend(await pipe.execute())
        return ids

    async def delete(self, ids: Sequence[bytes]) -> None:
        for i in range(0, len(ids), PIPELINE_MAX):
            await self._redis.xdel(STREAM, *ids[i:i + PIPELINE_MAX])

    async def length(self) -> int:
        return int(await self._redis.xlen(STREAM))

    async def drain(self, write: Callable[[list[bytes]], Awaitable[object]], batch: int) -> int:
        """Write every entry through ``write`` (which must commit them idempotently or raise), deleting each batch
        once written; 0 if another replica is draining. Returns the entries drained."""
        token = secrets.token_hex(8)
        if not await self._redis.set(DRAIN_LOCK, token, nx=True, px=DRAIN_LOCK_MS):
            return 0
        drained = 0
        try:
            while True:
                entries = cast(list[tuple[bytes, dict[bytes, bytes]]], await self._redis.xrange(STREAM, count=batch))
                if not entries:
                    return drained
                await write([fields.get(FIELD, b"") for _, fields in entries])
                await self.delete([entry_id for entry_id, _ in entries])
                drained += len(entries)
                await self._redis.pexpire(DRAIN_LOCK, DRAIN_LOCK_MS)
        finally:
            await self._redis.eval(RELEASE_SCRIPT, 1, DRAIN_LOCK, token)
