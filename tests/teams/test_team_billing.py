"""A team's billing, through the API with a real PostgreSQL, the fake Midtrans on loopback (signed notifications to
the app's webhook) and a real SMTP sink: the Team subscription a user bought moves to the organisation they create
(with its open invoices; the owner falls to Free), renewals and the lifecycle job act on the team's subscription,
only the owner sees or changes it, ownership transfer moves who pays, a lapsed team falls to Free."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

import asyncpg
import orjson
import pytest

from tests.billing.conftest import WEBHOOK_PATH
from tests.fakes.midtrans import FakeMidtrans
from tests.fakes.smtp import MailSink
from tests.mail.conftest import CONSOLE_URL, MAIL_FROM
from tests.teams.conftest import Client, h, invite, join, make_team, user
from webrana_proxy.billing.lifecycle import run_once
from webrana_proxy.state import KEYCACHE
from webrana_proxy.tokens import sha256


@pytest.fixture
async def fake_midtrans(base_env: dict[str, str]) -> AsyncIterator[FakeMidtrans]:
    fake = FakeMidtrans(base_env["MIDTRANS_SERVER_KEY"])
    await fake.start()
    yield fake
    await fake.close()


@pytest.fixture
def env_overrides(sink: MailSink, fake_midtrans: FakeMidtrans) -> dict[str, str]:
    return {"WEBRANA_SMTP_URL": sink.url, "WEBRANA_MAIL_FROM": MAIL_FROM, "WEBRANA_CONSOLE_URL": CONSOLE_URL,
            "MIDTRANS_SNAP_BASE_URL": fake_midtrans.snap_base_url,
            "MIDTRANS_API_BASE_URL": fake_midtrans.api_base_url}


@pytest.fixture
def midtrans(client: Client, fake_midtrans: FakeMidtrans) -> FakeMidtrans:
    fake_midtrans.notification_url = str(client.make_url(WEBHOOK_PATH))
    return fake_midtrans


async def checkout(client: Client, who: dict[str, Any], plan: str, org_id: str | None = None) -> dict[str, Any]:
    path = f"/api/orgs/{org_id}/billing/subscribe" if org_id else "/api/billing/subscribe"
    resp = await client.post(path, json={"plan": plan}, headers=h(who))
    assert resp.status == 201, await resp.text()
    body: dict[str, Any] = await resp.json()
    return body


async def settle(midtrans: FakeMidtrans, order_id: str) -> None:
    _, sent = await midtrans.transition(order_id, "settlement")
    assert len(sent) == 1 and sent[0].status == 200 and sent[0].response_text is not None, sent
    assert orjson.loads(sent[0].response_text)["verdict"] == "applied:paid", sent[0].response_text


async def get(client: Client, path: str, who: dict[str, Any], status: int = 200) -> Any:
    resp = await client.get(path, headers=h(who))
    assert resp.status == status, await resp.text()
    return await resp.json()


async def team_subscriber(client: Client, migrated: str, midtrans: FakeMidtrans) -> dict[str, Any]:
    """A user on Free who bought the Team plan personally (paid through Midtrans)."""
    buyer = await user(client, migrated)
    await settle(midtrans, (await checkout(client, buyer, "team"))["order_id"])
    assert (await get(client, "/api/auth/me", buyer))["plan"] == "team"
    return buyer


async def test_creating_the_team_moves_the_subscription_and_its_open_invoices_and_puts_the_owner_on_free(
        client: Client, migrated: str, midtrans: FakeMidtrans) -> None:
    owner = await team_subscriber(client, migrated, midtrans)
    key = (await (await client.post("/api/proxy-keys", json={"name": "mine"}, headers=h(owner))).json())["key"]
    first = (await get(client, "/api/billing/invoices", owner))["data"]
    renewal = await checkout(client, owner, "team")  # the next period, opened and not paid yet
    period = (await get(client, "/api/billing/subscription", owner))["subscription"]

    org_id = await make_team(client, owner)
    org = await get(client, f"/api/orgs/{org_id}", owner)
    assert (org["plan"], org["seats"]["limit"]) == ("team", 10)
    assert (await get(client, "/api/auth/me", owner))["plan"] == "free"
    personal = await get(client, "/api/billing/subscription", owner)
    assert personal == {"plan": "free", "subscription": None}
    team = await get(client, f"/api/orgs/{org_id}/billing/subscription", owner)
    assert team["plan"] == "team" and team["subscription"]["id"] == period["id"]
    # The paid first period stays in the owner's own history; the open renewal is the team's now.
    assert [i["id"] for i in (await get(client, "/api/billing/invoices", owner))["data"]] == [first[0]["id"]]
    team_invoices = (await get(client, f"/api/orgs/{org_id}/billing/invoices", owner))["data"]
    assert [(i["id"], i["status"]) for i in team_invoices] == [(renewal["invoice_id"], "pending")]
    order = await get(client, f"/api/orgs/{org_id}/billing/orders/{renewal['order_id']}", owner)
    assert order["id"] == renewal["invoice_id"]
    await get(client, f"/api/billing/orders/{renewal['order_id']}", owner, 404)  # not a personal order any more
    principal = await client.app[KEYCACHE].resolve(sha256(key))  # the owner's personal key: Free's limits now
    assert principal is not None and (principal.plan, principal.monthly_requests) == ("free", 1_000)

    # Paying the renewal extends the team's period, and nothing of the owner's own.
    await settle(midtrans, renewal["order_id"])
    team = await get(client, f"/api/orgs/{org_id}/billing/subscription", owner)
    end = datetime.fromisoformat(team["subscription"]["current_period_end"])
    assert end == datetime.fromisoformat(period["current_period_end"]) + timedelta(days=30)
    assert (await get(client, "/api/auth/me", owner))["plan"] == "free"
    conn = await asyncpg.connect(migrated)
    try:
        assert await conn.fetchval("SELECT plan FROM users WHERE id = $1::uuid", owner["user"]["id"]) == "free"
        assert await conn.fetchval("SELECT count(*) FROM subscriptions WHERE org_id IS NULL AND user_id = $1::uuid "
                                   "AND status = 'active'", owner["user"]["id"]) == 0
    finally:
        await conn.close()


async def test_only_the_owner_sees_and_pays_the_teams_billing_and_a_transfer_moves_that(
        client: Client, migrated: str, sink: MailSink, midtrans: FakeMidtrans) -> None:
    owner = await team_subscriber(client, migrated, midtrans)
    org_id = await make_team(client, owner)
    manager = await join(client, sink, migrated, org_id, owner, "manager")
    member = await join(client, sink, migrated, org_id, owner)
    outsider = await user(client, migrated)
    invoice_id = (await get(client, f"/api/orgs/{org_id}/billing/invoices", owner))["data"] or [None]
    paths = [f"/api/orgs/{org_id}/billing/subscription", f"/api/orgs/{org_id}/billing/invoices"]
    for who, status in ((manager, 403), (member, 403), (outsider, 404)):
        for path in paths:
            body = await get(client, path, who, status)
            assert "subscription" not in body and "data" not in body  # nothing of billing, only the refusal
        resp = await client.post(f"/api/orgs/{org_id}/billing/subscribe", json={"plan": "team"}, headers=h(who))
        assert resp.status == status
        assert (await client.post(f"/api/orgs/{org_id}/billing/cancel", headers=h(who))).status == status
    assert invoice_id == [None]  # the first period was bought personally: its invoice is the owner's own

    resp = await client.post(f"/api/orgs/{org_id}/transfer", json={"user_id": manager["user"]["id"]},
                             headers=h(owner))
    assert resp.status == 200, await resp.text()
    await get(client, f"/api/orgs/{org_id}/billing/subscription", owner, 403)  # a manager now
    renewal = await checkout(client, manager, "team", org_id)  # the new owner pays
    await settle(midtrans, renewal["order_id"])
    team = await get(client, f"/api/orgs/{org_id}/billing/invoices", manager)
    assert [(i["id"], i["status"]) for i in team["data"]] == [(renewal["invoice_id"], "paid")]
    snap = next(r for r in reversed(midtrans.requests) if r.path.endswith("/transactions"))
    assert snap.json()["callbacks"]["finish"] == f"{CONSOLE_URL}/teams/{org_id}/billing/result"
    resp = await client.post(f"/api/orgs/{org_id}/billing/cancel", headers=h(manager))
    assert resp.status == 403 and "2 must leave" in (await resp.json())["error"]["message"]
    assert (await get(client, "/api/auth/me", manager))["plan"] == "free"  # their own account is untouched


async def test_a_lapsed_team_falls_to_free_and_then_refuses_new_invitations(
        client: Client, migrated: str, sink: MailSink, midtrans: FakeMidtrans) -> None:
    owner = await team_subscriber(client, migrated, midtrans)
    org_id = await make_team(client, owner)
    member = await join(client, sink, migrated, org_id, owner)
    resp = await client.post(f"/api/orgs/{org_id}/proxy-keys", json={"name": "team"}, headers=h(member))
    key = (await resp.json())["key"]
    principal = await client.app[KEYCACHE].resolve(sha256(key))
    assert principal is not None and (principal.plan, principal.monthly_requests) == ("team", 200_000)
    sub = (await get(client, f"/api/orgs/{org_id}/billing/subscription", owner))["subscription"]
    end = datetime.fromisoformat(sub["current_period_end"])

    report = await run_once(client.app, end + timedelta(seconds=1))
    assert report.subscriptions == {"expired": 1}
    org = await get(client, f"/api/orgs/{org_id}", owner)
    assert org["plan"] == "free" and org["seats"]["limit"] == 1
    resp = await invite(client, org_id, owner, f"late-{uuid.uuid4().hex[:6]}@example.co.id")
    assert resp.status == 403 and (await resp.json())["error"]["code"] == "no_free_seat"
    principal = await client.app[KEYCACHE].resolve(sha256(key))  # the team's keys run on Free at once
    assert principal is not None and (principal.plan, principal.monthly_requests) == ("free", 1_000)
    assert (await get(client, "/api/auth/me", owner))["plan"] == "free"

    # The owner buys the Team plan again, for the team: it is the team's subscription from the start.
    await settle(midtrans, (await checkout(client, owner, "team", org_id))["order_id"])
    assert (await get(client, f"/api/orgs/{org_id}", owner))["plan"] == "team"
    assert (await get(client, "/api/auth/me", owner))["plan"] == "free"
    assert (await invite(client, org_id, owner, "back@example.co.id")).status == 201


async def test_deleting_the_team_hands_its_running_subscription_back_to_the_owner(
        client: Client, migrated: str, midtrans: FakeMidtrans) -> None:
    owner = await team_subscriber(client, migrated, midtrans)
    org_id = await make_team(client, owner)
    assert (await get(client, "/api/auth/me", owner))["plan"] == "free"
    assert (await client.delete(f"/api/orgs/{org_id}", headers=h(owner))).status == 200
    assert (await get(client, "/api/auth/me", owner))["plan"] == "team"
    assert (await get(client, "/api/billing/subscription", owner))["subscription"]["plan"] == "team"
    assert (await client.post("/api/orgs", json={"name": "Again"}, headers=h(owner))).status == 201
