"""Rate limits and quotas in Redis, each check one atomic Lua call.

* ``check_ip``: the per-IP limit on every route (fixed one-minute windows).
* ``check_gateway``: per-IP, per-user burst and the plan's monthly quota in ONE round trip for a /v1 call.
  If Redis lost the month's counter, the script says so and the caller seeds it from PostgreSQL (never from 0).
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone

from redis.asyncio import Redis
from redis.exceptions import NoScriptError

from webrana_proxy.redispipe import RedisPipe

JAKARTA = timezone(timedelta(hours=7))  # Asia/Jakarta has no DST: a fixed offset is exact
WINDOW_MS = 60_000  # rate windows are one minute
QUOTA_TTL_SLACK_S = 7 * 24 * 3600  # keep a finished month's counter a week for support questions

IP_SCRIPT = """
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
local ttl = redis.call('PTTL', KEYS[1])
return {n, ttl}
"""

# KEYS: ip window, burst window, month quota. ARGV: ip limit, burst limit, quota limit, window ms, quota ttl s.
# Returns {verdict, limit, remaining, reset_ms}; verdict 0 ok, 1 ip, 2 burst, 3 quota, 9 quota counter missing.
GATEWAY_SCRIPT = """
local q = redis.call('GET', KEYS[3])
if not q then return {9, 0, 0, 0} end
q = tonumber(q)
local ip = redis.call('INCR', KEYS[1])
if ip == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[4]) end
if ip > tonumber(ARGV[1]) then return {1, tonumber(ARGV[1]), 0, redis.call('PTTL', KEYS[1])} end
local b = redis.call('INCR', KEYS[2])
if b == 1 then redis.call('PEXPIRE', KEYS[2], ARGV[4]) end
if b > tonumber(ARGV[2]) then return {2, tonumber(ARGV[2]), 0, redis.call('PTTL', KEYS[2])} end
local limit = tonumber(ARGV[3])
if q >= limit then return {3, limit, 0, tonumber(ARGV[5]) * 1000} end
redis.call('INCR', KEYS[3])
return {0, limit, limit - q - 1, redis.call('PTTL', KEYS[2])}
"""

SEED_SCRIPT = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'EX', ARGV[2]) then return 1 end
return 0
"""

LIMIT_NAMES = {1: "ip", 2: "burst", 3: "quota"}


@dataclass(frozen=True, slots=True)
class Verdict:
    allowed: bool
    limit_name: str  # "ip" | "burst" | "quota" | "" when allowed
    limit: int
    remaining: int
    reset_seconds: int


@dataclass(frozen=True, slots=True)
class IpVerdict:
    allowed: bool
    limit: int
    remaining: int
    reset_seconds: int


def jakarta_month(now: float | None = None) -> tuple[str, int]:
    """('YYYY-MM', seconds until the month ends) in Asia/Jakarta."""
    dt = datetime.fromtimestamp(now if now is not None else time.time(), JAKARTA)
    nxt = datetime(dt.year + (dt.month == 12), dt.month % 12 + 1, 1, tzinfo=JAKARTA)
    return f"{dt.year:04d}-{dt.month:02d}", max(1, int((nxt - dt).total_seconds()))


class MonthClock:
    """``jakarta_month`` for the hot path: the month and its end are recomputed once a minute, not per call."""

    __slots__ = ("_end", "_minute", "_month")

    def __init__(self) -> None:
        self._minute = -1
        self._month = ""
        self._end = 0.0

    def at(self, now: float) -> tuple[str, int]:
        minute = int(now // 60)
        if minute != self._minute:
            self._month, ttl = jakarta_month(now)
            self._end = now + ttl
            self._minute = minute
        return self._month, max(1, int(self._end - now))


class _Script:
    """A Lua script called by SHA (EVALSHA), loaded on first use or after Redis forgot it."""

    __slots__ = ("sha", "source")

    def __init__(self, source: str) -> None:
        self.source = source
        self.sha = hashlib.sha1(source.encode(), usedforsecurity=False).hexdigest()

    async def __call__(self, client: Redis | RedisPipe, keys: list[str], args: list[int | str]) -> list[int]:
        try:
            return await self._evalsha(client, keys, args)
        except NoScriptError:
            if isinstance(client, RedisPipe):
                await client.execute("SCRIPT", "LOAD", self.source)
            else:
                await client.script_load(self.source)
            return await self._evalsha(client, keys, args)

    async def _evalsha(self, client: Redis | RedisPipe, keys: list[str], args: list[int | str]) -> list[int]:
        if isinstance(client, RedisPipe):
            result: list[int] = await client.evalsha(self.sha, keys, args)
        else:
            result = await client.evalsha(self.sha, len(keys), *keys, *args)
        return result


def month_start_utc(month: str) -> datetime:
    year, mon = (int(x) for x in month.split("-"))
    return datetime(year, mon, 1, tzinfo=JAKARTA).astimezone(UTC)


class Limiter:
    """``pipe``, when given, carries the scripts (the lean auto-pipelined connection); else redis-py does."""

    def __init__(self, redis: Redis, ip_limit: int, pipe: RedisPipe | None = None) -> None:
        self._redis: Redis | RedisPipe = pipe if pipe is not None else redis
        self.ip_limit = ip_limit
        self._ip = _Script(IP_SCRIPT)
        self._gateway = _Script(GATEWAY_SCRIPT)
        self._seed = _Script(SEED_SCRIPT)

    @staticmethod
    def _window(now: float) -> int:
        return int(now * 1000) // WINDOW_MS

    async def check_ip(self, ip: str, now: float | None = None) -> IpVerdict:
        t = now if now is not None else time.time()
        key = f"rl:ip:{ip}:{self._window(t)}"
        n, ttl = await self._ip(self._redis, [key], [self.ip_limit, WINDOW_MS])
        n, ttl = int(n), int(ttl)
        return IpVerdict(n <= self.ip_limit, self.ip_limit, max(0, self.ip_limit - n), _ceil_s(ttl))

    def quota_key(self, user_id: str, month: str) -> str:
        return f"rl:quota:{user_id}:{month}"

    async def check_gateway(self, ip: str, user_id: str, burst_limit: int, quota_limit: int,
                            month: str, month_ttl: int, now: float) -> Verdict | None:
        """``None`` means the month's quota counter is missing and must be seeded (from PostgreSQL) first."""
        w = self._window(now)
        keys = [f"rl:ip:{ip}:{w}", f"rl:burst:{user_id}:{w}", self.quota_key(user_id, month)]
        code, limit, remaining, reset_ms = await self._gateway(
            self._redis, keys, [self.ip_limit, burst_limit, quota_limit, WINDOW_MS, month_ttl])
        if code == 9:
            return None
        return Verdict(code == 0, LIMIT_NAMES.get(code, ""), limit, remaining, _ceil_s(reset_ms))

    async def seed_quota(self, user_id: str, month: str, used: int, ttl_s: int) -> None:
        await self._seed(self._redis, [self.quota_key(user_id, month)], [used, ttl_s + QUOTA_TTL_SLACK_S])


def _ceil_s(ms: int) -> int:
    return max(1, (ms + 999) // 1000) if ms > 0 else 1
