"""Two promises of the console, checked in a real browser (Playwright driving Debian's Chromium, loopback only):

- a crafted ``next`` (a TAB in ``/\\t/evil.example`` and the other classic bypasses) never takes the browser off
  the console: after sign-in, on ``GET /login`` when signed in, and on the language switch;
- a person who opens 30 console pages within a minute, against the proxy's default limit of 100 calls a
  minute per address, never meets a 429, and the demo banner is on every page without costing a call.
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import AsyncIterator
from urllib.parse import quote, urlsplit

import pytest
import pytest_asyncio
from aiohttp import web
from aiohttp.test_utils import TestClient

from tests.conftest import PASSWORD
from tests.dashboard.conftest import Stack, running_stack

pytestmark = pytest.mark.browser

STEP_TIMEOUT_MS = 10_000
EVIL = "evil.example"
TAB_NEXT = "/\t/evil.example"  # aiohttp sent it as it is; a browser drops the TAB and reads //evil.example
# What an attacker puts in ?next= (percent-encoded in the link, as it would be in a mail or a chat message).
CRAFTED_NEXT = (TAB_NEXT, "\t//evil.example", "/\r\n/evil.example", "/\\evil.example", "//evil.example",
                "///evil.example", "https://evil.example/", " //evil.example", "/%09/evil.example",
                "/%2F%2Fevil.example", "/.//evil.example", "/%5Cevil.example")
DEFAULT_IP_LIMIT = "100"  # the product rule (settings.DEFAULT_IP_RATE_LIMIT); the test env raises it to 100000
PAGES = 30
OTHER_PAGES = ("/provider-keys", "/proxy-keys", "/usage", "/billing")
WINDOW_SECONDS = 60  # the per-address limit counts calls per clock minute
NEEDED_SECONDS = 20  # the 30 pages (~10 s), with room: they start in a fresh minute when less is left of this one


def _loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


async def _guarded_page(browser: object, left: list[str]) -> object:
    """A page whose every request off loopback is recorded in ``left`` and aborted (there is no network)."""
    from playwright.async_api import Browser, Route

    assert isinstance(browser, Browser)
    context = await browser.new_context()

    async def guard(route: Route) -> None:
        if _loopback(route.request.url):
            await route.continue_()
        else:
            left.append(route.request.url)
            await route.abort()

    await context.route("**/*", guard)
    page = await context.new_page()
    page.set_default_timeout(STEP_TIMEOUT_MS)
    return page


async def test_a_crafted_next_never_takes_the_browser_off_the_console(browser: object, stack: Stack) -> None:
    from playwright.async_api import Page

    left: list[str] = []
    page = await _guarded_page(browser, left)
    assert isinstance(page, Page)
    console = stack.console_url
    await stack.register("tab@example.co.id")

    # Sign in from a link carrying a TAB in next: the browser ends on the overview, not on evil.example.
    await page.goto(f"{console}/login?next={quote(TAB_NEXT, safe='')}")
    await page.fill("#email", "tab@example.co.id")
    await page.fill("#password", PASSWORD)
    await page.click("button[type=submit].primary")
    for _ in range(STEP_TIMEOUT_MS // 100):  # until it lands on a console page or tries to leave
        if left or page.url == console + "/overview":
            break
        await page.wait_for_timeout(100)
    assert not left, left
    assert page.url == console + "/overview", page.url

    # Signed in, GET /login?next=... redirects at once: every classic bypass stays on the console.
    for crafted in CRAFTED_NEXT:
        response = await page.goto(f"{console}/login?next={quote(crafted, safe='')}")
        assert response is not None
        assert _loopback(page.url) and urlsplit(page.url).port == urlsplit(console).port, (crafted, page.url)
        assert EVIL not in (urlsplit(page.url).hostname or ""), (crafted, page.url)
    assert not left, left

    # The language switch's next (a hidden field, here changed the way a hostile page script could).
    await page.goto(console + "/usage")
    await page.locator(".lang-switch input[name=next]").evaluate("(el) => { el.value = '/\\t/evil.example'; }")
    await page.click(".lang-switch button[value=en]")
    await page.wait_for_load_state()
    assert page.url.startswith(console + "/"), page.url
    assert not left, left
    await page.context.close()


@pytest_asyncio.fixture(loop_scope="session")
async def limited_demo_stack(clean: None, base_env: dict[str, str], migrated: str) -> AsyncIterator[Stack]:
    """The stack with the proxy's default per-address limit (not the tests' 100000) and WEBRANA_DEMO on."""
    env = {**base_env, "WEBRANA_IP_RATE_LIMIT": DEFAULT_IP_LIMIT, "WEBRANA_DEMO": "true"}
    async with running_stack(env, migrated) as s:
        yield s


async def _calls_left(proxy: TestClient[web.Request, web.Application]) -> int:
    """What the loopback address has left of this minute's calls (this look costs one; 429: none left)."""
    resp = await proxy.get("/api/meta")
    assert resp.status in (200, 429), resp.status
    return int(resp.headers["X-RateLimit-Remaining"]) if resp.status == 200 else -1


async def test_thirty_pages_in_a_minute_never_meet_the_per_address_limit(browser: object,
                                                                          limited_demo_stack: Stack) -> None:
    from playwright.async_api import Page, expect

    stack = limited_demo_stack
    left: list[str] = []
    page = await _guarded_page(browser, left)
    assert isinstance(page, Page)
    console = stack.console_url
    await page.goto(console + "/signup")
    await page.fill("#email", "busy@example.co.id")
    await page.fill("#password", PASSWORD)
    await page.fill("#password_confirm", PASSWORD)
    await page.click("button[type=submit].primary")
    await page.wait_for_url(console + "/overview")

    # Start in a fresh minute when this one is nearly over, so all 30 pages share one minute's 100 calls.
    into_minute = time.time() % WINDOW_SECONDS
    if WINDOW_SECONDS - into_minute < NEEDED_SECONDS:
        await page.wait_for_timeout((WINDOW_SECONDS - into_minute + 0.2) * 1000)
    minute = int(time.time() // WINDOW_SECONDS)
    # The person goes back to the overview between the other pages: the overview is half of what they open.
    paths = [p for i in range(PAGES // 2) for p in ("/overview", OTHER_PAGES[i % len(OTHER_PAGES)])]
    seen = []
    for path in paths:
        response = await page.goto(console + path)
        assert response is not None
        seen.append((path, response.status))
        assert response.status == 200, (path, response.status, await page.locator("main").inner_text())
        await expect(page.locator("#demo-banner")).to_contain_text("provider palsu lokal")
    remaining = await _calls_left(stack.proxy)
    same_minute = int(time.time() // WINDOW_SECONDS) == minute
    assert len(seen) == PAGES and all(status == 200 for _, status in seen)
    assert not left, left
    if same_minute:
        used = int(DEFAULT_IP_LIMIT) - remaining - 1
        print(f"\n{PAGES} console pages cost {used} API calls from the browser's address")
        assert used <= 2 * PAGES, used  # one or two calls a page, and the shared answers now and then
    await page.context.close()
