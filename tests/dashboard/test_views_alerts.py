"""The console's alert banner and webhook settings, over the whole stack on loopback.

The banner rides on the answer each page already asks for (the proxy's Webrana-Alerts header): it shows on every
signed-in page, costs no call of its own, and is gone once dismissed.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator

from tests.dashboard.conftest import Console, Stack
from tests.dashboard.test_page_budget import addresses, api_calls  # noqa: F401  (addresses: a fixture)
from webrana_proxy.alerts.record import NewAlert, record
from webrana_proxy.db import create_pool
from webrana_proxy.limits import jakarta_month

BANNER_ID = "kuota request bulanan"  # Indonesian: the console's default language


async def alert_for(stack: Stack, email: str, scope: str = "quota", percent: int = 80) -> None:
    pool = await create_pool(stack.db_url)
    try:
        user_id = await pool.fetchval("SELECT id FROM users WHERE email = $1", email)
        month, _ = jakarta_month()
        assert await record(pool, NewAlert(user_id, scope, None, month, percent, 8, 10, True)) is not None
    finally:
        await pool.close()


async def test_the_banner_shows_on_every_page_for_free_and_goes_once_dismissed(
        console: Console, stack: Stack, addresses: Iterator[str]) -> None:  # noqa: F811
    email = "alerted@example.co.id"
    await console.signup(email)
    assert 'id="alert-banner"' not in await console.get("/overview")
    await alert_for(stack, email)
    for path in ("/overview", "/provider-keys", "/proxy-keys", "/usage", "/billing", "/settings"):
        html = await console.get(path)
        assert 'id="alert-banner"' in html and "80% kuota request bulanan" in html, path
    # No call of its own: the key list still costs its one call, banner included.
    assert await api_calls(stack, console, "/proxy-keys", addresses) == (200, 1)

    html = await console.get("/usage")
    alert_id = re.search(r'action="/alerts/([0-9a-f-]{36})/dismiss"', html)
    assert alert_id
    resp = await console.post(f"/alerts/{alert_id.group(1)}/dismiss", {"next": "/usage"})
    assert resp.status == 303 and resp.headers["Location"] == "/usage"
    for path in ("/usage", "/overview"):
        assert 'id="alert-banner"' not in await console.get(path), path
    resp = await console.post(f"/alerts/{uuid.uuid4()}/dismiss", {"next": "https://evil.example/"})
    assert resp.status == 303 and resp.headers["Location"] == "/overview"  # unknown alert; never off-site


async def test_a_hard_cap_at_100_percent_says_calls_stop_in_the_visitors_language(console: Console,
                                                                                   stack: Stack) -> None:
    email = "capalert@example.co.id"
    await console.signup(email)
    await console.get("/overview")  # the signed-in page's CSRF token
    await console.post("/lang", {"lang": "en", "next": "/overview"})
    await alert_for(stack, email, scope="user_spend", percent=100)
    html = await console.get("/overview")
    assert "100% of your account&#39;s monthly spend cap" in html and "Calls are refused until the month ends" in html


async def test_the_webhook_is_set_on_the_settings_page_with_its_secret_shown_once(console: Console,
                                                                                  stack: Stack) -> None:
    await console.signup("hooks@example.co.id")
    html = await console.get("/settings")
    assert 'id="webhook"' in html and 'id="webhook-delete"' not in html
    resp = await console.post("/settings/webhook", {"url": "http://127.0.0.1:9/hook"})
    assert resp.status == 422
    assert "https://" in await resp.text()  # outside dev mode: https only, and never loopback
    resp = await console.post("/settings/webhook", {"url": "https://169.254.169.254/latest"})
    assert resp.status == 422 and "link-local" in await resp.text()

    resp = await console.post("/settings/webhook", {"url": "https://93.184.216.34/webrana"})  # public: accepted
    html = await resp.text()
    assert resp.status == 200, html[:500]
    secret = re.search(r'<code id="webhook-secret">(whsec_[A-Za-z0-9_-]+)</code>', html)
    assert secret and "Webhook disimpan" in html
    html = await console.get("/settings")
    assert secret.group(1) not in html and secret.group(1)[-4:] in html  # only its hint from now on
    assert 'value="https://93.184.216.34/webrana"' in html

    resp = await console.post("/settings/webhook/test")
    assert resp.status == 303
    assert 'id="webhook-deliveries"' in await console.get("/settings")
    resp = await console.post("/settings/webhook/delete")
    assert resp.status == 303
    assert 'id="webhook-delete"' not in await console.get("/settings")


async def test_a_members_limit_alert_names_the_team_limit_not_the_quota(console: Console, stack: Stack) -> None:
    email = "member-alerted@example.co.id"
    await console.signup(email)
    pool = await create_pool(stack.db_url)
    try:
        user_id = await pool.fetchval("SELECT id FROM users WHERE email = $1", email)
        org_id = await pool.fetchval("INSERT INTO organisations (name, owner_id) VALUES ('Tim Satu', $1) RETURNING id",
                                     user_id)
        await pool.execute("INSERT INTO org_members (org_id, user_id, role) VALUES ($1, $2, 'owner')", org_id, user_id)
        month, _ = jakarta_month()
        assert await record(pool, NewAlert(user_id, "member_requests", None, month, 80, 8, 10, True, org_id))
    finally:
        await pool.close()
    html = await console.get("/overview")
    assert "80% batas request bulanan Anda di tim Tim Satu" in html
    assert BANNER_ID not in html
