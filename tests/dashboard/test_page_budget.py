"""What each console page costs its visitor at the proxy, and the demo banner.

The proxy limits calls per browser address (100 a minute by default), counted through the console's
``X-Forwarded-For``. Each page here is opened from an address of its own, then the proxy is asked what that
address has left: every page costs one or two calls, the overview one. The answers every visitor shares (the
plans, the demo flag) are kept by the console for a while and cost nothing per page.
"""

from __future__ import annotations

import itertools
import re
import time
from collections.abc import AsyncIterator, Iterator
from urllib.parse import parse_qs, urlsplit

import asyncpg
import pytest
import pytest_asyncio
from aiohttp import ClientSession, CookieJar

from tests.dashboard.conftest import Console, Stack, running_stack
from tests.dashboard.flows import user_with_keys
from tests.dashboard.test_views_billing import pay_on_fake_midtrans, subscribe
from webrana_proxy.envvalues import ConfigError
from webrana_proxy.settings import Settings

TEST_IP_LIMIT = 100_000  # the tests' WEBRANA_IP_RATE_LIMIT (tests/conftest.py)
WINDOW_SECONDS = 60  # the per-address limit counts calls per clock minute
DEMO_EN = "answers come from local fake providers"
DEMO_ID = "jawaban berasal dari provider palsu lokal"


@pytest.fixture
def addresses() -> Iterator[str]:
    """A fresh documentation address (RFC 5737) per page, so each page's calls are counted alone."""
    return (f"198.51.100.{n}" for n in itertools.count(1))


async def api_calls(stack: Stack, console: Console, path: str, addresses: Iterator[str]) -> tuple[int, int]:
    """(status, API calls the proxy counted for the browser's address) of one page view."""
    while True:
        address = next(addresses)
        minute = int(time.time() // WINDOW_SECONDS)
        resp = await console.client.get(path, headers={"X-Forwarded-For": address}, allow_redirects=False)
        await resp.read()
        probe = await stack.proxy.get("/api/meta", headers={"X-Forwarded-For": address})
        if int(time.time() // WINDOW_SECONDS) == minute:  # else the count started again: look once more
            return resp.status, TEST_IP_LIMIT - int(probe.headers["X-RateLimit-Remaining"]) - 1


async def _order_ids(db_url: str) -> dict[str, str]:
    conn = await asyncpg.connect(db_url)
    try:
        rows = await conn.fetch("SELECT status, order_id FROM invoices")
    finally:
        await conn.close()
    return {r["status"]: r["order_id"] for r in rows}


async def test_every_page_costs_its_visitor_one_or_two_api_calls(console: Console, stack: Stack,
                                                                 addresses: Iterator[str]) -> None:
    email = "budget@example.co.id"
    await user_with_keys(console, email)
    back = await pay_on_fake_midtrans(await subscribe(console, "starter"))
    paid = parse_qs(urlsplit(back).query)["order_id"][0]
    await subscribe(console, "pro")  # an upgrade left unpaid: its result page reloads itself while pending
    pending = (await _order_ids(stack.db_url))["pending"]
    await stack.make_admin(email)
    html = await console.get("/overview")  # the overview's answer updates the session: now an admin
    assert 'href="/admin"' in html
    proxy_keys = await console.get("/proxy-keys")
    key_id = re.search(r'href="/proxy-keys/([0-9a-f-]{36})/revoke"', proxy_keys)
    invoice_id = re.search(r'href="/billing/invoices/([0-9a-f-]{36})"', await console.get("/billing"))
    await console.get("/aliases")
    resp = await console.post("/aliases", {"name": "wbr/fast", "hop0_model": "gpt-4o-mini"})
    assert resp.status == 303
    alias_id = re.search(r'href="/aliases/([0-9a-f-]{36})/edit"', await console.get("/aliases"))
    await console.get("/admin/prices")
    resp = await console.post("/admin/prices", {"provider": "openai", "model_pattern": "gpt-7*", "price_input": "3"})
    assert resp.status == 303, await resp.text()
    price_id = re.search(r'href="/admin/prices/([0-9a-f-]{36})/edit"', await console.get("/admin/prices"))
    assert key_id and invoice_id and alias_id and price_id
    await console.get("/admin")  # the plans and the demo flag are now known to this console for a while

    budget = {
        "/overview": 1, "/provider-keys": 1, "/aliases": 1, f"/aliases/{alias_id.group(1)}/edit": 1,
        "/proxy-keys": 1, f"/proxy-keys/{key_id.group(1)}/revoke": 1,
        "/usage": 2, "/usage?range=custom&from=2025-01-01&to=2025-01-31": 2, "/billing": 2,
        f"/billing/result?order_id={paid}": 2, f"/billing/result?order_id={pending}": 1,
        f"/billing/invoices/{invoice_id.group(1)}": 1, "/billing/cancel": 1,
        "/admin": 1, "/admin/users": 1, "/admin/users?q=budget": 1, "/admin/refunds": 1, "/admin/audit": 1,
        "/admin/prices": 2, f"/admin/prices/{price_id.group(1)}/edit": 1,
        "/login": 0, "/signup": 0, "/": 0, "/no-such-page": 0,
    }
    spent = {path: await api_calls(stack, console, path, addresses) for path in budget}
    assert {path: status for path, (status, _) in spent.items()} == {
        path: 303 if path in ("/login", "/signup", "/") else 404 if path == "/no-such-page" else 200
        for path in budget}
    assert {path: calls for path, (_, calls) in spent.items()} == budget


@pytest_asyncio.fixture(loop_scope="session")
async def demo_stack(clean: None, base_env: dict[str, str], migrated: str) -> AsyncIterator[Stack]:
    async with running_stack({**base_env, "WEBRANA_DEMO": "true"}, migrated) as s:
        yield s


async def test_the_demo_banner_is_on_every_page_in_both_languages(demo_stack: Stack,
                                                                  addresses: Iterator[str]) -> None:
    async with ClientSession(base_url=demo_stack.console_url, cookie_jar=CookieJar(unsafe=True)) as http:
        console = Console(http)
        html = await console.get("/login")
        assert 'id="demo-banner"' in html and DEMO_ID in html
        await console.signup("demo@example.co.id")
        for path in ("/overview", "/provider-keys", "/proxy-keys", "/usage", "/billing"):
            assert DEMO_ID in await console.get(path), path
        assert DEMO_ID in await console.get("/no-such-page", status=404)
        await console.post("/lang", {"lang": "en", "next": "/usage"})
        html = await console.get("/usage")
        assert DEMO_EN in html and DEMO_ID not in html
        # Known to the console already: the banner costs a page no call of its own.
        assert await api_calls(demo_stack, console, "/provider-keys", addresses) == (200, 1)


async def test_no_banner_when_the_providers_are_real(console: Console) -> None:
    html = await console.get("/login")
    assert 'id="demo-banner"' not in html and DEMO_ID not in html
    await console.signup("real@example.co.id")
    assert 'id="demo-banner"' not in await console.get("/overview")


def test_webrana_demo_is_a_boolean_setting(base_env: dict[str, str]) -> None:
    assert Settings.from_env(base_env).demo is False
    assert Settings.from_env({**base_env, "WEBRANA_DEMO": "true"}).demo is True
    with pytest.raises(ConfigError, match="WEBRANA_DEMO must be true or false"):
        Settings.from_env({**base_env, "WEBRANA_DEMO": "sometimes"})
