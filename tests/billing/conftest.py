"""Billing fixtures: the app under test talks to a FakeMidtrans on loopback, which sends its signed
notifications back to the app's webhook."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from tests.conftest import Api
from tests.fakes.midtrans import FakeMidtrans

WEBHOOK_PATH = "/api/billing/midtrans/notification"
CONSOLE_URL = "http://127.0.0.1:18081"


@pytest.fixture
async def fake_midtrans(base_env: dict[str, str]) -> AsyncIterator[FakeMidtrans]:
    fake = FakeMidtrans(base_env["MIDTRANS_SERVER_KEY"])
    await fake.start()
    yield fake
    await fake.close()


@pytest.fixture
def env_overrides(fake_midtrans: FakeMidtrans) -> dict[str, str]:
    return {"MIDTRANS_SNAP_BASE_URL": fake_midtrans.snap_base_url,
            "MIDTRANS_API_BASE_URL": fake_midtrans.api_base_url,
            "WEBRANA_CONSOLE_URL": CONSOLE_URL}


@pytest.fixture
def midtrans(client: TestClient[web.Request, web.Application], fake_midtrans: FakeMidtrans) -> FakeMidtrans:
    """The fake, now told where the app's webhook is (the app starts first, on a free port)."""
    fake_midtrans.notification_url = str(client.make_url(WEBHOOK_PATH))
    return fake_midtrans


@pytest.fixture
async def db(migrated: str) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(migrated)
    yield conn
    await conn.close()


class Billing:
    """Steps of the pay flow, through the public API and the fake's controls."""

    def __init__(self, api: Api, fake: FakeMidtrans, db: asyncpg.Connection) -> None:
        self.api = api
        self.client = api.client
        self.fake = fake
        self.db = db

    async def user(self) -> dict[str, str]:
        return self.api.auth(await self.api.register())

    async def admin(self) -> tuple[dict[str, str], dict[str, Any]]:
        tokens = await self.api.register()
        await self.db.execute("UPDATE users SET role = 'admin' WHERE id = $1::uuid", tokens["user"]["id"])
        return self.api.auth(tokens), tokens["user"]

    async def subscribe(self, headers: dict[str, str], plan: str, key: str | None = None,
                        expect: int = 201) -> dict[str, Any]:
        h = dict(headers)
        if key is not None:
            h["Idempotency-Key"] = key
        resp = await self.client.post("/api/billing/subscribe", json={"plan": plan}, headers=h)
        assert resp.status == expect, await resp.text()
        data: dict[str, Any] = await resp.json()
        return data

    async def notify(self, order_id: str, status: str, *, fraud: str | None = "accept",
                     payment_type: str | None = None) -> dict[str, Any]:
        """Midtrans moves the transaction and notifies the webhook; returns the webhook's JSON answer."""
        _, sent = await self.fake.transition(order_id, status, fraud_status=fraud, payment_type=payment_type)
        assert len(sent) == 1 and sent[0].status == 200, sent
        assert sent[0].response_text is not None
        answer: dict[str, Any] = orjson.loads(sent[0].response_text)
        return answer

    async def pay(self, headers: dict[str, str], plan: str) -> dict[str, Any]:
        checkout = await self.subscribe(headers, plan)
        answer = await self.notify(checkout["order_id"], "settlement")
        assert answer["verdict"] == "applied:paid", answer
        return checkout

    async def get(self, path: str, headers: dict[str, str], expect: int = 200) -> Any:
        resp = await self.client.get(path, headers=headers)
        assert resp.status == expect, await resp.text()
        return await resp.json()

    async def invoice(self, headers: dict[str, str], order_id: str) -> dict[str, Any]:
        data: dict[str, Any] = await self.get(f"/api/billing/orders/{order_id}", headers)
        return data

    async def plan(self, headers: dict[str, str]) -> str:
        me = await self.get("/api/auth/me", headers)
        return str(me["plan"])


@pytest.fixture
def billing(api: Api, midtrans: FakeMidtrans, db: asyncpg.Connection) -> Billing:
    return Billing(api, midtrans, db)
