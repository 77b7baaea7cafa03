"""Per-key rules and spend caps (issue 14) through the real API, the gateway and the official SDKs.

Expired key 401, model not allowed 403 naming the rule, per-key RPM 429 (normal retry), spend cap 429 with
Retry-After to the next Jakarta month and ``x-should-retry: false`` (the SDKs give up at once: one HTTP attempt,
no call upstream), in each route's error shape; account caps hard and soft; two replicas and a lost Redis.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import anthropic
import httpx2 as httpx
import openai
import pytest
import pytest_asyncio
from aiohttp import web
from aiohttp.test_utils import TestClient
from redis.asyncio import Redis

from tests.conftest import serve_app
from tests.fakes.scenario import FakeState
from tests.gateway.conftest import Account, make_account, wait_rows
from webrana_proxy.limits import jakarta_month
from webrana_proxy.settings import Settings
from webrana_proxy.spend import SPEND, Crossing

Client = TestClient[web.Request, web.Application]
MSG = [{"role": "user", "content": "halo"}]
# The fakes count a word as a token and echo the prompt: 2,000 words of gpt-4o-mini cost about Rp 25 a call.
BIG = [{"role": "user", "content": "halo " * 2000}]
CAP_IDR = 10  # below one BIG call: the first call passes, the one after it is refused


class Attempts:
    """Counts the HTTP requests an SDK sends (its retries included)."""

    def __init__(self) -> None:
        self.n = 0

    async def __call__(self, request: httpx.Request) -> None:
        self.n += 1


def openai_sdk(client: Client, key: str, retries: int = 0) -> tuple[openai.AsyncOpenAI, Attempts]:
    attempts = Attempts()
    http = httpx.AsyncClient(event_hooks={"request": [attempts]})
    return openai.AsyncOpenAI(base_url=str(client.make_url("/v1")), api_key=key, max_retries=retries, timeout=20,
                              http_client=http), attempts


def anthropic_sdk(client: Client, key: str, retries: int = 0) -> tuple[anthropic.AsyncAnthropic, Attempts]:
    attempts = Attempts()
    http = httpx.AsyncClient(event_hooks={"request": [attempts]})
    return anthropic.AsyncAnthropic(base_url=str(client.make_url("")), api_key=key, max_retries=retries,
                                    timeout=20, http_client=http), attempts


async def first_key(gw: Client, account: Account) -> dict[str, Any]:
    data = (await (await gw.get("/api/proxy-keys", headers=account.headers)).json())["data"]
    key: dict[str, Any] = data[0]
    return key


async def patch_key(gw: Client, account: Account, **rules: Any) -> dict[str, Any]:
    key = await first_key(gw, account)
    resp = await gw.patch(f"/api/proxy-keys/{key['id']}", headers=account.headers, json=rules)
    assert resp.status == 200, await resp.text()
    body: dict[str, Any] = await resp.json()
    return body


async def spent(gw: Client, account: Account, at_least: int) -> int:
    """The key's spend counter, once it reached ``at_least`` micro-rupiah (it is updated after each answer)."""
    for _ in range(100):
        value = (await first_key(gw, account))["spent_this_month_idr_micro"]
        if value is not None and value >= at_least:
            return int(value)
        await asyncio.sleep(0.05)
    raise AssertionError("the key's spend counter never reached the cap")


def month_seconds_left() -> int:
    return jakarta_month()[1]


# ---- the API ------------------------------------------------------------------------------------------------


async def test_rules_are_set_at_creation_listed_and_changed(gw: Client, account: Account) -> None:
    expires = (datetime.now(UTC) + timedelta(days=30)).replace(microsecond=0)
    resp = await gw.post("/api/proxy-keys", headers=account.headers, json={
        "name": "ci", "spend_cap_idr": 50_000, "rpm_limit": 30, "allowed_models": ["gpt-6*", "claude-haiku-*"],
        "allowed_providers": ["google"], "expires_at": expires.isoformat(), "note": "untuk skrip CI"})
    assert resp.status == 201, await resp.text()
    created = await resp.json()
    assert created["key"].startswith("wbr_")
    listed = {k["id"]: k for k in (await (await gw.get("/api/proxy-keys", headers=account.headers)).json())["data"]}
    key = listed[created["id"]]
    assert key["spend_cap_idr"] == 50_000 and key["rpm_limit"] == 30 and key["note"] == "untuk skrip CI"
    assert key["allowed_models"] == ["gpt-6*", "claude-haiku-*"] and key["allowed_providers"] == ["google"]
    assert datetime.fromisoformat(key["expires_at"]) == expires and key["expired"] is False
    assert key["spent_this_month_idr_micro"] == 0

    resp = await gw.patch(f"/api/proxy-keys/{created['id']}", headers=account.headers,
                          json={"spend_cap_idr": 75_000, "allowed_models": None, "note": "baru"})
    changed = await resp.json()
    assert resp.status == 200, changed
    assert changed["spend_cap_idr"] == 75_000 and changed["allowed_models"] is None and changed["note"] == "baru"
    assert changed["rpm_limit"] == 30 and changed["allowed_providers"] == ["google"]  # not sent: unchanged


@pytest.mark.parametrize(("body", "param"), [
    ({"allowed_providers": ["openai", "nope"]}, "allowed_providers"),
    ({"allowed_models": ["gpt-4o; DROP"]}, "allowed_models"),
    ({"expires_at": "2001-01-01T00:00:00+07:00"}, "expires_at"),
    ({"expires_at": "2030-01-01T00:00:00"}, "expires_at"),
    ({"spend_cap_idr": 0}, "spend_cap_idr"),
    ({"rpm_limit": "10"}, "rpm_limit"),
    ({"note": "x" * 501}, "note"),
])
async def test_invalid_rules_are_refused_naming_the_field(gw: Client, account: Account, body: dict[str, Any],
                                                          param: str) -> None:
    resp = await gw.post("/api/proxy-keys", headers=account.headers, json={"name": "bad", **body})
    assert resp.status == 400
    assert (await resp.json())["error"]["param"] == param


async def test_another_users_key_cannot_be_changed(gw: Client, account: Account, migrated: str) -> None:
    other = await make_account(gw, migrated, providers=())
    key = await first_key(gw, account)
    resp = await gw.patch(f"/api/proxy-keys/{key['id']}", headers=other.headers, json={"rpm_limit": 1})
    assert resp.status == 404


# ---- expiry and allowed models ------------------------------------------------------------------------------


async def test_an_expired_key_is_refused_with_401_on_every_route(gw: Client, account: Account,
                                                                 fake: FakeState) -> None:
    client, _ = openai_sdk(gw, account.proxy_key)
    await client.chat.completions.create(model="gpt-4o-mini", messages=MSG)  # cached on this replica now
    seen = fake.request_count
    await patch_key(gw, account, expires_at=(datetime.now(UTC) - timedelta(seconds=1)).isoformat())
    with pytest.raises(openai.AuthenticationError) as chat:
        await client.chat.completions.create(model="gpt-4o-mini", messages=MSG)
    assert chat.value.body["code"] == "expired_api_key"  # type: ignore[index]
    with pytest.raises(openai.AuthenticationError):
        await client.embeddings.create(model="text-embedding-3-small", input="halo")
    with pytest.raises(openai.AuthenticationError):
        await client.responses.create(model="gpt-4o-mini", input="halo")
    with pytest.raises(openai.AuthenticationError):
        await client.models.list()
    claude, _ = anthropic_sdk(gw, account.proxy_key)
    with pytest.raises(anthropic.AuthenticationError) as msg:
        await claude.messages.create(model="claude-sonnet-4-5", max_tokens=10, messages=MSG)  # type: ignore[arg-type]
    assert msg.value.body["error"]["type"] == "authentication_error"  # type: ignore[index]
    assert fake.request_count == seen


async def test_a_model_outside_the_keys_rule_is_403_naming_the_rule(gw: Client, account: Account,
                                                                    fake: FakeState) -> None:
    await patch_key(gw, account, allowed_models=["gpt-4o*", "claude-haiku-*"], allowed_providers=["google"])
    client, _ = openai_sdk(gw, account.proxy_key)
    await client.chat.completions.create(model="gpt-4o-mini", messages=MSG)  # a glob
    await client.chat.completions.create(model="gemini-2.5-flash", messages=MSG)  # any model of the provider
    seen = fake.request_count
    with pytest.raises(openai.PermissionDeniedError) as chat:
        await client.chat.completions.create(model="claude-sonnet-4-5", messages=MSG)
    body = chat.value.body
    assert isinstance(body, dict) and body["code"] == "model_not_allowed" and body["param"] == "model"
    assert "'claude-sonnet-4-5'" in body["message"] and "gpt-4o*, claude-haiku-*, any google model" in body["message"]
    with pytest.raises(openai.PermissionDeniedError):
        await client.embeddings.create(model="text-embedding-3-small", input="halo")
    with pytest.raises(openai.PermissionDeniedError):
        await client.responses.create(model="claude-sonnet-4-5", input="halo")
    claude, _ = anthropic_sdk(gw, account.proxy_key)
    with pytest.raises(anthropic.PermissionDeniedError) as msg:
        await claude.messages.create(model="claude-sonnet-4-5", max_tokens=10, messages=MSG)  # type: ignore[arg-type]
    err = msg.value.body["error"]  # type: ignore[index]
    assert err["type"] == "permission_error" and "claude-haiku-*" in err["message"]
    with pytest.raises(anthropic.PermissionDeniedError):
        await claude.messages.count_tokens(model="claude-opus-4-1", messages=MSG)  # type: ignore[arg-type]
    assert fake.request_count == seen  # nothing went upstream


# ---- per-key rate and spend caps ----------------------------------------------------------------------------


async def test_the_keys_own_rpm_is_429_with_normal_retry(gw: Client, account: Account) -> None:
    await patch_key(gw, account, rpm_limit=2)
    client, _ = openai_sdk(gw, account.proxy_key)
    for _ in range(2):
        await client.chat.completions.create(model="gpt-4o-mini", messages=MSG)
    with pytest.raises(openai.RateLimitError) as exc:
        await client.chat.completions.create(model="gpt-4o-mini", messages=MSG)
    headers = exc.value.response.headers
    assert exc.value.body["code"] == "rate_limit_exceeded"  # type: ignore[index]
    assert "2/minute" in exc.value.message and "x-should-retry" not in headers
    assert 1 <= int(headers["retry-after"]) <= 60


async def test_a_keys_spend_cap_is_429_without_retry_on_every_route(gw: Client, account: Account,
                                                                     fake: FakeState) -> None:
    await patch_key(gw, account, spend_cap_idr=CAP_IDR)
    client, _ = openai_sdk(gw, account.proxy_key)
    await client.chat.completions.create(model="gpt-4o-mini", messages=BIG)  # under the cap when it started
    await spent(gw, account, CAP_IDR * 1_000_000)
    seen = fake.request_count

    client, attempts = openai_sdk(gw, account.proxy_key, retries=3)
    with pytest.raises(openai.RateLimitError) as exc:
        await client.chat.completions.create(model="gpt-4o-mini", messages=MSG)
    assert attempts.n == 1  # x-should-retry: false: the SDK did not retry
    headers = exc.value.response.headers
    assert headers["x-should-retry"] == "false"
    assert month_seconds_left() - 5 <= int(headers["retry-after"]) <= month_seconds_left()
    body = exc.value.body
    assert isinstance(body, dict) and body["code"] == "key_spend_cap_reached" and body["type"] == "rate_limit_error"
    assert "API key's monthly spend cap of Rp 10" in body["message"]
    for call in (lambda: client.embeddings.create(model="text-embedding-3-small", input="halo"),
                 lambda: client.responses.create(model="gpt-4o-mini", input="halo")):
        attempts.n = 0
        with pytest.raises(openai.RateLimitError):
            await call()
        assert attempts.n == 1

    claude, attempts = anthropic_sdk(gw, account.proxy_key, retries=3)
    with pytest.raises(anthropic.RateLimitError) as msg:
        await claude.messages.create(model="claude-sonnet-4-5", max_tokens=10, messages=MSG)  # type: ignore[arg-type]
    assert attempts.n == 1 and msg.value.response.headers["x-should-retry"] == "false"
    err = msg.value.body["error"]  # type: ignore[index]
    assert err["type"] == "rate_limit_error" and "spend cap" in err["message"]
    assert fake.request_count == seen  # nothing went upstream

    await patch_key(gw, account, spend_cap_idr=1_000_000)  # raised: effective at once
    await client.chat.completions.create(model="gpt-4o-mini", messages=MSG)


async def test_an_accounts_hard_cap_stops_every_key_and_a_soft_one_only_reports(
        gw: Client, account: Account, migrated: str) -> None:
    crossings: list[Crossing] = []
    gw.app[SPEND].on_crossing(crossings.append)
    resp = await gw.put("/api/account/spend-cap", headers=account.headers, json={"spend_cap_idr": CAP_IDR,
                                                                               "hard": False})
    assert resp.status == 200 and (await resp.json())["spent_this_month_idr_micro"] == 0
    client, _ = openai_sdk(gw, account.proxy_key)
    for _ in range(2):  # soft: never refused
        await client.chat.completions.create(model="gpt-4o-mini", messages=BIG)
    for _ in range(100):
        if len(crossings) >= 2:
            break
        await asyncio.sleep(0.05)
    assert [(c.scope, c.percent, c.hard) for c in crossings] == [("user", 80, False), ("user", 100, False)]
    assert crossings[0].user_id == uuid.UUID(account.user_id) and crossings[0].cap_micro == CAP_IDR * 1_000_000
    state = await (await gw.get("/api/account/spend-cap", headers=account.headers)).json()
    assert state["percent"] >= 100 and state["hard"] is False

    await gw.put("/api/account/spend-cap", headers=account.headers, json={"spend_cap_idr": CAP_IDR, "hard": True})
    second = await gw.post("/api/proxy-keys", headers=account.headers, json={"name": "another"})
    other_key = (await second.json())["key"]
    client, attempts = openai_sdk(gw, other_key, retries=2)
    with pytest.raises(openai.RateLimitError) as exc:
        await client.chat.completions.create(model="gpt-4o-mini", messages=MSG)
    assert attempts.n == 1 and exc.value.body["code"] == "spend_cap_reached"  # type: ignore[index]
    assert "account's monthly spend cap of Rp 10" in exc.value.message

    # An admin lifts it (audited), and the calls go on.
    admin = await make_account(gw, migrated, providers=())
    await _make_admin(migrated, admin.user_id)
    resp = await gw.put(f"/api/admin/users/{account.user_id}/spend-cap", headers=admin.headers,
                        json={"spend_cap_idr": None})
    assert resp.status == 200, await resp.text()
    await client.chat.completions.create(model="gpt-4o-mini", messages=MSG)
    log = await (await gw.get(f"/api/admin/audit-log?user_id={account.user_id}", headers=admin.headers)).json()
    assert log["data"][0]["action"] == "user.set_spend_cap"
    users = await (await gw.get("/api/admin/users", headers=admin.headers)).json()
    assert all(u["spend_cap_idr"] is None for u in users["data"])


async def _make_admin(db: str, user_id: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(db)
    try:
        await conn.execute("UPDATE users SET role = 'admin' WHERE id = $1::uuid", user_id)
    finally:
        await conn.close()


# ---- two replicas, and Redis losing the counters ------------------------------------------------------------


@pytest_asyncio.fixture(loop_scope="session")
async def replica_b(gw: Client, gateway_env: dict[str, str]) -> AsyncIterator[Client]:
    from webrana_proxy.app import create_app

    async with serve_app(create_app(Settings.from_env(gateway_env))) as c:
        yield c


async def test_a_cap_reached_on_one_replica_refuses_on_the_other_and_survives_a_lost_redis(
        gw: Client, replica_b: Client, account: Account, migrated: str, gateway_env: dict[str, str]) -> None:
    b, _ = openai_sdk(replica_b, account.proxy_key)
    await b.chat.completions.create(model="gpt-4o-mini", messages=MSG)  # B has the key cached, without a cap
    await patch_key(gw, account, spend_cap_idr=CAP_IDR)
    await asyncio.sleep(0.3)  # the invalidation reaches B (within a second)
    a, _ = openai_sdk(gw, account.proxy_key)
    await a.chat.completions.create(model="gpt-4o-mini", messages=BIG)
    await spent(gw, account, CAP_IDR * 1_000_000)
    with pytest.raises(openai.RateLimitError):
        await b.chat.completions.create(model="gpt-4o-mini", messages=MSG)

    await wait_rows(migrated, 2)  # the calls' rows are in PostgreSQL
    redis = Redis.from_url(gateway_env["REDIS_URL"])
    await redis.flushdb()  # Redis restarted empty
    await redis.aclose()
    for replica in (b, a):
        with pytest.raises(openai.RateLimitError) as exc:
            await replica.chat.completions.create(model="gpt-4o-mini", messages=MSG)
        assert exc.value.body["code"] == "key_spend_cap_reached"  # type: ignore[index]


async def test_a_rule_change_reaches_the_other_replica_within_a_second(gw: Client, replica_b: Client,
                                                                       account: Account) -> None:
    b, _ = openai_sdk(replica_b, account.proxy_key)
    await b.chat.completions.create(model="gpt-4o-mini", messages=MSG)
    await patch_key(gw, account, allowed_models=["claude-*"])
    loop = asyncio.get_running_loop()
    start = loop.time()
    while True:
        try:
            await b.chat.completions.create(model="gpt-4o-mini", messages=MSG)
        except openai.PermissionDeniedError:
            break
        assert loop.time() - start < 1.0, "replica B still ignores the key's new rule after 1 s"
        await asyncio.sleep(0.02)
