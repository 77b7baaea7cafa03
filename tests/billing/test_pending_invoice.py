"""One pending invoice per user: the same plan returns it, another plan expires it at Midtrans first, and a
payment that beat the expiry is honoured, never lost."""

from __future__ import annotations

import asyncio
from datetime import datetime

import asyncpg
import pytest

from tests.billing.conftest import Billing


def _snap_orders(billing: Billing) -> list[str]:
    return [r.json()["transaction_details"]["order_id"] for r in billing.fake.requests
            if r.path == "/snap/v1/transactions"]


async def _pending_count(billing: Billing) -> int:
    count: int = await billing.db.fetchval("SELECT count(*) FROM invoices WHERE status = 'pending'")
    return count


async def test_the_same_plan_again_returns_the_pending_invoice(billing: Billing) -> None:
    h = await billing.user()
    first = await billing.subscribe(h, "pro")
    resp = await billing.client.post("/api/billing/subscribe", json={"plan": "pro"}, headers=h)
    assert resp.status == 201 and resp.headers["Idempotent-Replayed"] == "true"
    again = await resp.json()
    assert again == first  # same number, order id and Snap token
    with_key = await billing.subscribe(h, "pro", key="a-new-key")
    assert with_key["invoice_number"] == first["invoice_number"]
    assert _snap_orders(billing) == [first["order_id"]]  # no second Snap call
    assert billing.fake.expire_calls == []
    assert await billing.db.fetchval("SELECT count(*) FROM invoices") == 1


async def test_another_plan_cancels_the_pending_invoice_and_expires_its_snap_transaction(
        billing: Billing) -> None:
    h = await billing.user()
    starter = await billing.subscribe(h, "starter", key="page-1-starter")
    billing.fake.set_status(starter["order_id"], "pending", payment_type="bca_va")  # a VA number was issued
    pro = await billing.subscribe(h, "pro")
    assert pro["order_id"] != starter["order_id"] and pro["kind"] == "new"
    assert billing.fake.expire_calls == [starter["order_id"]]
    expire = next(r for r in billing.fake.requests if r.path.endswith("/expire"))
    assert (expire.method, expire.path) == ("POST", f"/v2/{starter['order_id']}/expire")
    assert expire.headers["Authorization"].startswith("Basic ")
    assert billing.fake.transactions[starter["order_id"]].transaction_status == "expire"
    assert (await billing.invoice(h, starter["order_id"]))["status"] == "cancelled"
    assert await _pending_count(billing) == 1
    # Midtrans' own notification of the expiry follows; it changes nothing more.
    await billing.fake.drain()
    expired_note = [n for n in billing.fake.notifications if n.body["order_id"] == starter["order_id"]]
    assert [(n.status, n.body["transaction_status"]) for n in expired_note] == [(200, "expire")]
    assert '"no_change:cancelled"' in (expired_note[0].response_text or "")
    # Its Idempotency-Key (a stale console page) no longer leads to a payment page that cannot take money.
    stale = await billing.subscribe(h, "starter", key="page-1-starter", expect=409)
    assert stale["error"]["code"] == "checkout_closed"
    # The replacement is paid as usual.
    assert (await billing.notify(pro["order_id"], "settlement"))["verdict"] == "applied:paid"
    assert await billing.plan(h) == "pro"


async def test_a_replaced_invoice_unknown_to_midtrans_is_cancelled_and_a_late_payment_is_refund_due(
        billing: Billing) -> None:
    h = await billing.user()
    starter = await billing.subscribe(h, "starter")  # Snap page open, no payment method chosen: 404
    await billing.subscribe(h, "team")
    assert billing.fake.expire_calls == [starter["order_id"]]
    assert (await billing.invoice(h, starter["order_id"]))["status"] == "cancelled"
    subs = await billing.db.fetch("SELECT plan, status FROM subscriptions ORDER BY created_at")
    assert [(s["plan"], s["status"]) for s in subs] == [("starter", "cancelled"), ("team", "pending")]
    # The still-open Snap page takes the money after all: kept and shown as refund-due, not granted.
    answer = await billing.notify(starter["order_id"], "settlement")
    assert answer["verdict"] == "applied:refund_due"
    assert (await billing.invoice(h, starter["order_id"]))["status"] == "refund_due"
    assert await billing.plan(h) == "free"


async def test_a_payment_that_beat_the_expiry_is_honoured(billing: Billing) -> None:
    """The race: the user paid the pending Starter invoice, Midtrans' notification is still on its way, and
    the user picks Pro. Midtrans refuses to expire a paid transaction (412); its status says settlement, so
    the payment is applied (Starter starts) and Pro is priced as an upgrade from there."""
    h = await billing.user()
    starter = await billing.subscribe(h, "starter")
    billing.fake.set_status(starter["order_id"], "settlement", payment_type="qris")  # notification not sent
    pro = await billing.subscribe(h, "pro")
    assert billing.fake.expire_calls == [starter["order_id"]]
    paid = await billing.invoice(h, starter["order_id"])
    assert (paid["status"], paid["payment_method"]) == ("paid", "qris")
    assert await billing.plan(h) == "starter"
    assert pro["kind"] == "upgrade" and pro["total_idr"] < 109_890
    sub = (await billing.get("/api/billing/subscription", h))["subscription"]
    assert sub["plan"] == "starter" and sub["days_left"] == 30
    # The delayed notification arrives: already applied, nothing changes.
    sent = await billing.fake.send_notification(billing.fake.notification_body(starter["order_id"]))
    assert sent[0].status == 200 and '"no_change:paid"' in (sent[0].response_text or "")
    assert (await billing.notify(pro["order_id"], "settlement"))["verdict"] == "applied:paid"
    assert await billing.plan(h) == "pro"
    end = datetime.fromisoformat(sub["current_period_end"])
    sub = (await billing.get("/api/billing/subscription", h))["subscription"]
    assert datetime.fromisoformat(sub["current_period_end"]) == end


async def test_a_card_payment_under_review_blocks_another_plan(billing: Billing) -> None:
    h = await billing.user()
    pro = await billing.subscribe(h, "pro")
    await billing.notify(pro["order_id"], "capture", fraud="challenge", payment_type="credit_card")
    resp = await billing.client.post("/api/billing/subscribe", json={"plan": "team"}, headers=h)
    assert resp.status == 409 and (await resp.json())["error"]["code"] == "payment_in_progress"
    assert (await billing.invoice(h, pro["order_id"]))["status"] == "pending"
    assert await billing.db.fetchval("SELECT count(*) FROM invoices") == 1
    assert (await billing.notify(pro["order_id"], "capture", payment_type="credit_card"))["verdict"] == (
        "applied:paid")
    assert await billing.plan(h) == "pro"


async def test_midtrans_unreachable_keeps_the_pending_invoice(billing: Billing) -> None:
    h = await billing.user()
    starter = await billing.subscribe(h, "starter")
    await billing.fake.close()
    resp = await billing.client.post("/api/billing/subscribe", json={"plan": "pro"}, headers=h)
    assert resp.status == 503, await resp.text()
    assert (await billing.invoice(h, starter["order_id"]))["status"] == "pending"
    assert await billing.db.fetchval("SELECT count(*) FROM invoices") == 1


async def test_a_pending_invoice_past_its_expiry_is_replaced_even_for_the_same_plan(billing: Billing) -> None:
    h = await billing.user()
    old = await billing.subscribe(h, "starter")
    await billing.db.execute("UPDATE invoices SET expires_at = now() - interval '1 second'")
    new = await billing.subscribe(h, "starter")
    assert new["order_id"] != old["order_id"]
    assert (await billing.invoice(h, old["order_id"]))["status"] == "cancelled"


async def test_concurrent_choices_leave_one_pending_invoice(billing: Billing) -> None:
    h = await billing.user()
    plans = ["starter", "pro", "team"] * 3
    resps = await asyncio.gather(*(billing.client.post("/api/billing/subscribe", json={"plan": p}, headers=h)
                                   for p in plans))
    assert {r.status for r in resps} <= {201, 409}, [await r.text() for r in resps]
    assert any(r.status == 201 for r in resps)
    assert await _pending_count(billing) == 1
    # Every replaced invoice was expired at Midtrans, after its Snap transaction was opened (never a Snap page
    # opened for an invoice already closed).
    closed = await billing.db.fetch("SELECT order_id FROM invoices WHERE status <> 'pending'")
    assert {c["order_id"] for c in closed} <= set(billing.fake.expire_calls)
    order = [(r.path, r.json()["transaction_details"]["order_id"] if r.path.endswith("/transactions") else
              r.path.split("/")[2]) for r in billing.fake.requests]
    for c in closed:
        opened = [i for i, (path, oid) in enumerate(order) if oid == c["order_id"] and path.endswith("/transactions")]
        expired = [i for i, (path, oid) in enumerate(order) if oid == c["order_id"] and path.endswith("/expire")]
        assert opened and expired and max(opened) < min(expired), (c["order_id"], order)


async def test_the_database_refuses_a_second_pending_invoice(billing: Billing) -> None:
    h = await billing.user()
    await billing.subscribe(h, "starter")
    with pytest.raises(asyncpg.UniqueViolationError) as info:
        await billing.db.execute(
            """INSERT INTO invoices (user_id, number, order_id, plan, kind, subtotal_idr, ppn_idr, total_idr,
                   expires_at)
               SELECT user_id, 'WEB-2000-01-0001', 'WBR-second', 'pro', 'new', 1, 0, 1, now() + interval '1 day'
               FROM invoices LIMIT 1""")
    assert info.value.constraint_name == "invoices_one_pending_per_user"


async def test_a_pending_invoice_still_being_opened_is_not_replaced(billing: Billing) -> None:
    """Another request inserted the invoice and is waiting for Snap's answer (no token yet): replacing it now
    could leave that Snap page alive for a closed invoice, so the new choice is told to retry."""
    h = await billing.user()
    starter = await billing.subscribe(h, "starter")
    await billing.db.execute("UPDATE invoices SET snap_token = NULL")  # as while its Snap call is in flight
    busy = await billing.subscribe(h, "pro", expect=409)
    assert busy["error"]["code"] == "checkout_busy"
    assert billing.fake.expire_calls == [] and await _pending_count(billing) == 1
    # Its request is long gone (Snap calls time out after 10 s): now it can be replaced.
    await billing.db.execute("UPDATE invoices SET created_at = now() - interval '5 minutes'")
    pro = await billing.subscribe(h, "pro")
    assert billing.fake.expire_calls == [starter["order_id"]] and pro["order_id"] != starter["order_id"]
