"""Shared fixtures: real PostgreSQL and Redis (from DATABASE_URL / REDIS_URL, or embedded ones started here),
a fresh test database migrated once per session, and the proxy app served over loopback.

`make test` (devstack.py test) exports DATABASE_URL and REDIS_URL; running pytest directly starts embedded
services through devstack when they are missing.
"""

from __future__ import annotations

import base64
import contextlib
import os
import secrets
from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
import pytest_asyncio
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from redis.asyncio import Redis

from webrana_proxy.migrate import apply_migrations
from webrana_proxy.settings import Settings

# One database and Redis db index per test session, so concurrent sessions on one machine never collide.
TEST_DATABASE = f"webrana_test_{os.getpid()}"
TEST_REDIS_DB = 1 + os.getpid() % 15
TRUNCATE_ALL = """TRUNCATE upstreams, org_invitations, org_members, organisations, webhook_deliveries, webhooks, alerts,
                           mail_outbox, email_tokens,
                           audit_log, model_prices, payment_notifications, invoice_counters, invoices, subscriptions,
                           usage_daily, stored_responses, model_aliases, proxy_requests, proxy_api_keys, api_keys,
                           refresh_tokens, users CASCADE"""
PASSWORD = "Sup3rSecret!"


def _with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, parts.fragment))


def _with_redis_db(url: str, db: int) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{db}", parts.query, parts.fragment))


@pytest.fixture(scope="session")
def service_env() -> Iterator[dict[str, str]]:
    if os.environ.get("DATABASE_URL") and os.environ.get("REDIS_URL"):
        yield dict(os.environ)
        return
    import devstack

    with devstack.services() as env:
        yield env


@pytest.fixture(scope="session")
def base_env(service_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The environment every test app starts from: test database, test Redis db, fresh random secrets."""
    return {
        "DATABASE_URL": _with_database(service_env["DATABASE_URL"], TEST_DATABASE),
        "REDIS_URL": _with_redis_db(service_env["REDIS_URL"], TEST_REDIS_DB),
        "MASTER_ENCRYPTION_KEY": base64.b64encode(secrets.token_bytes(32)).decode(),
        "JWT_SECRET": secrets.token_urlsafe(48),
        "MIDTRANS_SERVER_KEY": "SB-Mid-server-test-" + secrets.token_hex(8),
        "MIDTRANS_CLIENT_KEY": "SB-Mid-client-test-" + secrets.token_hex(8),
        "WEBRANA_IP_RATE_LIMIT": "100000",  # tests share 127.0.0.1; the limit test sets its own
        "WEBRANA_SIGNUP_LIMIT": "100000",  # likewise (tests/test_auth_limits.py sets its own)
        "WEBRANA_LOG_FORMAT": "json",
        "WEBRANA_BACKGROUND_JOBS": "false",
        "WEBRANA_USAGE_JOURNAL_DIR": str(tmp_path_factory.mktemp("usage-journal")),  # this session's own
    }


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def migrated(service_env: dict[str, str], base_env: dict[str, str]) -> AsyncIterator[str]:
    admin = await asyncpg.connect(service_env["DATABASE_URL"])
    try:
        # Identifiers cannot be bind parameters: PostgreSQL's own format(%I) quotes the name.
        for template in ("DROP DATABASE IF EXISTS %I WITH (FORCE)", "CREATE DATABASE %I"):
            await admin.execute(await admin.fetchval("SELECT format($1::text, $2::text)", template, TEST_DATABASE))
    finally:
        await admin.close()
    conn = await asyncpg.connect(base_env["DATABASE_URL"])
    try:
        await apply_migrations(conn)
    finally:
        await conn.close()
    yield base_env["DATABASE_URL"]
    admin = await asyncpg.connect(service_env["DATABASE_URL"])
    try:
        await admin.execute(await admin.fetchval("SELECT format($1::text, $2::text)",
                                                 "DROP DATABASE IF EXISTS %I WITH (FORCE)", TEST_DATABASE))
    finally:
        await admin.close()


@pytest_asyncio.fixture(loop_scope="session")
async def clean(migrated: str, base_env: dict[str, str]) -> AsyncIterator[None]:
    """Empty tables and the test Redis db before each test that uses the app."""
    conn = await asyncpg.connect(migrated)
    try:
        await conn.execute(TRUNCATE_ALL)
    finally:
        await conn.close()
    redis = Redis.from_url(base_env["REDIS_URL"])
    await redis.flushdb()
    await redis.aclose()
    yield


@pytest.fixture
def env_overrides() -> dict[str, str]:
    """Override in a test module to change settings for that module's app."""
    return {}


@pytest.fixture
def settings(base_env: dict[str, str], env_overrides: dict[str, str]) -> Settings:
    return Settings.from_env({**base_env, **env_overrides})


@contextlib.asynccontextmanager
async def serve_app(app: web.Application) -> AsyncIterator[TestClient[web.Request, web.Application]]:
    server = TestServer(app, host="127.0.0.1", handler_cancellation=True)
    client: TestClient[web.Request, web.Application] = TestClient(server)
    await client.start_server()
    try:
        yield client
    finally:
        await client.close()


@pytest_asyncio.fixture(loop_scope="session")
async def client(clean: None, settings: Settings) -> AsyncIterator[TestClient[web.Request, web.Application]]:
    from webrana_proxy.app import create_app

    async with serve_app(create_app(settings)) as c:
        yield c


class Api:
    """A thin helper over the test client for the management API."""

    def __init__(self, client: TestClient[web.Request, web.Application]) -> None:
        self.client = client

    async def register(self, email: str | None = None, password: str = PASSWORD) -> dict[str, Any]:
        email = email or f"user-{secrets.token_hex(4)}@example.com"
        resp = await self.client.post("/api/auth/register", json={"email": email, "password": password})
        assert resp.status == 201, await resp.text()
        data: dict[str, Any] = await resp.json()
        return data

    @staticmethod
    def auth(tokens: dict[str, Any]) -> dict[str, str]:
        return {"Authorization": f"Bearer {tokens['access_token']}"}


@pytest.fixture
def api(client: TestClient[web.Request, web.Application]) -> Api:
    return Api(client)
