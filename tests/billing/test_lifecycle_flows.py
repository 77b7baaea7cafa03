"""The lifecycle job: expiry of periods and pending invoices, scheduled downgrades, one replica at a time."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import asyncpg

from tests.billing.conftest import Billing
from tests.conftest import serve_app
from webrana_proxy.app import create_app
from webrana_proxy.billing.lifecycle import LIFECYCLE_LOCK_ID, run_once
from webrana_proxy.settings import Settings
from webrana_proxy.state import KEYCACHE
from webrana_proxy.tokens import sha256


async def _period_end(billing: Billing, h: dict[str, str]) -> datetime:
    sub = (await billing.get("/api/billing/subscription", h))["subscription"]
    return datetime.fromisoformat(sub["current_period_end"])


async def test_expiry_sends_the_user_back_to_free_and_lowers_limits(billing: Billing) -> None:
    h = await billing.user()
    resp = await billing.client.post("/api/proxy-keys", json={"name": "k"}, headers=h)
    key = (await resp.json())["key"]
    await billing.pay(h, "pro")
    principal = await billing.client.app[KEYCACHE].resolve(sha256(key))
    assert principal is not None and principal.monthly_requests == 50_000
    end = await _period_end(billing, h)
    early = await run_once(billing.client.app, end - timedelta(seconds=1))
    assert early.ran and early.subscriptions == {} and await billing.plan(h) == "pro"
    report = await run_once(billing.client.app, end + timedelta(seconds=1))
    assert report.subscriptions == {"expired": 1}
    assert await billing.plan(h) == "free"
    status = await billing.db.fetchval("SELECT status FROM subscriptions")
    assert status == "expired"
    principal = await billing.client.app[KEYCACHE].resolve(sha256(key))
    assert principal is not None and (principal.plan, principal.monthly_requests) == ("free", 1_000)
    again = await run_once(billing.client.app, end + timedelta(minutes=5))
    assert again.subscriptions == {}


async def test_a_cancelled_subscription_ends_at_the_period_end(billing: Billing) -> None:
    h = await billing.user()
    await billing.pay(h, "starter")
    assert (await billing.client.post("/api/billing/cancel", headers=h)).status == 200
    end = await _period_end(billing, h)
    await run_once(billing.client.app, end - timedelta(hours=1))
    assert await billing.plan(h) == "starter"
    await run_once(billing.client.app, end + timedelta(seconds=1))
    assert await billing.plan(h) == "free"


async def test_a_renewed_subscription_does_not_expire_at_the_old_end(billing: Billing) -> None:
    h = await billing.user()
    await billing.pay(h, "starter")
    old_end = await _period_end(billing, h)
    await billing.pay(h, "starter")
    await run_once(billing.client.app, old_end + timedelta(days=1))
    assert await billing.plan(h) == "starter"
    await run_once(billing.client.app, old_end + timedelta(days=30, seconds=1))
    assert await billing.plan(h) == "free"


async def test_a_paid_downgrade_starts_at_the_period_end(billing: Billing) -> None:
    h = await billing.user()
    await billing.pay(h, "pro")
    end = await _period_end(billing, h)
    downgrade = await billing.subscribe(h, "starter")
    assert (downgrade["kind"], downgrade["total_idr"]) == ("renewal", 54_390)
    sub = (await billing.get("/api/billing/subscription", h))["subscription"]
    assert sub["scheduled_plan"] == "starter"
    assert (await billing.notify(downgrade["order_id"], "settlement"))["verdict"] == "applied:paid"
    assert await billing.plan(h) == "pro"  # the downgrade waits for the period end
    assert await _period_end(billing, h) == end
    report = await run_once(billing.client.app, end + timedelta(seconds=1))
    assert report.subscriptions == {"rolled": 1}
    sub = (await billing.get("/api/billing/subscription", h))["subscription"]
    assert await billing.plan(h) == "starter"
    assert (sub["plan"], sub["scheduled_plan"]) == ("starter", None)
    assert datetime.fromisoformat(sub["current_period_start"]) == end
    assert datetime.fromisoformat(sub["current_period_end"]) == end + timedelta(days=30)


async def test_an_unpaid_downgrade_ends_on_free(billing: Billing) -> None:
    h = await billing.user()
    await billing.pay(h, "team")
    end = await _period_end(billing, h)
    await billing.subscribe(h, "pro")
    await run_once(billing.client.app, end + timedelta(seconds=1))
    assert await billing.plan(h) == "free"


async def test_pending_invoices_expire_after_a_day_once_midtrans_confirms(billing: Billing) -> None:
    h1, h2, h3 = await billing.user(), await billing.user(), await billing.user()  # one pending invoice each
    never_paid = await billing.subscribe(h1, "starter")  # no payment method chosen: Midtrans says 404
    waiting = await billing.subscribe(h2, "pro")
    billing.fake.set_status(waiting["order_id"], "pending")
    lost = await billing.subscribe(h3, "team")  # paid, but the notification never arrived
    billing.fake.set_status(lost["order_id"], "settlement", payment_type="bca_va")
    now = datetime.now(UTC)
    report = await run_once(billing.client.app, now + timedelta(hours=23))
    assert report.invoices == {}
    report = await run_once(billing.client.app, now + timedelta(hours=24, minutes=1))
    assert report.invoices == {"applied:expired": 2, "applied:paid": 1}
    assert (await billing.invoice(h1, never_paid["order_id"]))["status"] == "expired"
    assert (await billing.invoice(h2, waiting["order_id"]))["status"] == "expired"
    paid = await billing.invoice(h3, lost["order_id"])
    assert (paid["status"], paid["payment_method"]) == ("paid", "bca_va")
    assert await billing.plan(h3) == "team"


async def test_pending_invoices_wait_while_midtrans_is_unreachable(billing: Billing) -> None:
    h = await billing.user()
    checkout = await billing.subscribe(h, "starter")
    await billing.fake.close()
    report = await run_once(billing.client.app, datetime.now(UTC) + timedelta(days=2))
    assert report.invoices == {"status_unavailable": 1}
    assert (await billing.invoice(h, checkout["order_id"]))["status"] == "pending"


async def test_only_one_replica_runs_the_job_at_a_time(billing: Billing, migrated: str) -> None:
    other = await asyncpg.connect(migrated)
    try:
        assert await other.fetchval("SELECT pg_try_advisory_lock($1)", LIFECYCLE_LOCK_ID)
        assert (await run_once(billing.client.app)).ran is False
        await other.execute("SELECT pg_advisory_unlock($1)", LIFECYCLE_LOCK_ID)
        assert (await run_once(billing.client.app)).ran is True
    finally:
        await other.close()


async def test_the_app_runs_the_job_in_the_background_when_enabled(billing: Billing, settings: Settings,
                                                                  migrated: str) -> None:
    from dataclasses import replace

    h = await billing.user()
    await billing.pay(h, "starter")
    await billing.db.execute("UPDATE subscriptions SET current_period_end = now() - interval '1 second'")
    async with serve_app(create_app(replace(settings, background_jobs=True))) as c:
        assert (await c.get("/api/plans")).status == 200
        for _ in range(100):  # the job runs on its own, with nobody calling run_once
            if await billing.plan(h) == "free":
                break
            await asyncio.sleep(0.1)
        assert await billing.plan(h) == "free"
    # Stopped cleanly: the lock is free again.
    conn = await asyncpg.connect(migrated)
    try:
        assert await conn.fetchval("SELECT pg_try_advisory_lock($1)", LIFECYCLE_LOCK_ID)
    finally:
        await conn.close()
