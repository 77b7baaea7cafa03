"""Console fixtures: the whole stack on loopback.

A real proxy app (real PostgreSQL and Redis through the shared fixtures) pointed at the fake providers and a
fake Midtrans, and the console app pointed at that proxy, each on its own port. ``console`` is an aiohttp
test client of the console with a cookie jar, like one browser.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import pytest_asyncio
from aiohttp import ClientSession, CookieJar, web
from aiohttp.test_utils import TestClient, TestServer

from devstack import free_port
from tests.conftest import PASSWORD, serve_app
from tests.fakes.midtrans import FakeMidtrans
from tests.fakes.server import FakeServer
from webrana_dashboard.app import create_app as create_console
from webrana_dashboard.settings import DashboardSettings
from webrana_proxy.app import create_app as create_proxy
from webrana_proxy.settings import Settings

CSRF_RE = re.compile(r'name="csrf_token" value="([^"]+)"')
CHROMIUM = os.environ.get("WEBRANA_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-gpu"]
SESSION_SECRET = "test-session-secret-" + "x" * 32


@dataclass
class Stack:
    proxy: TestClient[web.Request, web.Application]
    console_url: str
    api_url: str
    midtrans: FakeMidtrans
    providers: FakeServer
    db_url: str
    console_settings: DashboardSettings
    console_server: TestServer

    async def make_admin(self, email: str) -> None:
        conn = await asyncpg.connect(self.db_url)
        try:
            await conn.execute("UPDATE users SET role = 'admin' WHERE lower(email) = lower($1)", email)
        finally:
            await conn.close()

    async def register(self, email: str | None = None) -> dict[str, Any]:
        """An account made straight through the API (for users a test does not sign up through pages)."""
        email = email or f"u-{secrets.token_hex(4)}@example.co.id"
        resp = await self.proxy.post("/api/auth/register", json={"email": email, "password": PASSWORD})
        assert resp.status == 201, await resp.text()
        data: dict[str, Any] = await resp.json()
        return data


@contextlib.asynccontextmanager
async def running_stack(base_env: dict[str, str], db_url: str,
                        console_env: dict[str, str] | None = None) -> AsyncIterator[Stack]:
    console_port = free_port()
    console_url = f"http://127.0.0.1:{console_port}"
    async with FakeServer() as providers, FakeMidtrans(base_env["MIDTRANS_SERVER_KEY"]) as midtrans:
        env = {**base_env, **providers.env(), "WEBRANA_CONSOLE_URL": console_url,
               "MIDTRANS_SNAP_BASE_URL": midtrans.snap_base_url, "MIDTRANS_API_BASE_URL": midtrans.api_base_url}
        async with serve_app(create_proxy(Settings.from_env(env))) as proxy:
            api_url = str(proxy.make_url("")).rstrip("/")
            midtrans.notification_url = api_url + "/api/billing/midtrans/notification"
            settings = DashboardSettings.from_env({
                "WEBRANA_SESSION_SECRET": SESSION_SECRET, "WEBRANA_API_URL": api_url,
                "WEBRANA_CONSOLE_URL": console_url, "WEBRANA_DASHBOARD_PORT": str(console_port),
                "WEBRANA_DEV": "true", **(console_env or {})})
            server = TestServer(create_console(settings), host="127.0.0.1", port=console_port)
            await server.start_server()
            try:
                yield Stack(proxy, console_url, api_url, midtrans, providers, db_url, settings, server)
            finally:
                await server.close()


@pytest_asyncio.fixture(loop_scope="session")
async def stack(clean: None, base_env: dict[str, str], migrated: str) -> AsyncIterator[Stack]:
    async with running_stack(base_env, migrated) as s:
        yield s


class Console:
    """One browser's view of the console: a cookie jar, GETs and form posts with the page's CSRF token."""

    def __init__(self, client: Any) -> None:  # a TestClient or a ClientSession with a base_url
        self.client = client
        self.csrf = ""

    async def get(self, path: str, status: int | None = 200, **kw: Any) -> str:
        resp = await self.client.get(path, **kw)
        text = await resp.text()
        if status is not None:
            assert resp.status == status, (resp.status, text[:2000])
        if m := CSRF_RE.search(text):
            self.csrf = m.group(1)
        return text

    async def post(self, path: str, data: dict[str, str] | None = None, *, csrf: bool = True,
                   allow_redirects: bool = False) -> Any:
        form = dict(data or {})
        if csrf:
            if not self.csrf:
                await self.get("/login")
            form["csrf_token"] = self.csrf
        return await self.client.post(path, data=form, allow_redirects=allow_redirects)

    async def signup(self, email: str, password: str = PASSWORD) -> None:
        await self.get("/signup")
        resp = await self.post("/signup", {"email": email, "password": password, "password_confirm": password})
        assert resp.status == 303, await resp.text()
        assert resp.headers["Location"] == "/overview"

    async def login(self, email: str, password: str = PASSWORD) -> None:
        await self.get("/login")
        resp = await self.post("/login", {"email": email, "password": password})
        assert resp.status == 303, await resp.text()


@pytest_asyncio.fixture(loop_scope="session")
async def console(stack: Stack) -> AsyncIterator[Console]:
    """aiohttp's test client on the running console server: one browser with its own cookie jar."""
    client: TestClient[web.Request, web.Application] = TestClient(stack.console_server)
    try:
        yield Console(client)
    finally:
        await client.close()


@contextlib.asynccontextmanager
async def another_browser(stack: Stack) -> AsyncIterator[Console]:
    async with ClientSession(base_url=stack.console_url, cookie_jar=CookieJar(unsafe=True)) as http:
        yield Console(http)


@pytest_asyncio.fixture(loop_scope="session")
async def browser() -> AsyncIterator[object]:
    """Debian's Chromium through Playwright: headless, no sandbox (containers), nothing fetched in the background."""
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is missing; install Debian's chromium (apt-get install -y chromium)")
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        b = await p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            await b.close()
