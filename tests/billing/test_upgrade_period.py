"""An upgrade is priced for the period end it was quoted against and granted only for that period.

The exploit (issue 11): on Starter with a day left, ask for Team (an upgrade priced for one day), pay twelve
Starter renewals, then pay the old upgrade: the whole extended year became Team. Now the one-day upgrade is
refund-due, never granted, and admins see it and mark it refunded.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from tests.billing.conftest import Billing


async def _sub(billing: Billing, h: dict[str, str]) -> dict[str, object]:
    sub: dict[str, object] = (await billing.get("/api/billing/subscription", h))["subscription"]
    return sub


async def _one_day_left(billing: Billing) -> None:
    await billing.db.execute(
        "UPDATE subscriptions SET current_period_end = now() + interval '1 day' WHERE status = 'active'")


async def test_an_old_upgrade_paid_after_twelve_renewals_is_refund_due_not_a_year_of_team(
        billing: Billing) -> None:
    h = await billing.user()
    await billing.pay(h, "starter")
    await _one_day_left(billing)
    end = datetime.fromisoformat(str((await _sub(billing, h))["current_period_end"]))

    upgrade = await billing.subscribe(h, "team")
    # (299,000 - 49,000) * 1 / 30 = 8,333; PPN 11% = 917.
    assert (upgrade["kind"], upgrade["total_idr"]) == ("upgrade", 9_250)
    for _ in range(12):
        await billing.pay(h, "starter")  # each a renewal, paid, adding 30 days
    # The first renewal replaced the pending upgrade: cancelled here, its Snap transaction expired at Midtrans
    # (Midtrans did not know it yet: no payment method chosen, so its Snap page could still take money).
    assert billing.fake.expire_calls == [upgrade["order_id"]]
    assert (await billing.invoice(h, upgrade["order_id"]))["status"] == "cancelled"
    sub = await _sub(billing, h)
    assert datetime.fromisoformat(str(sub["current_period_end"])) == end + timedelta(days=360)

    # Midtrans settles the old upgrade and notifies, correctly signed.
    answer = await billing.notify(upgrade["order_id"], "settlement")
    assert answer["verdict"] == "applied:refund_due", answer
    assert await billing.plan(h) == "starter"
    sub = await _sub(billing, h)
    assert sub["plan"] == "starter"
    assert datetime.fromisoformat(str(sub["current_period_end"])) == end + timedelta(days=360)
    invoice = await billing.invoice(h, upgrade["order_id"])
    assert invoice["status"] == "refund_due" and invoice["paid_at"]
    listed = {i["order_id"]: i["status"] for i in (await billing.get("/api/billing/invoices", h))["data"]}
    assert listed[upgrade["order_id"]] == "refund_due"
    assert list(listed.values()).count("paid") == 13  # the first Starter period and twelve renewals

    # A replay of the same notification changes nothing.
    again = await billing.notify(upgrade["order_id"], "settlement")
    assert again["verdict"] == "no_change:refund_due"
    assert await billing.plan(h) == "starter"

    # Admins see it, with the reason, and mark it refunded once the money went back; it is audited.
    admin, admin_user = await billing.admin()
    listing = await billing.get("/api/admin/invoices", admin)
    assert listing["total"] == 1
    due = listing["data"][0]
    assert (due["order_id"], due["status"], due["total_idr"]) == (upgrade["order_id"], "refund_due", 9_250)
    assert due["refund_reason"] == "paid after the invoice was cancelled" and due["email"].endswith("@example.com")
    stats = await billing.get("/api/admin/stats", admin)
    assert stats["refunds_due"] == {"count": 1, "total_idr": 9_250}
    resp = await billing.client.post(f"/api/admin/invoices/{due['id']}/refunded", json={"note": "RF-123"},
                                     headers=h)
    assert resp.status == 403
    resp = await billing.client.post(f"/api/admin/invoices/{due['id']}/refunded", json={"note": "RF-123"},
                                     headers=admin)
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["status"] == "refunded"
    resp = await billing.client.post(f"/api/admin/invoices/{due['id']}/refunded", headers=admin)
    assert resp.status == 409 and (await resp.json())["error"]["code"] == "not_refund_due"
    assert (await billing.get("/api/admin/invoices", admin))["total"] == 0
    refunded = await billing.invoice(h, upgrade["order_id"])
    assert refunded["status"] == "refunded" and refunded["refunded_at"]
    assert await billing.plan(h) == "starter"  # a refund of what was never granted takes nothing away
    audit = (await billing.get("/api/admin/audit-log", admin))["data"]
    entry = next(e for e in audit if e["action"] == "invoice.mark_refunded")
    assert entry["actor_id"] == admin_user["id"] and entry["target_user_id"] == due["user_id"]
    assert entry["details"]["invoice"] == upgrade["invoice_number"] and entry["details"]["note"] == "RF-123"


async def test_an_upgrade_paid_after_its_period_grew_is_refund_due(billing: Billing) -> None:
    """The grant itself checks the period: an upgrade still pending when the period end moves (here a
    pending invoice from before the one-pending rule, or a period the lifecycle job rolled) is not granted."""
    h = await billing.user()
    await billing.pay(h, "starter")
    await _one_day_left(billing)
    upgrade = await billing.subscribe(h, "team")
    await billing.db.execute(
        "UPDATE subscriptions SET current_period_end = current_period_end + interval '30 days'")
    answer = await billing.notify(upgrade["order_id"], "settlement")
    assert answer["verdict"] == "applied:refund_due"
    invoice = await billing.invoice(h, upgrade["order_id"])
    assert invoice["status"] == "refund_due"
    assert invoice["refund_reason"] == "the subscription period changed after the upgrade was priced"
    assert await billing.plan(h) == "starter"
    assert (await _sub(billing, h))["plan"] == "starter"


async def test_an_upgrade_paid_after_its_period_ended_is_refund_due(billing: Billing) -> None:
    h = await billing.user()
    await billing.pay(h, "starter")
    upgrade = await billing.subscribe(h, "pro")
    await billing.db.execute("UPDATE subscriptions SET current_period_end = now() - interval '1 second'")
    answer = await billing.notify(upgrade["order_id"], "settlement")
    assert answer["verdict"] == "applied:refund_due"
    assert (await billing.invoice(h, upgrade["order_id"]))["refund_reason"] == (
        "the subscription period ended before the upgrade was paid")
    assert await billing.plan(h) == "starter"  # (the lifecycle job moves the lapsed period to Free)


async def test_a_midtrans_refund_of_a_refund_due_invoice_takes_nothing_away(billing: Billing) -> None:
    h = await billing.user()
    await billing.pay(h, "starter")
    upgrade = await billing.subscribe(h, "team")
    await billing.db.execute(
        "UPDATE subscriptions SET current_period_end = current_period_end + interval '30 days'")
    assert (await billing.notify(upgrade["order_id"], "settlement"))["verdict"] == "applied:refund_due"
    assert (await billing.notify(upgrade["order_id"], "refund"))["verdict"] == "applied:refunded"
    assert (await billing.invoice(h, upgrade["order_id"]))["status"] == "refunded"
    assert await billing.plan(h) == "starter" and (await _sub(billing, h))["status"] == "active"
