"""Alerts for a team member's own monthly limits (set by the team's owner or a manager), end to end: real gateway
calls on two replicas (fake providers), real PostgreSQL and Redis, a real SMTP server and webhook receiver.

At 80 % and 100 % of a member's request or spend limit: one alert row (the member's, naming the team), one e-mail to
the member and one to the team's owner, one delivery to the owner's webhook (as for the team's quota alerts), the
member's banner; nothing again on the refused calls that follow, nor when many replicas record the same crossing.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import orjson
import pytest_asyncio

from tests.alerts.conftest import Receiver, make_account, wait_for
from tests.alerts.test_alerts import set_webhook
from tests.conftest import serve_app
from tests.fakes.smtp import MailSink, Received
from tests.gateway.conftest import Account
from tests.gateway.test_team_keys import Client, call, team, team_key
from webrana_proxy.alerts import delivery
from webrana_proxy.alerts.record import NewAlert, record
from webrana_proxy.db import create_pool
from webrana_proxy.limits import jakarta_month
from webrana_proxy.mail.job import run_once as send_mail
from webrana_proxy.settings import Settings
from webrana_proxy.state import POOL

BIG = [{"role": "user", "content": "halo " * 2000}]  # about Rp 25 of gpt-4o-mini with the fakes (a word a token)
MEMBER_ALERTS = """SELECT * FROM alerts WHERE user_id = $1::uuid AND scope = $2 ORDER BY percent"""
OUTBOX = """SELECT o.template, o.dedup_key, u.id AS user_id FROM mail_outbox o JOIN users u ON u.id = o.user_id
            WHERE o.template LIKE 'alert_member_%' ORDER BY o.dedup_key"""


@pytest_asyncio.fixture(loop_scope="session")
async def replica_b(gw: Client, gateway_env: dict[str, str]) -> AsyncIterator[Client]:
    from webrana_proxy.app import create_app

    async with serve_app(create_app(Settings.from_env(gateway_env))) as c:
        yield c


async def put_limits(client: Client, org_id: str, owner: Account, member: Account, **limits: int | None) -> None:
    resp = await client.put(f"/api/orgs/{org_id}/members/{member.user_id}/limits", json=limits,
                            headers=owner.headers)
    assert resp.status == 200, await resp.text()


async def fetch(db: str, sql: str, *args: Any) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(db)
    try:
        return await conn.fetch(sql, *args)
    finally:
        await conn.close()


async def email_of(db: str, account: Account) -> str:
    [row] = await fetch(db, "SELECT email FROM users WHERE id = $1::uuid", account.user_id)
    address: str = row["email"]
    return address


def mails_to(sink: MailSink, address: str, word: str) -> list[Received]:
    return [m for m in sink.received if address in m.recipients and word in m.subject]


async def chat(client: Client, key: str, messages: list[dict[str, str]]) -> int:
    resp = await client.post("/v1/chat/completions", headers={"Authorization": f"Bearer {key}"},
                             json={"model": "gpt-4o-mini", "messages": messages})
    await resp.read()
    return resp.status


async def test_a_members_request_limit_alerts_the_member_and_the_owner_once_at_80_and_100_percent(
        gw: Client, replica_b: Client, migrated: str, sink: MailSink, receiver: Receiver) -> None:
    owner = await make_account(gw, migrated, providers=())
    member = await make_account(gw, migrated, providers=("openai",))  # with a personal key of their own too
    org_id = await team(gw, migrated, owner, member)
    await set_webhook(gw, owner, receiver.url)  # the team's alerts go to its owner's webhook
    key = await team_key(gw, org_id, member)
    await put_limits(gw, org_id, owner, member, monthly_request_limit=5)
    month, _ = jakarta_month()

    for i in range(4):  # 4 of 5, on both replicas: the 80 % threshold
        assert (await call((gw, replica_b)[i % 2], key))[0] == 200
    rows = await wait_for(migrated, MEMBER_ALERTS, member.user_id, "member_requests", count=1)
    assert [(r["percent"], r["used"], r["cap"], r["org_id"], r["period"]) for r in rows] == [
        (80, 4, 5, uuid.UUID(org_id), month)]
    assert (await call(replica_b, key))[0] == 200  # 5 of 5: the 100 % threshold
    for replica in (gw, replica_b, gw):  # refused from now on: no more alerts
        status, body = await call(replica, key)
        assert status == 429 and body["error"]["code"] == "member_request_limit_reached", body
    assert (await call(gw, member.proxy_key))[0] == 200  # their personal key is not limited, nor alerted
    rows = await wait_for(migrated, MEMBER_ALERTS, member.user_id, "member_requests", count=3)
    assert [(r["percent"], r["used"], r["dismissed_at"] is None) for r in rows] == [(80, 4, False), (100, 5, True)]
    assert not await fetch(migrated, "SELECT 1 FROM alerts WHERE scope <> 'member_requests'")

    # Mail: one to the member and one to the owner per threshold (Indonesian, the accounts' default language).
    member_at, owner_at = await email_of(migrated, member), await email_of(migrated, owner)
    assert (await send_mail(gw.app)).sent >= 4
    mine = sorted(m.subject for m in mails_to(sink, member_at, "batas request"))
    assert mine == ["Webrana: 100% batas request bulanan Anda di tim Acme terpakai",
                    "Webrana: 80% batas request bulanan Anda di tim Acme terpakai"]
    theirs = sorted(m.subject for m in mails_to(sink, owner_at, "batas request"))
    assert theirs == [f"Webrana: {member_at} memakai 100% batas request bulanannya di tim Acme",
                      f"Webrana: {member_at} memakai 80% batas request bulanannya di tim Acme"]
    assert "5 dari 5 request" in next(m.text for m in mails_to(sink, owner_at, "100%"))
    assert f"/teams/{org_id}/members" in mails_to(sink, owner_at, "100%")[0].text
    assert f"/teams/{org_id}/usage" in mails_to(sink, member_at, "100%")[0].text
    assert (await send_mail(replica_b.app)).sent == 0  # nothing twice
    assert len(await fetch(migrated, OUTBOX)) == 4

    # The member's banner and alert list show the team; the owner's banner does not carry the member's alerts.
    answer = await gw.get("/api/proxy-keys", headers=member.headers)
    banner = orjson.loads(answer.headers["Webrana-Alerts"])
    assert [(a["scope"], a["percent"], a["team_name"]) for a in banner] == [("member_requests", 100, "Acme")]
    listed = await (await gw.get("/api/alerts?all=true", headers=member.headers)).json()
    assert [(a["scope"], a["percent"], a["used"], a["limit"], a["unit"], a["team"]) for a in listed["data"]] == [
        ("member_requests", 100, 5, 5, "requests", {"id": org_id, "name": "Acme"}),
        ("member_requests", 80, 4, 5, "requests", {"id": org_id, "name": "Acme"})]
    assert "Webrana-Alerts" not in (await gw.get("/api/proxy-keys", headers=owner.headers)).headers

    # The owner's webhook: one event per threshold, naming the team and the member.
    report = await delivery.run_once(gw.app)
    assert report.sent == 2, report.errors
    events = sorted((orjson.loads(g.body)["data"] for g in receiver.got), key=lambda e: e["percent"])
    assert [(e["scope"], e["percent"], e["unit"], e["limit"], e["team"]["id"], e["member"])
            for e in events] == [("member_requests", p, "requests", 5, org_id,
                                  {"id": member.user_id, "email": member_at}) for p in (80, 100)]
    assert (await delivery.run_once(gw.app)).sent == 0


async def test_a_members_spend_limit_alerts_the_member_and_the_owner_once_at_80_and_100_percent(
        gw: Client, replica_b: Client, migrated: str, sink: MailSink) -> None:
    owner = await make_account(gw, migrated, providers=())
    member = await make_account(gw, migrated, providers=())
    org_id = await team(gw, migrated, owner, member)
    key = await team_key(gw, org_id, member)
    await put_limits(gw, org_id, owner, member, monthly_spend_limit_idr=30)

    assert await chat(gw, key, BIG) == 200  # about Rp 25 of Rp 30: past 80 %, not 100 %
    rows = await wait_for(migrated, MEMBER_ALERTS, member.user_id, "member_spend", count=1)
    assert [(r["percent"], r["cap"]) for r in rows] == [(80, 30_000_000)]
    assert 24_000_000 <= rows[0]["used"] < 30_000_000
    assert await chat(replica_b, key, BIG) == 200  # past 100 % (the cap is checked before a call)
    rows = await wait_for(migrated, MEMBER_ALERTS, member.user_id, "member_spend", count=2)
    for replica in (gw, replica_b):  # refused from now on: no more alerts
        assert await chat(replica, key, BIG) == 429
    rows = await wait_for(migrated, MEMBER_ALERTS, member.user_id, "member_spend", count=3, timeout=1.0)
    assert [(r["percent"], r["org_id"], r["dismissed_at"] is None) for r in rows] == [
        (80, uuid.UUID(org_id), False), (100, uuid.UUID(org_id), True)]

    member_at, owner_at = await email_of(migrated, member), await email_of(migrated, owner)
    await send_mail(gw.app)
    assert sorted(m.subject for m in mails_to(sink, member_at, "batas belanja")) == [
        "Webrana: 100% batas belanja bulanan Anda di tim Acme terpakai",
        "Webrana: 80% batas belanja bulanan Anda di tim Acme terpakai"]
    assert sorted(m.subject for m in mails_to(sink, owner_at, "batas belanja")) == [
        f"Webrana: {member_at} memakai 100% batas belanja bulanannya di tim Acme",
        f"Webrana: {member_at} memakai 80% batas belanja bulanannya di tim Acme"]
    assert "dari batasnya Rp 30" in mails_to(sink, owner_at, "100%")[0].text
    assert len(await fetch(migrated, OUTBOX)) == 4

    listed = await (await gw.get("/api/alerts", headers=member.headers)).json()  # undismissed: the 100 % one
    assert [(a["scope"], a["percent"], a["unit"], a["limit"], a["team"]["name"]) for a in listed["data"]] == [
        ("member_spend", 100, "idr_micro", 30_000_000, "Acme")]


async def test_one_member_crossing_seen_by_many_replicas_is_one_row_two_mails_one_delivery(
        gw: Client, migrated: str, receiver: Receiver) -> None:
    owner = await make_account(gw, migrated, providers=())
    member = await make_account(gw, migrated, providers=())
    org_id = await team(gw, migrated, owner, member)
    await set_webhook(gw, owner, receiver.url)
    month, _ = jakarta_month()
    alert = NewAlert(uuid.UUID(member.user_id), "member_requests", None, month, 100, 5, 5, True, uuid.UUID(org_id))
    # The owner's own limit in their team: one mail, not two.
    own = NewAlert(uuid.UUID(owner.user_id), "member_spend", None, month, 80, 8_000_000, 10_000_000, True,
                   uuid.UUID(org_id))
    pools = [await create_pool(migrated) for _ in range(4)]  # four replicas
    try:
        made = await asyncio.gather(*(record(pool, a) for pool in pools for a in (alert, own, alert)))
    finally:
        for pool in pools:
            await pool.close()
    assert sum(m is not None for m in made) == 2
    alerts = await fetch(migrated, "SELECT user_id, scope FROM alerts ORDER BY scope")
    assert [(str(r["user_id"]), r["scope"]) for r in alerts] == [(member.user_id, "member_requests"),
                                                                 (owner.user_id, "member_spend")]
    mails = [(str(r["user_id"]), r["template"]) for r in await fetch(migrated, OUTBOX)]
    assert sorted(mails) == sorted([(member.user_id, "alert_member_requests"),
                                    (owner.user_id, "alert_member_requests_owner"),
                                    (owner.user_id, "alert_member_spend")])
    deliveries = await fetch(migrated, "SELECT user_id FROM webhook_deliveries")
    assert [str(r["user_id"]) for r in deliveries] == [owner.user_id] * 2  # the owner's webhook, once per alert

    # A member who left the team before their alert was recorded gets none.
    await fetch(migrated, "DELETE FROM org_members WHERE org_id = $1::uuid AND user_id = $2::uuid", org_id,
                member.user_id)
    late = NewAlert(uuid.UUID(member.user_id), "member_spend", None, month, 80, 8, 10, True, uuid.UUID(org_id))
    assert await record(gw.app[POOL], late) is None
