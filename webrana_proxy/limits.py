"""Rate limits and quotas in Redis, each check one atomic Lua call.

* ``check_ip``: the per-IP limit on every route (fixed one-minute windows).
* ``check_gateway``: per-IP, per-user burst and the plan's monthly quota in ONE round trip for a /v1 call.
  If Redis lost the month's counter, the script says so and the caller seeds it from PostgreSQL (never from 0).
* ``check_ruled``: the same for a call whose key has rules counted in Redis (a per-key rate, a spend cap on the
  key or a hard one on the account, a team member's monthly limits): per-key rate, spend caps and member limits
  checked in the same ONE round trip, no lease; it returns the member's request counter, so their alerts
  (``on_member_crossing``) cost no extra call.
* ``check_signup``: sign-ups per address (fixed one-hour windows).

"IP" and "address" here mean the client's limit key (``clientip.limit_key``, computed once per request): an IPv4
address, or an IPv6 client's /64, so rotating through one's own /64 does not escape a limit.

Leases: while every limit has plenty left, the script grants a replica extra calls for one (address, user) pair,
counted in Redis when granted, and the replica spends them without a round trip until the minute ends. A grant is
as large as the pair's demand so far that minute (a first call gets none; then 1, 3, 7, 15 extra), at most
``LEASE_SIZE`` calls plus the calls waiting for it, and never more than 1/``LEASE_SHARE`` of what is left on the
tightest limit, so near a limit every call goes to Redis again (exact: limits are never exceeded). The cost: calls
leased to one replica and not used there count as used for the rest of that minute, so a user whose traffic moves
between replicas may be refused at most ``LEASE_SIZE - 1`` calls per other replica early in that minute; the
unused calls are given back to the month's quota when the minute ends (``return_unused``), but only into the
counter they were leased from (a seed mark: never into one rebuilt from PostgreSQL meanwhile).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError

from webrana_proxy.redispipe import RedisPipe

log = logging.getLogger("webrana.limits")
JAKARTA = timezone(timedelta(hours=7))  # Asia/Jakarta has no DST: a fixed offset is exact
WINDOW_MS = 60_000  # rate windows are one minute
SIGNUP_WINDOW_MS = 3_600_000  # sign-ups are counted per address per hour (settings.DEFAULT_SIGNUP_LIMIT)
QUOTA_TTL_SLACK_S = 7 * 24 * 3600  # keep a finished month's counter a week for support questions
THRESHOLDS = (80, 100)  # percent of a quota or cap at which alerts fire

IP_SCRIPT = """
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
local ttl = redis.call('PTTL', KEYS[1])
return {n, ttl}
"""

# KEYS: ip window, burst window, month quota, the quota's seed mark. ARGV: ip limit, burst limit, quota limit, window
# ms, quota ttl s, calls wanted (this one plus a lease), share. Returns {verdict, limit, remaining, reset_ms,
# granted, seed mark}; verdict 0 ok, 1 ip, 2 burst, 3 quota, 9 quota counter missing. This call is counted first,
# exactly as without leases; extra calls are granted only out of what is left after it, at most 1/share of the
# tightest limit's rest. The seed mark tells a later give-back whether the counter is still the one it leased from.
GATEWAY_SCRIPT = """
local q = redis.call('GET', KEYS[3])
if not q then return {9, 0, 0, 0, 0, ''} end
q = tonumber(q)
local ipl, bl, limit = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local ip = redis.call('INCR', KEYS[1])
if ip == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[4]) end
if ip > ipl then return {1, ipl, 0, redis.call('PTTL', KEYS[1]), 0, ''} end
local b = redis.call('INCR', KEYS[2])
if b == 1 then redis.call('PEXPIRE', KEYS[2], ARGV[4]) end
if b > bl then return {2, bl, 0, redis.call('PTTL', KEYS[2]), 0, ''} end
if q >= limit then return {3, limit, 0, tonumber(ARGV[5]) * 1000, 0, ''} end
local extra = math.min(tonumber(ARGV[6]) - 1,
                       math.floor(math.min(ipl - ip, bl - b, limit - q - 1) / tonumber(ARGV[7])))
if extra > 0 then
  redis.call('INCRBY', KEYS[1], extra)
  redis.call('INCRBY', KEYS[2], extra)
else
  extra = 0
end
redis.call('INCRBY', KEYS[3], 1 + extra)
return {0, limit, limit - q - 1 - extra, redis.call('PTTL', KEYS[2]), 1 + extra, redis.call('GET', KEYS[4]) or ''}
"""

# A call that is not billable (count_tokens): per-IP and per-user burst like any call, the month's quota untouched.
# KEYS: ip window, burst window. ARGV: ip limit, burst limit, window ms. Returns {verdict, limit, remaining, reset_ms}.
BURST_SCRIPT = """
local ipl, bl = tonumber(ARGV[1]), tonumber(ARGV[2])
local ip = redis.call('INCR', KEYS[1])
if ip == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[3]) end
if ip > ipl then return {1, ipl, 0, redis.call('PTTL', KEYS[1])} end
local b = redis.call('INCR', KEYS[2])
if b == 1 then redis.call('PEXPIRE', KEYS[2], ARGV[3]) end
if b > bl then return {2, bl, 0, redis.call('PTTL', KEYS[2])} end
return {0, bl, bl - b, redis.call('PTTL', KEYS[2])}
"""

# Unused leased calls back to the month's quota: only into the counter they were leased from (same seed mark), so
# never into one rebuilt from PostgreSQL meanwhile (which never counted them), and never creating it negative.
RETURN_SCRIPT = """
if redis.call('EXISTS', KEYS[1]) == 1 and (redis.call('GET', KEYS[2]) or '') == ARGV[2] then
  return redis.call('DECRBY', KEYS[1], ARGV[1])
end
return 0
"""
LEASE_SIZE = 16  # calls one grant may cover (this call included), plus the calls waiting for it; a pair's first
# grants in a minute are smaller: as many calls as it has made so far that minute (1, 2, 4, 8, 16), so a single
# call never takes budget it does not use from limits shared with others (an address behind NAT, a user's burst)
LEASE_MAX = 256  # calls one grant may cover at most, however many wait
LEASE_SHARE = 16  # a grant takes at most 1/LEASE_SHARE of what is left on the tightest limit
LEASES_MAX = 100_000  # (address, user) pairs held per process

# KEYS: month quota, its seed mark. ARGV: calls used so far (from PostgreSQL), ttl s, a fresh mark.
SEED_SCRIPT = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'EX', ARGV[2]) then
  redis.call('SET', KEYS[2], ARGV[3], 'EX', ARGV[2])
  return 1
end
return 0
"""

# A call of a key with rules counted in Redis (``keyrules.KeyRules.counted``): what GATEWAY_SCRIPT does, plus the
# key's own per-minute limit, the spend caps (the key's, the account's hard one) and a team member's monthly limits
# (requests and spend, set by the team's owner or a manager), and never a lease (every call asks: the spend counters
# move after each call, on any replica).
# KEYS: ip window, burst window, month quota, key window, key spend, account spend, member requests, member spend.
# ARGV: ip limit, burst limit, quota limit, window ms, quota ttl s, key rpm (0: none), key cap, account cap
# (micro-rupiah; 0: none), billable (1, or 0 for count_tokens: no quota, no caps), member request limit, member
# spend cap (micro-rupiah) (0: none). Returns {verdict, limit, remaining, reset_ms} (an allowed billable call: plus
# the member's request counter after it, 0 without a member request limit, for the alerts); verdict as GATEWAY_SCRIPT's
# plus 4 key rate, 5 key spend cap, 6 account spend cap, 7 member requests, 8 member spend; 9 with limit = the
# missing counters (1 quota, 2 key spend, 4 account spend, 8 member requests, 16 member spend), which the caller
# rebuilds from PostgreSQL before asking again. Order: refusals for a minute count like any call in the windows; a
# capped or over-quota call is not counted in the quota (nor in the member's requests).
RULED_SCRIPT = """
local billable = ARGV[9] == '1'
local kc, uc = tonumber(ARGV[7]), tonumber(ARGV[8])
local mr, mc = tonumber(ARGV[10]), tonumber(ARGV[11])
local q, ks, us, ms, mu = 0, 0, 0, 0, 0
if billable then
  local missing = 0
  q = redis.call('GET', KEYS[3])
  if not q then missing = 1 end
  if kc > 0 then
    ks = redis.call('GET', KEYS[5])
    if not ks then missing = missing + 2 end
  end
  if uc > 0 then
    us = redis.call('GET', KEYS[6])
    if not us then missing = missing + 4 end
  end
  if mr > 0 then
    ms = redis.call('GET', KEYS[7])
    if not ms then missing = missing + 8 end
  end
  if mc > 0 then
    mu = redis.call('GET', KEYS[8])
    if not mu then missing = missing + 16 end
  end
  if missing > 0 then return {9, missing, 0, 0} end
  q, ks, us, ms, mu = tonumber(q), tonumber(ks), tonumber(us), tonumber(ms), tonumber(mu)
end
local ipl, bl, rpm = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[6])
local ip = redis.call('INCR', KEYS[1])
if ip == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[4]) end
if ip > ipl then return {1, ipl, 0, redis.call('PTTL', KEYS[1])} end
local b = redis.call('INCR', KEYS[2])
if b == 1 then redis.call('PEXPIRE', KEYS[2], ARGV[4]) end
if b > bl then return {2, bl, 0, redis.call('PTTL', KEYS[2])} end
if rpm > 0 then
  local k = redis.call('INCR', KEYS[4])
  if k == 1 then redis.call('PEXPIRE', KEYS[4], ARGV[4]) end
  if k > rpm then return {4, rpm, 0, redis.call('PTTL', KEYS[4])} end
end
if not billable then return {0, bl, bl - b, redis.call('PTTL', KEYS[2])} end
local month_ms = tonumber(ARGV[5]) * 1000
if kc > 0 and ks >= kc then return {5, kc, 0, month_ms} end
if uc > 0 and us >= uc then return {6, uc, 0, month_ms} end
if mr > 0 and ms >= mr then return {7, mr, 0, month_ms} end
if mc > 0 and mu >= mc then return {8, mc, 0, month_ms} end
local limit = tonumber(ARGV[3])
if q >= limit then return {3, limit, 0, month_ms} end
redis.call('INCR', KEYS[3])
local m = 0
if mr > 0 then m = redis.call('INCR', KEYS[7]) end
return {0, limit, limit - q - 1, redis.call('PTTL', KEYS[2]), m}
"""

def key_counter(key_id: object, month: str) -> str:
    """A proxy key's spend this month in micro-rupiah (``spend.py`` keeps it)."""
    return f"spend:key:{key_id}:{month}"


def user_counter(user_id: object, month: str) -> str:
    """An account's spend this month in micro-rupiah."""
    return f"spend:user:{user_id}:{month}"


def member_requests_counter(org_id: object, user_id: object, month: str) -> str:
    """A team member's requests this month in the team (kept only while they have a request limit there)."""
    return f"rl:member:{org_id}:{user_id}:{month}"


def member_counter(org_id: object, user_id: object, month: str) -> str:
    """A team member's spend this month in the team, in micro-rupiah (kept only while they have a spend limit)."""
    return f"spend:member:{org_id}:{user_id}:{month}"


def crossed(before: int, after: int, cap: int, thresholds: tuple[int, ...] = THRESHOLDS) -> list[int]:
    """The thresholds (percent of ``cap``) a counter passed going from ``before`` to ``after``."""
    return [t for t in thresholds if before < -(-cap * t // 100) <= after]


@dataclass(frozen=True, slots=True)
class QuotaCrossing:
    """A user's monthly request quota counter passed ``percent`` of the quota with one Redis call."""

    user_id: str
    month: str
    percent: int
    used: int
    quota: int


@dataclass(frozen=True, slots=True)
class MemberCrossing:
    """A team member's monthly request counter in the team passed ``percent`` of their member limit."""

    org_id: str
    user_id: str
    month: str
    percent: int
    used: int
    limit: int


LIMIT_NAMES = {1: "ip", 2: "burst", 3: "quota", 4: "key_rate", 5: "key_spend", 6: "user_spend",
               7: "member_requests", 8: "member_spend"}


@dataclass(frozen=True, slots=True)
class Verdict:
    allowed: bool
    limit_name: str  # a LIMIT_NAMES value, "" when allowed
    limit: int
    remaining: int
    reset_seconds: int


@dataclass(slots=True)
class Lease:
    window: int
    month: str
    limits: tuple[int, int, int]  # (ip, burst, quota) it was granted under: a change ends it
    left: int
    quota_limit: int
    quota_remaining: int  # in Redis after the grant (the leased calls already counted)
    reset_ms: int  # when the burst window ends, as milliseconds since the epoch
    mark: bytes = b""  # the quota counter's seed mark when granted


class Leases:
    """Calls Redis granted this process ahead of time, per (client address, user), for one minute window."""

    __slots__ = ("_by_pair", "_demand", "_owed")

    def __init__(self) -> None:
        self._by_pair: dict[tuple[str, str], Lease] = {}
        self._demand: dict[tuple[str, str], list[int]] = {}  # pair -> [window, calls seen in it]
        self._owed: list[tuple[str, str, int, bytes]] = []  # (user, month, calls, mark) to give back

    def seen(self, pair: tuple[str, str], window: int) -> int:
        """Count one call of ``pair`` in ``window``; returns the calls seen before it in that window."""
        demand = self._demand.get(pair)
        if demand is None or demand[0] != window:
            if len(self._demand) >= LEASES_MAX:
                self._demand = {k: v for k, v in self._demand.items() if v[0] >= window}
            self._demand[pair] = [window, 1]
            return 0
        demand[1] += 1
        return demand[1] - 1

    def take(self, ip: str, user_id: str, limits: tuple[int, int, int], window: int, now: float) -> Verdict | None:
        """A verdict for one call out of the pair's lease, or None (no lease, spent, stale: ask Redis)."""
        lease = self._by_pair.get((ip, user_id))
        if lease is None:
            return None
        if lease.window != window or lease.limits != limits or lease.left <= 0:
            self._end(ip, user_id, lease)
            return None
        lease.left -= 1
        if not lease.left:
            del self._by_pair[(ip, user_id)]
        return Verdict(True, "", lease.quota_limit, lease.quota_remaining + lease.left,
                       _ceil_s(lease.reset_ms - int(now * 1000)))

    def grant(self, ip: str, user_id: str, lease: Lease) -> None:
        old = self._by_pair.get((ip, user_id))
        if old is not None:
            self._end(ip, user_id, old)
        if len(self._by_pair) >= LEASES_MAX:
            self.expire(lease.window)
        if len(self._by_pair) >= LEASES_MAX:  # still full of current pairs: do not hold this one
            self._owed.append((user_id, lease.month, lease.left, lease.mark))
            return
        self._by_pair[(ip, user_id)] = lease

    def _end(self, ip: str, user_id: str, lease: Lease) -> None:
        del self._by_pair[(ip, user_id)]
        if lease.left > 0:
            self._owed.append((user_id, lease.month, lease.left, lease.mark))

    def expire(self, window: int | None) -> None:
        """End the leases of windows before ``window`` (every lease when None)."""
        for pair, lease in list(self._by_pair.items()):
            if window is None or lease.window < window:
                self._end(*pair, lease)
        if window is None:
            self._demand.clear()
        else:
            self._demand = {k: v for k, v in self._demand.items() if v[0] >= window}

    def owed(self) -> list[tuple[str, str, int, bytes]]:
        """Unused leased calls to give back, summed per (user, month, mark); forgotten here once handed out."""
        totals: dict[tuple[str, str, bytes], int] = {}
        for user_id, month, calls, mark in self._owed:
            totals[(user_id, month, mark)] = totals.get((user_id, month, mark), 0) + calls
        self._owed = []
        return [(user_id, month, calls, mark) for (user_id, month, mark), calls in totals.items()]

    def owe(self, owed: list[tuple[str, str, int, bytes]]) -> None:
        self._owed.extend(owed)

    def __len__(self) -> int:
        return len(self._by_pair)


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


class Script:
    """A Lua script called by SHA (EVALSHA), loaded on first use or after Redis forgot it."""

    __slots__ = ("sha", "source")

    def __init__(self, source: str) -> None:
        self.source = source
        self.sha = hashlib.sha1(source.encode(), usedforsecurity=False).hexdigest()

    async def __call__(self, client: Redis | RedisPipe, keys: list[str], args: list[int | str | bytes]) -> list[Any]:
        try:
            return await self._evalsha(client, keys, args)
        except NoScriptError:
            if isinstance(client, RedisPipe):
                await client.execute("SCRIPT", "LOAD", self.source)
            else:
                await client.script_load(self.source)
            return await self._evalsha(client, keys, args)

    async def _evalsha(self, client: Redis | RedisPipe, keys: list[str], args: list[int | str | bytes]) -> list[Any]:
        if isinstance(client, RedisPipe):
            result: list[Any] = await client.evalsha(self.sha, keys, args)
        else:
            result = await client.evalsha(self.sha, len(keys), *keys, *args)
        return result


def month_start_utc(month: str) -> datetime:
    year, mon = (int(x) for x in month.split("-"))
    return datetime(year, mon, 1, tzinfo=JAKARTA).astimezone(UTC)


@dataclass(slots=True)
class _Fetch:
    """The Redis call in flight for one pair; ``done`` resolves when it ends (to its error, if any)."""

    done: asyncio.Future[BaseException | None]
    window: int
    refused: Verdict | None = None


class Limiter:
    """``pipe``, when given, carries the scripts (the lean auto-pipelined connection); else redis-py does."""

    def __init__(self, redis: Redis, ip_limit: int, pipe: RedisPipe | None = None) -> None:
        self._redis: Redis | RedisPipe = pipe if pipe is not None else redis
        self.client = self._redis  # the connection the scripts use, for the spend counters' calls
        self.ip_limit = ip_limit
        self._ip = Script(IP_SCRIPT)
        self._gateway = Script(GATEWAY_SCRIPT)
        self._burst = Script(BURST_SCRIPT)
        self._seed = Script(SEED_SCRIPT)
        self._return = Script(RETURN_SCRIPT)
        self._ruled = Script(RULED_SCRIPT)
        self.leases = Leases()
        self._fetching: dict[tuple[str, str], _Fetch] = {}
        # Calls of a pair waiting for a lease: the next grant asks for enough to cover them (they include calls
        # woken by the previous grant that have not run yet, which the lease may or may not serve).
        self._waiting: dict[tuple[str, str], int] = {}
        self._quota_watchers: list[Callable[[QuotaCrossing], None]] = []
        self._member_watchers: list[Callable[[MemberCrossing], None]] = []

    def on_quota_crossing(self, callback: Callable[[QuotaCrossing], None]) -> None:
        """Call ``callback`` (sync and cheap: schedule work, don't do it) when a month's request quota counter
        passes 80 % or 100 %. The scripts return where the counter got to, so this costs no Redis call: each
        threshold is passed by exactly one script call (Redis runs them one at a time), on whichever replica;
        a counter that goes down again (unused leased calls given back) may pass one again, so watchers
        deduplicate (the alerts do, per user, month and threshold)."""
        self._quota_watchers.append(callback)

    def on_member_crossing(self, callback: Callable[[MemberCrossing], None]) -> None:
        """Like ``on_quota_crossing``, for a team member's monthly request counter in the team (their member limit):
        ``RULED_SCRIPT`` returns where it got to, so this costs no Redis call either."""
        self._member_watchers.append(callback)

    def _quota_moved(self, user_id: str, month: str, before: int, after: int, quota: int) -> None:
        for percent in crossed(before, after, quota):
            crossing = QuotaCrossing(user_id, month, percent, after, quota)
            for watcher in self._quota_watchers:
                try:
                    watcher(crossing)
                except Exception:  # one broken watcher must not fail the call
                    log.exception("quota crossing watcher failed")

    def _member_moved(self, member: tuple[str, str], month: str, after: int, limit: int) -> None:
        for percent in crossed(after - 1, after, limit):
            crossing = MemberCrossing(member[0], member[1], month, percent, after, limit)
            for watcher in self._member_watchers:
                try:
                    watcher(crossing)
                except Exception:  # one broken watcher must not fail the call
                    log.exception("member limit crossing watcher failed")

    @staticmethod
    def _window(now: float) -> int:
        return int(now * 1000) // WINDOW_MS

    async def check_ip(self, ip: str, now: float | None = None) -> IpVerdict:
        t = now if now is not None else time.time()
        key = f"rl:ip:{ip}:{self._window(t)}"
        n, ttl = await self._ip(self._redis, [key], [self.ip_limit, WINDOW_MS])
        n, ttl = int(n), int(ttl)
        return IpVerdict(n <= self.ip_limit, self.ip_limit, max(0, self.ip_limit - n), _ceil_s(ttl))

    async def check_burst(self, ip: str, user_id: str, burst_limit: int, now: float) -> Verdict:
        """Per-IP and per-user burst for a call the month's quota does not count (one round trip, no lease)."""
        w = self._window(now)
        code, limit, remaining, reset_ms = await self._burst(
            self._redis, [f"rl:ip:{ip}:{w}", f"rl:burst:{user_id}:{w}"], [self.ip_limit, burst_limit, WINDOW_MS])
        return Verdict(code == 0, LIMIT_NAMES.get(int(code), ""), int(limit), int(remaining), _ceil_s(int(reset_ms)))

    async def check_signup(self, ip: str, limit: int, now: float | None = None) -> IpVerdict:
        """Count one sign-up of the address ``ip`` (its limit key) in this hour's window."""
        t = now if now is not None else time.time()
        key = f"rl:signup:{ip}:{int(t * 1000) // SIGNUP_WINDOW_MS}"
        n, ttl = await self._ip(self._redis, [key], [limit, SIGNUP_WINDOW_MS])
        n, ttl = int(n), int(ttl)
        return IpVerdict(n <= limit, limit, max(0, limit - n), _ceil_s(ttl))

    def quota_key(self, user_id: str, month: str) -> str:
        return f"rl:quota:{user_id}:{month}"

    async def check_gateway(self, ip: str, user_id: str, burst_limit: int, quota_limit: int,
                            month: str, month_ttl: int, now: float) -> Verdict | None:
        """``None`` means the month's quota counter is missing and must be seeded (from PostgreSQL) first. A call
        covered by this process's lease for the pair is answered without Redis. One Redis call per pair is in
        flight at a time: calls that find the lease spent meanwhile wait for it, and it asks for enough calls to
        cover them too (within the share rule), so a burst of concurrent calls costs one round trip, not one
        each; a refusal is shared with them (they would be refused too)."""
        limits = (self.ip_limit, burst_limit, quota_limit)
        pair = (ip, user_id)
        w = self._window(now)
        seen = self.leases.seen(pair, w)
        while True:
            leased = self.leases.take(ip, user_id, limits, w, now)
            if leased is not None:
                return leased
            fetch = self._fetching.get(pair)
            if fetch is None:
                break
            self._waiting[pair] = self._waiting.get(pair, 0) + 1
            try:
                error = await asyncio.shield(fetch.done)
            finally:
                left = self._waiting[pair] - 1
                if left:
                    self._waiting[pair] = left
                else:
                    del self._waiting[pair]
            if error is not None:  # the call in flight failed: so would ours (the caller falls back)
                raise RedisConnectionError(f"limiter call failed: {error!r}")
            if fetch.refused is not None and fetch.window == self._window(time.time()):
                return fetch.refused
            now = time.time()  # the wait may have crossed into the next minute
            w = self._window(now)
        fetch = self._fetching[pair] = _Fetch(asyncio.get_running_loop().create_future(), w)
        want = min(LEASE_MAX, min(LEASE_SIZE, 1 + seen) + self._waiting.get(pair, 0))
        keys = [f"rl:ip:{ip}:{w}", f"rl:burst:{user_id}:{w}", self.quota_key(user_id, month),
                self.seed_key(user_id, month)]
        # In a task of its own: if this caller is cancelled (its client left), Redis has counted the grant all the
        # same, so the grant is still recorded (and used or given back) when the answer comes.
        script = asyncio.ensure_future(self._gateway(self._redis, keys, [
            self.ip_limit, burst_limit, quota_limit, WINDOW_MS, month_ttl, want, LEASE_SHARE]))
        failure: BaseException | None = None
        try:
            result = await asyncio.shield(script)
        except asyncio.CancelledError:
            script.add_done_callback(lambda done: self._orphaned(done, pair, limits, w, month, now))
            raise
        except BaseException as exc:
            failure = exc
            raise
        finally:
            del self._fetching[pair]
            fetch.done.set_result(failure if isinstance(failure, Exception) else None)
        verdict = self._record(result, pair, limits, w, month, now)
        if verdict is not None and not verdict.allowed:
            fetch.refused = verdict
        return verdict

    async def check_ruled(self, ip: str, user_id: str, key_id: str, burst_limit: int, quota_limit: int,
                          month: str, month_ttl: int, now: float, *, rpm: int | None, key_cap: int | None,
                          user_cap: int | None, billable: bool, member: tuple[str, str] | None = None,
                          member_requests: int | None = None, member_cap: int | None = None) -> Verdict | int:
        """One round trip for a call whose key has counted rules (``RULED_SCRIPT``). ``member``: (team, member)
        whose monthly limits apply. An int: the counters that are missing (1 quota, 2 key spend, 4 account spend,
        8 member requests, 16 member spend) and must be rebuilt from PostgreSQL first."""
        w = self._window(now)
        team, person = member if member is not None else ("-", "-")
        keys = [f"rl:ip:{ip}:{w}", f"rl:burst:{user_id}:{w}", self.quota_key(user_id, month), f"rl:key:{key_id}:{w}",
                key_counter(key_id, month), user_counter(user_id, month),
                member_requests_counter(team, person, month), member_counter(team, person, month)]
        result = await self._ruled(self._redis, keys, [
            self.ip_limit, burst_limit, quota_limit, WINDOW_MS, month_ttl, rpm or 0, key_cap or 0, user_cap or 0,
            1 if billable else 0, member_requests or 0, member_cap or 0])
        code, limit, remaining, reset_ms = result[:4]
        if code == 9:
            return int(limit)
        if code == 0 and billable:
            if self._quota_watchers:  # the quota counter went from limit - remaining - 1
                after = int(limit) - int(remaining)
                self._quota_moved(user_id, month, after - 1, after, int(limit))
            if member_requests and self._member_watchers and member is not None:  # the member's went up by one
                self._member_moved(member, month, int(result[4]), member_requests)
        return Verdict(code == 0, LIMIT_NAMES.get(int(code), ""), int(limit), int(remaining), _ceil_s(int(reset_ms)))

    async def read_counter(self, counter: str) -> int | None:
        """A month counter's value, or None when Redis has none."""
        if isinstance(self._redis, RedisPipe):
            value = await self._redis.execute("GET", counter)
        else:
            value = await self._redis.get(counter)
        return int(value) if value is not None else None

    async def seed_counter(self, counter: str, value: int, ttl_s: int) -> None:
        """Set a month counter rebuilt from PostgreSQL unless another replica did first."""
        if isinstance(self._redis, RedisPipe):
            await self._redis.execute("SET", counter, str(value), "NX", "EX", str(ttl_s + QUOTA_TTL_SLACK_S))
        else:
            await self._redis.set(counter, value, nx=True, ex=ttl_s + QUOTA_TTL_SLACK_S)

    def _record(self, result: list[Any], pair: tuple[str, str], limits: tuple[int, int, int], window: int,
                month: str, now: float) -> Verdict | None:
        code, limit, remaining, reset_ms, granted, mark = result
        if code == 9:
            return None
        if granted and self._quota_watchers:  # the counter went up by ``granted`` to ``limit - remaining``
            self._quota_moved(pair[1], month, limit - remaining - granted, limit - remaining, limit)
        if granted > 1:
            self.leases.grant(*pair, Lease(window, month, limits, granted - 1, limit, remaining,
                                           int(now * 1000) + reset_ms, bytes(mark)))
        return Verdict(code == 0, LIMIT_NAMES.get(code, ""), limit, remaining + granted - 1 if granted else
                       remaining, _ceil_s(reset_ms))

    def _orphaned(self, done: asyncio.Future[list[Any]], pair: tuple[str, str], limits: tuple[int, int, int],
                  window: int, month: str, now: float) -> None:
        """The answer to a call whose caller was cancelled: keep its grant."""
        if done.cancelled() or done.exception() is not None:
            return
        self._record(done.result(), pair, limits, window, month, now)

    async def return_unused(self, now: float | None) -> int:
        """Give unused leased calls of finished minutes (all of them when ``now`` is None: shutting down) back
        to the months' quotas. Returns the calls given back."""
        self.leases.expire(None if now is None else self._window(now))
        owed = self.leases.owed()
        returned = 0
        for i, (user_id, month, calls, mark) in enumerate(owed):
            try:
                await self._return(self._redis, [self.quota_key(user_id, month), self.seed_key(user_id, month)],
                                   [calls, mark])
            except BaseException:  # Redis away, or we were cancelled: kept for the next attempt
                self.leases.owe(owed[i:])
                raise
            returned += calls
        return returned

    def seed_key(self, user_id: str, month: str) -> str:
        return f"rl:quotaseed:{user_id}:{month}"

    async def seed_quota(self, user_id: str, month: str, used: int, ttl_s: int) -> None:
        await self._seed(self._redis, [self.quota_key(user_id, month), self.seed_key(user_id, month)],
                         [used, ttl_s + QUOTA_TTL_SLACK_S, secrets.token_hex(8)])


def _ceil_s(ms: int) -> int:
    return max(1, (ms + 999) // 1000) if ms > 0 else 1
