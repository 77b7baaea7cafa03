"""Alerts end to end: real gateway calls (fake providers), real PostgreSQL and Redis, a real SMTP server and a real
webhook receiver on loopback (dev mode allows loopback).

Each threshold fires once per period (two replicas racing), the e-mail arrives in the user's language, the
signed-in answers carry the banner until the alert is dismissed, the webhook's signature verifies with the
recipe of docs/webhooks.md, and a receiver that fails gets the same event again later.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncpg
import openai
import orjson
import pytest
import pytest_asyncio
from aiohttp import web
from aiohttp.test_utils import TestClient

from tests.alerts.conftest import Receiver, documented_verifier, make_account, wait_for
from tests.conftest import serve_app
from tests.fakes.smtp import MailSink
from tests.gateway.conftest import Account
from webrana_proxy.alerts import delivery
from webrana_proxy.alerts.record import NewAlert, record
from webrana_proxy.db import create_pool
from webrana_proxy.limits import QuotaCrossing, jakarta_month
from webrana_proxy.mail.job import run_once as send_mail
from webrana_proxy.settings import Settings
from webrana_proxy.state import KEYRING, LIMITER, SETTINGS

Client = TestClient[web.Request, web.Application]
MSG = [{"role": "user", "content": "halo"}]
BIG = [{"role": "user", "content": "halo " * 2000}]  # about Rp 25 with gpt-4o-mini on the fakes
ALERTS_SQL = "SELECT * FROM alerts WHERE user_id = $1::uuid ORDER BY percent"


@pytest_asyncio.fixture(loop_scope="session")
async def replica_b(gw: Client, gateway_env: dict[str, str]) -> AsyncIterator[Client]:
    from webrana_proxy.app import create_app

    async with serve_app(create_app(Settings.from_env(gateway_env))) as c:
        yield c


def sdk(client: Client, key: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=str(client.make_url("/v1")), api_key=key, max_retries=0, timeout=20)


async def sql(db_url: str, query: str, *args: object) -> None:
    conn = await asyncpg.connect(db_url)
    try:
        await conn.execute(query, *args)
    finally:
        await conn.close()


async def set_webhook(gw: Client, account: Account, url: str) -> str:
    resp = await gw.put("/api/webhook", headers=account.headers, json={"url": url})
    assert resp.status == 200, await resp.text()
    secret: str = (await resp.json())["secret"]
    assert secret.startswith("whsec_")
    return secret


async def test_quota_thresholds_fire_once_each_across_two_replicas_in_the_users_language(
        gw: Client, replica_b: Client, migrated: str, sink: MailSink) -> None:
    account = await make_account(gw, migrated, providers=("openai",))
    await sql(migrated, "UPDATE users SET monthly_requests_override = 10 WHERE id = $1::uuid", account.user_id)
    resp = await gw.put("/api/auth/locale", headers=account.headers, json={"locale": "en"})
    assert resp.status in (200, 204), await resp.text()
    seen: list[QuotaCrossing] = []
    for replica in (gw, replica_b):
        replica.app[LIMITER].on_quota_crossing(seen.append)

    a, b = sdk(gw, account.proxy_key), sdk(replica_b, account.proxy_key)
    await asyncio.gather(*(client.chat.completions.create(model="gpt-4o-mini", messages=MSG)
                           for client in [a, b] * 5))  # the ten calls of the quota, racing on two replicas
    for client in (a, b):
        with pytest.raises(openai.RateLimitError) as refused:
            await client.chat.completions.create(model="gpt-4o-mini", messages=MSG)
        assert refused.value.response.headers["x-should-retry"] == "false"  # a month-long wait: no retry
        assert refused.value.body["code"] == "quota_exceeded"  # type: ignore[index]

    assert sorted(c.percent for c in seen) == [80, 100]  # each threshold passed by exactly one script call
    rows = await wait_for(migrated, ALERTS_SQL, account.user_id, count=2)
    month, _ = jakarta_month()
    assert [(r["scope"], r["percent"], r["period"], r["cap"]) for r in rows] == [
        ("quota", 80, month, 10), ("quota", 100, month, 10)]
    assert rows[0]["dismissed_at"] is not None and rows[1]["dismissed_at"] is None  # 100 % supersedes 80 %

    assert (await send_mail(gw.app)).sent == 2
    assert sorted(m.subject for m in sink.received) == [
        "Webrana: 100% of your monthly request quota used", "Webrana: 80% of your monthly request quota used"]
    assert "10 of 10 requests" in next(m.text for m in sink.received if "100%" in m.subject)
    assert (await send_mail(replica_b.app)).sent == 0  # nothing twice


async def test_one_alert_seen_by_many_replicas_at_once_is_one_row_one_mail_one_delivery(
        gw: Client, migrated: str, receiver: Receiver) -> None:
    account = await make_account(gw, migrated, providers=())
    await set_webhook(gw, account, receiver.url)
    month, _ = jakarta_month()
    alert = NewAlert(uuid.UUID(account.user_id), "user_spend", None, month, 80, 8_000_000, 10_000_000, False)
    pools = [await create_pool(migrated) for _ in range(4)]  # four replicas
    try:
        made = await asyncio.gather(*(record(pool, alert) for pool in pools for _ in range(3)))
    finally:
        for pool in pools:
            await pool.close()
    assert sum(m is not None for m in made) == 1
    conn = await asyncpg.connect(migrated)
    try:
        counts = await conn.fetchrow(
            """SELECT (SELECT count(*) FROM alerts WHERE user_id = $1::uuid) AS alerts,
                      (SELECT count(*) FROM mail_outbox WHERE user_id = $1::uuid AND template LIKE 'alert_%') AS mails,
                      (SELECT count(*) FROM webhook_deliveries WHERE user_id = $1::uuid) AS deliveries""",
            account.user_id)
    finally:
        await conn.close()
    assert dict(counts) == {"alerts": 1, "mails": 1, "deliveries": 1}  # type: ignore[arg-type]


async def test_a_keys_cap_alerts_by_mail_in_indonesian_by_banner_and_by_a_signed_webhook(
        gw: Client, migrated: str, sink: MailSink, receiver: Receiver) -> None:
    account = await make_account(gw, migrated, providers=("openai",))
    secret = await set_webhook(gw, account, receiver.url)
    key = (await (await gw.get("/api/proxy-keys", headers=account.headers)).json())["data"][0]
    resp = await gw.patch(f"/api/proxy-keys/{key['id']}", headers=account.headers, json={"spend_cap_idr": 10})
    assert resp.status == 200, await resp.text()
    await sdk(gw, account.proxy_key).chat.completions.create(model="gpt-4o-mini", messages=BIG)  # past both

    rows = await wait_for(migrated, ALERTS_SQL, account.user_id, count=2)
    assert [(r["scope"], r["percent"], r["proxy_key_id"]) for r in rows] == [
        ("key_spend", 80, uuid.UUID(key["id"])), ("key_spend", 100, uuid.UUID(key["id"]))]

    # The banner rides on any signed-in answer: here the key list.
    listed = await gw.get("/api/proxy-keys", headers=account.headers)
    banner = orjson.loads(listed.headers["Webrana-Alerts"])
    assert [(a["scope"], a["percent"], a["key_name"]) for a in banner] == [("key_spend", 100, "test")]
    dismissed = await gw.post(f"/api/alerts/{banner[0]['id']}/dismiss", headers=account.headers)
    assert dismissed.status == 200 and "Webrana-Alerts" not in dismissed.headers
    assert "Webrana-Alerts" not in (await gw.get("/api/proxy-keys", headers=account.headers)).headers
    everything = await (await gw.get("/api/alerts?all=true", headers=account.headers)).json()
    assert [a["percent"] for a in everything["data"]] == [100, 80] and all(a["dismissed_at"]
                                                                           for a in everything["data"])
    other = await make_account(gw, migrated, providers=())
    assert (await gw.post(f"/api/alerts/{banner[0]['id']}/dismiss", headers=other.headers)).status == 404

    assert (await send_mail(gw.app)).sent == 2  # Indonesian: the account's default language
    subjects = sorted(m.subject for m in sink.received)
    assert subjects == ["Webrana: kunci test memakai 100% batas belanjanya",
                        "Webrana: kunci test memakai 80% batas belanjanya"]
    assert f"/proxy-keys/{key['id']}/edit" in sink.received[0].text

    report = await delivery.run_once(gw.app)
    assert report.sent == 2, report.errors
    verify = documented_verifier()
    for got in receiver.got:
        assert verify(secret, got.body, got.headers["Webrana-Signature"])
        assert not verify("whsec_someone-else", got.body, got.headers["Webrana-Signature"])
        assert not verify(secret, got.body + b" ", got.headers["Webrana-Signature"])
        assert got.headers["Webrana-Event"] == "alert.threshold"
    events = sorted((orjson.loads(g.body) for g in receiver.got), key=lambda e: e["data"]["percent"])
    assert [(e["type"], e["data"]["scope"], e["data"]["percent"], e["data"]["unit"], e["data"]["limit"])
            for e in events] == [("alert.threshold", "key_spend", 80, "idr_micro", 10_000_000),
                                 ("alert.threshold", "key_spend", 100, "idr_micro", 10_000_000)]
    assert events[0]["data"]["key"] == {"id": key["id"], "name": "test", "prefix": key["prefix"]}
    assert (await delivery.run_once(gw.app)).sent == 0  # each once


async def test_a_failing_receiver_gets_the_same_event_again_after_the_backoff(
        gw: Client, migrated: str, receiver: Receiver) -> None:
    account = await make_account(gw, migrated, providers=())
    secret = await set_webhook(gw, account, receiver.url)
    receiver.fail_next = 1
    resp = await gw.post("/api/webhook/test", headers=account.headers)
    assert resp.status == 202, await resp.text()

    first = await delivery.run_once(gw.app)
    assert (first.sent, first.retrying) == (0, 1)
    view = await (await gw.get("/api/webhook", headers=account.headers)).json()
    assert view["deliveries"][0]["status"] == "queued" and view["deliveries"][0]["last_status"] == 500
    assert (await delivery.run_once(gw.app)).sent == 0  # not before its backoff
    later = datetime.now(UTC) + delivery.BACKOFF_FIRST + timedelta(seconds=1)
    assert (await delivery.run_once(gw.app, now=later)).sent == 1
    assert len(receiver.got) == 2 and receiver.got[0].body == receiver.got[1].body  # the same event, same id
    verify = documented_verifier()
    assert all(verify(secret, g.body, g.headers["Webrana-Signature"]) for g in receiver.got)
    view = await (await gw.get("/api/webhook", headers=account.headers)).json()
    assert view["deliveries"][0]["status"] == "sent" and view["deliveries"][0]["attempts"] == 2


async def test_redirects_are_not_followed_and_a_rotated_secret_signs_from_then_on(
        gw: Client, migrated: str, receiver: Receiver) -> None:
    account = await make_account(gw, migrated, providers=())
    old = await set_webhook(gw, account, receiver.url)
    receiver.redirect_next = 1
    await gw.post("/api/webhook/test", headers=account.headers)
    report = await delivery.run_once(gw.app)
    assert report.retrying == 1 and "redirects are not followed" in report.errors[0]
    assert [g.path for g in receiver.got] == ["/hook"]  # /elsewhere never asked

    resp = await gw.put("/api/webhook", headers=account.headers, json={"url": receiver.url, "rotate_secret": True})
    new = (await resp.json())["secret"]
    assert new != old
    again = await (await gw.put("/api/webhook", headers=account.headers, json={"url": receiver.url})).json()
    assert "secret" not in again and again["webhook"]["secret_hint"].endswith(new[-4:])  # shown once only
    await delivery.run_once(gw.app, now=datetime.now(UTC) + timedelta(minutes=2))
    verify = documented_verifier()
    assert verify(new, receiver.got[-1].body, receiver.got[-1].headers["Webrana-Signature"])
    assert not verify(old, receiver.got[-1].body, receiver.got[-1].headers["Webrana-Signature"])

    assert (await gw.delete("/api/webhook", headers=account.headers)).status == 200
    assert (await gw.post("/api/webhook/test", headers=account.headers)).status == 404


async def test_a_signature_older_than_five_minutes_is_refused_by_the_recipe() -> None:
    from webrana_proxy.alerts.signing import signature

    verify = documented_verifier()
    body = b'{"id":"x"}'
    assert verify("whsec_k", body, signature("whsec_k", body, int(time.time())))
    assert not verify("whsec_k", body, signature("whsec_k", body, int(time.time()) - 301))
    assert not verify("whsec_k", body, "v1=deadbeef")


async def test_the_connection_goes_to_the_address_that_was_checked(gw: Client, receiver: Receiver) -> None:
    """A made-up name resolved once by the guard's resolver: aiohttp connects to that address (no lookup of its
    own, which DNS rebinding could have answered differently)."""
    asked: list[str] = []

    async def resolve(host: str, port: int) -> list[str]:
        asked.append(host)
        return ["127.0.0.1"]

    sender = delivery.WebhookSender(gw.app[KEYRING], delivery.policy_for(gw.app[SETTINGS]), resolve)
    port = receiver.url.split(":")[2].split("/")[0]
    status, error = await delivery.post(sender, f"http://hook.webrana.test:{port}/pinned", b"{}", "whsec_x",
                                        "webhook.test", uuid.uuid4())
    assert (status, error) == (204, "")
    assert asked == ["hook.webrana.test"]
    assert receiver.got[0].path == "/pinned" and receiver.got[0].headers["Host"] == f"hook.webrana.test:{port}"


async def test_rotating_the_master_key_keeps_webhook_secrets_readable(
        gw: Client, migrated: str, receiver: Receiver, gateway_env: dict[str, str]) -> None:
    """``rotate-master-key`` re-seals webhook signing secrets too: once the previous key is gone, deliveries are
    still signed with the secret the user was shown."""
    import base64
    import os

    from webrana_proxy.app import create_app
    from webrana_proxy.crypto import Keyring
    from webrana_proxy.rotation import rotate

    account = await make_account(gw, migrated, providers=())
    secret = await set_webhook(gw, account, receiver.url)
    old_key = gateway_env["MASTER_ENCRYPTION_KEY"]
    new_key = base64.b64encode(os.urandom(32)).decode()
    pool = await create_pool(migrated, min_size=1, max_size=2)
    try:
        ring = Keyring(base64.b64decode(new_key), base64.b64decode(old_key))
        assert await rotate(pool, ring) >= 1
        version = await pool.fetchval("SELECT key_version FROM webhooks WHERE user_id = $1::uuid", account.user_id)
        assert version == ring.current_version
    finally:
        await pool.close()
    async with serve_app(create_app(Settings.from_env({**gateway_env, "MASTER_ENCRYPTION_KEY": new_key}))) as rotated:
        assert (await rotated.post("/api/webhook/test", headers=account.headers)).status == 202
        assert (await delivery.run_once(rotated.app)).sent == 1
    assert documented_verifier()(secret, receiver.got[-1].body, receiver.got[-1].headers["Webrana-Signature"])
