"""Two gateway instances sharing PostgreSQL and Redis: invalidation reaches both, limits hold across both."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import aiohttp
import asyncpg
import openai
import pytest_asyncio
from aiohttp import web
from aiohttp.test_utils import TestClient
from redis.asyncio import Redis

from tests.conftest import serve_app
from tests.gateway.conftest import Account, make_account, sdk, wait_rows
from webrana_proxy.settings import Settings
from webrana_proxy.state import KEYCACHE

MSG = [{"role": "user", "content": "halo"}]
Client = TestClient[web.Request, web.Application]


@pytest_asyncio.fixture(loop_scope="session")
async def replica_b(gw: Client, gateway_env: dict[str, str]) -> AsyncIterator[Client]:
    from webrana_proxy.app import create_app

    async with serve_app(create_app(Settings.from_env(gateway_env))) as c:
        yield c


async def _set_limits(db: str, user_id: str, burst: int | None, monthly: int | None) -> None:
    conn = await asyncpg.connect(db)
    try:
        await conn.execute("""UPDATE users SET burst_per_minute_override = $1, monthly_requests_override = $2
                              WHERE id = $3::uuid""", burst, monthly, user_id)
    finally:
        await conn.close()


async def _outcomes(clients: list[Client], key: str, n: int) -> list[int]:
    """``n`` concurrent calls spread over the replicas, each on a connection of its own (plain HTTP: the SDK
    itself is covered elsewhere)."""
    headers = {"Authorization": f"Bearer {key}"}
    urls = [str(c.make_url("/v1/chat/completions")) for c in clients]
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as session:
        return list(await asyncio.gather(*(_one(session, urls[i % len(urls)], headers) for i in range(n))))


async def _one(session: aiohttp.ClientSession, url: str, headers: dict[str, str]) -> int:
    async with session.post(url, headers=headers, json={"model": "gpt-4o-mini", "messages": MSG}) as resp:
        body = await resp.json()
        if resp.status == 429:
            assert resp.headers["x-ratelimit-remaining-requests"] == "0"
            assert int(resp.headers["retry-after"]) >= 1
            assert body["error"]["type"] == "rate_limit_error"
        else:
            assert resp.status == 200, body
            assert body["choices"][0]["message"]["content"] == "echo: halo"
        return resp.status


async def test_revoking_a_key_reaches_the_other_replica_within_a_second(gw: Client, replica_b: Client,
                                                                       account: Account) -> None:
    b = sdk(replica_b, account.proxy_key)
    await b.chat.completions.create(model="gpt-4o-mini", messages=MSG)  # B has the key cached now
    keys = await (await gw.get("/api/proxy-keys", headers=account.headers)).json()
    assert (await gw.delete(f"/api/proxy-keys/{keys['data'][0]['id']}", headers=account.headers)).status == 200
    loop = asyncio.get_running_loop()
    start = loop.time()
    while True:
        try:
            await b.chat.completions.create(model="gpt-4o-mini", messages=MSG)
        except openai.AuthenticationError:
            break
        assert loop.time() - start < 1.0, "replica B still accepts a revoked key after 1 s"
        await asyncio.sleep(0.02)


async def test_deleting_a_provider_key_reaches_the_other_replica(gw: Client, replica_b: Client,
                                                                account: Account) -> None:
    b = sdk(replica_b, account.proxy_key)
    await b.chat.completions.create(model="claude-sonnet-4-5", messages=MSG)
    keys = await (await gw.get("/api/provider-keys", headers=account.headers)).json()
    anthropic = next(k for k in keys["data"] if k["provider"] == "anthropic")
    assert (await gw.delete(f"/api/provider-keys/{anthropic['id']}", headers=account.headers)).status == 200
    await asyncio.sleep(0.5)
    try:
        await b.chat.completions.create(model="claude-sonnet-4-5", messages=MSG)
        raise AssertionError("replica B still used a deleted provider key")
    except openai.BadRequestError as exc:
        assert "no Anthropic key" in str(exc)


async def _warm_upstream_pools(gw: Client, replica_b: Client, migrated: str) -> None:
    """Open each replica's upstream connections with another account's calls, so the measured burst is about the
    limiter, not about a herd of new TCP connections to the in-process fake upstream."""
    other = await make_account(gw, migrated, providers=("openai",))
    assert set(await _outcomes([gw, replica_b], other.proxy_key, 16)) == {200}


async def test_burst_limit_is_exact_across_two_replicas(gw: Client, replica_b: Client, account: Account,
                                                       migrated: str) -> None:
    await _warm_upstream_pools(gw, replica_b, migrated)
    await _set_limits(migrated, account.user_id, burst=10, monthly=None)
    await gw.app[KEYCACHE].invalidate_user(uuid.UUID(account.user_id))
    await asyncio.sleep(0.2)
    outcomes = await _outcomes([gw, replica_b], account.proxy_key, 30)
    assert outcomes.count(200) == 10 and outcomes.count(429) == 20


async def test_monthly_quota_is_exact_across_two_replicas(gw: Client, replica_b: Client, account: Account,
                                                          migrated: str) -> None:
    await _warm_upstream_pools(gw, replica_b, migrated)
    await _set_limits(migrated, account.user_id, burst=1000, monthly=15)
    await gw.app[KEYCACHE].invalidate_user(uuid.UUID(account.user_id))
    await asyncio.sleep(0.2)
    outcomes = await _outcomes([gw, replica_b], account.proxy_key, 25)
    assert outcomes.count(200) == 15 and outcomes.count(429) == 10


async def test_lost_quota_counters_are_rebuilt_from_postgres(gw: Client, account: Account, migrated: str,
                                                             gateway_env: dict[str, str]) -> None:
    await _set_limits(migrated, account.user_id, burst=1000, monthly=5)
    await gw.app[KEYCACHE].invalidate_user(uuid.UUID(account.user_id))
    assert await _outcomes([gw], account.proxy_key, 3) == [200, 200, 200]
    await wait_rows(migrated, 3)
    redis = Redis.from_url(gateway_env["REDIS_URL"])
    await redis.flushdb()  # Redis restarted empty
    await redis.aclose()
    results = [await _outcomes([gw], account.proxy_key, 1) for _ in range(3)]
    assert [r[0] for r in results] == [200, 200, 429]
