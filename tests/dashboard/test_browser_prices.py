"""The admin price page in a real browser (Playwright driving Debian's Chromium): an admin prices a model released
this morning, and the next gateway call of that model is charged by the override, as the user's usage page and API
show it."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import PASSWORD
from tests.dashboard.conftest import Stack
from tests.dashboard.flows import chat
from tests.gateway.conftest import PROVIDER_KEYS

pytestmark = pytest.mark.browser

SCREENSHOTS = Path(__file__).resolve().parents[1] / "screenshots"
STEP_TIMEOUT_MS = 10_000
MODEL = "gpt-7-preview"  # no price anywhere until the admin gives it one
EMAIL = "harga-browser@example.co.id"


async def _calls(stack: Stack, headers: dict[str, str], n: int) -> list[dict[str, Any]]:
    """The user's calls as the API shows them, once ``n`` are written (rows are written off the hot path)."""
    for _ in range(100):
        resp = await stack.proxy.get("/api/usage/requests", headers=headers)
        data: list[dict[str, Any]] = (await resp.json())["data"]
        if len(data) >= n:
            return sorted(data, key=lambda c: c["created_at"])
        await asyncio.sleep(0.1)
    raise AssertionError(f"{n} calls never showed in /api/usage/requests")


async def test_an_admin_override_prices_the_next_call(browser: object, stack: Stack) -> None:
    from playwright.async_api import Browser, Page, expect

    assert isinstance(browser, Browser)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    tokens = await stack.register(EMAIL)
    await stack.make_admin(EMAIL)
    headers = {"Authorization": f"Bearer {tokens['access_token']}"}
    resp = await stack.proxy.post("/api/provider-keys", headers=headers,
                                  json={"provider": "openai", "name": "main", "key": PROVIDER_KEYS["openai"]})
    assert resp.status == 201, await resp.text()
    resp = await stack.proxy.post("/api/proxy-keys", headers=headers, json={"name": "sdk"})
    key = (await resp.json())["key"]

    # Before: the model has no price; the call is charged as the provider's dearest current model, marked so.
    await chat(stack, key, model=MODEL)
    (before,) = await _calls(stack, headers, 1)
    assert before["price_source"] == "fallback"

    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    page: Page = await context.new_page()
    page.set_default_timeout(STEP_TIMEOUT_MS)
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    console = stack.console_url
    await page.goto(console + "/login")
    await page.fill("#email", EMAIL)
    await page.fill("#password", PASSWORD)
    await page.click("button[type=submit].primary")
    await page.wait_for_url(console + "/overview")
    await page.click("nav.mainnav >> text=Admin")
    await page.click(".subnav >> text=Harga")
    await expect(page.locator("#price-models tr[data-model='gpt-6-luna']")).to_contain_text("1.050.000")

    # The admin adds the launch price: $3 in, $12 out per million tokens.
    await page.select_option("#provider", "openai")
    await page.fill("#model_pattern", "gpt-7*")
    await page.fill("#price_input", "3")
    await page.fill("#price_output", "12")
    await page.fill("#source", "https://openai.com/api/pricing")
    await page.fill("#note", "diluncurkan pagi ini")
    await page.click("#price-form button[type=submit]")
    await expect(page.locator(".flash-ok")).to_contain_text("gpt-7*")
    row = page.locator("#price-overrides tr[data-pattern='gpt-7*']")
    await expect(row).to_contain_text("Input: 3")
    await expect(row).to_contain_text("Output: 12")
    await page.screenshot(path=str(SCREENSHOTS / "16-admin-prices.png"), full_page=True)

    # The next call of that model is charged by the override: the fake answers "echo: Halo" to "Halo", so 1 prompt
    # token and 2 completion tokens: 1 x $3 + 2 x $12 per Mtok = 27 micro-USD = 27,000 nano-USD; at Rp 16.500 per
    # USD that is 445,500 micro-rupiah, shown as Rp 0,4455.
    await chat(stack, key, model=MODEL)
    _, after = await _calls(stack, headers, 2)
    assert (after["prompt_tokens"], after["completion_tokens"]) == (1, 2)
    assert (after["price_source"], after["cost_usd_nano"], after["usd_to_idr"]) == ("override", 27_000, 16_500)
    assert after["cost_idr_micro"] == 445_500 and after["price_version"].startswith("db ")

    await page.goto(console + "/usage?range=7")
    rows = page.locator("#calls tbody tr")
    await expect(rows).to_have_count(2)
    newest, oldest = rows.nth(0), rows.nth(1)  # newest first
    await expect(newest).to_contain_text(MODEL)
    await expect(newest).to_contain_text("Rp 0,4455")
    await expect(newest.locator(".badge", has_text="perkiraan")).to_have_count(0)
    await expect(oldest.locator(".badge", has_text="perkiraan")).to_have_count(1)  # the call before the override
    await page.screenshot(path=str(SCREENSHOTS / "17-usage-override-price.png"), full_page=True)
    await context.close()
    assert not [p for p in problems if "Content Security Policy" in p or "Refused" in p], problems
