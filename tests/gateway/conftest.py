"""Gateway fixtures: the proxy app on loopback, pointed at the fake providers, and a ready user."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import asyncpg
import pytest
import pytest_asyncio
from aiohttp import web
from aiohttp.test_utils import TestClient
from openai import AsyncOpenAI
from redis.asyncio import Redis

from tests.conftest import Api, serve_app
from tests.fakes.scenario import FakeState
from tests.fakes.server import FakeServer
from webrana_proxy.settings import Settings

PROVIDER_KEYS = {
    "openai": "sk-proj-fakeOPENAI0000000000001",
    "anthropic": "sk-ant-api03-fakeANTHROPIC000001",
    "google": "AIzaSyFakeGEMINI00000000000000000000001",
    "qwen": "sk-fakeQWEN000000000000000001",
    "deepseek": "sk-fakeDEEPSEEK00000000000000000001",
    "openrouter": "sk-or-v1-fakeOPENROUTER000000000000000001",
    "mistral": "fakeMISTRAL000000000000000000001",
    "groq": "gsk_fakeGROQ0000000000000000000000001",
    "xai": "xai-fakeXAI000000000000000000000000001",
}
MODELS = {"openai": "gpt-4o-mini", "anthropic": "claude-sonnet-4-5", "google": "gemini-2.5-flash",
          "qwen": "qwen-plus", "deepseek": "deepseek-chat", "openrouter": "openrouter/deepseek/deepseek-v4-flash",
          "mistral": "mistral-small-latest", "groq": "groq/llama-3.3-70b-versatile", "xai": "grok-4.7"}


@pytest_asyncio.fixture(loop_scope="session")
async def fakes() -> AsyncIterator[FakeServer]:
    async with FakeServer() as server:
        yield server


@pytest_asyncio.fixture(loop_scope="session")
async def redis(gateway_env: dict[str, str]) -> AsyncIterator[Redis]:
    client = Redis.from_url(gateway_env["REDIS_URL"])
    yield client
    await client.aclose()


@pytest.fixture
def fake(fakes: FakeServer) -> FakeState:
    fakes.state.reset()
    return fakes.state


@pytest.fixture
def gateway_env(base_env: dict[str, str], fakes: FakeServer, env_overrides: dict[str, str]) -> dict[str, str]:
    return {**base_env, **fakes.env(), "WEBRANA_FIRST_BYTE_TIMEOUT": "15", "WEBRANA_IDLE_TIMEOUT": "2",
            **env_overrides}


@pytest_asyncio.fixture(loop_scope="session")
async def gw(clean: None, gateway_env: dict[str, str],
             fake: FakeState) -> AsyncIterator[TestClient[web.Request, web.Application]]:
    from webrana_proxy.app import create_app

    async with serve_app(create_app(Settings.from_env(gateway_env))) as c:
        yield c


@dataclass
class Account:
    tokens: dict[str, Any]
    proxy_key: str
    user_id: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens['access_token']}"}


async def make_account(client: TestClient[web.Request, web.Application], db_url: str,
                       providers: tuple[str, ...] = tuple(PROVIDER_KEYS), plan: str = "pro",
                       extra_keys: dict[str, list[str]] | None = None) -> Account:
    api = Api(client)
    tokens = await api.register(f"dev-{secrets.token_hex(4)}@example.co.id")
    conn = await asyncpg.connect(db_url)
    try:
        await conn.execute("UPDATE users SET plan = $1 WHERE id = $2::uuid", plan, tokens["user"]["id"])
    finally:
        await conn.close()
    h = api.auth(tokens)
    for p in providers:
        for i, key in enumerate([PROVIDER_KEYS[p], *(extra_keys or {}).get(p, [])]):
            resp = await client.post("/api/provider-keys", headers=h, json={"provider": p, "name": f"{p}{i}",
                                                                            "key": key})
            assert resp.status == 201, await resp.text()
    resp = await client.post("/api/proxy-keys", headers=h, json={"name": "test"})
    assert resp.status == 201, await resp.text()
    return Account(tokens, (await resp.json())["key"], tokens["user"]["id"])


@pytest_asyncio.fixture(loop_scope="session")
async def account(gw: TestClient[web.Request, web.Application], migrated: str) -> Account:
    return await make_account(gw, migrated)


def sdk(client: TestClient[web.Request, web.Application], key: str) -> AsyncOpenAI:
    return AsyncOpenAI(base_url=str(client.make_url("/v1")), api_key=key, max_retries=0, timeout=20)


async def wait_rows(db_url: str, count: int, timeout: float = 5.0) -> list[asyncpg.Record]:
    """Usage rows are written off the hot path; wait until ``count`` exist (and no more arrive)."""
    conn = await asyncpg.connect(db_url)
    try:
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            rows = await conn.fetch("SELECT * FROM proxy_requests ORDER BY created_at, request_id")
            if len(rows) >= count or asyncio.get_running_loop().time() > deadline:
                await asyncio.sleep(0.3)
                return await conn.fetch("SELECT * FROM proxy_requests ORDER BY created_at, request_id")
            await asyncio.sleep(0.05)
    finally:
        await conn.close()


def tool_result_seen(body: dict[str, Any], call_id: str, name: str) -> str:
    """The tool result a provider received, in its own format: Responses ``input`` (OpenAI natively), Gemini
    ``contents`` (matched by the tool's name), Anthropic ``tool_result`` blocks or chat ``tool`` messages."""
    if "input" in body:
        item = body["input"][-1]
        assert item["type"] == "function_call_output" and item["call_id"] == call_id
        return str(item["output"])
    if "contents" in body:
        part = body["contents"][-1]["parts"][0]["functionResponse"]
        assert part["name"] == name
        return str(part["response"]["result"])
    message = body["messages"][-1]
    if message["role"] == "tool":
        assert message["tool_call_id"] == call_id
        return str(message["content"])
    block = message["content"][0]
    assert block["type"] == "tool_result" and block["tool_use_id"] == call_id
    return str(block["content"])
