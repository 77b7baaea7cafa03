"""No plaintext provider key or proxy key at rest or in logs; rotation keeps every key usable; migrations and
the admin CLI are safe to re-run."""

from __future__ import annotations

import asyncio
import base64
import io
import logging
import os
import subprocess
import sys

import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from tests.conftest import serve_app
from tests.gateway.conftest import PROVIDER_KEYS, make_account, sdk, wait_rows
from webrana_proxy.crypto import Keyring
from webrana_proxy.db import create_pool
from webrana_proxy.migrate import apply_migrations, migrations_dir
from webrana_proxy.rotation import rotate
from webrana_proxy.settings import Settings


async def dump_all_tables(conn: asyncpg.Connection) -> dict[str, str]:
    """Every row of every table in the public schema, as COPY text (asyncpg quotes the table names)."""
    out: dict[str, str] = {}
    for row in await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'"):
        buf = io.BytesIO()
        await conn.copy_from_table(row["tablename"], output=buf)
        out[row["tablename"]] = buf.getvalue().decode()
    return out


async def test_no_plaintext_key_in_any_column_or_log_line(gw: TestClient[web.Request, web.Application],
                                                          migrated: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    acct = await make_account(gw, migrated)
    client = sdk(gw, acct.proxy_key)
    for model in ("gpt-4o-mini", "claude-sonnet-4-5", "gemini-2.5-flash", "qwen-plus"):
        await client.chat.completions.create(model=model, messages=[{"role": "user", "content": "rahasia"}])
        async for _ in await client.chat.completions.create(model=model, stream=True,
                                                            messages=[{"role": "user", "content": "x"}]):
            pass
    keys = await (await gw.get("/api/provider-keys", headers=acct.headers)).json()
    for k in keys["data"]:
        await gw.post(f"/api/provider-keys/{k['id']}/test", headers=acct.headers)
    await wait_rows(migrated, 8)  # the usage writer flushes off the hot path
    secrets_ = [*PROVIDER_KEYS.values(), acct.proxy_key, acct.proxy_key[4:]]
    conn = await asyncpg.connect(migrated)
    try:
        dumps = await dump_all_tables(conn)
    finally:
        await conn.close()
    assert set(dumps) >= {"api_keys", "proxy_api_keys", "proxy_requests", "users", "usage_daily"}
    assert dumps["proxy_requests"].count("\n") == 8 and "claude-sonnet-4-5" in dumps["proxy_requests"]
    everything = "\n".join(dumps.values())
    for secret in secrets_:
        assert secret not in everything
    logged = "\n".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    assert "call" in logged  # the per-call log lines were captured
    for secret in secrets_:
        assert secret not in logged


async def test_rotation_reencrypts_every_key_and_the_gateway_still_works(
        gw: TestClient[web.Request, web.Application], migrated: str, gateway_env: dict[str, str]) -> None:
    acct = await make_account(gw, migrated)
    old_key = gateway_env["MASTER_ENCRYPTION_KEY"]
    new_key = base64.b64encode(os.urandom(32)).decode()
    pool = await create_pool(migrated, min_size=1, max_size=2)
    try:
        ring = Keyring(base64.b64decode(new_key), base64.b64decode(old_key))
        stored = await pool.fetchval("SELECT count(*) FROM api_keys")
        assert stored == len(PROVIDER_KEYS)  # one key per provider: several batches of 3
        assert await rotate(pool, ring, batch_size=3) == stored
        assert await rotate(pool, ring) == 0  # resumable: nothing left to do
        versions = {r["key_version"] for r in await pool.fetch("SELECT key_version FROM api_keys")}
        assert versions == {ring.current_version}
    finally:
        await pool.close()
    from webrana_proxy.app import create_app

    env = {**gateway_env, "MASTER_ENCRYPTION_KEY": new_key}
    async with serve_app(create_app(Settings.from_env(env))) as rotated:
        resp = await sdk(rotated, acct.proxy_key).chat.completions.create(
            model="claude-sonnet-4-5", messages=[{"role": "user", "content": "masih jalan"}])
        assert resp.choices[0].message.content == "echo: masih jalan"


async def test_migrations_are_idempotent_and_safe_concurrently(migrated: str) -> None:
    conns = [await asyncpg.connect(migrated) for _ in range(3)]
    try:
        results = await asyncio.gather(*(apply_migrations(c) for c in conns))
        assert results == [[], [], []]
        names = await conns[0].fetch("SELECT name FROM schema_migrations ORDER BY name")
        assert [r["name"] for r in names] == sorted(p.name for p in migrations_dir().glob("*.sql"))
    finally:
        for c in conns:
            await c.close()


async def test_create_admin_cli_is_idempotent(base_env: dict[str, str], migrated: str, clean: None) -> None:
    env = {**{k: v for k, v in os.environ.items() if k not in base_env}, **base_env,
           "WEBRANA_ADMIN_PASSWORD": "Admin-Pass-123"}
    for _ in range(2):
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "webrana_proxy", "create-admin", "boss@webrana.id", env=env,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        out, err = await proc.communicate()
        assert proc.returncode == 0, err.decode()
        assert b"admin ready: boss@webrana.id" in out
    conn = await asyncpg.connect(migrated)
    try:
        rows = await conn.fetch("SELECT role, status FROM users WHERE email = 'boss@webrana.id'")
    finally:
        await conn.close()
    assert [(r["role"], r["status"]) for r in rows] == [("admin", "active")]
    weak = {**env, "WEBRANA_ADMIN_PASSWORD": "weak"}
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "webrana_proxy", "create-admin",
                                                "x@webrana.id", env=weak, stderr=subprocess.PIPE)
    _, err = await proc.communicate()
    assert proc.returncode == 2 and b"at least 8 characters" in err

