"""Accounts end to end over HTTP against real PostgreSQL and Redis."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from tests.conftest import PASSWORD, Api


async def test_register_login_me_refresh_logout(api: Api) -> None:
    c = api.client
    reg = await api.register("Budi@Example.com")
    assert reg["token_type"] == "bearer" and reg["expires_in"] == 24 * 3600
    assert reg["user"]["email"] == "Budi@Example.com" and reg["user"]["plan"] == "free"

    resp = await c.post("/api/auth/login", json={"email": "budi@example.com", "password": PASSWORD})
    assert resp.status == 200
    tokens = await resp.json()
    me = await (await c.get("/api/auth/me", headers=api.auth(tokens))).json()
    assert set(me) == {"id", "email", "role", "plan", "status", "created_at", "email_verified", "locale"}
    assert me["role"] == "user" and me["status"] == "active"

    resp = await c.post("/api/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert resp.status == 200
    rotated = await resp.json()
    assert rotated["refresh_token"] != tokens["refresh_token"]

    resp = await c.post("/api/auth/logout", json={"refresh_token": rotated["refresh_token"]})
    assert resp.status == 200
    resp = await c.post("/api/auth/refresh", json={"refresh_token": rotated["refresh_token"]})
    assert resp.status == 401


async def test_reusing_a_rotated_refresh_token_revokes_the_family(api: Api) -> None:
    c = api.client
    first = await api.register()
    second = await (await c.post("/api/auth/refresh", json={"refresh_token": first["refresh_token"]})).json()
    # The thief replays the first token: refused, and the legitimate newer token dies with it.
    resp = await c.post("/api/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert resp.status == 401
    assert (await resp.json())["error"]["code"] == "refresh_token_reused"
    resp = await c.post("/api/auth/refresh", json={"refresh_token": second["refresh_token"]})
    assert resp.status == 401


async def test_duplicate_email_is_rejected_case_insensitively(api: Api) -> None:
    await api.register("siti@example.com")
    resp = await api.client.post("/api/auth/register", json={"email": "SITI@example.com", "password": PASSWORD})
    assert resp.status == 400
    err = (await resp.json())["error"]
    assert err["param"] == "email" and err["code"] == "email_taken"


async def test_five_failed_logins_lock_the_email_from_that_address(api: Api) -> None:
    c = api.client
    await api.register("rina@example.com")
    for _ in range(5):
        resp = await c.post("/api/auth/login", json={"email": "rina@example.com", "password": "Wrong-pass1"})
        assert resp.status == 401
    resp = await c.post("/api/auth/login", json={"email": "rina@example.com", "password": PASSWORD})
    assert resp.status == 429
    assert 1700 <= int(resp.headers["Retry-After"]) <= 1800
    assert (await resp.json())["error"]["code"] == "login_locked"


async def test_suspended_user_cannot_log_in_or_use_tokens(api: Api, migrated: str) -> None:
    tokens = await api.register("andi@example.com")
    conn = await asyncpg.connect(migrated)
    await conn.execute("UPDATE users SET status = 'suspended' WHERE lower(email) = 'andi@example.com'")
    await conn.close()
    resp = await api.client.post("/api/auth/login", json={"email": "andi@example.com", "password": PASSWORD})
    assert resp.status == 403
    resp = await api.client.get("/api/auth/me", headers=api.auth(tokens))
    assert resp.status == 403


async def test_bad_input_gets_clear_4xx_in_the_error_shape(api: Api) -> None:
    c = api.client
    cases = [
        (b"{not json", 400, "invalid_json"),
        (b"[1, 2]", 400, "invalid_json"),
        (b'{"email": 5, "password": "Abcdefg1"}', 400, "invalid_type"),
        (b'{"email": "not-an-email", "password": "Abcdefg1"}', 400, "invalid_email"),
        (b'{"email": "a@example.com", "password": "short1A"}', 400, "weak_password"),
        (b'{"email": "a@example.com", "password": "alllowercase1"}', 400, "weak_password"),
        (b'{"email": "a@example.com"}', 400, "missing_field"),
    ]
    for body, status, code in cases:
        resp = await c.post("/api/auth/register", data=body, headers={"Content-Type": "application/json"})
        assert resp.status == status, body
        err = (await resp.json())["error"]
        assert err["code"] == code, (body, err)
        assert set(err) == {"message", "type", "code", "param"}


async def test_unauthenticated_and_garbage_tokens_are_401(api: Api) -> None:
    c = api.client
    assert (await c.get("/api/auth/me")).status == 401
    resp = await c.get("/api/auth/me", headers={"Authorization": "Bearer nonsense"})
    assert resp.status == 401
    assert (await resp.json())["error"]["type"] == "authentication_error"


async def test_concurrent_registrations_of_one_email_create_one_account(api: Api, migrated: str) -> None:
    body = {"email": "race@example.com", "password": PASSWORD}
    results = await asyncio.gather(*(api.client.post("/api/auth/register", json=body) for _ in range(5)))
    assert sorted(r.status for r in results) == [201, 400, 400, 400, 400]
    conn = await asyncpg.connect(migrated)
    assert await conn.fetchval("SELECT count(*) FROM users WHERE lower(email) = 'race@example.com'") == 1
    await conn.close()


async def test_register_stores_owasp_argon2id_parameters(api: Api, migrated: str) -> None:
    await api.register("baru@example.com")
    conn = await asyncpg.connect(migrated)
    try:
        stored = await conn.fetchval("SELECT password_hash FROM users WHERE email = 'baru@example.com'")
    finally:
        await conn.close()
    assert stored.startswith("$argon2id$v=19$m=19456,t=2,p=1$"), stored  # OWASP: 19 MiB, 2 passes, 1 lane


async def test_login_moves_hashes_made_with_old_parameters_to_owasp(api: Api, migrated: str) -> None:
    from argon2 import PasswordHasher

    await api.register("lama@example.com")
    conn = await asyncpg.connect(migrated)
    try:
        # argon2-cffi's defaults (what every stored hash used before) and an even older, weaker set
        for old in (PasswordHasher().hash(PASSWORD),
                    PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1).hash(PASSWORD)):
            assert "m=19456" not in old
            await conn.execute("UPDATE users SET password_hash = $1 WHERE email = 'lama@example.com'", old)
            resp = await api.client.post("/api/auth/login",
                                         json={"email": "lama@example.com", "password": PASSWORD})
            assert resp.status == 200
            stored = await conn.fetchval("SELECT password_hash FROM users WHERE email = 'lama@example.com'")
            assert stored != old and stored.startswith("$argon2id$v=19$m=19456,t=2,p=1$"), stored
            resp = await api.client.post("/api/auth/login",
                                         json={"email": "lama@example.com", "password": PASSWORD})
            assert resp.status == 200
            assert await conn.fetchval("SELECT password_hash FROM users WHERE email = 'lama@example.com'") == stored
    finally:
        await conn.close()


async def test_parallel_guesses_cannot_slip_past_the_lockout(api: Api, caplog: pytest.LogCaptureFixture) -> None:
    await api.register("paralel@example.com")
    body = {"email": "paralel@example.com", "password": "Wrong-pass1"}
    results = await asyncio.gather(*(api.client.post("/api/auth/login", json=body) for _ in range(15)))
    statuses = sorted(r.status for r in results)
    # Redis trouble lets an attempt through by design; if it happens here, the failure says which error it was
    # (once in CI, 2026-12-06: one extra 401 after "sign-in lockout unavailable").
    redis_errors = [getattr(r, "error", None) for r in caplog.records if r.name == "webrana.loginguard"]
    assert statuses.count(401) == 5 and statuses.count(429) == 10, (statuses, redis_errors)
