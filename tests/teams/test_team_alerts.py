"""A team's quota alert (its counter is keyed by the team's workspace id) goes to the team's owner: their alert
row (kept apart from their personal alerts by org_id), their banner and an e-mail naming the team, once."""

from __future__ import annotations

import uuid

import asyncpg

from tests.fakes.smtp import MailSink
from tests.mail.conftest import deliver
from tests.teams.conftest import Client, h, join, make_team, user
from webrana_proxy.alerts.record import NewAlert, record
from webrana_proxy.limits import QuotaCrossing
from webrana_proxy.state import POOL


async def test_a_teams_quota_alert_goes_to_its_owner_once_and_names_the_team(
        client: Client, migrated: str, sink: MailSink) -> None:
    owner = await user(client, migrated, "team")
    org_id = await make_team(client, owner, "Acme Kopi")
    member = await join(client, sink, migrated, org_id, owner)
    pool = client.app[POOL]
    owner_id = uuid.UUID(owner["user"]["id"])
    # The owner's personal 80 % of the same month: the team's 100 % must not dismiss it.
    personal = await record(pool, NewAlert.of_quota(QuotaCrossing(str(owner_id), "2026-01", 80, 80, 100)))
    team80 = await record(pool, NewAlert.of_quota(QuotaCrossing(org_id, "2026-01", 80, 8_000, 10_000)))
    team100 = await record(pool, NewAlert.of_quota(QuotaCrossing(org_id, "2026-01", 100, 10_000, 10_000)))
    again = await record(pool, NewAlert.of_quota(QuotaCrossing(org_id, "2026-01", 100, 10_000, 10_000)))
    assert personal and team80 and team100 and again is None

    conn = await asyncpg.connect(migrated)
    try:
        rows = await conn.fetch("SELECT id, user_id, org_id, percent, dismissed_at FROM alerts ORDER BY created_at")
    finally:
        await conn.close()
    assert [(r["id"], r["user_id"], r["org_id"], r["percent"], r["dismissed_at"] is None) for r in rows] == [
        (personal, owner_id, None, 80, True), (team80, owner_id, uuid.UUID(org_id), 80, False),
        (team100, owner_id, uuid.UUID(org_id), 100, True)]

    await deliver(client.app)
    quota_mails = [m for m in sink.received if "Acme Kopi" in m.subject and "%" in m.subject]
    assert [(m.recipients, "10.000" in m.text) for m in quota_mails] == [([owner["user"]["email"]], True)] * 2
    assert not [m for m in sink.received if member["user"]["email"] in m.recipients and "kuota" in m.subject]
    listed = await (await client.get("/api/alerts", headers=h(owner))).json()
    assert str(team100) in {a["id"] for a in listed["data"]}  # the owner's alerts list has the team's
