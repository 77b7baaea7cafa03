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
