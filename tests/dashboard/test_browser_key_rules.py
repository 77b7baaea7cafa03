"""In a real browser (Playwright, Debian's Chromium): set a key's spend cap on its rules page, spend past it
through the gateway, and see the next call refused and the key list show the spend against the cap."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import openai
import pytest

from tests.dashboard.conftest import Stack
from tests.dashboard.flows import browser_user_with_keys

pytestmark = pytest.mark.browser

SCREENSHOTS = Path(__file__).resolve().parents[1] / "screenshots"
STEP_TIMEOUT_MS = 10_000
BIG = [{"role": "user", "content": "halo " * 2000}]  # about Rp 25 of gpt-4o-mini at the fakes' word counts


async def test_set_a_keys_cap_in_the_console_and_see_a_call_refused(browser: object, stack: Stack) -> None:
    from playwright.async_api import Browser, Page, expect

    assert isinstance(browser, Browser)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    context, page, problems = await browser_user_with_keys(browser, stack, "capped@example.co.id",
                                                           timeout_ms=STEP_TIMEOUT_MS)
    assert isinstance(page, Page)
    console = stack.console_url
    key = (await page.locator("#new-key").inner_text()).strip()

    # The key's rules page: a cap of Rp 10 a month.
    await page.goto(console + "/proxy-keys")
    await page.click("#proxy-keys a:has-text('Aturan')")
    await page.fill("#spend_cap_idr", "10")
    await page.click("#key-rules button:has-text('Simpan')")
    await expect(page.locator(".flash-ok")).to_contain_text("Aturan kunci disimpan")
    await expect(page.locator("#proxy-keys .cap")).to_contain_text("dari Rp 10 bulan ini")

    client = openai.AsyncOpenAI(base_url=stack.api_url + "/v1", api_key=key, max_retries=2, timeout=20)
    await client.chat.completions.create(model="gpt-4o-mini", messages=BIG)  # type: ignore[arg-type]
    refused: openai.RateLimitError | None = None
    for _ in range(50):  # the call's cost reaches the counter just after its answer
        try:
            await client.chat.completions.create(model="gpt-4o-mini",
                                                 messages=[{"role": "user", "content": "lagi"}])
        except openai.RateLimitError as exc:
            refused = exc
            break
        await asyncio.sleep(0.05)
    assert refused is not None, "the key's cap never refused a call"
    assert refused.response.headers["x-should-retry"] == "false"
    assert "spend cap of Rp 10" in refused.message

    await page.reload()
    cap = page.locator("#proxy-keys .cap")
    await expect(cap).to_have_text(re.compile(r"Rp \d+(,\d+)? dari Rp 10 bulan ini"))
    assert not (await cap.inner_text()).startswith("Rp 0 ")
    await page.screenshot(path=str(SCREENSHOTS / "key-rules-cap-reached.png"), full_page=True)
    assert not problems, problems
    await context.close()
