"""Alert fixtures: the gateway on loopback (fake providers) with a real SMTP server and a real webhook receiver,
both on loopback, in dev mode (which lets a webhook reach loopback over http)."""

from __future__ import annotations

import asyncio
import re
import secrets
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import pytest_asyncio
from aiohttp import web

from tests.conftest import Api
from tests.fakes.smtp import MailSink
from tests.gateway.conftest import (  # noqa: F401  (fake, fakes, gateway_env, gw: the gateway's fixtures)
    PROVIDER_KEYS,
    Account,
    fake,
    fakes,
    gateway_env,
    gw,
)

MAIL_FROM = "Webrana <no-reply@webrana.test>"
DOCS = Path(__file__).resolve().parents[2] / "docs" / "webhooks.md"


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """A webhook receiver on loopback: records every POST; ``fail_next`` answers 500 that many times."""

    url: str = ""
    got: list[Received] = field(default_factory=list)
    fail_next: int = 0
    redirect_next: int = 0

    async def handle(self, request: web.Request) -> web.Response:
        self.got.append(Received(request.path, dict(request.headers), await request.read()))
        if self.fail_next:
            self.fail_next -= 1
            return web.Response(status=500, text="receiver down")
        if self.redirect_next:
            self.redirect_next -= 1
            return web.Response(status=302, headers={"Location": "/elsewhere"})
        return web.Response(status=204)


@pytest_asyncio.fixture(loop_scope="session")
async def receiver() -> AsyncIterator[Receiver]:
    r = Receiver()
    app = web.Application()
    app.router.add_route("POST", "/{tail:.*}", r.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    r.url = f"http://127.0.0.1:{port}/hook"
    try:
        yield r
    finally:
        await runner.cleanup()


@pytest.fixture
async def sink() -> AsyncIterator[MailSink]:
    async with MailSink() as s:
        yield s


@pytest.fixture
def env_overrides(sink: MailSink) -> dict[str, str]:
    return {"WEBRANA_SMTP_URL": sink.url, "WEBRANA_MAIL_FROM": MAIL_FROM, "WEBRANA_DEV": "true"}


def documented_verifier() -> Callable[[str, bytes, str], bool]:
    """The Python recipe of docs/webhooks.md, as a receiver would paste it."""
    code = re.search(r"```python\n(.*?)```", DOCS.read_text(), re.S)
    assert code is not None
    namespace: dict[str, Any] = {}
    exec(code.group(1), namespace)  # noqa: S102 (our own documentation's snippet)
    verify: Callable[[str, bytes, str], bool] = namespace["verify_webrana_signature"]
    return verify


async def wait_for(db_url: str, sql: str, *args: Any, count: int, timeout: float = 5.0) -> list[asyncpg.Record]:
    """Rows of ``sql`` once there are ``count`` of them (alerts are recorded by tasks nobody waits for)."""
    conn = await asyncpg.connect(db_url)
    try:
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            rows = await conn.fetch(sql, *args)
            if len(rows) >= count or asyncio.get_running_loop().time() > deadline:
                await asyncio.sleep(0.2)  # and no more arrive
                return await conn.fetch(sql, *args)
            await asyncio.sleep(0.05)
    finally:
        await conn.close()


async def make_account(client: Any, db_url: str, providers: tuple[str, ...] = ("openai",)) -> Account:
    """``tests.gateway.conftest.make_account`` for a deployment with mail on: the address is verified first (keys
    need it) and the verification e-mail is dropped, so the outbox holds only what a test causes."""
    api = Api(client)
    tokens = await api.register(f"dev-{secrets.token_hex(4)}@example.co.id")
    conn = await asyncpg.connect(db_url)
    try:
        await conn.execute("UPDATE users SET plan = 'pro', email_verified_at = now() WHERE id = $1::uuid",
                           tokens["user"]["id"])
        await conn.execute("DELETE FROM mail_outbox WHERE user_id = $1::uuid", tokens["user"]["id"])
    finally:
        await conn.close()
    h = api.auth(tokens)
    for p in providers:
        resp = await client.post("/api/provider-keys", headers=h, json={"provider": p, "name": p,
                                                                        "key": PROVIDER_KEYS[p]})
        assert resp.status == 201, await resp.text()
    resp = await client.post("/api/proxy-keys", headers=h, json={"name": "test"})
    assert resp.status == 201, await resp.text()
    return Account(tokens, (await resp.json())["key"], tokens["user"]["id"])
