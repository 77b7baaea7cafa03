"""Stored responses expire: unreadable after 30 days and deleted by the prune job, one replica at a time."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from aiohttp import web
from aiohttp.test_utils import TestClient

from tests.gateway.conftest import Account, sdk
from webrana_proxy.gateway import responses_store as store
from webrana_proxy.state import POOL

Client = TestClient[web.Request, web.Application]


async def test_expired_responses_are_unreadable_then_pruned(gw: Client, account: Account) -> None:
    pool = gw.app[POOL]
    user = uuid.UUID(account.user_id)
    old, fresh = store.new_response_id(), store.new_response_id()
    response = {"id": old, "object": "response", "output": []}
    await store.save(pool, user, old, "claude-sonnet-4-5", [], response,
                     now=datetime.now(UTC) - store.RETENTION - timedelta(minutes=1))
    await store.save(pool, user, fresh, "claude-sonnet-4-5", [], {**response, "id": fresh})
    assert await store.load(pool, user, old) is None  # past its 30 days: gone for the client at once
    resp = await gw.get(f"/v1/responses/{old}", headers={"Authorization": f"Bearer {account.proxy_key}"})
    assert resp.status == 404
    async with pool.acquire() as holder:  # another replica is pruning: this one skips
        await holder.execute("SELECT pg_advisory_lock($1)", store.PRUNE_LOCK_ID)
        assert await store.prune(pool) is None
        await holder.execute("SELECT pg_advisory_unlock($1)", store.PRUNE_LOCK_ID)
    assert await store.prune(pool) == 1
    assert await pool.fetchval("SELECT array_agg(response_id) FROM stored_responses") == [fresh]
    got = await sdk(gw, account.proxy_key).responses.retrieve(fresh)
    assert got.id == fresh
