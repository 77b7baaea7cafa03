"""POST /api/provider-keys/{id}/test: a cheap authenticated call to the provider reports ok, invalid or
unreachable."""

from __future__ import annotations

import socket

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from tests.conftest import Api, serve_app
from tests.fakes.scenario import FakeState
from webrana_proxy.settings import Settings


async def _add(client: TestClient[web.Request, web.Application], headers: dict[str, str], provider: str,
               key: str) -> str:
    resp = await client.post("/api/provider-keys", headers=headers, json={"provider": provider, "name": "k",
                                                                          "key": key})
    assert resp.status == 201, await resp.text()
    return str((await resp.json())["id"])


@pytest.mark.parametrize(("provider", "good", "bad"), [
    ("openai", "sk-proj-goodKEY000000000000000001", "sk-proj-invalidKEY0000000000000001"),
    ("anthropic", "sk-ant-api03-goodKEY0000000000001", "sk-ant-api03-invalidKEY00000000001"),
    ("qwen", "sk-goodQWEN000000000000000000001", "sk-invalidQWEN00000000000000001"),
    ("google", "AIzaSyGOODKEY00000000000000000000000001", "AIzaSyinvalidKEY00000000000000000000001"),
    ("deepseek", "sk-goodDEEPSEEK0000000000000000001", "sk-invalidDEEPSEEK0000000000000001"),
    ("openrouter", "sk-or-v1-goodOPENROUTER00000000000001", "sk-or-v1-invalidOPENROUTER0000000001"),  # GET /key
    ("mistral", "goodMISTRAL000000000000000000001", "invalidMISTRAL000000000000000001"),
    ("groq", "gsk_goodGROQ000000000000000000000001", "gsk_invalidGROQ000000000000000000001"),
    ("xai", "xai-goodXAI0000000000000000000000001", "xai-invalidXAI0000000000000000000001"),  # xAI: 400 -> 401
])
async def test_key_check_reports_ok_and_invalid(provider: str, good: str, bad: str,
                                                gw: TestClient[web.Request, web.Application],
                                                fake: FakeState, migrated: str) -> None:
    api = Api(gw)
    h = api.auth(await api.register())
    import asyncpg

    conn = await asyncpg.connect(migrated)
    await conn.execute("UPDATE users SET plan = 'pro'")
    await conn.close()
    for key, verdict in ((good, "ok"), (bad, "invalid_key")):
        key_id = await _add(gw, h, provider, key)
        resp = await gw.post(f"/api/provider-keys/{key_id}/test", headers=h)
        assert resp.status == 200
        body = await resp.json()
        assert body["status"] == verdict, body
    assert fake.last.key == bad  # the stored key was decrypted and really sent


async def test_key_check_reports_unreachable(clean: None, gateway_env: dict[str, str]) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed_port = s.getsockname()[1]
    env = {**gateway_env, "OPENAI_BASE_URL": f"http://127.0.0.1:{closed_port}/v1"}
    from webrana_proxy.app import create_app

    async with serve_app(create_app(Settings.from_env(env))) as client:
        api = Api(client)
        h = api.auth(await api.register())
        key_id = await _add(client, h, "openai", "sk-proj-goodKEY000000000000000001")
        body = await (await client.post(f"/api/provider-keys/{key_id}/test", headers=h)).json()
        assert body["status"] == "unreachable" and "OpenAI" in body["detail"]
