"""Every error reaches the SDK as the right exception; faults still give one usage row each."""

from __future__ import annotations

import asyncio
import time

import asyncpg
import openai
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from tests.fakes import scenario
from tests.fakes.scenario import FakeState
from tests.gateway.conftest import Account, make_account, sdk, wait_rows

MSG = [{"role": "user", "content": "halo"}]


async def test_bad_proxy_key_is_authentication_error(gw: TestClient[web.Request, web.Application]) -> None:
    with pytest.raises(openai.AuthenticationError):
        await sdk(gw, "wbr_nope").chat.completions.create(model="gpt-4o-mini", messages=MSG)
    with pytest.raises(openai.AuthenticationError, match="wbr_"):
        await sdk(gw, "sk-not-webrana").chat.completions.create(model="gpt-4o-mini", messages=MSG)


async def test_unknown_model_names_the_accepted_forms(gw: TestClient[web.Request, web.Application],
                                                      account: Account) -> None:
    with pytest.raises(openai.BadRequestError, match="claude-") as info:
        await sdk(gw, account.proxy_key).chat.completions.create(model="llama-3", messages=MSG)
    assert info.value.body["param"] == "model"  # type: ignore[index]


async def test_missing_provider_key_says_which_to_add(gw: TestClient[web.Request, web.Application],
                                                      migrated: str) -> None:
    acct = await make_account(gw, migrated, providers=("openai",))
    with pytest.raises(openai.BadRequestError, match="no Anthropic key"):
        await sdk(gw, acct.proxy_key).chat.completions.create(model="claude-sonnet-4-5", messages=MSG)


async def test_unknown_v1_path_is_404(gw: TestClient[web.Request, web.Application], account: Account) -> None:
    with pytest.raises(openai.NotFoundError):
        await sdk(gw, account.proxy_key).completions.create(model="gpt-3.5-turbo-instruct", prompt="x")


@pytest.mark.parametrize(("provider", "model", "behaviour", "exc", "status"), [
    ("openai", "gpt-4o-mini", scenario.rate_limited("7"), openai.RateLimitError, 429),
    ("anthropic", "claude-sonnet-4-5", scenario.http_error(529), openai.InternalServerError, 503),
    ("google", "gemini-2.5-flash", scenario.http_error(429), openai.RateLimitError, 429),
    ("qwen", "qwen-plus", scenario.http_error(400, message="bad thing"), openai.BadRequestError, 400),
    ("openai", "gpt-4o-mini", scenario.http_error(500), openai.InternalServerError, 500),
    ("anthropic", "claude-sonnet-4-5", scenario.http_error(401), openai.AuthenticationError, 401),
])
async def test_upstream_errors_map_to_sdk_exceptions(provider: str, model: str, behaviour: scenario.Behaviour,
                                                     exc: type[Exception], status: int,
                                                     gw: TestClient[web.Request, web.Application],
                                                     account: Account, fake: FakeState, migrated: str) -> None:
    fake.script(behaviour)
    with pytest.raises(exc) as info:  # type: ignore[call-overload]
        await sdk(gw, account.proxy_key).chat.completions.create(model=model, messages=MSG)
    err = info.value
    assert isinstance(err, openai.APIStatusError) and err.status_code == status
    assert err.response.headers.get("x-request-id")
    if provider == "openai" and status == 429:
        assert err.response.headers.get("retry-after") == "7"
    rows = await wait_rows(migrated, 1)
    assert len(rows) == 1 and rows[0]["status"] == status and rows[0]["error_type"]


async def test_failover_to_the_next_key_on_429(gw: TestClient[web.Request, web.Application],
                                               fake: FakeState, migrated: str) -> None:
    acct = await make_account(gw, migrated, providers=("openai",),
                              extra_keys={"openai": ["sk-proj-fakeSECONDKEY00000000002"]})
    fake.rule_for_key("fakeOPENAI", scenario.rate_limited("1"))
    client = sdk(gw, acct.proxy_key)
    for _ in range(4):  # whichever key comes first in turn, the answer comes from the healthy one
        resp = await client.chat.completions.create(model="gpt-4o-mini", messages=MSG)
        assert resp.choices[0].message.content == "echo: halo"
    used = {r.key for r in fake.requests}
    assert used == {"sk-proj-fakeOPENAI0000000000001", "sk-proj-fakeSECONDKEY00000000002"}


@pytest.mark.parametrize("env_overrides", [{"WEBRANA_FIRST_BYTE_TIMEOUT": "2"}])
async def test_first_byte_timeout_is_a_clear_error(gw: TestClient[web.Request, web.Application],
                                                   account: Account, fake: FakeState, migrated: str) -> None:
    fake.script(scenario.stall_first_byte(10))
    with pytest.raises(openai.APIStatusError, match="did not answer") as info:
        await sdk(gw, account.proxy_key).chat.completions.create(model="gpt-4o-mini", messages=MSG)
    assert info.value.status_code == 504
    rows = await wait_rows(migrated, 1)
    assert rows[0]["error_type"] == "upstream_timeout"


@pytest.mark.parametrize(("behaviour", "error_code"), [
    (scenario.reset_mid_stream(3), "upstream_reset"),
    (scenario.stall_mid_stream(3, 10), "upstream_idle_timeout"),
    (scenario.malformed_sse(3), "upstream_malformed"),
])
async def test_mid_stream_faults_end_with_an_in_band_error(behaviour: scenario.Behaviour, error_code: str,
                                                           gw: TestClient[web.Request, web.Application],
                                                           account: Account, fake: FakeState,
                                                           migrated: str) -> None:
    fake.script(behaviour)
    got: list[str] = []
    with pytest.raises(openai.APIError) as info:
        async for chunk in await sdk(gw, account.proxy_key).chat.completions.create(
                model="gpt-4o-mini", stream=True,
                messages=[{"role": "user", "content": "one two three four five six seven eight"}]):
            got += [c.delta.content or "" for c in chunk.choices]
    # Exactly APIError: the SDK read an in-band {"error": ...} event (a dropped connection would be a subclass).
    assert type(info.value) is openai.APIError, repr(info.value)
    assert info.value.code == error_code
    assert "".join(got).startswith("echo:")
    rows = await wait_rows(migrated, 1)
    assert len(rows) == 1 and rows[0]["tokens_estimated"] is True and rows[0]["completion_tokens"] > 0
    assert rows[0]["error_type"] == error_code


async def test_anthropic_in_band_error_is_forwarded(gw: TestClient[web.Request, web.Application],
                                                    account: Account, fake: FakeState) -> None:
    fake.script(scenario.inband_error(3, "Overloaded"))
    with pytest.raises(openai.APIError, match="Overloaded"):
        async for _ in await sdk(gw, account.proxy_key).chat.completions.create(
                model="claude-sonnet-4-5", messages=MSG, stream=True):
            pass


async def test_client_disconnect_closes_upstream_fast_and_logs_a_row(
        gw: TestClient[web.Request, web.Application], account: Account, fake: FakeState, migrated: str) -> None:
    fake.script(scenario.paced(0.05))
    resp = await gw.post("/v1/chat/completions", headers={"Authorization": f"Bearer {account.proxy_key}"},
                         json={"model": "gpt-4o-mini", "stream": True,
                               "messages": [{"role": "user", "content": " ".join(["kata"] * 200)}]})
    assert resp.status == 200
    await resp.content.readline()
    gone = time.monotonic()
    resp.close()  # the client goes away mid-stream
    seen = await fake.wait_for_disconnects(1, timeout=3)
    assert seen.at - gone < 0.1, f"upstream closed {seen.at - gone:.3f}s after the client left"
    rows = await wait_rows(migrated, 1)
    assert rows[0]["status"] == 499 and rows[0]["error_type"] == "client_disconnected"
    assert rows[0]["tokens_estimated"] is True and rows[0]["prompt_tokens"] > 0


async def test_every_call_gets_exactly_one_row(gw: TestClient[web.Request, web.Application], account: Account,
                                               fake: FakeState, migrated: str) -> None:
    client = sdk(gw, account.proxy_key)
    fake.script(scenario.reset_mid_stream(2), scenario.http_error(500))
    calls = [
        client.chat.completions.create(model="gpt-4o-mini", messages=MSG, stream=True),  # reset
        client.chat.completions.create(model="gpt-4o-mini", messages=MSG),  # 500
        client.chat.completions.create(model="claude-sonnet-4-5", messages=MSG),
        client.chat.completions.create(model="gemini-2.5-flash", messages=MSG),
        client.chat.completions.create(model="qwen-plus", messages=MSG),
        client.chat.completions.create(model="nope-model", messages=MSG),  # 400
        client.embeddings.create(model="text-embedding-3-small", input="x"),
    ]
    n = 0
    for coro in calls:
        n += 1
        try:
            result = await coro
            if isinstance(result, openai.AsyncStream):
                async for _ in result:
                    pass
        except openai.APIError:
            pass
    rows = await wait_rows(migrated, n)
    assert len(rows) == n
    assert len({r["request_id"] for r in rows}) == n
    conn = await asyncpg.connect(migrated)
    try:
        daily = await conn.fetchval("SELECT sum(requests) FROM usage_daily")
        count = await conn.fetchval("SELECT request_count FROM proxy_api_keys")
    finally:
        await conn.close()
    assert daily == n and count == n


async def test_oversized_gateway_body_is_413(gw: TestClient[web.Request, web.Application],
                                             account: Account) -> None:
    resp = await gw.post("/v1/chat/completions", headers={"Authorization": f"Bearer {account.proxy_key}",
                                                          "Content-Type": "application/json"},
                         data=b'{"model": "gpt-4o-mini", "messages": [], "x": "' + b"a" * (11 << 20) + b'"}')
    assert resp.status == 413
    assert (await resp.json())["error"]["code"] == "request_too_large"


async def test_suspended_account_is_permission_denied(gw: TestClient[web.Request, web.Application],
                                                      account: Account, migrated: str) -> None:
    conn = await asyncpg.connect(migrated)
    await conn.execute("UPDATE users SET status = 'suspended' WHERE id = $1::uuid", account.user_id)
    await conn.close()
    from webrana_proxy.state import KEYCACHE

    await gw.app[KEYCACHE].invalidate_user(__import__("uuid").UUID(account.user_id))
    with pytest.raises(openai.PermissionDeniedError):
        await sdk(gw, account.proxy_key).chat.completions.create(model="gpt-4o-mini", messages=MSG)
    await asyncio.sleep(0)


@pytest.mark.parametrize("env_overrides", [{"WEBRANA_IP_RATE_LIMIT": "20"}])
async def test_made_up_keys_are_throttled_per_address(gw: TestClient[web.Request, web.Application],
                                                      account: Account) -> None:
    """Unknown keys cost a database query each, so the per-IP limit applies to them before the lookup."""
    import secrets

    statuses = []
    for _ in range(30):
        resp = await gw.post("/v1/chat/completions", json={"model": "gpt-4o-mini", "messages": MSG},
                             headers={"Authorization": f"Bearer wbr_{secrets.token_urlsafe(32)}"})
        statuses.append(resp.status)
    # The account's set-up already spent part of this address's minute; then 401s until the limit, then only 429s.
    first_429 = statuses.index(429)
    assert 0 < first_429 <= 20 and set(statuses[:first_429]) == {401} and set(statuses[first_429:]) == {429}
    resp = await gw.get("/v1/models", headers={"Authorization": f"Bearer {account.proxy_key}"})
    assert resp.status == 429  # the address is over its limit for every route


async def test_a_pooled_connection_closed_before_any_answer_is_retried_once(
        clean: None, gateway_env: dict[str, str], migrated: str) -> None:
    """The provider answers on a keep-alive connection, then drops it after reading the next request without
    answering (the race of reusing a connection the server is closing): the gateway sends that request once
    more on a fresh connection instead of failing the call. A fresh connection dropped unanswered is not
    retried (the provider may have acted on it): that call fails with a clear 502."""
    import asyncio as aio

    import orjson

    from tests.conftest import serve_app
    from tests.gateway.conftest import make_account
    from webrana_proxy.settings import Settings

    answer = orjson.dumps({"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "gpt-4o-mini",
                           "choices": [{"index": 0, "message": {"role": "assistant", "content": "halo lagi"},
                                        "finish_reason": "stop"}],
                           "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}})
    plan: list[list[bool]] = [[True, False], [True], [False]]  # per connection: answer each request or drop
    requests_seen: list[int] = []

    async def handle(reader: aio.StreamReader, writer: aio.StreamWriter) -> None:
        replies = plan.pop(0) if plan else [True]
        for reply in replies:
            head = await reader.readuntil(b"\r\n\r\n")
            length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                          if line.lower().startswith(b"content-length"))
            await reader.readexactly(length)
            requests_seen.append(1)
            if not reply:
                break
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                         % (len(answer), answer))
            await writer.drain()
        writer.close()

    server = await aio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        from webrana_proxy.app import create_app

        env = {**gateway_env, "OPENAI_BASE_URL": f"http://127.0.0.1:{port}/v1"}
        async with serve_app(create_app(Settings.from_env(env))) as client:
            acct = await make_account(client, migrated, providers=("openai",))
            client_sdk = sdk(client, acct.proxy_key).with_options(max_retries=0)
            for _ in range(2):  # the second call reuses connection 1, which drops it; connection 2 answers
                resp = await client_sdk.chat.completions.create(model="gpt-4o-mini", messages=MSG)
                assert resp.choices[0].message.content == "halo lagi"
            assert len(requests_seen) == 3
            await aio.sleep(0.05)  # connection 2 closed after its answer: the next call opens connection 3
            with pytest.raises(openai.InternalServerError) as info:  # a fresh connection dropped: no resend
                await client_sdk.chat.completions.create(model="gpt-4o-mini", messages=MSG)
            assert info.value.status_code == 502 and "could not reach OpenAI" in str(info.value)
            assert len(requests_seen) == 4
    finally:
        server.close()
        await server.wait_closed()


@pytest.mark.parametrize("env_overrides", [{"WEBRANA_UPSTREAM_CONNECTIONS": "1", "WEBRANA_CONNECT_TIMEOUT": "0.3"}])
async def test_a_full_upstream_pool_is_a_clear_503_not_a_hang(gw: TestClient[web.Request, web.Application],
                                                             account: Account, fake: FakeState) -> None:
    """One connection allowed and held by a stalled call: the next call waits at most the connect timeout for it,
    then gets 503 upstream_busy (and the stalled call is unaffected)."""
    fake.script(scenario.stall_first_byte(2))
    client = sdk(gw, account.proxy_key)
    stalled = asyncio.ensure_future(client.chat.completions.create(model="gpt-4o-mini", messages=MSG))
    await asyncio.sleep(0.2)  # the stalled call holds the one upstream connection
    started = time.monotonic()
    with pytest.raises(openai.InternalServerError) as info:
        await client.chat.completions.create(model="gpt-4o-mini", messages=MSG)
    assert info.value.status_code == 503 and "limit of open connections" in str(info.value)
    assert time.monotonic() - started < 2.0
    assert (await stalled).choices[0].message.content
