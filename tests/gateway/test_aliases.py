"""Aliases with fallbacks against the fakes: a hop is skipped on 429, 5xx, connection errors, first-byte timeouts and
streams that failed before any byte reached the client, never after; per-hop parameters and timeouts; one quota
count per call; a usage row per attempt; the x-webrana-* headers; circuit breakers per provider key; in the chat,
Messages and Responses dialects (the chat ones through the official openai SDK)."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import asyncpg
import openai
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from tests.fakes import scenario
from tests.fakes.scenario import FakeState
from tests.gateway.conftest import Account, sdk, wait_rows

MSG = [{"role": "user", "content": "halo dunia"}]
Client = TestClient[web.Request, web.Application]


async def define(gw: Client, account: Account, name: str, hops: list[Any]) -> dict[str, Any]:
    resp = await gw.post("/api/aliases", headers=account.headers, json={"name": name, "hops": hops})
    assert resp.status == 201, await resp.text()
    data: dict[str, Any] = await resp.json()
    return data


async def daily_requests(db_url: str) -> int:
    conn = await asyncpg.connect(db_url)
    try:
        return int(await conn.fetchval("SELECT coalesce(sum(requests), 0) FROM usage_daily"))
    finally:
        await conn.close()


def served(headers: Any) -> tuple[str, str, str]:
    return headers["x-webrana-provider"], headers["x-webrana-model"], headers["x-webrana-attempts"]


# ---- chat, through the openai SDK ----


async def test_a_healthy_first_hop_answers_and_says_so(gw: Client, account: Account, fake: FakeState,
                                                       migrated: str) -> None:
    await define(gw, account, "wbr/fast", ["qwen-plus", "gpt-4o-mini"])
    raw = await sdk(gw, account.proxy_key).chat.completions.with_raw_response.create(model="wbr/fast", messages=MSG)
    answer = raw.parse()
    assert answer.choices[0].message.content == "echo: halo dunia"
    assert served(raw.headers) == ("qwen", "qwen-plus", "1")
    assert [r.provider for r in fake.requests] == ["qwen"]
    assert fake.last.body["model"] == "qwen-plus"  # the hop's model goes upstream, never the alias
    (row,) = await wait_rows(migrated, 1)
    assert (row["provider"], row["model"], row["alias"], row["attempt"], row["failed_attempt"]) == (
        "qwen", "qwen-plus", "wbr/fast", 1, False)
    assert row["request_id"] == raw.headers["x-request-id"]


async def test_every_answer_says_who_served_it_also_without_an_alias(gw: Client, account: Account,
                                                                     fake: FakeState, migrated: str) -> None:
    raw = await sdk(gw, account.proxy_key).chat.completions.with_raw_response.create(model="gpt-4o-mini",
                                                                                     messages=MSG)
    assert served(raw.headers) == ("openai", "gpt-4o-mini", "1")
    fake.script(scenario.http_error(429))
    with pytest.raises(openai.RateLimitError) as info:
        await sdk(gw, account.proxy_key).chat.completions.create(model="gpt-4o-mini", messages=MSG)
    assert served(info.value.response.headers) == ("openai", "gpt-4o-mini", "1")
    rows = await wait_rows(migrated, 2)
    assert [(r["status"], r["attempt"], r["alias"]) for r in rows] == [(200, 1, None), (429, 1, None)]


@pytest.mark.parametrize(("behaviour", "status", "error"), [
    (scenario.rate_limited("3"), 429, "limit_requests"),  # DashScope's own codes
    (scenario.http_error(500), 500, "internal_error"),
    (scenario.http_error(503), 503, None),
    (scenario.stall_first_byte(3.0), 504, "upstream_timeout"),
])
async def test_a_failing_hop_is_skipped_and_only_the_answer_counts(
        behaviour: scenario.Behaviour, status: int, error: str | None, gw: Client, account: Account,
        fake: FakeState, migrated: str) -> None:
    await define(gw, account, "wbr/fast", [{"model": "qwen-plus", "first_byte_timeout": 0.5}, "gpt-4o-mini"])
    fake.script(dataclasses.replace(behaviour, provider="qwen"))
    raw = await sdk(gw, account.proxy_key).chat.completions.with_raw_response.create(model="wbr/fast", messages=MSG)
    assert raw.parse().choices[0].message.content == "echo: halo dunia"
    assert served(raw.headers) == ("openai", "gpt-4o-mini", "2")
    rows = await wait_rows(migrated, 2)
    failed = next(r for r in rows if r["failed_attempt"])
    ok = next(r for r in rows if not r["failed_attempt"])
    rid = raw.headers["x-request-id"]
    assert (failed["request_id"], failed["provider"], failed["status"], failed["attempt"]) == (
        f"{rid}:1", "qwen", status, 1)
    if error is not None:
        assert failed["error_type"] == error
    assert (failed["total_tokens"], failed["cost_idr_micro"], failed["cost_usd_nano"]) == (0, 0, 0)
    assert (ok["request_id"], ok["provider"], ok["status"], ok["attempt"], ok["alias"]) == (
        rid, "openai", 200, 2, "wbr/fast")
    assert ok["total_tokens"] > 0
    assert await daily_requests(migrated) == 1  # the call counts once against the quota


async def test_a_stream_that_fails_before_its_first_byte_goes_to_the_next_hop(
        gw: Client, account: Account, fake: FakeState, migrated: str) -> None:
    await define(gw, account, "wbr/fast", ["qwen-plus", "gpt-4o-mini"])
    fake.script(scenario.inband_error(0, provider="qwen"))
    raw = await sdk(gw, account.proxy_key).chat.completions.with_raw_response.create(
        model="wbr/fast", messages=MSG, stream=True)
    text = "".join([c.choices[0].delta.content or "" async for c in raw.parse() if c.choices])
    assert text == "echo: halo dunia"
    assert served(raw.headers) == ("openai", "gpt-4o-mini", "2")
    rows = await wait_rows(migrated, 2)
    assert sorted((r["provider"], r["failed_attempt"]) for r in rows) == [("openai", False), ("qwen", True)]


async def test_a_reset_before_the_first_byte_goes_to_the_next_hop(gw: Client, account: Account,
                                                                  fake: FakeState) -> None:
    await define(gw, account, "wbr/fast", ["qwen-plus", "gpt-4o-mini"])
    fake.script(scenario.reset_mid_stream(0, provider="qwen"))
    stream = await sdk(gw, account.proxy_key).chat.completions.create(model="wbr/fast", messages=MSG, stream=True)
    assert "".join([c.choices[0].delta.content or "" async for c in stream if c.choices]) == "echo: halo dunia"
    assert [r.provider for r in fake.requests] == ["qwen", "openai"]


async def test_never_a_fallback_once_content_was_sent(gw: Client, account: Account, fake: FakeState,
                                                      migrated: str) -> None:
    await define(gw, account, "wbr/fast", ["qwen-plus", "gpt-4o-mini"])
    fake.script(scenario.reset_mid_stream(2, provider="qwen"))
    resp = await gw.post("/v1/chat/completions", headers={"Authorization": f"Bearer {account.proxy_key}"},
                         json={"model": "wbr/fast", "messages": MSG, "stream": True})
    assert resp.status == 200
    assert served(resp.headers) == ("qwen", "qwen-plus", "1")
    body = await resp.text()
    assert "echo:" in body and "upstream_reset" in body  # what was sent stays; the break is said in-band
    assert [r.provider for r in fake.requests] == ["qwen"]
    (row,) = await wait_rows(migrated, 1)
    assert (row["provider"], row["attempt"], row["failed_attempt"], row["error_type"]) == (
        "qwen", 1, False, "upstream_reset")


class TestUnreachable:
    @pytest.fixture
    def env_overrides(self) -> dict[str, str]:
        return {"GEMINI_BASE_URL": "http://127.0.0.1:9"}  # the discard port: nothing listens on loopback

    async def test_a_connection_error_is_skipped(self, gw: Client, account: Account, migrated: str) -> None:
        await define(gw, account, "wbr/fast", ["gemini-2.5-flash", "gpt-4o-mini"])
        raw = await sdk(gw, account.proxy_key).chat.completions.with_raw_response.create(model="wbr/fast",
                                                                                         messages=MSG)
        assert served(raw.headers) == ("openai", "gpt-4o-mini", "2")
        rows = await wait_rows(migrated, 2)
        failed = next(r for r in rows if r["failed_attempt"])
        assert (failed["provider"], failed["status"], failed["error_type"]) == (
            "google", 502, "upstream_unreachable")


async def test_the_hop_timeout_is_the_hops_own(gw: Client, account: Account, fake: FakeState) -> None:
    # No timeout on the first hop: 15 s by default, so a 1 s stall is waited out, not skipped.
    await define(gw, account, "wbr/patient", ["qwen-plus", "gpt-4o-mini"])
    fake.script(scenario.stall_first_byte(1.0, provider="qwen"))
    raw = await sdk(gw, account.proxy_key).chat.completions.with_raw_response.create(model="wbr/patient",
                                                                                     messages=MSG)
    assert served(raw.headers) == ("qwen", "qwen-plus", "1")
    await define(gw, account, "wbr/hasty", [{"model": "qwen-plus", "first_byte_timeout": 0.2}, "gpt-4o-mini"])
    fake.script(scenario.stall_first_byte(1.0, provider="qwen"))
    raw = await sdk(gw, account.proxy_key).chat.completions.with_raw_response.create(model="wbr/hasty",
                                                                                     messages=MSG)
    assert served(raw.headers) == ("openai", "gpt-4o-mini", "2")


async def test_each_hop_sends_its_own_parameters(gw: Client, account: Account, fake: FakeState) -> None:
    await define(gw, account, "wbr/fast", [{"model": "qwen-plus", "params": {"max_tokens": 300}},
                                           {"model": "gpt-4o-mini", "params": {"max_tokens": 64, "temperature": 0}}])
    fake.script(scenario.http_error(500, provider="qwen"))
    await sdk(gw, account.proxy_key).chat.completions.create(model="wbr/fast", messages=MSG, max_tokens=1000,
                                                             temperature=0.7)
    qwen, gpt = fake.requests
    assert (qwen.body["max_tokens"], qwen.body["temperature"]) == (300, 0.7)
    assert (gpt.body["max_tokens"], gpt.body["temperature"]) == (64, 0)
    await sdk(gw, account.proxy_key).chat.completions.create(model="wbr/fast", messages=MSG,
                                                             max_completion_tokens=1000)
    assert fake.last.body["max_completion_tokens"] == 300 and "max_tokens" not in fake.last.body


async def test_every_hop_failing_ends_with_the_last_error_and_one_row_per_attempt(
        gw: Client, account: Account, fake: FakeState, migrated: str) -> None:
    await define(gw, account, "wbr/fast", ["qwen-plus", "gpt-4o-mini"])
    fake.script(scenario.http_error(500, provider="qwen"), scenario.rate_limited("4", provider="openai"))
    with pytest.raises(openai.RateLimitError) as info:
        await sdk(gw, account.proxy_key).chat.completions.create(model="wbr/fast", messages=MSG)
    assert served(info.value.response.headers) == ("openai", "gpt-4o-mini", "2")
    rows = await wait_rows(migrated, 2)
    rid = info.value.response.headers["x-request-id"]
    assert sorted((r["request_id"], r["status"], r["failed_attempt"]) for r in rows) == [
        (rid, 429, False), (f"{rid}:1", 500, True)]
    assert await daily_requests(migrated) == 1


async def test_unknown_alias_and_hops_without_keys(gw: Client, account: Account, fake: FakeState,
                                                   migrated: str) -> None:
    with pytest.raises(openai.BadRequestError, match="unknown alias 'wbr/nope'") as info:
        await sdk(gw, account.proxy_key).chat.completions.create(model="wbr/nope", messages=MSG)
    assert info.value.body["code"] == "model_not_found"  # type: ignore[index]
    # A hop whose provider this account has no key for is passed over.
    conn = await asyncpg.connect(migrated)
    try:
        await conn.execute("DELETE FROM api_keys WHERE provider = 'qwen'")
    finally:
        await conn.close()
    await define(gw, account, "wbr/fast", ["qwen-plus", "gpt-4o-mini"])  # the change drops the cached principal
    raw = await sdk(gw, account.proxy_key).chat.completions.with_raw_response.create(model="wbr/fast", messages=MSG)
    assert served(raw.headers) == ("openai", "gpt-4o-mini", "1")
    await define(gw, account, "wbr/none", ["qwen-max"])
    with pytest.raises(openai.BadRequestError, match="no model this account can call"):
        await sdk(gw, account.proxy_key).chat.completions.create(model="wbr/none", messages=MSG)


# ---- circuit breakers ----


class TestCircuitBreaker:
    @pytest.fixture
    def env_overrides(self) -> dict[str, str]:
        return {"WEBRANA_CIRCUIT_FAILURES": "2", "WEBRANA_CIRCUIT_COOLDOWN": "0.5"}

    async def test_a_failing_key_is_skipped_then_probed(self, gw: Client, account: Account,
                                                        fake: FakeState) -> None:
        await define(gw, account, "wbr/fast", ["qwen-plus", "gpt-4o-mini"])
        client = sdk(gw, account.proxy_key)
        fake.script(scenario.http_error(502, provider="qwen"), times=2)
        for _ in range(2):
            raw = await client.chat.completions.with_raw_response.create(model="wbr/fast", messages=MSG)
            assert served(raw.headers) == ("openai", "gpt-4o-mini", "2")
        assert 'webrana_circuit_breakers{provider="qwen",state="open"} 1.0' in await metrics(gw)
        fake.requests.clear()
        raw = await client.chat.completions.with_raw_response.create(model="wbr/fast", messages=MSG)
        assert served(raw.headers) == ("openai", "gpt-4o-mini", "1")  # the open key was not even tried
        assert [r.provider for r in fake.requests] == ["openai"]
        await asyncio.sleep(0.6)  # the cool-down passes: one call probes the key (half-open)...
        fake.script(scenario.http_error(502, provider="qwen"))
        raw = await client.chat.completions.with_raw_response.create(model="wbr/fast", messages=MSG)
        assert served(raw.headers) == ("openai", "gpt-4o-mini", "2")  # ...which failed: open again
        text = await metrics(gw)
        assert 'webrana_circuit_breakers{provider="qwen",state="open"} 1.0' in text
        assert 'webrana_circuit_opened_total{provider="qwen"} 1.0' in text
        await asyncio.sleep(0.6)
        raw = await client.chat.completions.with_raw_response.create(model="wbr/fast", messages=MSG)
        assert served(raw.headers) == ("qwen", "qwen-plus", "1")  # the probe succeeded: closed
        text = await metrics(gw)
        assert 'webrana_circuit_breakers{provider="qwen",state="open"} 0.0' in text
        assert 'webrana_circuit_breakers{provider="qwen",state="half_open"} 0.0' in text

    async def test_an_open_breaker_with_nothing_else_to_try_answers_at_once(self, gw: Client, account: Account,
                                                                            fake: FakeState) -> None:
        client = sdk(gw, account.proxy_key)
        fake.script(scenario.http_error(500), times=2)
        for _ in range(2):
            with pytest.raises(openai.InternalServerError):
                await client.chat.completions.create(model="gpt-4o-mini", messages=MSG)
        fake.requests.clear()
        with pytest.raises(openai.InternalServerError) as info:
            await client.chat.completions.create(model="gpt-4o-mini", messages=MSG)
        assert info.value.status_code == 503
        assert info.value.body["code"] == "circuit_open"  # type: ignore[index]
        assert int(info.value.response.headers["retry-after"]) >= 1
        assert fake.requests == []

    async def test_the_next_key_is_used_while_one_is_open(self, gw: Client, migrated: str,
                                                          fake: FakeState) -> None:
        from tests.gateway.conftest import make_account
        acct = await make_account(gw, migrated, providers=("openai",),
                                  extra_keys={"openai": ["sk-proj-fakeOPENAI0000000000002"]})
        client = sdk(gw, acct.proxy_key)
        fake.rule_for_key("0001", scenario.http_error(500))
        for _ in range(4):  # round-robin: key 1 fails (then key 2 answers) until its breaker opens
            await client.chat.completions.create(model="gpt-4o-mini", messages=MSG)
        fake.requests.clear()
        for _ in range(3):
            raw = await client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=MSG)
            assert raw.headers["x-webrana-attempts"] == "1"
        assert all(r.key.endswith("0002") for r in fake.requests)


async def metrics(gw: Client) -> str:
    resp = await gw.get("/metrics")
    return await resp.text()


# ---- the Messages and Responses dialects ----


async def test_messages_alias_falls_back_to_a_translated_provider(gw: Client, account: Account, fake: FakeState,
                                                                  migrated: str) -> None:
    await define(gw, account, "wbr/claude", [{"model": "claude-sonnet-4-5", "params": {"max_tokens": 50}},
                                             {"model": "gpt-4o-mini", "params": {"max_tokens": 40}}])
    headers = {"x-api-key": account.proxy_key, "anthropic-version": "2023-06-01"}
    body = {"model": "wbr/claude", "max_tokens": 500, "messages": MSG}
    resp = await gw.post("/v1/messages", headers=headers, json=body)
    assert resp.status == 200
    assert served(resp.headers) == ("anthropic", "claude-sonnet-4-5", "1")
    assert fake.last.body["max_tokens"] == 50 and fake.last.body["model"] == "claude-sonnet-4-5"
    fake.script(scenario.http_error(529, provider="anthropic"))
    resp = await gw.post("/v1/messages", headers=headers, json=body)
    assert resp.status == 200, await resp.text()
    data = await resp.json()
    assert data["type"] == "message" and data["content"][0]["text"] == "echo: halo dunia"
    assert served(resp.headers) == ("openai", "gpt-4o-mini", "2")
    assert fake.last.provider == "openai" and fake.last.body["max_completion_tokens"] == 40  # translated
    # streamed: an Anthropic stream that fails before its first byte goes to the next hop too
    fake.script(scenario.inband_error(0, provider="anthropic"))
    resp = await gw.post("/v1/messages", headers=headers, json={**body, "stream": True})
    text = await resp.text()
    assert "message_start" in text and "echo" in text and "error" not in text
    assert served(resp.headers) == ("openai", "gpt-4o-mini", "2")
    rows = await wait_rows(migrated, 5)
    assert sum(r["failed_attempt"] for r in rows) == 2
    assert await daily_requests(migrated) == 3


async def test_responses_alias_falls_back_and_maps_its_parameters(gw: Client, account: Account,
                                                                  fake: FakeState) -> None:
    await define(gw, account, "wbr/codex", [{"model": "gpt-4o-mini", "params": {"max_tokens": 77}},
                                            {"model": "claude-sonnet-4-5", "params": {"max_tokens": 66}}])
    client = sdk(gw, account.proxy_key)
    raw = await client.responses.with_raw_response.create(model="wbr/codex", input="halo dunia")
    assert raw.parse().output_text == "echo: halo dunia"
    assert served(raw.headers) == ("openai", "gpt-4o-mini", "1")
    assert fake.last.body["max_output_tokens"] == 77 and fake.last.body["model"] == "gpt-4o-mini"
    fake.script(scenario.rate_limited("2", provider="openai"))
    raw = await client.responses.with_raw_response.create(model="wbr/codex", input="halo dunia")
    assert raw.parse().output_text == "echo: halo dunia"
    assert served(raw.headers) == ("anthropic", "claude-sonnet-4-5", "2")
    assert fake.last.provider == "anthropic" and fake.last.body["max_tokens"] == 66
    fake.script(scenario.reset_mid_stream(0, provider="openai"))
    raw = await client.responses.with_raw_response.create(model="wbr/codex", input="halo dunia", stream=True)
    events = [e async for e in raw.parse()]
    assert events[-1].type == "response.completed"
    assert served(raw.headers) == ("anthropic", "claude-sonnet-4-5", "2")


# ---- the API ----


async def test_alias_api_validates_and_changes_take_effect_at_once(gw: Client, account: Account,
                                                                   fake: FakeState) -> None:
    h = account.headers
    bad = [
        ({"name": "fast", "hops": ["gpt-4o-mini"]}, "name"),
        ({"name": "wbr/fast", "hops": []}, "hops"),
        ({"name": "wbr/fast", "hops": ["wbr/other"]}, "hops[0].model"),
        ({"name": "wbr/fast", "hops": ["gpt-4o-mini", "llama-3"]}, "hops[1].model"),
        ({"name": "wbr/fast", "hops": [{"model": "gpt-4o-mini", "params": {"seed": 1}}]}, "hops[0].params.seed"),
        ({"name": "wbr/fast", "hops": [{"model": "gpt-4o-mini", "params": {"max_tokens": 0}}]},
         "hops[0].params.max_tokens"),
        ({"name": "wbr/fast", "hops": [{"model": "gpt-4o-mini", "first_byte_timeout": 0}]},
         "hops[0].first_byte_timeout"),
        ({"name": "wbr/fast", "hops": ["gpt-4o-mini"] * 6}, "hops"),
    ]
    for body, param in bad:
        resp = await gw.post("/api/aliases", headers=h, json=body)
        assert resp.status == 400, body
        assert (await resp.json())["error"]["param"] == param
    created = await define(gw, account, "wbr/fast", ["qwen-plus", {"model": "gpt-4o-mini", "first_byte_timeout": 5}])
    assert created["hops"] == [{"model": "qwen-plus"}, {"model": "gpt-4o-mini", "first_byte_timeout": 5.0}]
    resp = await gw.post("/api/aliases", headers=h, json={"name": "wbr/fast", "hops": ["gpt-4o-mini"]})
    assert resp.status == 400 and (await resp.json())["error"]["code"] == "alias_exists"
    client = sdk(gw, account.proxy_key)
    raw = await client.chat.completions.with_raw_response.create(model="wbr/fast", messages=MSG)
    assert served(raw.headers)[0] == "qwen"
    resp = await gw.put(f"/api/aliases/{created['id']}", headers=h,
                        json={"name": "wbr/fast", "hops": ["claude-sonnet-4-5"]})
    assert resp.status == 200
    raw = await client.chat.completions.with_raw_response.create(model="wbr/fast", messages=MSG)
    assert served(raw.headers)[0] == "anthropic"  # the cached principal was dropped with the change
    listed = await (await gw.get("/api/aliases", headers=h)).json()
    assert [a["name"] for a in listed["data"]] == ["wbr/fast"]
    assert (await gw.get(f"/api/aliases/{created['id']}", headers=h)).status == 200
    other = await gw.post("/api/auth/register", json={"email": "other@example.co.id", "password": "Sup3rSecret!"})
    other_h = {"Authorization": f"Bearer {(await other.json())['access_token']}"}
    assert (await gw.get(f"/api/aliases/{created['id']}", headers=other_h)).status == 404
    assert (await gw.delete(f"/api/aliases/{created['id']}", headers=other_h)).status == 404
    assert (await gw.delete(f"/api/aliases/{created['id']}", headers=h)).status == 200
    with pytest.raises(openai.BadRequestError, match="unknown alias"):
        await client.chat.completions.create(model="wbr/fast", messages=MSG)
