"""Limiter leases: with plenty left, one Redis round trip covers up to LEASE_SIZE calls of an (address, user) pair;
unused leased calls go back to the month's quota; near a limit, or when the limits change, every call asks Redis."""

from __future__ import annotations

import asyncio
import time
import uuid

import asyncpg
import openai
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from tests.gateway.conftest import Account, sdk, wait_rows
from webrana_proxy.limits import LEASE_SIZE, WINDOW_MS, Lease, Leases, Limiter, jakarta_month
from webrana_proxy.redispipe import RedisPipe
from webrana_proxy.state import KEYCACHE, LIMITER

MSG = [{"role": "user", "content": "halo"}]
LIMITS = (1000, 500, 10_000)


def lease(window: int = 7, left: int = 3, limits: tuple[int, int, int] = LIMITS) -> Lease:
    return Lease(window, "2026-11", limits, left, 10_000, 9_000, (window + 1) * WINDOW_MS)


def test_a_lease_answers_its_calls_then_hands_back_to_redis() -> None:
    leases = Leases()
    assert leases.take("1.2.3.4", "u", LIMITS, 7, 420.0) is None
    leases.grant("1.2.3.4", "u", lease(left=2))
    first = leases.take("1.2.3.4", "u", LIMITS, 7, 420.0)
    assert first is not None and first.allowed and first.limit == 10_000 and first.remaining == 9_001
    assert first.reset_seconds == 60
    second = leases.take("1.2.3.4", "u", LIMITS, 7, 450.5)
    assert second is not None and second.remaining == 9_000 and second.reset_seconds == 30
    assert leases.take("1.2.3.4", "u", LIMITS, 7, 451.0) is None  # spent: Redis again
    assert leases.take("5.6.7.8", "u", LIMITS, 7, 451.0) is None  # another address is another pair
    assert leases.owed() == [] and len(leases) == 0


def test_a_new_minute_or_new_limits_end_a_lease_and_its_rest_is_owed_back() -> None:
    leases = Leases()
    leases.grant("a", "u", lease(left=5))
    assert leases.take("a", "u", LIMITS, 8, 480.0) is None  # the next minute
    leases.grant("a", "u", lease(window=8, left=4))
    assert leases.take("a", "u", (1000, 5, 10_000), 8, 481.0) is None  # the plan changed
    leases.grant("b", "u", lease(window=8, left=2))
    leases.grant("c", "v", lease(window=9, left=6))
    leases.expire(9)  # the sweep: minutes before 9 are over
    assert sorted(leases.owed()) == [("u", "2026-11", 11, b"")]
    assert len(leases) == 1
    leases.expire(None)  # shutting down: everything goes back
    assert leases.owed() == [("v", "2026-11", 6, b"")] and leases.owed() == []


async def new_user(limiter: Limiter) -> tuple[str, str, int]:
    """A user id no other test has touched, with this month's quota counter seeded at 0."""
    month, ttl = jakarta_month()
    user = str(uuid.uuid4())
    await limiter.seed_quota(user, month, 0, ttl)
    return user, month, ttl


async def _evalsha_calls(redis: Redis) -> int:
    stats = await redis.info("commandstats")
    return int(stats.get("cmdstat_evalsha", {}).get("calls", 0))


async def test_one_round_trip_covers_many_calls_and_the_quota_counts_only_real_ones(
        gw: TestClient[web.Request, web.Application], account: Account, migrated: str,
        redis: Redis) -> None:
    conn = await asyncpg.connect(migrated)
    try:
        await conn.execute("""UPDATE users SET burst_per_minute_override = 100000, monthly_requests_override = 100000
                              WHERE id = $1::uuid""", account.user_id)
    finally:
        await conn.close()
    await gw.app[KEYCACHE].invalidate_user(uuid.UUID(account.user_id))
    client = sdk(gw, account.proxy_key)
    calls = 40
    if time.time() % 60 > 50:  # every call inside one minute window (a new minute starts new leases)
        await asyncio.sleep(60 - time.time() % 60 + 0.1)
    await client.chat.completions.create(model="gpt-4o-mini", messages=MSG)  # seeds the month's counter
    before = await _evalsha_calls(redis)
    for _ in range(calls - 1):
        raw = await client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=MSG)
        assert raw.http_response.status_code == 200
    remaining = [int(raw.headers["x-ratelimit-remaining-requests"])]
    round_trips = await _evalsha_calls(redis) - before
    # Grants grow with the minute's demand (as many calls as made so far, up to LEASE_SIZE): calls 3, 7, 15
    # and 31 ask Redis, the 35 others are answered by leases.
    assert round_trips == 4, f"{round_trips} limiter round trips for {calls - 1} calls"
    month, _ = jakarta_month()
    quota_key = gw.app[LIMITER].quota_key(account.user_id, month)
    counted = int(await redis.get(quota_key))
    assert calls < counted < calls + LEASE_SIZE  # leased calls are counted when granted
    assert remaining[0] == 100000 - calls  # what the client is told counts only its calls
    returned = await gw.app[LIMITER].return_unused(None)
    assert returned == counted - calls and int(await redis.get(quota_key)) == calls
    rows = await wait_rows(migrated, calls)
    assert len(rows) == calls  # every call still leaves its usage row


async def test_a_limit_is_exact_with_leases(gw: TestClient[web.Request, web.Application], account: Account,
                                            migrated: str, redis: Redis) -> None:
    """40 a minute: grants shrink as the rest shrinks (at most 1/16 of it), so call 41 is refused, exactly."""
    conn = await asyncpg.connect(migrated)
    try:
        await conn.execute("UPDATE users SET burst_per_minute_override = 40 WHERE id = $1::uuid", account.user_id)
    finally:
        await conn.close()
    await gw.app[KEYCACHE].invalidate_user(uuid.UUID(account.user_id))
    client = sdk(gw, account.proxy_key)
    if time.time() % 60 > 55:  # all 41 calls inside one minute window
        await asyncio.sleep(60 - time.time() % 60 + 0.1)
    before = await _evalsha_calls(redis)
    for _ in range(40):
        await client.chat.completions.create(model="gpt-4o-mini", messages=MSG)
    with pytest.raises(openai.RateLimitError):
        await client.chat.completions.create(model="gpt-4o-mini", messages=MSG)
    round_trips = await _evalsha_calls(redis) - before
    assert 3 <= round_trips < 41, round_trips  # leases while far from the limit, one by one near it
    month, _ = jakarta_month()
    assert await gw.app[LIMITER].return_unused(None) == 0  # nothing was leased and left unused
    assert int(await redis.get(gw.app[LIMITER].quota_key(account.user_id, month))) == 40


async def test_a_burst_of_concurrent_calls_costs_one_round_trip_not_one_each(
        gw: TestClient[web.Request, web.Application], account: Account, migrated: str,
        redis: Redis) -> None:
    """48 calls at once with no lease: one Redis call is in flight for the pair, the others wait for it, and the
    grant covers them (plus a lease of LEASE_SIZE - 1 for what comes next)."""
    limiter = gw.app[LIMITER]
    user, month, ttl = await new_user(limiter)
    if time.time() % 60 > 55:
        await asyncio.sleep(60 - time.time() % 60 + 0.1)
    before = await _evalsha_calls(redis)
    now = time.time()
    verdicts = await asyncio.gather(*(limiter.check_gateway("10.0.0.9", user, 100_000, 100_000, month, ttl, now)
                                      for _ in range(48)))
    assert all(v is not None and v.allowed for v in verdicts)
    round_trips = await _evalsha_calls(redis) - before
    assert round_trips <= 3, f"{round_trips} round trips for 48 concurrent calls"
    counted = int(await redis.get(limiter.quota_key(user, month)))
    assert await limiter.return_unused(None) == counted - 48 < LEASE_SIZE
    assert int(await redis.get(limiter.quota_key(user, month))) == 48  # exactly the calls made


async def test_when_the_call_in_flight_fails_every_waiting_call_fails_at_once() -> None:
    """A Redis failure is shared: the waiting calls do not each try (and time out) in turn. The "Redis" here is a
    loopback server that reads the command and then drops the connection."""
    gate = asyncio.Event()
    commands: list[bytes] = []

    async def drop(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        commands.append(await reader.read(65536))
        await gate.wait()
        writer.transport.abort()

    server = await asyncio.start_server(drop, "127.0.0.1", 0)
    url = f"redis://127.0.0.1:{server.sockets[0].getsockname()[1]}/0"
    pipe = RedisPipe(url)
    limiter = Limiter(Redis.from_url(url), 100, pipe)
    month, ttl = jakarta_month()
    try:
        calls = [asyncio.ensure_future(limiter.check_gateway("10.0.0.8", "u", 100, 100, month, ttl, time.time()))
                 for _ in range(20)]
        await asyncio.sleep(0.05)
        gate.set()
        results = await asyncio.wait_for(asyncio.gather(*calls, return_exceptions=True), 1)
        assert all(isinstance(r, RedisConnectionError) for r in results), results
        assert len(commands) == 1 and commands[0].count(b"EVALSHA") == 1  # one call went out for all 20
    finally:
        await pipe.close()
        server.close()


async def test_one_call_each_from_many_users_behind_one_address_takes_no_more_than_it_uses(
        gw: TestClient[web.Request, web.Application], redis: Redis) -> None:
    """The per-address limit is shared by everyone behind a NAT: a first call in a minute is never granted a lease,
    so 60 users making one call each count exactly 60 against the address."""
    limiter = gw.app[LIMITER]
    if time.time() % 60 > 55:
        await asyncio.sleep(60 - time.time() % 60 + 0.1)
    now = time.time()
    for _ in range(60):
        user, month, ttl = await new_user(limiter)
        verdict = await limiter.check_gateway("10.0.0.7", user, 60, 1000, month, ttl, now)
        assert verdict is not None and verdict.allowed
    assert int(await redis.get(f"rl:ip:10.0.0.7:{int(now * 1000) // WINDOW_MS}")) == 60
    assert len(limiter.leases) == 0


async def test_leftovers_never_go_back_into_a_counter_rebuilt_meanwhile(
        gw: TestClient[web.Request, web.Application], redis: Redis) -> None:
    """Redis loses the month's counter while a lease is held; it is rebuilt from PostgreSQL (which never counted
    the leased calls): giving them back now would under-count the month, so they are not given back."""
    limiter = gw.app[LIMITER]
    user, month, ttl = await new_user(limiter)
    now = time.time()
    for _ in range(4):  # grants grow with demand: the fourth call takes a lease of 3
        assert await limiter.check_gateway("10.0.0.6", user, 1000, 100_000, month, ttl, now) is not None
    assert len(limiter.leases) == 1
    await redis.delete(limiter.quota_key(user, month), limiter.seed_key(user, month))  # Redis lost them
    await limiter.seed_quota(user, month, 4, ttl)  # rebuilt: the 4 calls PostgreSQL knows of
    await limiter.return_unused(None)
    assert int(await redis.get(limiter.quota_key(user, month))) == 4


async def test_a_grant_whose_caller_left_is_kept_not_lost(gw: TestClient[web.Request, web.Application],
                                                         redis: Redis) -> None:
    """The client goes away while its limiter call is in flight: Redis counted the grant, so the process keeps
    the lease (and gives back what it does not use) instead of forgetting it."""
    limiter = gw.app[LIMITER]
    user, month, ttl = await new_user(limiter)
    now = time.time()
    for _ in range(7):
        await limiter.check_gateway("10.0.0.5", user, 1000, 100_000, month, ttl, now)
    # Grants of 1, 2 and 4 (a lease of 3, just spent): no lease held, demand this minute 7 calls.
    assert len(limiter.leases) == 0
    counted = int(await redis.get(limiter.quota_key(user, month)))
    assert counted == 7
    call = asyncio.ensure_future(limiter.check_gateway("10.0.0.5", user, 1000, 100_000, month, ttl, now))
    await asyncio.sleep(0)  # the script is sent
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    await asyncio.sleep(0.1)  # Redis answers; the grant (this call plus a lease of 7) is recorded
    assert len(limiter.leases) == 1
    assert int(await redis.get(limiter.quota_key(user, month))) == counted + 8
    assert await limiter.return_unused(None) == 7
    assert int(await redis.get(limiter.quota_key(user, month))) == counted + 1  # only the call that was made
