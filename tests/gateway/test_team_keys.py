"""Team keys through the gateway, two replicas on one PostgreSQL and Redis: a member's team proxy key calls with
the team's provider key (sealed with the team bound), the team's quota is counted across members and replicas and
rebuilt from the team's usage, usage rows carry the team, and removing a member stops their key on every replica."""

from __future__ import annotations

import asyncio
import base64
import os
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest_asyncio
from aiohttp import web
from aiohttp.test_utils import TestClient
from redis.asyncio import Redis

from tests.conftest import serve_app
from tests.fakes.scenario import FakeState
from tests.gateway.conftest import PROVIDER_KEYS, Account, make_account, wait_rows
from webrana_proxy.crypto import Keyring
from webrana_proxy.db import create_pool
from webrana_proxy.limits import jakarta_month
from webrana_proxy.mail.mailer import MAILER
from webrana_proxy.rotation import rotate
from webrana_proxy.settings import Settings

Client = TestClient[web.Request, web.Application]
MSG = [{"role": "user", "content": "halo"}]
TEAM_OPENAI_KEY = "sk-proj-fakeTEAMKEY00000000000009"


@pytest_asyncio.fixture(loop_scope="session")
async def replica_b(gw: Client, gateway_env: dict[str, str]) -> AsyncIterator[Client]:
    from webrana_proxy.app import create_app

    async with serve_app(create_app(Settings.from_env(gateway_env))) as c:
        yield c


async def sql(db: str, query: str, *args: Any) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(db)
    try:
        return await conn.fetch(query, *args)
    finally:
        await conn.close()


async def team(gw: Client, db: str, owner: Account, *members: Account) -> str:
    """``owner``'s team (Team plan) with the team's own OpenAI key, and ``members`` joined from invitations."""
    await sql(db, "UPDATE users SET plan = 'team' WHERE id = $1::uuid", owner.user_id)
    resp = await gw.post("/api/orgs", json={"name": "Acme"}, headers=owner.headers)
    assert resp.status == 201, await resp.text()
    org_id: str = (await resp.json())["id"]
    resp = await gw.post(f"/api/orgs/{org_id}/provider-keys", headers=owner.headers,
                         json={"provider": "openai", "name": "team", "key": TEAM_OPENAI_KEY})
    assert resp.status == 201, await resp.text()
    for m in members:
        [row] = await sql(db, "SELECT email FROM users WHERE id = $1::uuid", m.user_id)
        resp = await gw.post(f"/api/orgs/{org_id}/invitations", json={"email": row["email"], "role": "member"},
                             headers=owner.headers)
        assert resp.status == 201, await resp.text()
        [inv] = await sql(db, "SELECT token_id FROM org_invitations WHERE id = $1::uuid", (await resp.json())["id"])
        token = gw.app[MAILER].links.token_for("invite", inv["token_id"])  # the e-mailed link's token
        resp = await gw.post("/api/invitations/accept", json={"token": token}, headers=m.headers)
        assert resp.status == 200, await resp.text()
    return org_id


async def team_key(gw: Client, org_id: str, member: Account) -> str:
    resp = await gw.post(f"/api/orgs/{org_id}/proxy-keys", json={"name": "team"}, headers=member.headers)
    assert resp.status == 201, await resp.text()
    key: str = (await resp.json())["key"]
    return key


async def call(client: Client, key: str) -> tuple[int, dict[str, Any]]:
    resp = await client.post("/v1/chat/completions", headers={"Authorization": f"Bearer {key}"},
                             json={"model": "gpt-4o-mini", "messages": MSG})
    body: dict[str, Any] = await resp.json()
    return resp.status, body


async def test_a_members_team_key_uses_the_teams_provider_key_and_the_call_is_the_teams(
        gw: Client, migrated: str, fake: FakeState) -> None:
    owner = await make_account(gw, migrated, providers=())
    member = await make_account(gw, migrated, providers=("openai",))  # has a personal key of their own too
    org_id = await team(gw, migrated, owner, member)
    key = await team_key(gw, org_id, member)

    status, body = await call(gw, key)
    assert status == 200, body
    assert fake.last.key == TEAM_OPENAI_KEY  # the team's key went upstream, not the member's own
    status, _ = await call(gw, member.proxy_key)  # and the member's personal key still uses their own
    assert status == 200 and fake.last.key == PROVIDER_KEYS["openai"]

    rows = await wait_rows(migrated, 2)
    by_key = {str(r["proxy_key_id"]): r for r in rows}
    team_row = next(r for r in rows if r["org_id"] is not None)
    assert str(team_row["org_id"]) == org_id and str(team_row["user_id"]) == member.user_id
    assert len(by_key) == 2
    daily = await sql(migrated, "SELECT org_id, requests FROM usage_daily WHERE user_id = $1::uuid ORDER BY org_id",
                      member.user_id)
    assert [(str(d["org_id"]) if d["org_id"] else None, d["requests"]) for d in daily] == [(org_id, 1), (None, 1)]
    mine = await (await gw.get("/api/usage/summary", headers=member.headers)).json()
    assert mine["totals"]["requests"] == 1  # the personal workspace holds only the personal call

    # The team's provider key: the owner sees it masked; a member cannot list it at all.
    listed = await (await gw.get(f"/api/orgs/{org_id}/provider-keys", headers=owner.headers)).json()
    assert [k["masked_key"] for k in listed["data"]] == ["sk-...0009"]
    resp = await gw.get(f"/api/orgs/{org_id}/provider-keys", headers=member.headers)
    assert resp.status == 403 and (await resp.json())["error"]["code"] == "org_role_required"
    assert TEAM_OPENAI_KEY not in await resp.text()
    # The team's key is not in anyone's personal workspace.
    personal = await (await gw.get("/api/provider-keys", headers=owner.headers)).json()
    assert personal["data"] == []


async def test_the_teams_quota_is_counted_across_members_and_replicas_and_rebuilt_from_its_usage(
        gw: Client, replica_b: Client, migrated: str, fake: FakeState, gateway_env: dict[str, str]) -> None:
    owner = await make_account(gw, migrated, providers=())
    a = await make_account(gw, migrated, providers=())
    b = await make_account(gw, migrated, providers=())
    org_id = await team(gw, migrated, owner, a, b)
    await sql(migrated, "UPDATE organisations SET monthly_requests_override = 4 WHERE id = $1::uuid", org_id)
    await sql(migrated, "UPDATE users SET monthly_requests_override = 1000 WHERE id = ANY($1::uuid[])",
              [uuid.UUID(a.user_id), uuid.UUID(b.user_id)])  # a member's own plan plays no part
    key_a, key_b = await team_key(gw, org_id, a), await team_key(replica_b, org_id, b)

    assert (await call(gw, key_a))[0] == 200
    assert (await call(replica_b, key_b))[0] == 200
    assert (await call(gw, key_b))[0] == 200
    await wait_rows(migrated, 3)
    redis = Redis.from_url(gateway_env["REDIS_URL"])
    try:  # Redis loses the team's counter: it is rebuilt from the team's roll-ups, not from 0 or one member's
        month, _ = jakarta_month()
        assert await redis.delete(f"rl:quota:{org_id}:{month}") == 1
    finally:
        await redis.aclose()
    assert (await call(replica_b, key_a))[0] == 200
    status, body = await call(gw, key_b)
    assert status == 429 and body["error"]["code"] == "quota_exceeded" and "of 4" in body["error"]["message"]
    status, body = await call(replica_b, key_a)
    assert status == 429 and body["error"]["code"] == "quota_exceeded"


async def test_removing_a_member_stops_their_team_key_at_once_on_every_replica(
        gw: Client, replica_b: Client, migrated: str, fake: FakeState) -> None:
    owner = await make_account(gw, migrated, providers=())
    stays = await make_account(gw, migrated, providers=())
    leaves = await make_account(gw, migrated, providers=())
    org_id = await team(gw, migrated, owner, stays, leaves)
    key_stays, key_leaves = await team_key(gw, org_id, stays), await team_key(gw, org_id, leaves)
    for client in (gw, replica_b):  # both replicas have both keys cached
        assert (await call(client, key_stays))[0] == 200
        assert (await call(client, key_leaves))[0] == 200

    resp = await gw.delete(f"/api/orgs/{org_id}/members/{leaves.user_id}", headers=owner.headers)
    assert resp.status == 200, await resp.text()
    assert (await call(gw, key_leaves))[0] == 401  # this replica dropped it before answering
    for _ in range(50):  # the other replica hears it on the invalidation channel, well within a second
        status, _ = await call(replica_b, key_leaves)
        if status == 401:
            break
        await asyncio.sleep(0.02)
    assert status == 401
    assert (await call(replica_b, key_stays))[0] == 200  # the others keep working
    [row] = await sql(migrated, "SELECT revoked_at FROM proxy_api_keys WHERE user_id = $1::uuid AND org_id IS NOT NULL",
                      uuid.UUID(leaves.user_id))
    assert row["revoked_at"] is not None
    listed = await (await gw.get(f"/api/orgs/{org_id}/proxy-keys", headers=owner.headers)).json()
    assert [k["user_id"] for k in listed["data"]] == [stays.user_id]  # a manager sees every member's keys
    mine = await (await gw.get(f"/api/orgs/{org_id}/proxy-keys", headers=stays.headers)).json()
    assert [k["user_id"] for k in mine["data"]] == [stays.user_id]


async def test_a_master_key_rotation_keeps_team_keys_readable(gw: Client, migrated: str, fake: FakeState,
                                                             gateway_env: dict[str, str]) -> None:
    owner = await make_account(gw, migrated, providers=())
    member = await make_account(gw, migrated, providers=())
    org_id = await team(gw, migrated, owner, member)
    key = await team_key(gw, org_id, member)
    new_key = base64.b64encode(os.urandom(32)).decode()
    pool = await create_pool(migrated, min_size=1, max_size=2)
    try:
        ring = Keyring(base64.b64decode(new_key), base64.b64decode(gateway_env["MASTER_ENCRYPTION_KEY"]))
        assert await rotate(pool, ring) == 1  # the team's key, re-sealed with the team still bound
    finally:
        await pool.close()
    from webrana_proxy.app import create_app

    async with serve_app(create_app(Settings.from_env({**gateway_env, "MASTER_ENCRYPTION_KEY": new_key}))) as rotated:
        status, body = await call(rotated, key)
    assert status == 200, body
    assert fake.last.key == TEAM_OPENAI_KEY
