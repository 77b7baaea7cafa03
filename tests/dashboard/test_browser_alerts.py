"""In a real browser (Playwright, Debian's Chromium): a key's spend cap is passed through the gateway, the banner
shows on the console's pages, and it is gone for good once dismissed."""

from __future__ import annotations

import asyncio
from pathlib import Path

import openai
import pytest

from tests.dashboard.conftest import Stack
from tests.dashboard.flows import browser_user_with_keys

pytestmark = pytest.mark.browser

SCREENSHOTS = Path(__file__).resolve().parents[1] / "screenshots"
STEP_TIMEOUT_MS = 10_000
BIG = [{"role": "user", "content": "halo " * 2000}]  # about Rp 25 of gpt-4o-mini at the fakes' word counts


async def test_a_spend_alert_shows_as_a_banner_until_dismissed(browser: object, stack: Stack) -> None:
    from playwright.async_api import Browser, Page, expect

    assert isinstance(browser, Browser)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    context, page, problems = await browser_user_with_keys(browser, stack, "banner@example.co.id",
                                                           spend_cap_idr="10", timeout_ms=STEP_TIMEOUT_MS)
    assert isinstance(page, Page)
    console = stack.console_url
    key = (await page.locator("#new-key").inner_text()).strip()
    await expect(page.locator("#alert-banner")).to_have_count(0)

    client = openai.AsyncOpenAI(base_url=stack.api_url + "/v1", api_key=key, max_retries=0, timeout=20)
    await client.chat.completions.create(model="gpt-4o-mini", messages=BIG)  # type: ignore[arg-type]
    banner = page.locator("#alert-banner")
    for _ in range(50):  # the alerts (80 % and 100 %, in one call) are recorded a moment after the answer
        await page.goto(console + "/overview")
        if await banner.count() and "100%" in await banner.inner_text():
            break
        await asyncio.sleep(0.1)
    await expect(banner).to_contain_text("Kunci skrip")
    await expect(banner).to_contain_text("100%")
    await expect(banner.locator(".alert-item")).to_have_count(1)  # 100 % supersedes 80 %
    await page.click("nav.mainnav >> text=Pemakaian")
    await expect(banner).to_contain_text("Kunci skrip")
    await page.screenshot(path=str(SCREENSHOTS / "alert-banner.png"), full_page=True)

    await banner.locator("button:has-text('Tutup')").click()
    await page.wait_for_url(console + "/usage")
    await expect(banner).to_have_count(0)
    await page.goto(console + "/billing")
    await expect(banner).to_have_count(0)
    assert problems == []
    await context.close()
