"""Admins' own OpenAI-compatible upstreams (issue 16): added by an admin, keys added by users (or none: keyless),
called through all three dialects with the official SDKs, the URL guarded at save and at connect time, and a change
on one replica effective on another within a second.

The fake "vLLM" servers run on loopback, so this module's gateway sets WEBRANA_ALLOW_PRIVATE_UPSTREAMS=true (which
allows private and loopback addresses); the refusals are tested on a second gateway without it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import anthropic
import asyncpg
import openai
import pytest
import pytest_asyncio
from aiohttp import web
from aiohttp.test_utils import TestClient

from tests.conftest import serve_app
from tests.fakes.openai_like import OPENAI, Flavor, make_flavor_app
from tests.fakes.scenario import FakeState, text
from tests.fakes.server import FakeServer
from tests.gateway.conftest import Account, make_account, sdk, wait_rows
from webrana_proxy.settings import Settings
from webrana_proxy.state import REGISTRY, UPSTREAM

Client = TestClient[web.Request, web.Application]
WITHIN_SECONDS = 1.0
VLLM = Flavor(name="vllm", prefix="/v1", models=("sahabat-ai-9b",), stream_only_prefixes=(), errors=OPENAI.errors)
NUSA = Flavor(name="nusa", prefix="/openai/v1", models=("nusa-chat",), stream_only_prefixes=(),
              errors=OPENAI.errors, key_header="x-api-key")
OLLAMA = Flavor(name="ollama", prefix="/v1", models=("sealion-8b",), stream_only_prefixes=(), errors=OPENAI.errors,
                keyless=True)
USER_KEY = "vllm-key-0001-abcdef"


@pytest.fixture
def env_overrides() -> dict[str, str]:
    return {"WEBRANA_ALLOW_PRIVATE_UPSTREAMS": "true"}


@pytest_asyncio.fixture(loop_scope="session")
async def own() -> AsyncIterator[tuple[FakeState, dict[str, FakeServer]]]:
    state = FakeState()
    async with FakeServer(make_flavor_app(state, VLLM), state) as vllm, \
            FakeServer(make_flavor_app(state, NUSA), state) as nusa, \
            FakeServer(make_flavor_app(state, OLLAMA), state) as ollama:
        yield state, {"vllm": vllm, "nusa": nusa, "ollama": ollama}


async def _admin(gw: Client, db_url: str) -> Account:
    admin = await make_account(gw, db_url, providers=())
    conn = await asyncpg.connect(db_url)
    try:
        await conn.execute("UPDATE users SET role = 'admin' WHERE id = $1::uuid", admin.user_id)
    finally:
        await conn.close()
    return admin


async def _add(gw: Client, admin: Account, **fields: Any) -> dict[str, Any]:
    resp = await gw.post("/api/admin/upstreams", headers=admin.headers, json=fields)
    assert resp.status == 201, await resp.text()
    return dict(await resp.json())


async def _user_key(gw: Client, account: Account, provider: str, key: str = USER_KEY) -> dict[str, Any]:
    resp = await gw.post("/api/provider-keys", headers=account.headers,
                         json={"provider": provider, "name": provider, "key": key})
    assert resp.status == 201, await resp.text()
    return dict(await resp.json())


async def test_an_admins_upstream_serves_chat_messages_and_responses_with_the_users_key(
        gw: Client, own: tuple[FakeState, dict[str, FakeServer]], account: Account, migrated: str) -> None:
    state, servers = own
    admin = await _admin(gw, migrated)
    made = await _add(gw, admin, slug="sahabat", name="Sahabat-AI (vLLM)", base_url=servers["vllm"].url + "/v1",
                      model_prefix="sahabat/", auth={"style": "bearer"}, static_headers={"X-Tenant": "webrana-ci"})
    assert made["static_headers"] == {"x-tenant": "web...a-ci"}  # names shown, values masked
    await _user_key(gw, account, "sahabat")
    client = sdk(gw, account.proxy_key)

    answer = await client.chat.completions.create(model="sahabat/sahabat-ai-9b",
                                                  messages=[{"role": "user", "content": "halo"}])
    assert answer.choices[0].message.content
    pieces = [c async for c in await client.chat.completions.create(
        model="sahabat/sahabat-ai-9b", messages=[{"role": "user", "content": "apa kabar"}], stream=True)]
    assert "".join(c.choices[0].delta.content or "" for c in pieces if c.choices)
    claude = anthropic.AsyncAnthropic(base_url=str(gw.make_url("")), api_key=account.proxy_key, max_retries=0)
    message = await claude.messages.create(model="sahabat/sahabat-ai-9b", max_tokens=100,
                                           messages=[{"role": "user", "content": "halo dari messages"}])
    assert message.content[0].type == "text"
    response = await client.responses.create(model="sahabat/sahabat-ai-9b", input="halo dari responses")
    assert response.output_text

    sent = state.requests_for("vllm")
    assert len(sent) == 4
    for r in sent:
        assert r.headers["authorization"] == f"Bearer {USER_KEY}"
        assert r.headers["x-tenant"] == "webrana-ci"
        assert r.body["model"] == "sahabat-ai-9b"  # the prefix ending in "/" is stripped
    rows = await wait_rows(migrated, 4)
    assert [(r["provider"], r["model"], r["status"], r["endpoint"]) for r in rows] == [
        ("sahabat", "sahabat-ai-9b", 200, "chat"), ("sahabat", "sahabat-ai-9b", 200, "chat"),
        ("sahabat", "sahabat-ai-9b", 200, "messages"), ("sahabat", "sahabat-ai-9b", 200, "responses")]
    assert all(r["total_tokens"] > 0 and not r["tokens_estimated"] for r in rows)
    # No price for a self-hosted model: cost 0, marked fallback (an admin's /api/admin/prices override prices it).
    assert all((r["cost_usd_nano"], r["price_source"]) == (0, "fallback") for r in rows)

    conn = await asyncpg.connect(migrated)
    try:
        audit = await conn.fetchval("SELECT count(*) FROM audit_log WHERE action = 'upstream.create'")
    finally:
        await conn.close()
    assert audit == 1


async def test_named_header_auth_keyless_upstreams_and_unreported_usage(
        gw: Client, own: tuple[FakeState, dict[str, FakeServer]], account: Account, migrated: str) -> None:
    state, servers = own
    admin = await _admin(gw, migrated)
    await _add(gw, admin, slug="nusa", name="Nusa API", base_url=servers["nusa"].url + "/openai/v1",
               model_prefix="nusa-", auth={"style": "header", "header": "X-API-Key"})
    await _add(gw, admin, slug="ollama", name="SEA-LION (Ollama)", base_url=servers["ollama"].url + "/v1",
               model_prefix="ollama/", keyless=True)
    await _user_key(gw, account, "nusa", "nusa_key_printable_0001")
    client = sdk(gw, account.proxy_key)

    await client.chat.completions.create(model="nusa-chat", messages=[{"role": "user", "content": "halo"}])
    r = state.requests_for("nusa")[-1]
    assert r.headers["x-api-key"] == "nusa_key_printable_0001" and "authorization" not in r.headers
    assert r.body["model"] == "nusa-chat"  # a prefix without "/" is part of the model id

    state.script(text("tanpa usage", send_usage=False))
    await client.chat.completions.create(model="ollama/sealion-8b", messages=[{"role": "user", "content": "halo"}])
    r = state.requests_for("ollama")[-1]
    assert "authorization" not in r.headers and "x-api-key" not in r.headers  # keyless: no key at all
    rows = await wait_rows(migrated, 2)
    assert [(x["provider"], x["status"], x["tokens_estimated"]) for x in rows] == [
        ("nusa", 200, False), ("ollama", 200, True)]
    assert rows[1]["total_tokens"] > 0  # estimated, and marked so

    # Keys for an own upstream: printable ASCII only.
    resp = await gw.post("/api/provider-keys", headers=account.headers,
                         json={"provider": "nusa", "name": "bad", "key": "kunci rahasia é 123"})
    assert resp.status == 400 and (await resp.json())["error"]["code"] == "invalid_key_format"


async def test_the_key_test_reaches_an_own_upstream(
        gw: Client, own: tuple[FakeState, dict[str, FakeServer]], account: Account, migrated: str) -> None:
    _, servers = own
    admin = await _admin(gw, migrated)
    await _add(gw, admin, slug="sahabat", name="Sahabat-AI", base_url=servers["vllm"].url + "/v1",
               model_prefix="sahabat/")
    key = await _user_key(gw, account, "sahabat")
    resp = await gw.post(f"/api/provider-keys/{key['id']}/test", headers=account.headers)
    assert (await resp.json())["status"] == "ok"


async def test_private_addresses_are_allowed_with_the_setting_and_connections_go_to_the_checked_address(
        gw: Client, own: tuple[FakeState, dict[str, FakeServer]], account: Account, migrated: str) -> None:
    state, servers = own
    seen: list[str] = []

    async def resolve(host: str, port: int) -> list[str]:
        seen.append(host)
        return ["127.0.0.1"] if host == "vllm.cluster.invalid" else []

    gw.app[UPSTREAM].resolve = resolve
    admin = await _admin(gw, migrated)
    await _add(gw, admin, slug="incluster", name="In-cluster vLLM", model_prefix="incluster/", keyless=True,
               base_url=f"http://vllm.cluster.invalid:{servers['ollama'].port}/v1")
    # The system resolver cannot resolve .invalid: the call works only because the pool connects to the address
    # the guard checked.
    await sdk(gw, account.proxy_key).chat.completions.create(
        model="incluster/sealion-8b", messages=[{"role": "user", "content": "halo"}])
    assert state.requests_for("ollama")[-1].headers["host"] == f"vllm.cluster.invalid:{servers['ollama'].port}"
    assert seen.count("vllm.cluster.invalid") == 2  # at save, and when the connection was opened

    resp = await gw.post("/api/admin/upstreams", headers=admin.headers, json={
        "slug": "metadata", "name": "x", "base_url": "http://169.254.169.254/v1", "model_prefix": "meta/"})
    assert resp.status == 400 and "link-local" in (await resp.json())["error"]["message"]


@pytest_asyncio.fixture(loop_scope="session")
async def strict(gw: Client, gateway_env: dict[str, str]) -> AsyncIterator[Client]:
    """A gateway without WEBRANA_ALLOW_PRIVATE_UPSTREAMS (same database and Redis)."""
    from webrana_proxy.app import create_app

    env = {**gateway_env, "WEBRANA_ALLOW_PRIVATE_UPSTREAMS": "false"}
    async with serve_app(create_app(Settings.from_env(env))) as c:
        yield c


async def test_private_and_loopback_upstreams_are_refused_at_save_and_at_connect_time(
        strict: Client, own: tuple[FakeState, dict[str, FakeServer]], migrated: str) -> None:
    state, servers = own
    answers = {"vllm.example.com": ["93.184.216.34"], "rebind.example.com": ["93.184.216.34"]}

    async def resolve(host: str, port: int) -> list[str]:
        return answers.get(host, [])

    strict.app[UPSTREAM].resolve = resolve
    admin = await _admin(strict, migrated)
    account = await make_account(strict, migrated, providers=())
    for url, why in ((servers["vllm"].url + "/v1", "https://"), ("https://10.1.2.3/v1", "private"),
                     ("https://127.0.0.1:8443/v1", "loopback"), ("http://vllm.example.com/v1", "https://")):
        resp = await strict.post("/api/admin/upstreams", headers=admin.headers, json={
            "slug": "sahabat", "name": "x", "base_url": url, "model_prefix": "sahabat/"})
        body = await resp.json()
        assert resp.status == 400 and body["error"]["code"] == "address_refused", body
        assert why in body["error"]["message"]
    answers["vllm.example.com"] = ["10.0.0.7"]  # a name that resolves to a private address
    resp = await strict.post("/api/admin/upstreams", headers=admin.headers, json={
        "slug": "sahabat", "name": "x", "base_url": "https://vllm.example.com/v1", "model_prefix": "sahabat/"})
    assert resp.status == 400 and "WEBRANA_ALLOW_PRIVATE_UPSTREAMS" in (await resp.json())["error"]["message"]

    # Saved while the name pointed at a public address; now it resolves to loopback (DNS rebinding): refused when
    # the gateway connects, nothing sent.
    await _add(strict, admin, slug="rebind", name="Rebind", base_url="https://rebind.example.com/v1",
               model_prefix="rebind/", keyless=True)
    answers["rebind.example.com"] = ["127.0.0.1"]
    before = len(state.requests)
    with pytest.raises(openai.APIStatusError) as err:
        await sdk(strict, account.proxy_key).chat.completions.create(
            model="rebind/sahabat-ai-9b", messages=[{"role": "user", "content": "halo"}])
    assert err.value.status_code == 502 and "loopback" in str(err.value)
    assert len(state.requests) == before
    rows = await wait_rows(migrated, 1)
    assert (rows[-1]["provider"], rows[-1]["error_type"]) == ("rebind", "upstream_address_refused")


@pytest_asyncio.fixture(loop_scope="session")
async def replica_b(gw: Client, gateway_env: dict[str, str]) -> AsyncIterator[Client]:
    from webrana_proxy.app import create_app

    async with serve_app(create_app(Settings.from_env(gateway_env))) as c:
        yield c


async def _until(replica: Client, routed: bool) -> None:
    loop = asyncio.get_running_loop()
    start = loop.time()
    while (replica.app[REGISTRY].find("sahabat") is not None) != routed:
        assert loop.time() - start < WITHIN_SECONDS, "replica B did not follow within a second"
        await asyncio.sleep(0.01)


async def test_a_change_on_one_replica_is_effective_on_the_other_within_a_second(
        gw: Client, replica_b: Client, own: tuple[FakeState, dict[str, FakeServer]], account: Account,
        migrated: str) -> None:
    _, servers = own
    admin = await _admin(gw, migrated)
    made = await _add(gw, admin, slug="sahabat", name="Sahabat-AI", base_url=servers["ollama"].url + "/v1",
                      model_prefix="sahabat/", keyless=True)
    await _until(replica_b, True)
    b = sdk(replica_b, account.proxy_key)
    await b.chat.completions.create(model="sahabat/sahabat-ai-9b", messages=[{"role": "user", "content": "halo"}])

    resp = await gw.patch(f"/api/admin/upstreams/{made['id']}", headers=admin.headers, json={"enabled": False})
    assert resp.status == 200, await resp.text()
    await _until(replica_b, False)
    with pytest.raises(openai.BadRequestError):
        await b.chat.completions.create(model="sahabat/sahabat-ai-9b", messages=[{"role": "user", "content": "x"}])

    resp = await gw.delete(f"/api/admin/upstreams/{made['id']}", headers=admin.headers)
    assert resp.status == 204
    conn = await asyncpg.connect(migrated)
    try:
        actions = [r["action"] for r in await conn.fetch(
            "SELECT action FROM audit_log WHERE action LIKE 'upstream.%' ORDER BY created_at")]
    finally:
        await conn.close()
    assert actions == ["upstream.create", "upstream.update", "upstream.delete"]


async def test_only_admins_manage_upstreams_and_built_in_names_are_refused(
        gw: Client, own: tuple[FakeState, dict[str, FakeServer]], account: Account, migrated: str) -> None:
    _, servers = own
    fields = {"slug": "sahabat", "name": "x", "base_url": servers["vllm"].url + "/v1", "model_prefix": "sahabat/"}
    for method, path in (("GET", "/api/admin/upstreams"), ("POST", "/api/admin/upstreams"),
                         ("PATCH", "/api/admin/upstreams/7f3c9a52-6d1e-4d8b-9a31-2b4c5d6e7f80"),
                         ("DELETE", "/api/admin/upstreams/7f3c9a52-6d1e-4d8b-9a31-2b4c5d6e7f80")):
        resp = await gw.request(method, path, headers=account.headers, json=fields)
        assert resp.status == 403, (method, path)
    admin = await _admin(gw, migrated)
    for clash in ({"slug": "openai"}, {"model_prefix": "groq/"}, {"model_prefix": "gpt-"},
                  {"model_prefix": "wbr/"}, {"auth": {"style": "header", "header": "Host"}},
                  {"static_headers": {"Authorization": "Bearer x"}}):
        resp = await gw.post("/api/admin/upstreams", headers=admin.headers, json={**fields, **clash})
        assert resp.status == 400, clash
    assert (await gw.get("/api/admin/upstreams", headers=admin.headers)).status == 200
