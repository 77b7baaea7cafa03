"""Billing's e-mails through a real SMTP server (aiosmtpd): the receipt of an invoice paid through the fake
Midtrans webhook, the notice of a payment that failed or expired, and the reminder before a paid period ends."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime, timedelta

import pytest

from tests.billing.conftest import CONSOLE_URL, Billing
from tests.fakes.midtrans import FakeMidtrans
from tests.fakes.smtp import MailSink
from webrana_proxy.billing import lifecycle
from webrana_proxy.mail.job import run_once as deliver


@pytest.fixture
async def sink() -> AsyncIterator[MailSink]:
    async with MailSink() as s:
        yield s


@pytest.fixture
def env_overrides(fake_midtrans: FakeMidtrans, sink: MailSink) -> dict[str, str]:
    return {"MIDTRANS_SNAP_BASE_URL": fake_midtrans.snap_base_url,
            "MIDTRANS_API_BASE_URL": fake_midtrans.api_base_url, "WEBRANA_CONSOLE_URL": CONSOLE_URL,
            "WEBRANA_SMTP_URL": sink.url, "WEBRANA_MAIL_FROM": "Webrana <billing@webrana.test>"}


async def verified_user(billing: Billing, locale: str = "id") -> tuple[dict[str, str], str]:
    tokens = await billing.api.register()
    await billing.db.execute("UPDATE users SET email_verified_at = now(), locale = $2 WHERE id = $1::uuid",
                             tokens["user"]["id"], locale)
    await billing.db.execute("TRUNCATE mail_outbox")  # the sign-up's verification e-mail is not this test's
    return billing.api.auth(tokens), tokens["user"]["email"]


async def test_a_paid_invoice_sends_a_receipt_with_its_amounts_and_a_link_to_the_printable_invoice(
        billing: Billing, sink: MailSink) -> None:
    h, email = await verified_user(billing, "en")
    checkout = await billing.pay(h, "starter")
    invoice = await billing.invoice(h, checkout["order_id"])
    # Midtrans sends the same notification again: still one receipt.
    assert (await billing.notify(checkout["order_id"], "settlement"))["verdict"] == "no_change:paid"
    assert (await deliver(billing.client.app)).sent == 1
    [msg] = await sink.wait_for(1)
    assert msg.recipients == [email]
    assert msg.subject == f"Payment received: invoice {invoice['number']}"

    def rp(n: int) -> str:
        return f"Rp {n:,}".replace(",", ".")

    for line in (f"Invoice: {invoice['number']}", f"DPP (tax base): {rp(invoice['subtotal_idr'])}",
                 f"PPN (VAT) {invoice['ppn_percent']}%: {rp(invoice['ppn_idr'])}",
                 f"Total: {rp(invoice['total_idr'])}"):
        assert line in msg.text, line
    assert f"{CONSOLE_URL}/billing/invoices/{invoice['id']}" in msg.links()
    assert f'href="{CONSOLE_URL}/billing/invoices/{invoice["id"]}"' in msg.html


@pytest.mark.parametrize(("midtrans_status", "subject"), [("deny", "Pembayaran faktur {} gagal"),
                                                          ("expire", "Faktur {} kedaluwarsa")])
async def test_a_failed_or_expired_payment_sends_a_notice(billing: Billing, sink: MailSink, midtrans_status: str,
                                                          subject: str) -> None:
    h, email = await verified_user(billing)
    checkout = await billing.subscribe(h, "pro")
    invoice = await billing.invoice(h, checkout["order_id"])
    await billing.notify(checkout["order_id"], midtrans_status)
    assert (await deliver(billing.client.app)).sent == 1
    [msg] = await sink.wait_for(1)
    assert msg.recipients == [email] and msg.subject == subject.format(invoice["number"])
    assert f"{CONSOLE_URL}/billing" in msg.links()


async def test_a_replaced_checkout_sends_nothing(billing: Billing, sink: MailSink) -> None:
    h, _ = await verified_user(billing)
    await billing.subscribe(h, "pro")
    await billing.subscribe(h, "starter")  # cancels the pending pro invoice
    assert await billing.db.fetchval("SELECT count(*) FROM invoices WHERE status = 'cancelled'") == 1
    assert await billing.db.fetchval("SELECT count(*) FROM mail_outbox") == 0


async def test_a_reminder_with_a_renew_link_goes_three_days_before_a_paid_period_ends_once(
        billing: Billing, sink: MailSink) -> None:
    h, email = await verified_user(billing)
    await billing.pay(h, "pro")
    await billing.db.execute("TRUNCATE mail_outbox")  # the receipt
    sub = (await billing.get("/api/billing/subscription", h))["subscription"]
    end = datetime.fromisoformat(sub["current_period_end"])
    assert (await lifecycle.run_once(billing.client.app, end - timedelta(days=3, minutes=1))).reminders == 0
    assert (await lifecycle.run_once(billing.client.app, end - timedelta(days=2, hours=23))).reminders == 1
    assert (await lifecycle.run_once(billing.client.app, end - timedelta(days=1))).reminders == 0  # once a period
    assert (await deliver(billing.client.app)).sent == 1
    [msg] = await sink.wait_for(1)
    assert msg.recipients == [email] and msg.subject.startswith("Paket Pro Anda berakhir ")
    assert f"{CONSOLE_URL}/billing" in msg.links()

    renewal = await billing.pay(h, "pro")  # renewed: the next period gets its own reminder, the paid one none
    assert renewal
    new_end = datetime.fromisoformat((await billing.get("/api/billing/subscription", h))["subscription"]
                                     ["current_period_end"])
    assert new_end > end
    assert (await lifecycle.run_once(billing.client.app, new_end - timedelta(days=2))).reminders == 1


async def test_no_reminder_for_a_subscription_set_to_stop(billing: Billing) -> None:
    h, _ = await verified_user(billing)
    await billing.pay(h, "starter")
    resp = await billing.client.post("/api/billing/cancel", json={}, headers=h)
    assert resp.status == 200
    end = datetime.fromisoformat((await billing.get("/api/billing/subscription", h))["subscription"]
                                 ["current_period_end"])
    assert (await lifecycle.run_once(billing.client.app, end - timedelta(days=1))).reminders == 0
