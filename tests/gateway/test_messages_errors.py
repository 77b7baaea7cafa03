"""/v1/messages* errors in Anthropic's shape, with the statuses the anthropic SDK maps to the right exceptions;
limits before anything goes upstream; client disconnects close the upstream; count_tokens outside the quota."""

from __future__ import annotations

import time
from typing import Any

import anthropic
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from redis.asyncio import Redis

from tests.fakes import scenario
from tests.fakes.scenario import FakeState
from tests.gateway.conftest import MODELS, Account, wait_rows
from tests.gateway.test_messages_sdk import claude
from webrana_proxy.limits import jakarta_month

PROVIDERS = tuple(MODELS)
Client = TestClient[web.Request, web.Application]
MSG: list[Any] = [{"role": "user", "content": "halo"}]


async def test_bad_key_is_authentication_error(gw: Client, account: Account, fake: FakeState) -> None:
    with pytest.raises(anthropic.AuthenticationError) as caught:
        await claude(gw, "wbr_not-a-real-key").messages.create(model=MODELS["anthropic"], max_tokens=10,
                                                                 messages=MSG)
    assert caught.value.status_code == 401
    assert caught.value.body["type"] == "error"  # type: ignore[index]
    assert caught.value.body["error"]["type"] == "authentication_error"  # type: ignore[index]
    assert not fake.requests


async def test_x_api_key_authenticates_and_errors_need_no_key(gw: Client, account: Account) -> None:
    body = {"model": MODELS["anthropic"], "max_tokens": 10, "messages": MSG}
    ok = await gw.post("/v1/messages?beta=true", json=body, headers={"x-api-key": account.proxy_key,
                                                                      "anthropic-version": "2023-06-01"})
    assert ok.status == 200, await ok.text()
    assert (await ok.json())["type"] == "message"
    missing = await gw.post("/v1/messages", json=body)
    assert missing.status == 401
    err = await missing.json()
    assert err["type"] == "error" and err["error"]["type"] == "authentication_error" and err["request_id"]
    unknown = await gw.post("/v1/messages/nope", json=body)
    assert unknown.status == 404 and (await unknown.json())["error"]["type"] == "not_found_error"


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_upstream_429_is_rate_limit_error(provider: str, gw: Client, account: Account,
                                                fake: FakeState) -> None:
    fake.script(scenario.rate_limited("7"))
    with pytest.raises(anthropic.RateLimitError) as caught:
        await claude(gw, account.proxy_key).messages.create(model=MODELS[provider], max_tokens=10, messages=MSG)
    assert caught.value.body["error"]["type"] == "rate_limit_error"  # type: ignore[index]
    assert caught.value.response.headers["retry-after"] == "7"


async def test_anthropic_overloaded_stays_529(gw: Client, account: Account, fake: FakeState) -> None:
    fake.script(scenario.http_error(529))
    with pytest.raises(anthropic.OverloadedError) as caught:
        await claude(gw, account.proxy_key).messages.create(model=MODELS["anthropic"], max_tokens=10, messages=MSG)
    assert caught.value.status_code == 529
    assert caught.value.body["error"]["type"] == "overloaded_error"  # type: ignore[index]


async def test_translated_upstream_5xx_is_internal_server_error(gw: Client, account: Account,
                                                                fake: FakeState) -> None:
    fake.script(scenario.http_error(500))
    with pytest.raises(anthropic.InternalServerError) as caught:
        await claude(gw, account.proxy_key).messages.create(model=MODELS["openai"], max_tokens=10, messages=MSG)
    assert caught.value.body["error"]["type"] == "api_error"  # type: ignore[index]


@pytest.mark.parametrize("provider", ["openai", "google", "qwen"])
async def test_what_cannot_be_translated_is_a_400_naming_the_field(provider: str, gw: Client, account: Account,
                                                                   fake: FakeState) -> None:
    doc = {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "x"}}
    with pytest.raises(anthropic.BadRequestError) as caught:
        await claude(gw, account.proxy_key).messages.create(
            model=MODELS[provider], max_tokens=10,
            messages=[{"role": "user", "content": [{"type": "text", "text": "baca"}, doc]}])  # type: ignore[list-item]
    assert caught.value.body["error"]["type"] == "invalid_request_error"  # type: ignore[index]
    assert "messages[0].content[1].type" in caught.value.message
    assert not fake.requests


@pytest.mark.parametrize("provider", ["anthropic", "openai"])
async def test_in_band_error_after_the_first_byte(provider: str, gw: Client, account: Account,
                                                  fake: FakeState) -> None:
    fake.script(scenario.inband_error(4, "Overloaded"))
    resp = await gw.post("/v1/messages", headers={"x-api-key": account.proxy_key},
                         json={"model": MODELS[provider], "max_tokens": 50, "stream": True,
                               "messages": [{"role": "user", "content": "satu dua tiga empat lima enam"}]})
    assert resp.status == 200
    text = await resp.text()
    assert "event: message_start" in text
    assert text.rstrip().split("\n\n")[-1].startswith("event: error\ndata: ")
    assert "message_stop" not in text
    fake.script(scenario.inband_error(2, "Overloaded"))
    with pytest.raises(anthropic.APIStatusError, match="Overloaded"):
        async with claude(gw, account.proxy_key).messages.stream(
                model=MODELS[provider], max_tokens=50, messages=MSG) as stream:
            async for _ in stream:
                pass


@pytest.mark.parametrize("provider", ["anthropic", "google"])
async def test_client_disconnect_closes_the_upstream_and_logs_a_row(provider: str, gw: Client, account: Account,
                                                                   fake: FakeState, migrated: str) -> None:
    fake.script(scenario.paced(0.05))
    resp = await gw.post("/v1/messages", headers={"x-api-key": account.proxy_key},
                         json={"model": MODELS[provider], "max_tokens": 500, "stream": True,
                               "messages": [{"role": "user", "content": " ".join(["kata"] * 200)}]})
    assert resp.status == 200
    await resp.content.readline()
    resp.close()  # the client goes away mid-stream
    await fake.wait_for_disconnects(1, timeout=5)
    rows = await wait_rows(migrated, 1)
    assert (rows[0]["endpoint"], rows[0]["status"], rows[0]["error_type"]) == \
        ("messages", 499, "client_disconnected")


async def test_limits_apply_before_upstream_and_count_tokens_spares_the_quota(
        gw: Client, account: Account, fake: FakeState, redis: Redis, migrated: str) -> None:
    client = claude(gw, account.proxy_key)
    month, _ = jakarta_month()
    quota_key = f"rl:quota:{account.user_id}:{month}"
    window = int(time.time() * 1000) // 60_000
    for _ in range(3):
        await client.messages.count_tokens(model=MODELS["anthropic"], messages=MSG)
    assert not await redis.exists(quota_key)  # not billable: the month's quota is never touched
    if int(time.time() * 1000) // 60_000 == window:  # still the same minute window
        assert int(await redis.get(f"rl:burst:{account.user_id}:{window}") or 0) == 3  # but the burst counts it
    await redis.set(quota_key, 10**9)  # the month's quota is used up
    with pytest.raises(anthropic.RateLimitError) as caught:
        await client.messages.create(model=MODELS["anthropic"], max_tokens=10, messages=MSG)
    assert caught.value.body["error"]["type"] == "rate_limit_error"  # type: ignore[index]
    assert "quota" in caught.value.message
    assert [r.path for r in fake.requests] == ["/anthropic/v1/messages/count_tokens"] * 3  # refused before upstream
    counted = await client.messages.count_tokens(model=MODELS["anthropic"], messages=MSG)
    assert counted.input_tokens == 1  # count_tokens still answers when the quota is used up
    assert int(await redis.get(quota_key) or 0) == 10**9
    rows = await wait_rows(migrated, 5)
    assert sorted((r["endpoint"], r["status"]) for r in rows) == [("count_tokens", 200)] * 4 + [("messages", 429)]
