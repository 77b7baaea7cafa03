"""A team member's monthly request and spend limits, set by the owner or a manager, through the gateway on two
replicas sharing one PostgreSQL and Redis: the member's team keys are refused with a 429 naming their team limit
(exact across replicas, rebuilt from the roll-up when Redis loses the counter); other members, and the member's own
personal keys, are untouched; the member reads their own limits and use, nobody else's."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from redis.asyncio import Redis

from tests.conftest import serve_app
from tests.fakes.scenario import FakeState
from tests.gateway.conftest import fake, fakes, gateway_env, gw, make_account, wait_rows
from tests.gateway.test_team_keys import Client, call, team, team_key
from webrana_proxy.limits import jakarta_month
from webrana_proxy.settings import Settings

__all__ = ["fake", "fakes", "gateway_env", "gw"]  # the gateway's fixtures, used here as they are
BIG = [{"role": "user", "content": "halo " * 2000}]  # about Rp 25 of gpt-4o-mini with the fakes (a word a token)


@pytest.fixture
def env_overrides() -> dict[str, str]:
    return {}  # the gateway's own settings (no SMTP: addresses need no verification), not the teams folder's mail


@pytest_asyncio.fixture(loop_scope="session")
async def replica_b(gw: Client, gateway_env: dict[str, str]) -> AsyncIterator[Client]:
    from webrana_proxy.app import create_app

    async with serve_app(create_app(Settings.from_env(gateway_env))) as c:
        yield c


async def put_limits(client: Client, org_id: str, who: Any, member: Any, status: int = 200,
                     **limits: int | None) -> dict[str, Any]:
    resp = await client.put(f"/api/orgs/{org_id}/members/{member.user_id}/limits", json=limits,
                            headers=who.headers)
    assert resp.status == status, await resp.text()
    body: dict[str, Any] = await resp.json()
    return body


async def limits_of(client: Client, org_id: str, who: Any, member: Any, status: int = 200) -> dict[str, Any]:
    resp = await client.get(f"/api/orgs/{org_id}/members/{member.user_id}/limits", headers=who.headers)
    assert resp.status == status, await resp.text()
    body: dict[str, Any] = await resp.json()
    return body


async def test_a_members_request_limit_stops_their_team_keys_on_every_replica_and_only_theirs(
        gw: Client, replica_b: Client, migrated: str, fake: FakeState, gateway_env: dict[str, str]) -> None:
    owner = await make_account(gw, migrated, providers=())
    a = await make_account(gw, migrated, providers=("openai",))  # with a personal key of their own too
    b = await make_account(gw, migrated, providers=())
    org_id = await team(gw, migrated, owner, a, b)
    key_a, key_b = await team_key(gw, org_id, a), await team_key(gw, org_id, b)
    assert (await call(replica_b, key_a))[0] == 200  # replica B has the key cached before the limit is set

    # A member neither sets limits nor reads another member's; they read their own.
    await put_limits(gw, org_id, b, a, 403, monthly_request_limit=1)
    await limits_of(gw, org_id, b, a, 404)
    await wait_rows(migrated, 1)
    mine = await limits_of(gw, org_id, a, a)  # without a limit, the use comes from the roll-up
    assert (mine["monthly_request_limit"], mine["requests_this_month"]) == (None, 1)
    set_ = await put_limits(gw, org_id, owner, a, monthly_request_limit=3)
    assert (set_["monthly_request_limit"], set_["monthly_spend_limit_idr"]) == (3, None)
    await asyncio.sleep(0.3)  # the invalidation reaches replica B (within a second)

    assert (await call(gw, key_a))[0] == 200
    assert (await call(replica_b, key_a))[0] == 200  # 3 of 3, counted across both replicas
    for replica in (gw, replica_b):
        status, body = await call(replica, key_a)
        assert status == 429, body
        assert body["error"]["code"] == "member_request_limit_reached"
        assert "your monthly request limit in this team (3 requests)" in body["error"]["message"]
        assert "member limit" in body["error"]["message"]
    assert (await call(replica_b, key_b))[0] == 200  # another member is not limited
    assert (await call(gw, a.proxy_key))[0] == 200  # nor the member's personal key
    seen = await limits_of(gw, org_id, a, a)
    assert (seen["requests_this_month"], seen["requests_percent"]) == (3, 100)

    await wait_rows(migrated, 6)  # every call's row is in PostgreSQL: Redis loses the member's counter
    redis = Redis.from_url(gateway_env["REDIS_URL"])
    try:
        month, _ = jakarta_month()
        assert await redis.delete(f"rl:member:{org_id}:{a.user_id}:{month}") == 1
    finally:
        await redis.aclose()
    status, body = await call(replica_b, key_a)  # rebuilt from the team's roll-up for that member, never from 0
    assert status == 429 and body["error"]["code"] == "member_request_limit_reached"

    await put_limits(gw, org_id, owner, a, monthly_request_limit=None)  # lifted: calls go on at once
    assert (await call(gw, key_a))[0] == 200


async def test_a_members_spend_limit_is_a_429_without_retry_naming_their_team_limit(
        gw: Client, replica_b: Client, migrated: str, fake: FakeState) -> None:
    owner = await make_account(gw, migrated, providers=())
    a = await make_account(gw, migrated, providers=())
    org_id = await team(gw, migrated, owner, a)
    key_a = await team_key(gw, org_id, a)

    set_ = await put_limits(gw, org_id, owner, a, monthly_spend_limit_idr=10)
    assert (set_["monthly_spend_limit_idr"], set_["spent_this_month_idr_micro"]) == (10, 0)
    resp = await gw.post("/v1/chat/completions", headers={"Authorization": f"Bearer {key_a}"},
                         json={"model": "gpt-4o-mini", "messages": BIG})
    assert resp.status == 200, await resp.text()
    spent = 0
    for _ in range(100):  # the call's cost reaches the member's counter just after its answer
        spent = (await limits_of(gw, org_id, a, a))["spent_this_month_idr_micro"]
        if spent >= 10_000_000:
            break
        await asyncio.sleep(0.05)
    assert spent >= 10_000_000
    status, body = await call(replica_b, key_a)  # refused on the other replica too
    assert status == 429 and body["error"]["code"] == "member_spend_limit_reached", body
    assert "your monthly spend limit in this team (Rp 10)" in body["error"]["message"]
    resp = await gw.post("/v1/chat/completions", headers={"Authorization": f"Bearer {key_a}"},
                         json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]})
    assert resp.status == 429 and resp.headers["x-should-retry"] == "false"  # a month-long wait: no SDK retry
    assert (await limits_of(gw, org_id, a, a))["spend_percent"] >= 100
    assert (await limits_of(gw, org_id, owner, a))["spend_percent"] >= 100  # the owner sees it too


async def test_a_manager_sets_a_members_limits_but_not_the_owners(gw: Client, migrated: str) -> None:
    owner = await make_account(gw, migrated, providers=())
    manager = await make_account(gw, migrated, providers=())
    member = await make_account(gw, migrated, providers=())
    org_id = await team(gw, migrated, owner, manager, member)
    resp = await gw.patch(f"/api/orgs/{org_id}/members/{manager.user_id}", json={"role": "manager"},
                          headers=owner.headers)
    assert resp.status == 200, await resp.text()
    assert (await put_limits(gw, org_id, manager, member, monthly_request_limit=50))["monthly_request_limit"] == 50
    refused = await put_limits(gw, org_id, manager, owner, 403, monthly_request_limit=50)
    assert refused["error"]["code"] == "org_role_required"
    everyone = await limits_of(gw, org_id, manager, member)  # a manager reads anyone's
    assert everyone["monthly_request_limit"] == 50 and everyone["role"] == "member"
