"""The admin area: only for admins; stats, user search and pages, suspend/unsuspend, plan, audit log."""

from __future__ import annotations

import re

import asyncpg

from tests.conftest import PASSWORD
from tests.dashboard.conftest import Console, Stack, another_browser


async def _admin(console: Console, stack: Stack, email: str = "boss@example.co.id") -> None:
    await console.signup(email)
    await stack.make_admin(email)
    await console.post("/logout")
    await console.login(email)  # the role is read at sign-in


async def test_admin_area_is_invisible_to_users(console: Console) -> None:
    await console.signup("user@example.co.id")
    assert 'href="/admin"' not in await console.get("/overview")
    for path in ("/admin", "/admin/users", "/admin/refunds", "/admin/audit"):
        await console.get(path, status=404)
    for action in ("/admin/users/00000000-0000-0000-0000-000000000000/suspend",
                   "/admin/invoices/00000000-0000-0000-0000-000000000000/refunded"):
        assert (await console.post(action)).status == 404


async def test_suspend_signs_the_user_out_and_is_audited(console: Console, stack: Stack) -> None:
    async with another_browser(stack) as victim:
        await victim.signup("victim@example.co.id")
        await victim.get("/overview")
        await _admin(console, stack)
        stats = await console.get("/admin")
        assert 'id="admin-users">2<' in stats and "MRR" in stats
        users = await console.get("/admin/users?q=victim")
        assert 'data-email="victim@example.co.id"' in users and 'data-email="boss@example.co.id"' not in users
        user_id = re.search(r'action="/admin/users/([0-9a-f-]{36})/suspend"', users)
        assert user_id
        resp = await console.post(f"/admin/users/{user_id.group(1)}/suspend", {"next": "/admin/users?q=victim"})
        assert resp.status == 303 and resp.headers["Location"] == "/admin/users?q=victim"
        users = await console.get("/admin/users?q=victim")
        assert "victim@example.co.id ditangguhkan" in users and "Ditangguhkan" in users
        # The suspended user's next page load ends their session.
        resp = await victim.client.get("/overview", allow_redirects=False)
        assert resp.status == 303 and resp.headers["Location"].startswith("/login")
        assert "ditangguhkan" in await victim.get("/login")
        await console.post(f"/admin/users/{user_id.group(1)}/unsuspend", {"next": "/admin/users"})
        await console.post(f"/admin/users/{user_id.group(1)}/plan", {"plan": "pro", "next": "/admin/users"})
        assert "sekarang pro" in await console.get("/admin/users")
        audit = await console.get("/admin/audit")
        for action in ("user.suspend", "user.unsuspend", "user.set_plan"):
            assert f"<code>{action}</code>" in audit
        assert "boss@example.co.id" in audit


async def test_user_list_pages(console: Console, stack: Stack) -> None:
    await _admin(console, stack)
    conn = await asyncpg.connect(stack.db_url)
    try:  # straight into the table: 26 Argon2 sign-ups would only slow the test down
        await conn.executemany("INSERT INTO users (email, password_hash) VALUES ($1, 'x')",
                               [(f"many{i:02d}@example.co.id",) for i in range(26)])
    finally:
        await conn.close()
    html = await console.get("/admin/users")
    assert "27 pengguna" in html and "Halaman 1 dari 2" in html
    nxt = re.search(r'href="([^"]+)" rel="next"', html)
    assert nxt
    page2 = await console.get(nxt.group(1).replace("&amp;", "&"))
    assert "Halaman 2 dari 2" in page2 and page2.count("<tr data-email=") == 2


async def test_admin_cannot_suspend_themselves(console: Console, stack: Stack) -> None:
    await _admin(console, stack)
    html = await console.get("/admin/users?q=boss")
    assert "/suspend" not in html  # no button for one's own row
    me = re.search(r'action="/admin/users/([0-9a-f-]{36})/plan"', html)
    assert me
    await console.post(f"/admin/users/{me.group(1)}/suspend", {"next": "/admin/users"})
    assert "tidak bisa menangguhkan akun sendiri" in await console.get("/admin/users")


async def test_refunds_due_are_listed_marked_refunded_and_shown_to_the_payer(console: Console, stack: Stack) -> None:
    """A payment for an invoice that a newer plan choice replaced is refund-due (never granted): the admin
    pages list it and mark it refunded (audited), and the payer's invoice list shows its state."""
    async with another_browser(stack) as payer:
        await payer.signup("payer@example.co.id")
        resp = await stack.proxy.post("/api/auth/login", json={"email": "payer@example.co.id",
                                                                "password": PASSWORD})
        h = {"Authorization": f"Bearer {(await resp.json())['access_token']}"}
        starter = await (await stack.proxy.post("/api/billing/subscribe", json={"plan": "starter"},
                                                headers=h)).json()
        resp = await stack.proxy.post("/api/billing/subscribe", json={"plan": "pro"}, headers=h)
        assert resp.status == 201  # replaces the Starter invoice (expired at Midtrans first)
        _, sent = await stack.midtrans.transition(starter["order_id"], "settlement")  # its Snap page paid
        assert sent[0].status == 200 and "applied:refund_due" in (sent[0].response_text or "")
        assert "Menunggu pengembalian dana" in await payer.get("/billing")

        await _admin(console, stack)
        assert 'id="admin-refunds-due"' in await console.get("/admin")
        page = await console.get("/admin/refunds")
        assert f'data-order="{starter["order_id"]}"' in page and "payer@example.co.id" in page
        assert "paid after the invoice was cancelled" in page and "Rp 54.390" in page
        invoice_id = re.search(r'action="/admin/invoices/([0-9a-f-]{36})/refunded"', page)
        assert invoice_id
        resp = await console.post(f"/admin/invoices/{invoice_id.group(1)}/refunded", {"note": "RF-42"})
        assert resp.status == 303 and resp.headers["Location"] == "/admin/refunds"
        page = await console.get("/admin/refunds")
        assert "ditandai sudah dikembalikan" in page and "Tidak ada dana yang harus dikembalikan" in page
        audit = await console.get("/admin/audit")
        assert "<code>invoice.mark_refunded</code>" in audit and "RF-42" in audit
        assert "Dikembalikan" in await payer.get("/billing")
