"""/v1/responses errors in OpenAI's shape (before the first byte as a status the openai SDK maps to the right
exception, after it in-band); previous_response_id across providers; stored responses only for their owner and
only while store is on; limits before upstream; client disconnects close the upstream; built-in tools dropped."""

from __future__ import annotations

from typing import Any

import openai
import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from redis.asyncio import Redis

from tests.fakes import scenario
from tests.fakes.scenario import FakeState
from tests.gateway.conftest import MODELS, Account, make_account, sdk, wait_rows
from webrana_proxy.limits import jakarta_month
from webrana_proxy.sse import SSEParser

PROVIDERS = tuple(MODELS)
TRANSLATED = ("anthropic", "google", "qwen")
Client = TestClient[web.Request, web.Application]


def _events(raw: bytes) -> list[tuple[str, dict[str, Any]]]:
    parser = SSEParser()
    return [(ev.event, orjson.loads(ev.data)) for ev in parser.feed(raw) + parser.close()]


async def test_bad_key_is_authentication_error(gw: Client, account: Account, fake: FakeState) -> None:
    with pytest.raises(openai.AuthenticationError) as caught:
        await sdk(gw, "wbr_not-a-real-key").responses.create(model=MODELS["openai"], input="halo")
    assert caught.value.status_code == 401
    assert caught.value.body["type"] == "authentication_error"  # type: ignore[index]
    assert not fake.requests


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_upstream_429_is_rate_limit_error(provider: str, gw: Client, account: Account,
                                                fake: FakeState) -> None:
    fake.script(scenario.rate_limited("7"))
    with pytest.raises(openai.RateLimitError) as caught:
        await sdk(gw, account.proxy_key).responses.create(model=MODELS[provider], input="halo")
    assert caught.value.response.headers["retry-after"] == "7"


@pytest.mark.parametrize("provider", TRANSLATED)
async def test_what_cannot_be_translated_is_a_400_naming_the_field(provider: str, gw: Client, account: Account,
                                                                   fake: FakeState) -> None:
    client = sdk(gw, account.proxy_key)
    with pytest.raises(openai.BadRequestError) as caught:
        await client.responses.create(model=MODELS[provider], input=[
            {"role": "user", "content": [{"type": "input_text", "text": "baca"},
                                         {"type": "input_file", "file_id": "file_1"}]}])
    assert "input[0].content[1].type" in caught.value.message
    with pytest.raises(openai.BadRequestError) as caught:
        await client.responses.create(model=MODELS[provider], input=[
            {"type": "function_call_output", "call_id": "call_nowhere", "output": "x"}])
    assert "input[0].call_id" in caught.value.message and "call_nowhere" in caught.value.message
    assert not fake.requests


@pytest.mark.parametrize("provider", TRANSLATED)
async def test_openai_stored_ids_continue_only_on_openai(provider: str, gw: Client, account: Account,
                                                         fake: FakeState) -> None:
    client = sdk(gw, account.proxy_key)
    first = await client.responses.create(model=MODELS["openai"], input="halo")
    with pytest.raises(openai.BadRequestError) as caught:
        await client.responses.create(model=MODELS[provider], previous_response_id=first.id, input="lagi")
    assert "only an OpenAI model can continue it" in caught.value.message
    assert caught.value.body["param"] == "previous_response_id"  # type: ignore[index]
    webrana = await client.responses.create(model=MODELS[provider], input="halo")
    with pytest.raises(openai.BadRequestError) as caught:
        await client.responses.create(model=MODELS["openai"], previous_response_id=webrana.id, input="lagi")
    assert "stored by Webrana" in caught.value.message
    assert len(fake.requests) == 2  # the refused calls never went upstream


async def test_a_webrana_id_continues_on_any_translated_provider(gw: Client, account: Account,
                                                                 fake: FakeState) -> None:
    client = sdk(gw, account.proxy_key)
    previous = None
    for provider in TRANSLATED:
        resp = await client.responses.create(model=MODELS[provider], previous_response_id=previous,
                                             input=f"giliran {provider}")
        previous = resp.id
    sent = fake.last.body["messages"]  # Qwen, last: every earlier turn and answer
    texts = [m["content"] for m in sent]
    assert texts == ["giliran anthropic", "echo: giliran anthropic", "giliran google", "echo: giliran google",
                     "giliran qwen"]


async def test_stored_responses_are_only_their_owners_and_store_false_keeps_nothing(
        gw: Client, account: Account, fake: FakeState, migrated: str) -> None:
    client = sdk(gw, account.proxy_key)
    kept = await client.responses.create(model=MODELS["anthropic"], input="rahasia")
    other = sdk(gw, (await make_account(gw, migrated)).proxy_key)
    with pytest.raises(openai.NotFoundError):
        await other.responses.retrieve(kept.id)
    with pytest.raises(openai.NotFoundError):
        await other.responses.delete(kept.id)
    with pytest.raises(openai.BadRequestError) as caught:
        await other.responses.create(model=MODELS["anthropic"], previous_response_id=kept.id, input="?")
    assert "not found" in caught.value.message
    assert (await client.responses.retrieve(kept.id)).output_text == "echo: rahasia"
    unkept = await client.responses.create(model=MODELS["anthropic"], input="lupakan", store=False)
    assert unkept.store is False
    with pytest.raises(openai.NotFoundError):
        await client.responses.retrieve(unkept.id)


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_in_band_error_after_the_first_byte(provider: str, gw: Client, account: Account,
                                                  fake: FakeState) -> None:
    fake.script(scenario.inband_error(6, "Overloaded"))
    resp = await gw.post("/v1/responses", headers={"Authorization": f"Bearer {account.proxy_key}"},
                         json={"model": MODELS[provider], "stream": True, "input": "satu dua tiga empat lima enam"})
    assert resp.status == 200
    events = _events(await resp.read())
    names = [name for name, _ in events]
    assert names[0] == "response.created" and "response.completed" not in names
    assert "error" in names
    error = dict(events)["error"]
    assert error["error"]["message"] == "Overloaded" or "Overloaded" in str(error)
    if provider != "openai":  # the translated lane also ends the response's lifecycle
        assert names[-1] == "response.failed"
        assert [data["sequence_number"] for _, data in events] == list(range(len(events)))
    fake.script(scenario.inband_error(2, "Overloaded"))
    with pytest.raises(openai.APIError, match="Overloaded"):
        async with sdk(gw, account.proxy_key).responses.stream(model=MODELS[provider], input="halo") as stream:
            async for _ in stream:
                pass


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
async def test_client_disconnect_closes_the_upstream_and_logs_a_row(provider: str, gw: Client, account: Account,
                                                                   fake: FakeState, migrated: str) -> None:
    fake.script(scenario.paced(0.05))
    resp = await gw.post("/v1/responses", headers={"Authorization": f"Bearer {account.proxy_key}"},
                         json={"model": MODELS[provider], "stream": True, "input": " ".join(["kata"] * 200)})
    assert resp.status == 200
    await resp.content.readline()
    resp.close()  # the client goes away mid-stream
    await fake.wait_for_disconnects(1, timeout=5)
    rows = await wait_rows(migrated, 1)
    assert (rows[0]["endpoint"], rows[0]["status"], rows[0]["error_type"]) == \
        ("responses", 499, "client_disconnected")


async def test_limits_apply_before_upstream(gw: Client, account: Account, fake: FakeState, redis: Redis,
                                            migrated: str) -> None:
    month, _ = jakarta_month()
    await redis.set(f"rl:quota:{account.user_id}:{month}", 10**9)  # the month's quota is used up
    for provider in PROVIDERS:
        with pytest.raises(openai.RateLimitError) as caught:
            await sdk(gw, account.proxy_key).responses.create(model=MODELS[provider], input="halo")
        assert "quota" in caught.value.message
    assert not fake.requests
    rows = await wait_rows(migrated, len(PROVIDERS))
    assert sorted((r["endpoint"], r["status"]) for r in rows) == [("responses", 429)] * len(PROVIDERS)


@pytest.mark.parametrize("provider", TRANSLATED)
async def test_built_in_tools_are_dropped_and_namespaces_flattened(provider: str, gw: Client, account: Account,
                                                                   fake: FakeState) -> None:
    tools: list[Any] = [
        {"type": "web_search"},
        {"type": "namespace", "name": "crm", "description": "CRM", "tools": [
            {"type": "function", "name": "find", "description": "Find a customer",
             "parameters": {"type": "object", "properties": {"q": {"type": "string"}}}}]}]
    fake.script(scenario.tool_calls(("crm__find", {"q": "Budi"})))
    resp = await sdk(gw, account.proxy_key).responses.create(model=MODELS[provider], input="cari Budi",
                                                             tools=tools)
    sent = orjson.dumps(fake.last.body).decode()
    assert "crm__find" in sent and "web_search" not in sent
    call = resp.output[-1]
    assert call.type == "function_call" and call.name == "find" and call.namespace == "crm"
