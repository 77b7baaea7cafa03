"""Without WEBRANA_SMTP_URL the product still works: mail is logged and marked as not sent, e-mail
verification is not enforced, /api/meta says mail is off, and a non-dev start says so loudly."""

from __future__ import annotations

import logging

import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from tests.conftest import serve_app
from tests.mail.conftest import deliver, outbox, register
from webrana_proxy.app import create_app
from webrana_proxy.settings import Settings


@pytest.fixture
def env_overrides() -> dict[str, str]:
    return {}  # no SMTP server


async def test_without_smtp_nothing_is_enforced_and_mail_is_marked_not_sent(
        client: TestClient[web.Request, web.Application], db: asyncpg.Connection,
        caplog: pytest.LogCaptureFixture) -> None:
    meta = await (await client.get("/api/meta")).json()
    assert meta["mail"] is False
    tokens = await register(client, "nomail@example.co.id")
    assert tokens["user"]["email_verified"] is False
    resp = await client.post("/api/proxy-keys", json={"name": "k"},
                             headers={"Authorization": f"Bearer {tokens['access_token']}"})
    assert resp.status == 201, await resp.text()
    with caplog.at_level(logging.WARNING, logger="webrana.mail"):
        report = await deliver(client.app)
    assert report.not_sent == 1
    [row] = await outbox(db)
    assert row["status"] == "not_sent" and "WEBRANA_SMTP_URL" in row["last_error"]
    assert any("not sent" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("dev", [False, True])
async def test_a_start_without_smtp_warns_loudly_outside_dev_mode(
        clean: None, base_env: dict[str, str], dev: bool, caplog: pytest.LogCaptureFixture) -> None:
    settings = Settings.from_env({**base_env, "WEBRANA_DEV": "true" if dev else "false"})
    with caplog.at_level(logging.WARNING, logger="webrana.mail"):
        async with serve_app(create_app(settings)):
            pass
    loud = [r for r in caplog.records if "E-MAIL IS OFF" in r.getMessage()]
    assert len(loud) == (0 if dev else 1)
    if loud:
        assert loud[0].levelno == logging.WARNING and "WEBRANA_SMTP_URL" in loud[0].getMessage()


async def test_with_smtp_the_meta_answer_says_mail_is_on(clean: None, base_env: dict[str, str]) -> None:
    settings = Settings.from_env({**base_env, "WEBRANA_SMTP_URL": "smtp://127.0.0.1:2525",
                                  "WEBRANA_MAIL_FROM": "no-reply@webrana.test"})
    async with serve_app(create_app(settings)) as c:
        assert (await (await c.get("/api/meta")).json())["mail"] is True
