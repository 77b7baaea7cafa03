"""SIGTERM on a real proxy process: readiness turns false, new connections are refused, the open stream
finishes, queued usage rows are written, and the process exits 0."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import asyncpg
import pytest

from tests.fakes import scenario
from tests.fakes.scenario import FakeState
from tests.gateway.conftest import PROVIDER_KEYS
from tests.processes import proxy_process

pytestmark = pytest.mark.slow


async def _account(session: aiohttp.ClientSession, url: str, db: str) -> str:
    async with session.post(url + "/api/auth/register",
                            json={"email": "sigterm@example.com", "password": "Sup3rSecret!"}) as r:
        tokens = await r.json()
        assert r.status == 201, tokens
    conn = await asyncpg.connect(db)
    await conn.execute("UPDATE users SET plan = 'pro'")
    await conn.close()
    h = {"Authorization": f"Bearer {tokens['access_token']}"}
    async with session.post(url + "/api/provider-keys", headers=h,
                            json={"provider": "openai", "name": "k", "key": PROVIDER_KEYS["openai"]}) as r:
        assert r.status == 201
    async with session.post(url + "/api/proxy-keys", headers=h, json={"name": "k"}) as r:
        return str((await r.json())["key"])


async def test_sigterm_drains_streams_and_usage_then_exits_zero(gateway_env: dict[str, str], migrated: str,
                                                               clean: None, fake: FakeState, tmp_path: Path) -> None:
    env = {**gateway_env, "WEBRANA_SHUTDOWN_READINESS_DELAY": "1", "WEBRANA_SHUTDOWN_GRACE": "20"}
    async with proxy_process(env, str(tmp_path / "proxy.log")) as proxy, aiohttp.ClientSession() as session:
        key = await _account(session, proxy.url, migrated)
        fake.script(scenario.paced(0.1))
        words = " ".join(f"w{i}" for i in range(25))  # ~2.5 s of stream at 0.1 s a chunk
        async with session.post(proxy.url + "/v1/chat/completions", headers={"Authorization": f"Bearer {key}"},
                                json={"model": "gpt-4o-mini", "stream": True,
                                      "messages": [{"role": "user", "content": words}]}) as stream:
            assert stream.status == 200
            first = await stream.content.readline()
            assert first.startswith(b"data: ")
            proxy.proc.send_signal(__import__("signal").SIGTERM)
            await asyncio.sleep(0.3)
            async with aiohttp.ClientSession() as other:  # a fresh connection, not the stream's
                async with other.get(proxy.url + "/health/ready") as ready:
                    assert ready.status == 503
                    assert (await ready.json())["shutting_down"] is True
                await asyncio.sleep(1.2)
                with pytest.raises(aiohttp.ClientConnectionError):
                    async with other.get(proxy.url + "/health"):
                        pass
            rest = await stream.read()
        body = first + rest
        assert body.rstrip().endswith(b"data: [DONE]"), body[-200:]
        assert b"w24" in body
        code = await asyncio.wait_for(proxy.proc.wait(), 30)
        assert code == 0, proxy.log()
    conn = await asyncpg.connect(migrated)
    try:
        row = await conn.fetchrow("SELECT status, stream, completion_tokens FROM proxy_requests")
    finally:
        await conn.close()
    assert row is not None and row["status"] == 200 and row["stream"] is True and row["completion_tokens"] > 20
