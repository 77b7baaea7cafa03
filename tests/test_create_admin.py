"""``webrana-proxy create-admin`` as a real subprocess against the test database, next to the real API.

Anyone can sign up with the address operations will later make an admin; create-admin must not hand that
account (and the sessions its registrant holds) admin rights unless told to, and then only after ending them.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from typing import Any

import asyncpg

from tests.conftest import PASSWORD, Api

ADMIN_PASSWORD = "Operator-Pass-1"


async def create_admin(base_env: dict[str, str], email: str, *args: str,
                       password: str = ADMIN_PASSWORD) -> tuple[int, str, str]:
    env = {**{k: v for k, v in os.environ.items() if k not in base_env}, **base_env,
           "WEBRANA_ADMIN_PASSWORD": password}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "webrana_proxy", "create-admin", *args, email, env=env,
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def login(api: Api, email: str, password: str) -> tuple[int, dict[str, Any]]:
    resp = await api.client.post("/api/auth/login", json={"email": email, "password": password})
    data: dict[str, Any] = await resp.json()
    return resp.status, data


async def status(api: Api, tokens: dict[str, Any], path: str = "/api/auth/me") -> int:
    return (await api.client.get(path, headers=api.auth(tokens))).status


async def refresh_status(api: Api, tokens: dict[str, Any]) -> int:
    return (await api.client.post("/api/auth/refresh", json={"refresh_token": tokens["refresh_token"]})).status


async def user_row(db_url: str, email: str) -> asyncpg.Record:
    conn = await asyncpg.connect(db_url)
    try:
        row = await conn.fetchrow("SELECT role, status, password_hash FROM users WHERE lower(email) = lower($1)",
                                  email)
    finally:
        await conn.close()
    assert row is not None
    return row


async def test_rerunning_create_admin_for_an_admin_changes_nothing_and_keeps_its_sessions(
        api: Api, base_env: dict[str, str], migrated: str) -> None:
    code, out, err = await create_admin(base_env, "boss@webrana.id")
    assert code == 0, err
    assert "admin ready: boss@webrana.id (created)" in out
    before = await user_row(migrated, "boss@webrana.id")
    status_code, tokens = await login(api, "boss@webrana.id", ADMIN_PASSWORD)
    assert status_code == 200 and tokens["user"]["role"] == "admin"

    # What `make run` does on every start: same e-mail, same password.
    code, out, err = await create_admin(base_env, "boss@webrana.id")
    assert code == 0, err
    assert "admin ready: boss@webrana.id (already an admin; nothing changed)" in out
    after = await user_row(migrated, "boss@webrana.id")
    assert (after["role"], after["status"], after["password_hash"]) == ("admin", "active", before["password_hash"])
    assert await status(api, tokens, "/api/admin/stats") == 200
    assert await refresh_status(api, tokens) == 200


async def test_create_admin_refuses_an_existing_account_that_is_not_an_admin(
        api: Api, base_env: dict[str, str], migrated: str) -> None:
    # Someone signed up first with the address that appears on the invoices.
    squatter = await api.register("billing@webrana.id")
    code, out, err = await create_admin(base_env, "billing@webrana.id")
    assert code == 1
    assert "admin ready" not in out
    assert "not an admin" in err and "--promote" in err
    row = await user_row(migrated, "billing@webrana.id")
    assert row["role"] == "user"
    assert await status(api, squatter, "/api/admin/stats") == 403
    # Nothing changed for the account: its own password still works, the operator's does not.
    assert (await login(api, "billing@webrana.id", PASSWORD))[0] == 200
    assert (await login(api, "billing@webrana.id", ADMIN_PASSWORD))[0] == 401


async def test_promote_makes_the_account_an_admin_only_after_ending_every_session_it_had(
        api: Api, base_env: dict[str, str], migrated: str) -> None:
    squatter = await api.register("Billing@Webrana.id")
    status_code, second_device = await login(api, "billing@webrana.id", PASSWORD)
    assert status_code == 200
    # The squatter keeps rotating, so the sign-in would otherwise outlive any ordinary expiry.
    rotated = await (await api.client.post("/api/auth/refresh",
                                           json={"refresh_token": squatter["refresh_token"]})).json()

    code, out, err = await create_admin(base_env, "billing@webrana.id", "--promote")
    assert code == 0, err
    assert "promoted to admin; password set and every session signed out" in out

    for tokens in (squatter, second_device, rotated):
        assert await status(api, tokens) == 401
        assert await status(api, tokens, "/api/admin/stats") == 401
    for tokens in (second_device, rotated):
        assert await refresh_status(api, tokens) == 401
    assert (await login(api, "billing@webrana.id", PASSWORD))[0] == 401  # the squatter's password is gone
    status_code, operator = await login(api, "billing@webrana.id", ADMIN_PASSWORD)
    assert status_code == 200 and operator["user"]["role"] == "admin"
    assert await status(api, operator, "/api/admin/stats") == 200
    resp = await api.client.get("/api/admin/audit-log", headers=api.auth(operator))
    actions = [(e["action"], e["actor_email"]) for e in (await resp.json())["data"]]
    assert ("user.promote", "webrana-proxy create-admin") in actions

    # Promoted once, it is an admin: later runs (with --promote or without) change nothing.
    for args in ((), ("--promote",)):
        code, out, err = await create_admin(base_env, "billing@webrana.id", *args)
        assert code == 0 and "nothing changed" in out, (out, err)
    assert await status(api, operator) == 200


async def test_a_new_admin_password_signs_the_account_out_of_every_device(
        api: Api, base_env: dict[str, str], migrated: str) -> None:
    code, _, err = await create_admin(base_env, "ops@webrana.id")
    assert code == 0, err
    laptop = (await login(api, "ops@webrana.id", ADMIN_PASSWORD))[1]
    phone = (await login(api, "ops@webrana.id", ADMIN_PASSWORD))[1]
    assert await status(api, laptop) == 200 and await status(api, phone) == 200

    # The only way a password changes today: create-admin with another WEBRANA_ADMIN_PASSWORD (a reset).
    code, out, err = await create_admin(base_env, "ops@webrana.id", password="Another-Pass-2")
    assert code == 0, err
    assert "password changed and every session signed out" in out
    for tokens in (laptop, phone):
        assert await status(api, tokens) == 401
        assert await refresh_status(api, tokens) == 401
    assert (await login(api, "ops@webrana.id", ADMIN_PASSWORD))[0] == 401
    status_code, fresh = await login(api, "ops@webrana.id", "Another-Pass-2")
    assert status_code == 200 and await status(api, fresh) == 200
