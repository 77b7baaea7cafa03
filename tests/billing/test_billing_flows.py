"""The pay flow end to end: the app on real PostgreSQL and Redis, the fake Midtrans on loopback sending
signed notifications to the app's webhook."""

from __future__ import annotations

import asyncio
import base64
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from tests.billing.conftest import CONSOLE_URL, Billing
from webrana_proxy.keycache import Principal
from webrana_proxy.state import KEYCACHE, SETTINGS
from webrana_proxy.tokens import sha256


async def _principal(billing: Billing, key: str) -> Principal:
    principal = await billing.client.app[KEYCACHE].resolve(sha256(key))
    assert principal is not None
    return principal


async def _proxy_key(billing: Billing, headers: dict[str, str]) -> str:
    resp = await billing.client.post("/api/proxy-keys", json={"name": "main"}, headers=headers)
    assert resp.status == 201, await resp.text()
    key: str = (await resp.json())["key"]
    return key


async def test_plans_are_public_with_ppn(billing: Billing) -> None:
    data = await billing.get("/api/plans", {})
    by_id = {p["id"]: p for p in data["data"]}
    assert data["currency"] == "IDR" and data["ppn_percent"] == 11
    assert [p["id"] for p in data["data"]] == ["free", "starter", "pro", "team"]
    assert (by_id["starter"]["price_idr"], by_id["starter"]["ppn_idr"], by_id["starter"]["total_idr"]) == (
        49_000, 5_390, 54_390)
    assert by_id["pro"]["total_idr"] == 109_890 and by_id["team"]["total_idr"] == 331_890
    assert by_id["free"]["total_idr"] == 0 and by_id["team"]["team_seats"] == 10


async def test_subscribe_then_settlement_activates_the_plan_and_raises_limits(billing: Billing) -> None:
    h = await billing.user()
    key = await _proxy_key(billing, h)
    assert (await _principal(billing, key)).monthly_requests == 1_000

    checkout = await billing.subscribe(h, "starter")
    assert checkout["kind"] == "new" and checkout["total_idr"] == 54_390
    assert checkout["token"] and checkout["redirect_url"].startswith(billing.fake.base_url or "")
    # What Snap received: Basic auth with the server key, items adding up, payment methods, callback, expiry.
    snap = [r for r in billing.fake.requests if r.path == "/snap/v1/transactions"]
    assert len(snap) == 1
    server_key = billing.client.app[SETTINGS].midtrans_server_key
    assert snap[0].headers["Authorization"] == "Basic " + base64.b64encode(f"{server_key}:".encode()).decode()
    body = snap[0].json()
    assert body["transaction_details"] == {"order_id": checkout["order_id"], "gross_amount": 54_390}
    assert [(i["id"], i["price"], i["quantity"]) for i in body["item_details"]] == [
        ("starter", 49_000, 1), ("PPN", 5_390, 1)]
    assert {"qris", "gopay", "bca_va", "credit_card"} <= set(body["enabled_payments"])
    assert body["callbacks"]["finish"] == CONSOLE_URL + "/billing/result"
    assert body["expiry"] == {"unit": "minutes", "duration": 1440}
    assert "@" in body["customer_details"]["email"]

    pending = await billing.invoice(h, checkout["order_id"])
    assert pending["status"] == "pending" and pending["redirect_url"] == checkout["redirect_url"]
    assert await billing.plan(h) == "free"

    answer = await billing.notify(checkout["order_id"], "settlement", payment_type="qris")
    assert answer == {"ok": True, "verdict": "applied:paid"}

    paid = await billing.invoice(h, checkout["order_id"])
    assert paid["status"] == "paid" and paid["payment_method"] == "qris" and paid["paid_at"]
    assert paid["redirect_url"] is None
    state = await billing.get("/api/billing/subscription", h)
    sub = state["subscription"]
    assert state["plan"] == "starter" and sub["status"] == "active" and sub["plan"] == "starter"
    start = datetime.fromisoformat(sub["current_period_start"])
    end = datetime.fromisoformat(sub["current_period_end"])
    assert end - start == timedelta(days=30) and sub["days_left"] == 30
    assert paid["period_start"] == sub["current_period_start"]
    assert await billing.plan(h) == "starter"
    principal = await _principal(billing, key)  # the cache entry was dropped: new limits at once
    assert (principal.plan, principal.monthly_requests) == ("starter", 10_000)
    verdicts = await billing.db.fetch(
        "SELECT verdict, raw FROM payment_notifications WHERE order_id = $1", checkout["order_id"])
    assert [v["verdict"] for v in verdicts] == ["applied:paid"]
    assert orjson.loads(verdicts[0]["raw"])["transaction_status"] == "settlement"  # stored raw


async def test_the_same_idempotency_key_returns_the_first_answer(billing: Billing) -> None:
    h = await billing.user()
    first = await billing.subscribe(h, "pro", key="checkout-1")
    again = await billing.subscribe(h, "pro", key="checkout-1")
    # Another key for another plan: one new checkout however often it is retried at once (the pending Pro
    # invoice it replaces is cancelled: one pending invoice per user).
    both = await asyncio.gather(*(billing.subscribe(h, "team", key="checkout-2") for _ in range(5)))
    assert again == first
    assert len({b["order_id"] for b in both}) == 1 and both[0]["order_id"] != first["order_id"]
    snap = [r for r in billing.fake.requests if r.path == "/snap/v1/transactions"]
    assert len({r.json()["transaction_details"]["order_id"] for r in snap}) == 2
    assert await billing.db.fetchval("SELECT count(*) FROM invoices") == 2
    assert (await billing.invoice(h, first["order_id"]))["status"] == "cancelled"
    resp = await billing.client.post("/api/billing/subscribe", json={"plan": "pro"},
                                     headers={**h, "Idempotency-Key": "has spaces"})
    assert resp.status == 400


async def test_bad_plan_choices_are_refused(billing: Billing) -> None:
    h = await billing.user()
    for plan, code in (("free", "free_plan"), ("gold", "unknown_plan")):
        resp = await billing.client.post("/api/billing/subscribe", json={"plan": plan}, headers=h)
        assert resp.status == 400 and (await resp.json())["error"]["code"] == code
    resp = await billing.client.post("/api/billing/subscribe", json={"plan": "pro"})
    assert resp.status == 401


async def test_qris_pending_then_expire(billing: Billing) -> None:
    h = await billing.user()
    checkout = await billing.subscribe(h, "starter")
    assert (await billing.notify(checkout["order_id"], "pending"))["verdict"] == "no_change:pending"
    assert (await billing.invoice(h, checkout["order_id"]))["status"] == "pending"
    assert (await billing.notify(checkout["order_id"], "expire"))["verdict"] == "applied:expired"
    assert (await billing.invoice(h, checkout["order_id"]))["status"] == "expired"
    assert await billing.plan(h) == "free"
    assert (await billing.get("/api/billing/subscription", h))["subscription"] is None
    statuses = await billing.db.fetch("SELECT status FROM subscriptions")
    assert [s["status"] for s in statuses] == ["cancelled"]


async def test_card_capture_with_challenge_waits_then_accept_pays(billing: Billing) -> None:
    h = await billing.user()
    checkout = await billing.subscribe(h, "pro")
    answer = await billing.notify(checkout["order_id"], "capture", fraud="challenge", payment_type="credit_card")
    assert answer["verdict"] == "no_change:pending"
    assert await billing.plan(h) == "free"
    answer = await billing.notify(checkout["order_id"], "capture", fraud="accept", payment_type="credit_card")
    assert answer["verdict"] == "applied:paid"
    invoice = await billing.invoice(h, checkout["order_id"])
    assert (invoice["status"], invoice["payment_method"]) == ("paid", "credit_card")
    assert await billing.plan(h) == "pro"


async def test_card_denied_by_fraud_check(billing: Billing) -> None:
    h = await billing.user()
    checkout = await billing.subscribe(h, "pro")
    answer = await billing.notify(checkout["order_id"], "deny", fraud="deny", payment_type="credit_card")
    assert answer["verdict"] == "applied:denied" and await billing.plan(h) == "free"


async def test_refund_ends_the_paid_plan(billing: Billing) -> None:
    h = await billing.user()
    checkout = await billing.pay(h, "pro")
    assert (await billing.notify(checkout["order_id"], "refund"))["verdict"] == "applied:refunded"
    assert (await billing.invoice(h, checkout["order_id"]))["status"] == "refunded"
    assert await billing.plan(h) == "free"
    assert (await billing.get("/api/billing/subscription", h))["subscription"] is None


async def test_upgrade_pays_the_prorated_difference_and_keeps_the_end_date(billing: Billing) -> None:
    h = await billing.user()
    await billing.pay(h, "starter")
    # Half the period is gone.
    await billing.db.execute(
        "UPDATE subscriptions SET current_period_end = now() + interval '15 days' WHERE status = 'active'")
    before = (await billing.get("/api/billing/subscription", h))["subscription"]
    upgrade = await billing.subscribe(h, "pro")
    # (99,000 - 49,000) * 15 / 30 = 25,000; PPN 11% = 2,750.
    assert (upgrade["kind"], upgrade["subtotal_idr"], upgrade["ppn_idr"], upgrade["total_idr"]) == (
        "upgrade", 25_000, 2_750, 27_750)
    snap = billing.fake.transactions[upgrade["order_id"]].request
    assert [(i["id"], i["price"]) for i in snap["item_details"]] == [("upgrade-pro", 25_000), ("PPN", 2_750)]
    assert (await billing.notify(upgrade["order_id"], "settlement"))["verdict"] == "applied:paid"
    after = (await billing.get("/api/billing/subscription", h))["subscription"]
    assert after["plan"] == "pro" and after["current_period_end"] == before["current_period_end"]
    assert after["id"] == before["id"] and await billing.plan(h) == "pro"


async def test_renewal_extends_the_current_period(billing: Billing) -> None:
    h = await billing.user()
    await billing.pay(h, "starter")
    before = (await billing.get("/api/billing/subscription", h))["subscription"]
    renewal = await billing.subscribe(h, "starter")
    assert renewal["kind"] == "renewal" and renewal["total_idr"] == 54_390
    assert (await billing.notify(renewal["order_id"], "settlement"))["verdict"] == "applied:paid"
    after = (await billing.get("/api/billing/subscription", h))["subscription"]
    old_end = datetime.fromisoformat(before["current_period_end"])
    assert datetime.fromisoformat(after["current_period_end"]) == old_end + timedelta(days=30)
    assert after["current_period_start"] == before["current_period_start"]
    invoice = await billing.invoice(h, renewal["order_id"])
    assert datetime.fromisoformat(invoice["period_start"]) == old_end


async def test_cancel_stops_renewal_but_keeps_the_plan(billing: Billing) -> None:
    h = await billing.user()
    resp = await billing.client.post("/api/billing/cancel", headers=h)
    assert resp.status == 404
    await billing.pay(h, "pro")
    resp = await billing.client.post("/api/billing/cancel", headers=h)
    assert resp.status == 200, await resp.text()
    sub = (await resp.json())["subscription"]
    assert sub["cancel_at_period_end"] is True and sub["status"] == "active"
    assert await billing.plan(h) == "pro"


async def test_forged_and_malformed_notifications_change_nothing(billing: Billing) -> None:
    h = await billing.user()
    checkout = await billing.subscribe(h, "pro")
    order_id = checkout["order_id"]
    billing.fake.set_status(order_id, "settlement")
    genuine = billing.fake.notification_body(order_id)
    url = billing.fake.notification_url
    forged = {**genuine, "signature_key": "0" * 128}
    signature = genuine["signature_key"]
    wrong_key = {**genuine, "signature_key": signature[:-1] + ("1" if signature.endswith("0") else "0")}
    tampered = {**genuine, "status_code": "200", "gross_amount": "1.00"}  # signature no longer matches
    missing = {k: v for k, v in genuine.items() if k != "signature_key"}
    for body in (forged, wrong_key, tampered, missing):
        [sent] = await billing.fake.send_notification(body)
        assert sent.status == 401, sent
    for raw in (b"not json", b"[1, 2]", b""):
        resp = await billing.client.post("/api/billing/midtrans/notification", data=raw,
                                         headers={"Content-Type": "application/json"})
        assert resp.status == 400, await resp.text()
        assert (await resp.json())["error"]["type"] == "invalid_request_error"
    assert url is not None
    assert (await billing.invoice(h, order_id))["status"] == "pending"
    assert await billing.plan(h) == "free"
    verdicts = [r["verdict"] for r in await billing.db.fetch(
        "SELECT verdict FROM payment_notifications ORDER BY created_at")]
    assert verdicts == ["forged"] * 4 + ["malformed"] * 3
    # No status call was made for any of them.
    assert not [r for r in billing.fake.requests if r.path.startswith("/v2/")]


async def _signed(billing: Billing, body: dict[str, Any]) -> int | None:
    """Send ``body`` signed with the real server key (only Midtrans could do this)."""
    resp = await billing.client.session.post(
        f"{billing.fake.base_url}/_control/notify",
        json={"notification": body, "sign": True, "url": billing.fake.notification_url})
    deliveries = (await resp.json())["deliveries"]
    status: int | None = deliveries[0]["status"]
    return status


async def test_wrong_amount_and_unknown_order_change_nothing(billing: Billing) -> None:
    h = await billing.user()
    checkout = await billing.subscribe(h, "pro")
    order_id = checkout["order_id"]
    billing.fake.set_status(order_id, "settlement")
    genuine = billing.fake.notification_body(order_id)
    assert await _signed(billing, {**genuine, "gross_amount": "1000.00"}) == 400
    assert await _signed(billing, {**genuine, "order_id": "WBR-unknown-order"}) == 404
    # Signed and notified with the right amount, but Midtrans' own record says another amount.
    billing.fake.transactions[order_id].gross_amount = 1_000
    assert await _signed(billing, genuine) == 400
    assert (await billing.invoice(h, order_id))["status"] == "pending"
    assert await billing.plan(h) == "free"
    verdicts = [r["verdict"] for r in await billing.db.fetch(
        "SELECT verdict FROM payment_notifications ORDER BY created_at")]
    assert verdicts == ["amount_mismatch", "unknown_order", "amount_mismatch"]


async def test_replayed_and_out_of_order_notifications_are_no_ops(billing: Billing) -> None:
    h = await billing.user()
    checkout = await billing.subscribe(h, "starter")
    order_id = checkout["order_id"]
    billing.fake.set_status(order_id, "pending")
    stale_pending = billing.fake.notification_body(order_id)
    await billing.notify(order_id, "settlement")
    settled = billing.fake.notification_body(order_id)
    invoice = await billing.invoice(h, order_id)
    sub = (await billing.get("/api/billing/subscription", h))["subscription"]
    for body in (settled, settled, stale_pending):  # replays, then a late "pending"
        [sent] = await billing.fake.send_notification(body)
        assert sent.status == 200, sent
    # Midtrans later claims "expire" (out of order): still paid.
    billing.fake.set_status(order_id, "expire")
    [sent] = await billing.fake.send_notification(billing.fake.notification_body(order_id))
    assert sent.status == 200
    assert await billing.invoice(h, order_id) == invoice
    assert (await billing.get("/api/billing/subscription", h))["subscription"] == sub
    assert await billing.plan(h) == "starter"
    verdicts = [r["verdict"] for r in await billing.db.fetch(
        "SELECT verdict FROM payment_notifications ORDER BY created_at")]
    assert verdicts == ["applied:paid", "no_change:paid", "no_change:paid", "no_change:paid",
                        "no_change:paid"]


async def test_other_users_invoices_and_orders_are_404(billing: Billing) -> None:
    alice, bob = await billing.user(), await billing.user()
    checkout = await billing.pay(alice, "pro")
    invoice = await billing.invoice(alice, checkout["order_id"])
    await billing.get(f"/api/billing/invoices/{invoice['id']}", bob, expect=404)
    await billing.get(f"/api/billing/orders/{checkout['order_id']}", bob, expect=404)
    await billing.get("/api/billing/invoices/not-a-uuid", bob, expect=404)
    await billing.get("/api/billing/orders/bad order", bob, expect=404)
    assert (await billing.get("/api/billing/invoices", bob))["data"] == []
    assert (await billing.get("/api/billing/subscription", bob))["subscription"] is None
    resp = await billing.client.post("/api/billing/cancel", headers=bob)
    assert resp.status == 404
    assert (await billing.get("/api/billing/subscription", alice))["subscription"]["plan"] == "pro"


async def test_invoice_has_what_an_indonesian_invoice_needs(billing: Billing) -> None:
    h = await billing.user()
    checkout = await billing.pay(h, "team")
    listed = (await billing.get("/api/billing/invoices", h))["data"]
    assert [i["order_id"] for i in listed] == [checkout["order_id"]]
    invoice = await billing.get(f"/api/billing/invoices/{listed[0]['id']}", h)
    month = datetime.now(UTC).astimezone(__import__("zoneinfo").ZoneInfo("Asia/Jakarta")).strftime("%Y-%m")
    assert invoice["number"] == f"WEB-{month}-0001"
    assert (invoice["subtotal_idr"], invoice["ppn_percent"], invoice["ppn_idr"], invoice["total_idr"]) == (
        299_000, 11, 32_890, 331_890)
    assert invoice["currency"] == "IDR" and invoice["status"] == "paid" and invoice["plan_name"] == "Team"
    assert [(line["id"], line["amount_idr"]) for line in invoice["lines"]] == [("team", 299_000)]
    assert {"name", "address", "npwp"} <= set(invoice["seller"])
    me = await billing.get("/api/auth/me", h)
    assert invoice["buyer"] == {"user_id": me["id"], "email": me["email"]}
    assert invoice["issued_at"] and invoice["paid_at"] and invoice["period_end"]
