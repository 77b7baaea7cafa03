"""Outside dev mode a webhook may only reach public addresses: refused when saved, and again at send time (a URL
whose name points somewhere else by then, here straight into the database), with a real receiver on loopback
that must never be reached."""

from __future__ import annotations

import uuid

import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from tests.alerts.conftest import MAIL_FROM, Receiver, make_account
from tests.fakes.smtp import MailSink
from webrana_proxy.alerts import delivery
from webrana_proxy.alerts.signing import hint, new_secret
from webrana_proxy.state import KEYRING

Client = TestClient[web.Request, web.Application]


@pytest.fixture
def env_overrides(sink: MailSink) -> dict[str, str]:
    return {"WEBRANA_SMTP_URL": sink.url, "WEBRANA_MAIL_FROM": MAIL_FROM}  # not dev mode


async def test_loopback_private_and_link_local_webhooks_are_refused_when_saved(
        gw: Client, migrated: str, receiver: Receiver) -> None:
    account = await make_account(gw, migrated, providers=())
    port = receiver.url.split(":")[2].split("/")[0]
    for url in (receiver.url, f"https://127.0.0.1:{port}/hook", f"https://localhost:{port}/hook",
                "https://10.0.0.1/hook", "https://169.254.169.254/latest/meta-data", "https://[::1]/hook",
                "https://[fc00::1]/hook", "https://[::ffff:127.0.0.1]/hook", "https://user:pw@example.com/hook"):
        resp = await gw.put("/api/webhook", headers=account.headers, json={"url": url})
        assert resp.status == 400, (url, await resp.text())
        error = (await resp.json())["error"]
        assert (error["code"], error["param"]) == ("webhook_url_refused", "url"), url
    assert (await (await gw.get("/api/webhook", headers=account.headers)).json())["webhook"] is None


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
async def test_a_stored_url_that_now_points_to_loopback_is_refused_at_send_time(
        gw: Client, migrated: str, receiver: Receiver, host: str) -> None:
    account = await make_account(gw, migrated, providers=())
    port = receiver.url.split(":")[2].split("/")[0]
    webhook_id, secret = uuid.uuid4(), new_secret()
    sealed = gw.app[KEYRING].seal(secret, uuid.UUID(account.user_id), webhook_id)
    conn = await asyncpg.connect(migrated)
    try:
        await conn.execute(
            """INSERT INTO webhooks (id, user_id, url, secret_ciphertext, secret_nonce, key_version, secret_hint)
               VALUES ($1, $2::uuid, $3, $4, $5, $6, $7)""",
            webhook_id, account.user_id, f"https://{host}:{port}/hook", sealed.ciphertext, sealed.nonce,
            sealed.key_version, hint(secret))
    finally:
        await conn.close()
    assert (await gw.post("/api/webhook/test", headers=account.headers)).status == 202
    report = await delivery.run_once(gw.app)
    assert report.sent == 0 and report.retrying == 1
    assert "refused" in report.errors[0] and "loopback" in report.errors[0]
    assert receiver.got == []
