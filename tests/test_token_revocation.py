"""Access tokens end with their sign-in: logout ends one device's tokens, refresh-token reuse ends every device's.

Real HTTP against real PostgreSQL and Redis; two "devices" are two logins of one account.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import asyncpg
import jwt

from tests.conftest import PASSWORD, Api
from webrana_proxy.settings import Settings
from webrana_proxy.tokens import sha256


async def _login(api: Api, email: str) -> dict[str, Any]:
    resp = await api.client.post("/api/auth/login", json={"email": email, "password": PASSWORD})
    assert resp.status == 200, await resp.text()
    data: dict[str, Any] = await resp.json()
    return data


async def _status(api: Api, tokens: dict[str, Any], path: str = "/api/auth/me") -> int:
    resp = await api.client.get(path, headers=api.auth(tokens))
    return resp.status


async def _refresh(api: Api, tokens: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    resp = await api.client.post("/api/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    data: dict[str, Any] = await resp.json()
    return resp.status, data


async def test_logout_ends_that_devices_access_token_and_no_other(api: Api) -> None:
    email = "dua-perangkat@example.com"
    await api.register(email)
    laptop, phone = await _login(api, email), await _login(api, email)
    assert await _status(api, laptop) == 200 and await _status(api, phone) == 200

    resp = await api.client.post("/api/auth/logout", json={"refresh_token": laptop["refresh_token"]})
    assert resp.status == 200
    resp = await api.client.get("/api/auth/me", headers=api.auth(laptop))
    assert resp.status == 401
    assert (await resp.json())["error"]["code"] == "session_revoked"
    assert await _status(api, laptop, "/api/proxy-keys") == 401  # every route, not only /me
    status, _ = await _refresh(api, laptop)
    assert status == 401

    # The phone's sign-in is untouched: its access token works and it can still refresh.
    assert await _status(api, phone) == 200
    assert await _status(api, phone, "/api/proxy-keys") == 200
    status, renewed = await _refresh(api, phone)
    assert status == 200 and await _status(api, renewed) == 200


async def test_logout_with_an_older_refresh_token_of_the_sign_in_still_ends_the_newest_tokens(api: Api) -> None:
    first = await api.register()
    status, second = await _refresh(api, first)
    assert status == 200
    resp = await api.client.post("/api/auth/logout", json={"refresh_token": first["refresh_token"]})
    assert resp.status == 200
    assert await _status(api, first) == 401 and await _status(api, second) == 401
    status, _ = await _refresh(api, second)
    assert status == 401


async def test_refresh_token_reuse_signs_out_every_device(api: Api) -> None:
    email = "dicuri@example.com"
    await api.register(email)
    laptop, phone = await _login(api, email), await _login(api, email)
    status, laptop2 = await _refresh(api, laptop)
    assert status == 200

    # The laptop's first refresh token leaked and is replayed: theft detected.
    status, body = await _refresh(api, laptop)
    assert status == 401 and body["error"]["code"] == "refresh_token_reused"

    for tokens in (laptop, laptop2, phone):
        assert await _status(api, tokens) == 401
    for tokens in (laptop2, phone):
        status, body = await _refresh(api, tokens)
        assert status == 401 and body["error"]["code"] == "refresh_token_revoked"
    # Signing in again is how the owner gets back in.
    assert await _status(api, await _login(api, email)) == 200


async def test_an_access_token_from_before_revocable_sign_ins_is_refused_and_refresh_replaces_it(
        api: Api, settings: Settings) -> None:
    tokens = await api.register()
    me = await (await api.client.get("/api/auth/me", headers=api.auth(tokens))).json()
    now = int(time.time())
    # Exactly what the previous version issued: no "fam" claim, so logout could never end it.
    legacy = jwt.encode({"sub": me["id"], "role": "user", "typ": "access", "iat": now, "exp": now + 3600,
                         "iss": "webrana", "jti": "0123456789abcdef"}, settings.jwt_secret, algorithm="HS256")
    resp = await api.client.get("/api/auth/me", headers={"Authorization": f"Bearer {legacy}"})
    assert resp.status == 401
    body = await resp.json()
    assert body["error"]["code"] == "invalid_token" and "/api/auth/refresh" in body["error"]["message"]
    status, renewed = await _refresh(api, tokens)
    assert status == 200 and await _status(api, renewed) == 200


async def _lock_waiters(conn: asyncpg.Connection) -> int:
    n: int = await conn.fetchval(
        """SELECT count(*) FROM pg_stat_activity
           WHERE datname = current_database() AND wait_event_type = 'Lock'""")
    return n


async def _until_waiters(conn: asyncpg.Connection, n: int) -> None:
    for _ in range(2000):
        if await _lock_waiters(conn) >= n:
            return
        await asyncio.sleep(0.005)
    raise AssertionError(f"never saw {n} waiting queries")


async def test_a_logout_during_a_refresh_also_ends_the_tokens_that_refresh_issues(api: Api, migrated: str) -> None:
    tokens = await api.register()
    blocker = await asyncpg.connect(migrated)
    try:
        # Hold the refresh token's row, so the refresh stops inside its transaction; then log out meanwhile.
        tx = blocker.transaction()
        await tx.start()
        await blocker.execute("SELECT 1 FROM refresh_tokens WHERE token_hash = $1 FOR UPDATE",
                              sha256(tokens["refresh_token"]))
        refreshing = asyncio.ensure_future(_refresh(api, tokens))
        await _until_waiters(blocker, 1)
        logging_out = asyncio.ensure_future(
            api.client.post("/api/auth/logout", json={"refresh_token": tokens["refresh_token"]}))
        await _until_waiters(blocker, 2)
        await tx.rollback()
        (status, renewed), resp = await asyncio.gather(refreshing, logging_out)
    finally:
        await blocker.close()
    # The refresh was first, so it completed; the logout that waited for it still ended what it issued.
    assert status == 200 and resp.status == 200
    assert await _status(api, renewed) == 401
    status, _ = await _refresh(api, renewed)
    assert status == 401
    assert await _status(api, tokens) == 401
