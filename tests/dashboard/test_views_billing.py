"""Billing through the console: subscribe via (fake) Midtrans and back, the plan changes, invoices with PPN,
cancel; nobody sees another user's invoice."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

import aiohttp

from tests.dashboard.conftest import Console, Stack


async def pay_on_fake_midtrans(redirect_url: str, action: str = "settlement") -> str:
    """Open the fake Snap payment page like a browser, press a button; returns where Midtrans sends the user."""
    async with aiohttp.ClientSession() as browser:
        page = await (await browser.get(redirect_url)).text()
        assert "Fake Midtrans" in page
        form_action = re.search(r'<form method="post" action="([^"]+)"', page)
        assert form_action
        target = str(aiohttp.client.URL(redirect_url).join(aiohttp.client.URL(form_action.group(1))))
        resp = await browser.post(target, data={"action": action}, allow_redirects=False)
        assert resp.status == 303, await resp.text()
        return resp.headers["Location"]


async def subscribe(console: Console, plan: str) -> str:
    """Press the plan's button on /billing; returns the Midtrans payment page URL the console redirects to."""
    html = await console.get("/billing")
    key = re.search(rf'name="idempotency_key" value="([^"]+-{plan})"', html)
    assert key
    resp = await console.post("/billing/subscribe", {"plan": plan, "idempotency_key": key.group(1)})
    assert resp.status == 303, await resp.text()
    return str(resp.headers["Location"])


async def test_subscribe_pay_and_come_back_to_the_real_state(console: Console, stack: Stack) -> None:
    await console.signup("payer@example.co.id")
    html = await console.get("/billing")
    assert 'id="plan-name">Free<' in html
    assert "Rp 49.000" in html and "Rp 54.390" in html  # Starter, and with 11% PPN
    redirect_url = await subscribe(console, "starter")
    assert redirect_url.startswith(stack.midtrans.base_url or "")
    back = await pay_on_fake_midtrans(redirect_url)
    assert back.startswith(stack.console_url + "/billing/result?")
    order_id = parse_qs(urlsplit(back).query)["order_id"][0]
    result = await console.get(f"/billing/result?order_id={order_id}")
    assert 'data-status="paid"' in result and "Paket Starter aktif" in result
    assert 'http-equiv="refresh"' not in result
    billing = await console.get("/billing")
    assert 'id="plan-name">Starter<' in billing
    invoice_link = re.search(r'href="(/billing/invoices/[0-9a-f-]{36})"', billing)
    assert invoice_link
    invoice = await console.get(invoice_link.group(1))
    assert re.search(r"WEB-\d{4}-\d{2}-\d{4}", invoice)
    assert 'id="invoice-subtotal">Rp 49.000<' in invoice
    assert 'id="invoice-ppn">Rp 5.390<' in invoice and "PPN 11%" in invoice
    assert 'id="invoice-total">Rp 54.390<' in invoice
    assert "Lunas" in invoice and "payer@example.co.id" in invoice
    overview = await console.get("/overview")
    assert "Paket Starter" in overview and "10.000" in overview  # the Starter quota


async def test_a_pending_payment_page_keeps_checking(console: Console, stack: Stack) -> None:
    await console.signup("pending@example.co.id")
    back = await pay_on_fake_midtrans(await subscribe(console, "pro"), action="pending")
    order_id = parse_qs(urlsplit(back).query)["order_id"][0]
    result = await console.get(f"/billing/result?order_id={order_id}")
    assert 'data-status="pending"' in result and 'http-equiv="refresh"' in result
    assert 'id="plan-name">Free<' in await console.get("/billing")
    await stack.midtrans.transition(order_id, "settlement")
    assert 'data-status="paid"' in await console.get(f"/billing/result?order_id={order_id}")


async def test_double_submit_makes_one_checkout(console: Console, stack: Stack) -> None:
    await console.signup("double@example.co.id")
    html = await console.get("/billing")
    key = re.search(r'name="idempotency_key" value="([^"]+-pro)"', html)
    assert key
    first = await console.post("/billing/subscribe", {"plan": "pro", "idempotency_key": key.group(1)})
    second = await console.post("/billing/subscribe", {"plan": "pro", "idempotency_key": key.group(1)})
    assert first.headers["Location"] == second.headers["Location"]
    assert len(stack.midtrans.transactions) == 1


async def test_another_users_invoice_and_order_are_404(console: Console, stack: Stack) -> None:
    await console.signup("owner@example.co.id")
    back = await pay_on_fake_midtrans(await subscribe(console, "starter"))
    order_id = parse_qs(urlsplit(back).query)["order_id"][0]
    link = re.search(r'href="(/billing/invoices/[0-9a-f-]{36})"', await console.get("/billing"))
    assert link
    await console.post("/logout")
    await console.signup("intruder@example.co.id")
    html = await console.get(link.group(1), status=404)
    assert "Halaman tidak ditemukan" in html and "WEB-" not in html
    await console.get(f"/billing/result?order_id={order_id}", status=404)
    await console.get("/billing/invoices/not-a-uuid", status=404)


async def test_cancel_asks_first_then_keeps_the_plan_to_period_end(console: Console, stack: Stack) -> None:
    await console.signup("cancel@example.co.id")
    await pay_on_fake_midtrans(await subscribe(console, "starter"))
    billing = await console.get("/billing")
    assert 'href="/billing/cancel"' in billing
    confirm = await console.get("/billing/cancel")
    assert "kembali ke paket Free" in confirm
    resp = await console.post("/billing/cancel")
    assert resp.status == 303
    billing = await console.get("/billing")
    assert "Perpanjangan dihentikan" in billing and "tidak diperpanjang" in billing
    assert 'id="plan-name">Starter<' in billing


async def test_snap_popup_is_progressive_enhancement(stack: Stack, base_env: dict[str, str]) -> None:
    """With a client key the billing page loads snap.js (and only that page's CSP allows its host); the
    JSON answer for the pop-up carries the Snap token."""
    from aiohttp.test_utils import TestClient, TestServer

    from tests.dashboard.conftest import SESSION_SECRET
    from webrana_dashboard.app import create_app
    from webrana_dashboard.settings import DashboardSettings

    settings = DashboardSettings.from_env({
        "WEBRANA_SESSION_SECRET": SESSION_SECRET, "WEBRANA_DEV": "true", "WEBRANA_API_URL": stack.api_url,
        "MIDTRANS_CLIENT_KEY": base_env["MIDTRANS_CLIENT_KEY"]})
    async with TestClient(TestServer(create_app(settings), host="127.0.0.1")) as client:
        c = Console(client)
        await c.signup("snap@example.co.id")
        resp = await client.get("/billing")
        html = await resp.text()
        assert 'src="https://app.sandbox.midtrans.com/snap/snap.js"' in html
        assert f'data-client-key="{base_env["MIDTRANS_CLIENT_KEY"]}"' in html
        assert "script-src 'self' https://app.sandbox.midtrans.com" in resp.headers["Content-Security-Policy"]
        other = await client.get("/overview")
        assert "midtrans" not in other.headers["Content-Security-Policy"]
        c.csrf = re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)  # type: ignore[union-attr]
        resp = await client.post("/billing/subscribe", data={"plan": "starter", "idempotency_key": "k" * 20},
                                 headers={"Accept": "application/json", "X-CSRF-Token": c.csrf})
        answer = await resp.json()
        assert resp.status == 200 and answer["token"] and answer["result_url"].startswith("/billing/result?")
