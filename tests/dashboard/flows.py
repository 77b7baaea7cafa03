"""Steps several console tests share: a user with keys made through the pages, calls through the gateway."""

from __future__ import annotations

import asyncio
import re
from typing import Any

from openai import AsyncOpenAI

from tests.conftest import PASSWORD
from tests.dashboard.conftest import Console, Stack
from tests.gateway.conftest import PROVIDER_KEYS


async def user_with_keys(console: Console, email: str) -> str:
    """Sign up, add an OpenAI key and create a proxy key, all through the console; returns the wbr_ key."""
    await console.signup(email)
    await console.get("/provider-keys")
    resp = await console.post("/provider-keys", {"provider": "openai", "name": "main",
                                                 "key": PROVIDER_KEYS["openai"]})
    assert resp.status == 303
    await console.get("/proxy-keys")
    resp = await console.post("/proxy-keys", {"name": "sdk"})
    m = re.search(r'<pre id="new-key"><code>(wbr_[A-Za-z0-9_-]+)</code>', await resp.text())
    assert m
    return m.group(1)


async def browser_user_with_keys(browser: Any, stack: Stack, email: str, *, spend_cap_idr: str | None = None,
                                 timeout_ms: int = 10_000) -> tuple[Any, Any, list[str]]:
    """In a real browser: a fresh context, sign up, add an OpenAI key and create the Webrana key "skrip" (with a
    spend cap set in the create form's optional rules when given), all through the console's pages. Returns the
    context, its page (left on the new key's page) and the list its page errors are collected in."""
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    page = await context.new_page()
    page.set_default_timeout(timeout_ms)
    problems: list[str] = []
    page.on("pageerror", lambda e: problems.append(str(e)))
    console = stack.console_url
    await page.goto(console + "/signup")
    await page.fill("#email", email)
    await page.fill("#password", PASSWORD)
    await page.fill("#password_confirm", PASSWORD)
    await page.click("button[type=submit].primary")
    await page.wait_for_url(console + "/overview")
    await page.click("nav.mainnav >> text=Kunci provider")
    await page.select_option("#provider", "openai")
    await page.fill("#name", "utama")
    await page.fill("#key", "sk-proj-fakeOPENAI0000000000001")
    await page.click("button:has-text('Simpan kunci')")
    await page.click("nav.mainnav >> text=Kunci Webrana")
    await page.fill("#name", "skrip")
    if spend_cap_idr is not None:
        await page.click("main details > summary")  # the optional rules (the header has the workspace switcher)
        await page.fill("#spend_cap_idr", spend_cap_idr)
    await page.click("button:has-text('Buat kunci')")
    return context, page, problems


async def chat(stack: Stack, key: str, n: int = 1, model: str = "gpt-4o-mini") -> list[Any]:
    client = AsyncOpenAI(base_url=stack.api_url + "/v1", api_key=key, max_retries=0, timeout=20)
    try:
        return [await client.chat.completions.create(model=model, messages=[{"role": "user", "content": "Halo"}])
                for _ in range(n)]
    finally:
        await client.close()


async def wait_for(console: Console, path: str, pattern: str, timeout: float = 10.0) -> str:
    """Usage rows are written off the hot path: reload ``path`` until ``pattern`` shows."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        html = await console.get(path)
        if re.search(pattern, html):
            return html
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{pattern!r} never appeared on {path}")
        await asyncio.sleep(0.2)
