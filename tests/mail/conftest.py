"""Mail fixtures: a real SMTP server (aiosmtpd, ``tests/fakes/smtp.py``) on loopback that the app under test
sends to, and steps that read what arrived."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from tests.fakes.smtp import MailSink, Received
from webrana_proxy.mail.job import MailReport, run_once

MAIL_FROM = "Webrana <no-reply@webrana.test>"
CONSOLE_URL = "http://console.webrana.test"
TOKEN_RE = re.compile(r"[?&]token=([A-Za-z0-9_-]+)")


@pytest.fixture
async def sink() -> AsyncIterator[MailSink]:
    async with MailSink() as s:
        yield s


@pytest.fixture
def env_overrides(sink: MailSink) -> dict[str, str]:
    return {"WEBRANA_SMTP_URL": sink.url, "WEBRANA_MAIL_FROM": MAIL_FROM, "WEBRANA_CONSOLE_URL": CONSOLE_URL}


@pytest.fixture
async def db(migrated: str) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(migrated)
    yield conn
    await conn.close()


async def deliver(app: web.Application, now: datetime | None = None) -> MailReport:
    """One run of the mail job, as the background loop would do it."""
    return await run_once(app, now=now)


def later(minutes: float) -> datetime:
    return datetime.now(UTC) + timedelta(minutes=minutes)


def link_token(message: Received) -> str:
    m = TOKEN_RE.search(message.text)
    assert m, message.text
    return m.group(1)


async def outbox(db: asyncpg.Connection) -> list[dict[str, Any]]:
    return [dict(r) for r in await db.fetch(
        "SELECT id, template, status, attempts, message_id, recipient, locale, next_attempt_at, last_error "
        "FROM mail_outbox ORDER BY created_at, id")]


async def register(client: TestClient[web.Request, web.Application], email: str,
                   **extra: Any) -> dict[str, Any]:
    resp = await client.post("/api/auth/register", json={"email": email, "password": "Sup3rSecret!", **extra})
    assert resp.status == 201, await resp.text()
    data: dict[str, Any] = await resp.json()
    return data
