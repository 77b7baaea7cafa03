"""Steps several console tests share: a user with keys made through the pages, calls through the gateway."""

from __future__ import annotations

import asyncio
import re
from typing import Any

from openai import AsyncOpenAI

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
