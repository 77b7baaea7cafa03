"""Hardening fixtures: the gateway fixtures of tests/gateway (re-exported here), a FakeMidtrans on loopback for
every app in this folder, an admin and a normal user, fake providers in their own process, and helpers to
check the error shape and to find leaked tasks."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import secrets
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import asyncpg
import orjson
import pytest
import schemathesis
from aiohttp import web
from aiohttp.test_utils import TestClient
from schemathesis.core.result import Ok
from schemathesis.schemas import APIOperation

from tests.conftest import PASSWORD, Api
from tests.fakes.midtrans import FakeMidtrans
from tests.gateway.conftest import PROVIDER_KEYS, account, fake, fakes, gateway_env, gw
from tests.processes import free_port
from webrana_proxy.api.openapi import document

__all__ = ["account", "fake", "fakes", "gateway_env", "gw"]  # fixtures re-exported for this folder

TRACEBACK = re.compile(r"Traceback \(most recent call last\)|File \"[^\"]+\", line \d+")


@pytest.fixture
async def fake_midtrans(base_env: dict[str, str]) -> AsyncIterator[FakeMidtrans]:
    async with FakeMidtrans(base_env["MIDTRANS_SERVER_KEY"]) as midtrans:
        yield midtrans


@pytest.fixture
def env_overrides(fake_midtrans: FakeMidtrans) -> dict[str, str]:
    """Midtrans on loopback, so nothing any test here does can leave the machine."""
    return {"MIDTRANS_SNAP_BASE_URL": fake_midtrans.snap_base_url,
            "MIDTRANS_API_BASE_URL": fake_midtrans.api_base_url,
            "WEBRANA_CONSOLE_URL": "http://127.0.0.1:18081"}


def api_operations() -> list[APIOperation[Any, Any, Any, Any]]:
    """Every operation of the /api OpenAPI document, as schemathesis sees it."""
    out: list[APIOperation[Any, Any, Any, Any]] = []
    for result in schemathesis.openapi.from_dict(document()).get_all_operations():
        assert isinstance(result, Ok), f"the OpenAPI document has an invalid operation: {result}"
        out.append(result.ok())
    return out


async def promote_admin(db_url: str, user_id: str) -> None:
    conn = await asyncpg.connect(db_url)
    try:
        await conn.execute("UPDATE users SET role = 'admin' WHERE id = $1::uuid", user_id)
    finally:
        await conn.close()


async def register(client: TestClient[web.Request, web.Application], db_url: str, *,
                   admin: bool = False) -> dict[str, Any]:
    tokens = await Api(client).register()
    if admin:
        await promote_admin(db_url, tokens["user"]["id"])
    return tokens


def bearer(tokens: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {tokens['access_token']}"}


def error_shape_problems(status: int, content_type: str, raw: bytes) -> list[str]:
    """What is wrong with a 4xx answer, measured against ``{"error": {message, type, code, param}}``."""
    if "application/json" not in content_type:
        return [f"{status} answered as {content_type!r}, not JSON"]
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return [f"{status} body is not JSON: {raw[:200]!r}"]
    err = body.get("error") if isinstance(body, dict) else None
    if not isinstance(err, dict):
        return [f"{status} body has no error object: {raw[:200]!r}"]
    problems = [f"error.{k} missing" for k in ("message", "type", "code", "param") if k not in err]
    if not (isinstance(err.get("message"), str) and err["message"]):
        problems.append("error.message is not a non-empty string")
    if not isinstance(err.get("type"), str):
        problems.append("error.type is not a string")
    return problems


def has_traceback(raw: bytes) -> bool:
    return TRACEBACK.search(raw.decode("utf-8", "replace")) is not None


def _kind(task: asyncio.Task[Any]) -> str:
    coro = task.get_coro()
    return getattr(coro, "__qualname__", type(coro).__name__)


def _live_kinds() -> Counter[str]:
    me = asyncio.current_task()
    return Counter(_kind(t) for t in asyncio.all_tasks() if t is not me and not t.done())


async def task_baseline(window: float = 0.3) -> Counter[str]:
    """How many tasks of each kind run at most over ``window`` seconds (periodic tasks come and go)."""
    most: Counter[str] = Counter()
    deadline = asyncio.get_running_loop().time() + window
    while asyncio.get_running_loop().time() < deadline:
        most |= _live_kinds()
        await asyncio.sleep(0.02)
    return most


async def leftover_tasks(baseline: Counter[str], timeout: float = 3.0) -> list[asyncio.Task[Any]]:
    """Tasks beyond ``baseline`` (see ``task_baseline``) that are still running after ``timeout``.

    Counted per coroutine kind, so a periodic task that replaces itself (the usage writer's timed wait) is not a
    leak, while one more handler, reader or timer of any kind than before is.
    """
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        extra = {k for k, n in _live_kinds().items() if n > baseline.get(k, 0)}
        if not extra or asyncio.get_running_loop().time() > deadline:
            me = asyncio.current_task()
            return [t for t in asyncio.all_tasks() if t is not me and not t.done() and _kind(t) in extra]
        await asyncio.sleep(0.02)


@contextlib.asynccontextmanager
async def fake_providers_process(*args: str) -> AsyncIterator[dict[str, str]]:
    """``python -m tests.fakes`` in its own process (so a load test's upstream has its own CPU); yields the
    base-URL settings that point the gateway at it."""
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.fakes", "--port", str(port), *args, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, start_new_session=True, cwd=os.getcwd())
    try:
        env: dict[str, str] = {}
        assert proc.stdout is not None
        async with asyncio.timeout(20):
            while len(env) < 4:
                line = (await proc.stdout.readline()).decode()
                if not line:
                    raise RuntimeError("the fake providers exited before announcing their URLs")
                name, sep, value = line.strip().partition("=")
                if sep and name.endswith("_BASE_URL"):
                    env[name] = value
        yield env
    finally:
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), 5)
            except TimeoutError:
                os.killpg(proc.pid, signal.SIGKILL)
                await proc.wait()


async def process_account(session: aiohttp.ClientSession, url: str, db_url: str,
                          providers: tuple[str, ...] = ("openai",)) -> str:
    """A pro account on a real proxy process, with account limits far above any test's load; its proxy key."""
    async with session.post(url + "/api/auth/register",
                            json={"email": f"load-{secrets.token_hex(4)}@example.com", "password": PASSWORD}) as r:
        assert r.status == 201, await r.text()
        tokens = await r.json()
    conn = await asyncpg.connect(db_url)
    try:
        await conn.execute("""UPDATE users SET plan = 'pro', burst_per_minute_override = 1000000,
                              monthly_requests_override = 1000000000 WHERE id = $1::uuid""", tokens["user"]["id"])
    finally:
        await conn.close()
    h = bearer(tokens)
    for p in providers:
        async with session.post(url + "/api/provider-keys", headers=h,
                                json={"provider": p, "name": p, "key": PROVIDER_KEYS[p]}) as r:
            assert r.status == 201, await r.text()
    async with session.post(url + "/api/proxy-keys", headers=h, json={"name": "load"}) as r:
        assert r.status == 201, await r.text()
        return str((await r.json())["key"])
