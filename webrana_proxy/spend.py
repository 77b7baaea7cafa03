"""Spend counters: what a proxy key and an account spent this month (Asia/Jakarta), in micro-rupiah, in Redis.

A call's cost is known only once its answer is written, so a spend cap is enforced on the next call: the gateway's
ruled limiter call (``limits.Limiter.check_ruled``) compares the counters with the caps before a call goes
upstream, and ``SpendCounters.add`` adds the cost after the answer (from ``gateway.calls.record_call``, which
runs on the loop turn after aiohttp wrote the answer): one fire-and-forget Lua call, never awaited by the call.

Counters exist only for keys with a cap, for accounts with a cap (hard or soft) and for team members with a spend
limit in their team (per team and member: their team keys' calls); others cost nothing. An
increment only ever adds to a counter that exists. A missing one (a new month, a cap just set, Redis restarted
empty) is rebuilt from PostgreSQL (``proxy_requests`` for a key, ``usage_daily`` for an account, as the request
quota is), never started from 0: by the limiter before a capped call, or by the increment that found it missing
(plus that call's cost, whose row is not written yet). Exact across replicas to within the calls in flight: a
call's cost lands in the counter a moment after its answer, and a rebuild misses rows still queued in the usage
writers (or, rarely, counts the one call that found the counter missing twice, if its row was written meanwhile).

Alerts hook on the increments (``on_crossing``): each threshold (80 % and 100 % of a cap) is crossed by exactly
one increment per counter, since Redis adds atomically; after a rebuild, thresholds already passed are not
reported again by this process.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import asyncpg
from aiohttp import web
from redis.asyncio import Redis
from redis.exceptions import RedisError

from webrana_proxy.keycache import Principal
from webrana_proxy.limits import (
    QUOTA_TTL_SLACK_S,
    Script,
    crossed,
    key_counter,
    member_counter,
    month_start_utc,
    user_counter,
)
from webrana_proxy.redispipe import RedisPipe
from webrana_proxy.state import LIMITER, POOL

log = logging.getLogger("webrana.spend")

# KEYS: counters to add to. ARGV: micro-rupiah. Returns each counter's new total, or -1 where it is missing (it
# is then rebuilt from PostgreSQL, which will hold this call's row too: never created here from 0).
ADD_SCRIPT = """
local out = {}
for i = 1, #KEYS do
  if redis.call('EXISTS', KEYS[i]) == 1 then out[i] = redis.call('INCRBY', KEYS[i], ARGV[1]) else out[i] = -1 end
end
return out
"""
# KEYS: a counter. ARGV: the month so far from PostgreSQL plus ``plus``, ttl s, ``plus`` (the cost of a call that
# found the counter missing and is not in PostgreSQL yet: counted once, either way). Another replica may have
# rebuilt it first: its value stands (plus ours). Returns {the counter}.
SEED_SCRIPT = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'EX', ARGV[2]) then return {tonumber(ARGV[1])} end
if ARGV[3] ~= '0' then return {redis.call('INCRBY', KEYS[1], ARGV[3])} end
return {tonumber(redis.call('GET', KEYS[1]))}
"""
KEY_MONTH_SQL = """SELECT coalesce(sum(cost_idr_micro + cost_idr * 1000000), 0)::bigint FROM proxy_requests
                   WHERE proxy_key_id = $1 AND created_at >= $2"""
USER_MONTH_SQL = """SELECT coalesce(sum(cost_idr_micro + cost_idr * 1000000), 0)::bigint FROM usage_daily
                    WHERE user_id = $1 AND org_id IS NULL
                      AND day >= ($2::timestamptz AT TIME ZONE 'Asia/Jakarta')::date"""

# A team member's spend in the team this month (their team keys' calls), from the roll-up (sql/0014's index).
MEMBER_MONTH_SQL = """SELECT coalesce(sum(cost_idr_micro + cost_idr * 1000000), 0)::bigint FROM usage_daily
                      WHERE org_id = $1 AND user_id = $2
                        AND day >= ($3::timestamptz AT TIME ZONE 'Asia/Jakarta')::date"""


@dataclass(frozen=True, slots=True)
class Crossing:
    """A spend counter passed ``percent`` of its cap with this increment."""

    scope: str  # "key" | "user" | "member" (a team member's spend limit in the team)
    user_id: uuid.UUID  # the account (for "member", the member)
    key_id: uuid.UUID | None  # the key whose call crossed it (for "user" and "member", the key that made the call)
    month: str  # YYYY-MM, Asia/Jakarta
    percent: int
    spent_micro: int
    cap_micro: int
    hard: bool  # the cap stops calls (a key's and a member's always do; an account's when hard)
    org_id: uuid.UUID | None = None  # the team of a "member" crossing


class SpendCounters:
    def __init__(self, pool: asyncpg.Pool, client: Redis | RedisPipe) -> None:
        self._pool = pool
        self._redis = client
        self._add = Script(ADD_SCRIPT)
        self._seed = Script(SEED_SCRIPT)
        self._tasks: set[asyncio.Task[None]] = set()
        self._watchers: list[Callable[[Crossing], None]] = []
        self._failing = False

    def on_crossing(self, callback: Callable[[Crossing], None]) -> None:
        """Call ``callback`` (sync and cheap: schedule work, don't do it) when a counter passes 80 % or 100 %."""
        self._watchers.append(callback)

    def add(self, principal: Principal, cost_micro: int, month: str, month_ttl: int) -> None:
        """Add a finished call's cost to its key's and account's counters (those with a cap). Synchronous, no
        I/O here: the Redis call runs in a task of its own and nobody waits for it."""
        rules = principal.rules
        if rules is None or cost_micro <= 0 or not rules.tracks_spend:
            return
        task = asyncio.ensure_future(self._apply(principal, cost_micro, month, month_ttl))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _apply(self, principal: Principal, cost: int, month: str, month_ttl: int) -> None:
        rules = principal.rules
        assert rules is not None
        counters: list[tuple[str, str, int, bool]] = []  # (counter, scope, cap, hard)
        if rules.key_cap_micro is not None:
            counters.append((key_counter(principal.proxy_key_id, month), "key", rules.key_cap_micro, True))
        user_cap = rules.user_cap
        if user_cap is not None:
            counters.append((user_counter(principal.user_id, month), "user", user_cap,
                             rules.user_cap_micro is not None))
        if rules.member_cap_micro is not None and principal.org_id is not None:
            counters.append((member_counter(principal.org_id, principal.user_id, month), "member",
                             rules.member_cap_micro, True))
        try:
            totals = await self._add(self._redis, [c[0] for c in counters], [cost])
        except (RedisError, OSError) as exc:
            if not self._failing:
                self._failing = True
                log.warning("spend counters not updated: Redis unreachable; they are rebuilt from PostgreSQL "
                            "when they expire or are lost", extra={"error": type(exc).__name__})
            return
        self._failing = False
        for (_, scope, cap, hard), total in zip(counters, totals, strict=True):
            total = int(total)
            if total < 0:  # missing (a new month, Redis restarted): rebuilt here, this call's cost included
                try:
                    if scope == "key":
                        total = await self.seed_key(principal.proxy_key_id, month, month_ttl, plus=cost)
                    elif scope == "user":
                        total = await self.seed_user(principal.user_id, month, month_ttl, plus=cost)
                    else:
                        assert principal.org_id is not None
                        total = await self.seed_member(principal.org_id, principal.user_id, month, month_ttl,
                                                       plus=cost)
                except (RedisError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                    log.warning("spend counter not rebuilt yet", extra={"error": type(exc).__name__})
                    continue
            for percent in crossed(total - cost, total, cap):
                self._notify(Crossing(scope, principal.user_id, principal.proxy_key_id, month, percent, total,
                                      cap, hard, principal.org_id if scope == "member" else None))

    def _notify(self, crossing: Crossing) -> None:
        for watcher in self._watchers:
            try:
                watcher(crossing)
            except Exception:  # one broken watcher must not stop the others
                log.exception("spend crossing watcher failed")

    async def seed_key(self, key_id: uuid.UUID, month: str, month_ttl: int, *, plus: int = 0) -> int:
        """Rebuild a key's counter from ``proxy_requests`` unless another replica did; returns it."""
        spent = await self._pool.fetchval(KEY_MONTH_SQL, key_id, month_start_utc(month))
        return await self._seeded(key_counter(key_id, month), int(spent), month_ttl, plus)

    async def seed_user(self, user_id: uuid.UUID, month: str, month_ttl: int, *, plus: int = 0) -> int:
        """Rebuild an account's counter from ``usage_daily`` unless another replica did; returns it."""
        spent = await self._pool.fetchval(USER_MONTH_SQL, user_id, month_start_utc(month))
        return await self._seeded(user_counter(user_id, month), int(spent), month_ttl, plus)

    async def seed_member(self, org_id: uuid.UUID, user_id: uuid.UUID, month: str, month_ttl: int, *,
                          plus: int = 0) -> int:
        """Rebuild a team member's spend counter in the team from ``usage_daily`` unless another replica did."""
        spent = await self._pool.fetchval(MEMBER_MONTH_SQL, org_id, user_id, month_start_utc(month))
        return await self._seeded(member_counter(org_id, user_id, month), int(spent), month_ttl, plus)

    async def _seeded(self, counter: str, spent: int, month_ttl: int, plus: int) -> int:
        (value,) = await self._seed(self._redis, [counter], [spent + plus, month_ttl + QUOTA_TTL_SLACK_S, plus])
        return int(value)

    async def key_spend(self, key_ids: list[uuid.UUID], month: str, month_ttl: int) -> dict[uuid.UUID, int]:
        """This month's spend of keys that have a cap (their counters are kept), rebuilt where missing."""
        if not key_ids:
            return {}
        raw = await self._mget([key_counter(k, month) for k in key_ids])
        out: dict[uuid.UUID, int] = {}
        for key_id, value in zip(key_ids, raw, strict=True):
            out[key_id] = int(value) if value is not None else await self.seed_key(key_id, month, month_ttl)
        return out

    async def user_spend(self, user_id: uuid.UUID, month: str, month_ttl: int, *, capped: bool) -> int:
        """This month's spend of an account: its counter when it has a cap (kept up to date), else PostgreSQL's
        ``usage_daily`` (no counter is kept, so none is made)."""
        if not capped:
            return int(await self._pool.fetchval(USER_MONTH_SQL, user_id, month_start_utc(month)))
        value = (await self._mget([user_counter(user_id, month)]))[0]
        return int(value) if value is not None else await self.seed_user(user_id, month, month_ttl)

    async def member_spend(self, org_id: uuid.UUID, user_id: uuid.UUID, month: str, month_ttl: int, *,
                           capped: bool) -> int:
        """This month's spend of a team member in the team: their counter when they have a spend limit (kept up to
        date), else ``usage_daily``."""
        if not capped:
            return int(await self._pool.fetchval(MEMBER_MONTH_SQL, org_id, user_id, month_start_utc(month)))
        value = (await self._mget([member_counter(org_id, user_id, month)]))[0]
        return int(value) if value is not None else await self.seed_member(org_id, user_id, month, month_ttl)

    async def forget(self, counters: list[str]) -> None:
        """Drop counters whose cap was set, changed or removed: no increments reached them while there was no
        cap, so the next check rebuilds them from PostgreSQL."""
        if counters:
            if isinstance(self._redis, RedisPipe):
                await self._redis.execute("DEL", *counters)
            else:
                await self._redis.delete(*counters)

    async def _mget(self, counters: list[str]) -> list[Any]:
        if isinstance(self._redis, RedisPipe):
            result: list[Any] = await self._redis.execute("MGET", *counters)
        else:
            result = await self._redis.mget(counters)
        return result

    async def drain(self) -> None:
        """Wait (briefly) for increments still in flight: at shutdown, after the last call was recorded."""
        if self._tasks:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.gather(*self._tasks, return_exceptions=True), timeout=2)


SPEND = web.AppKey("spend", SpendCounters)


async def spend_ctx(app: web.Application) -> AsyncIterator[None]:
    """``cleanup_ctx`` entry: the counters on the app (after PostgreSQL and Redis), drained at shutdown."""
    app[SPEND] = SpendCounters(app[POOL], app[LIMITER].client)
    yield
    await app[SPEND].drain()
