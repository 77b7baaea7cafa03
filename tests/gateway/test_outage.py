"""PostgreSQL goes away while calls are made: calls with cached keys keep working, readiness says so, and every
usage row from the outage is written once it returns."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest
import pytest_asyncio
from aiohttp import web
from aiohttp.test_utils import TestClient

import devstack
from tests.conftest import serve_app
from tests.gateway.conftest import make_account, sdk
from webrana_proxy.migrate import apply_migrations
from webrana_proxy.settings import Settings
from webrana_proxy.state import USAGE

CALLS = 12


@pytest.fixture(scope="module")
def own_postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[devstack.Postgres]:
    """A PostgreSQL of this test's own, so stopping it disturbs nothing else."""
    root = Path(tmp_path_factory.mktemp("outage"))
    pg = devstack.Postgres(root, fast=True)
    pg.start()
    pg.ensure_database("webrana")
    yield pg
    pg.stop()


def restart_on_same_port(pg: devstack.Postgres, monkeypatch: pytest.MonkeyPatch) -> None:
    port = pg.port
    monkeypatch.setattr(devstack, "free_port", lambda host="127.0.0.1": port)
    pg.start()
    assert pg.port == port


@pytest_asyncio.fixture(loop_scope="session")
async def outage_gw(own_postgres: devstack.Postgres, gateway_env: dict[str, str],
                    clean: None) -> AsyncIterator[TestClient[web.Request, web.Application]]:
    url = own_postgres.url("webrana")
    conn = await asyncpg.connect(url)
    try:
        await apply_migrations(conn)
    finally:
        await conn.close()
    from webrana_proxy.app import create_app

    async with serve_app(create_app(Settings.from_env({**gateway_env, "DATABASE_URL": url}))) as c:
        yield c


async def test_calls_survive_a_postgres_outage_and_no_row_is_lost(
        outage_gw: TestClient[web.Request, web.Application], own_postgres: devstack.Postgres,
        monkeypatch: pytest.MonkeyPatch) -> None:
    url = own_postgres.url("webrana")
    acct = await make_account(outage_gw, url)
    client = sdk(outage_gw, acct.proxy_key)
    await client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "warm"}])
    await asyncio.sleep(0.5)  # the warm-up row is written; the key is cached

    await asyncio.to_thread(own_postgres.stop)
    ready = await outage_gw.get("/health/ready")
    assert ready.status == 503 and (await ready.json())["postgres"].startswith("down")
    for i in range(CALLS):
        kwargs = {"stream": True} if i % 2 else {}
        result = await client.chat.completions.create(
            model="claude-sonnet-4-5", messages=[{"role": "user", "content": f"selama gangguan {i}"}], **kwargs)
        if kwargs:
            async for _ in result:  # type: ignore[union-attr]
                pass
    await asyncio.sleep(0.5)
    assert len(outage_gw.app[USAGE]) == CALLS  # waiting in memory, not dropped

    await asyncio.to_thread(restart_on_same_port, own_postgres, monkeypatch)
    conn = await asyncpg.connect(url)
    try:
        for _ in range(100):
            count = await conn.fetchval("SELECT count(*) FROM proxy_requests")
            if count == CALLS + 1:
                break
            await asyncio.sleep(0.1)
        assert count == CALLS + 1
        assert await conn.fetchval("SELECT sum(requests) FROM usage_daily") == CALLS + 1
    finally:
        await conn.close()
    assert (await outage_gw.get("/health/ready")).status == 200
