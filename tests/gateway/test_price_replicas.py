"""An admin's price override reaches every replica within a second: two gateway instances on the same PostgreSQL
and Redis, the override changed through one, a call priced on the other."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest_asyncio
from aiohttp import web
from aiohttp.test_utils import TestClient

from tests.conftest import serve_app
from tests.gateway.conftest import Account, make_account, sdk, wait_rows
from webrana_proxy.providers.base import Usage
from webrana_proxy.settings import Settings
from webrana_proxy.state import PRICES

Client = TestClient[web.Request, web.Application]
MODEL = "gpt-7-preview"  # a model nobody priced yet: "released this morning"
USAGE = Usage(prompt_tokens=1_000_000, completion_tokens=1_000_000, total_tokens=2_000_000)
WITHIN_SECONDS = 1.0  # the bar, the same as the key cache's invalidation


@pytest_asyncio.fixture(loop_scope="session")
async def replica_b(gw: Client, gateway_env: dict[str, str]) -> AsyncIterator[Client]:
    from webrana_proxy.app import create_app

    async with serve_app(create_app(Settings.from_env(gateway_env))) as c:
        yield c


async def _admin(gw: Client, db_url: str) -> Account:
    admin = await make_account(gw, db_url, providers=())
    conn = await asyncpg.connect(db_url)
    try:
        await conn.execute("UPDATE users SET role = 'admin' WHERE id = $1::uuid", admin.user_id)
    finally:
        await conn.close()
    return admin


async def _until(replica: Client, source: str) -> float:
    """Seconds until ``replica`` prices MODEL from ``source`` (fails after WITHIN_SECONDS)."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    while replica.app[PRICES].price("openai", MODEL, USAGE, 16_500)[0].source != source:
        assert loop.time() - start < WITHIN_SECONDS, f"replica B does not price {MODEL} from {source} after 1 s"
        await asyncio.sleep(0.01)
    return loop.time() - start


async def test_a_price_override_reaches_the_other_replica_within_a_second(
    gw: Client, replica_b: Client, account: Account, migrated: str
) -> None:
    admin = await _admin(gw, migrated)
    b = sdk(replica_b, account.proxy_key)
    await b.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "halo"}])
    assert replica_b.app[PRICES].price("openai", MODEL, USAGE, 16_500)[0].source == "fallback"  # looked up, cached

    resp = await gw.post("/api/admin/prices", headers=admin.headers, json={
        "provider": "openai", "model_pattern": "gpt-7*", "prices": {"input": "3", "output": "12"},
        "source": "https://openai.com/api/pricing", "note": "launched this morning"})
    assert resp.status == 201, await resp.text()
    override = await resp.json()
    await _until(replica_b, "override")

    # A call through replica B is now priced by the override (the cost worked out from the row's own tokens).
    await b.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "halo"}])
    rows = await wait_rows(migrated, 2)
    first, second = rows[-2], rows[-1]
    assert first["price_source"] == "fallback"
    assert (second["price_source"], second["price_version"]) == ("override", f"db {override['id']}")
    # $3 / $12 per Mtok = 3,000 / 12,000 pico-USD per token; rounded once to nano-USD
    pico = second["prompt_tokens"] * 3_000_000 + second["completion_tokens"] * 12_000_000
    assert second["cost_usd_nano"] == (pico + 500) // 1000 > 0
    assert second["cost_idr_micro"] == (pico * second["usd_to_idr"] + 500_000) // 1_000_000

    # Changed and then removed through A: B follows each time.
    resp = await gw.put(f"/api/admin/prices/{override['id']}", headers=admin.headers, json={
        "provider": "openai", "model_pattern": "gpt-7*", "prices": {"input": "1", "output": "2"}})
    assert resp.status == 200, await resp.text()
    loop = asyncio.get_running_loop()
    start = loop.time()
    while replica_b.app[PRICES].price("openai", MODEL, USAGE, 16_500)[0].cost_usd_nano != 3_000_000_000:
        assert loop.time() - start < WITHIN_SECONDS, "replica B still has the old override after 1 s"
        await asyncio.sleep(0.01)
    assert (await gw.delete(f"/api/admin/prices/{override['id']}", headers=admin.headers)).status == 204
    await _until(replica_b, "fallback")
    await b.close()
