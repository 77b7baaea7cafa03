"""Redis stopped under load: the gateway keeps serving on per-process fallback limits (a metric and a log
line say so), no 5xx comes from it, and it recovers when Redis returns."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import openai
import pytest
import pytest_asyncio
from aiohttp import web
from aiohttp.test_utils import TestClient

import devstack
from tests.conftest import serve_app
from tests.gateway.conftest import make_account, sdk
from webrana_proxy.settings import Settings
from webrana_proxy.state import METRICS


@pytest.fixture(scope="module")
def own_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[devstack.Redis]:
    redis = devstack.Redis(Path(tmp_path_factory.mktemp("redis-outage")))
    redis.start()
    yield redis
    redis.stop()


@pytest_asyncio.fixture(loop_scope="session")
async def redis_gw(own_redis: devstack.Redis, gateway_env: dict[str, str],
                   clean: None) -> AsyncIterator[TestClient[web.Request, web.Application]]:
    from webrana_proxy.app import create_app

    async with serve_app(create_app(Settings.from_env({**gateway_env, "REDIS_URL": own_redis.url}))) as c:
        yield c


def _degraded(client: TestClient[web.Request, web.Application]) -> float:
    value = client.app[METRICS].registry.get_sample_value("webrana_limits_degraded")
    assert value is not None
    return value


async def test_gateway_serves_through_a_redis_outage(redis_gw: TestClient[web.Request, web.Application],
                                                    own_redis: devstack.Redis, migrated: str,
                                                    monkeypatch: pytest.MonkeyPatch,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    acct = await make_account(redis_gw, migrated)
    client = sdk(redis_gw, acct.proxy_key)
    await client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "a"}])
    assert _degraded(redis_gw) == 0

    caplog.set_level(logging.WARNING)
    await asyncio.to_thread(own_redis.stop)
    results = await asyncio.gather(*(client.chat.completions.create(
        model="qwen-plus", messages=[{"role": "user", "content": f"tanpa redis {i}"}]) for i in range(20)))
    assert all(r.choices[0].message.content.startswith("echo: tanpa redis") for r in results)
    assert _degraded(redis_gw) == 1
    assert any("limits degraded" in r.getMessage() for r in caplog.records)
    # The management API keeps answering too (its per-IP check is skipped, not failed).
    assert (await redis_gw.get("/api/auth/me", headers=acct.headers)).status == 200

    port = own_redis.port
    monkeypatch.setattr(devstack, "free_port", lambda host="127.0.0.1": port)
    await asyncio.to_thread(own_redis.start)
    for _ in range(50):
        with contextlib.suppress(openai.APIError):  # until the limiter is back, answers may vary
            await client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "b"}])
        if _degraded(redis_gw) == 0:
            break
        await asyncio.sleep(0.1)
    assert _degraded(redis_gw) == 0
    assert any("limits restored" in r.getMessage() for r in caplog.records)
