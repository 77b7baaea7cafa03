"""The official openai SDK's ``client.responses`` against Webrana's /v1/responses, for every provider (OpenAI
natively, the others translated), against fake providers that speak the real wire formats."""

from __future__ import annotations

import json
from typing import Any

import openai
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from tests.fakes import scenario
from tests.fakes.scenario import FakeState
from tests.fakes.server import fake_name
from tests.gateway.conftest import MODELS, Account, sdk, tool_result_seen, wait_rows

PROVIDERS = tuple(MODELS)
TOOLS: list[Any] = [{"type": "function", "name": "get_weather", "description": "Weather in a city",
                     "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                                    "required": ["city"]}}]
Client = TestClient[web.Request, web.Application]


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_create(provider: str, gw: Client, account: Account, fake: FakeState, migrated: str) -> None:
    resp = await sdk(gw, account.proxy_key).responses.create(
        model=MODELS[provider], instructions="Be brief.", input="halo dari Jakarta")
    assert resp.output_text == "echo: halo dari Jakarta"
    assert resp.status == "completed" and resp.object == "response"
    assert [item.type for item in resp.output] == ["message"]
    upstream = fake.last
    assert upstream.provider == fake_name(provider) and upstream.usage is not None
    assert resp.usage is not None
    assert (resp.usage.input_tokens, resp.usage.output_tokens) == (upstream.usage.prompt_tokens,
                                                                   upstream.usage.completion_tokens)
    if provider == "openai":
        assert upstream.path == "/openai/v1/responses" and resp.id.startswith("resp_")
    else:
        assert resp.id.startswith("resp_wbr_")
    rows = await wait_rows(migrated, 1)
    assert len(rows) == 1
    row = rows[0]
    assert (row["endpoint"], row["provider"], row["status"], row["stream"], row["tokens_estimated"]) == \
        ("responses", provider, 200, False, False)
    assert (row["prompt_tokens"], row["completion_tokens"]) == (upstream.usage.prompt_tokens,
                                                                upstream.usage.completion_tokens)


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_stream(provider: str, gw: Client, account: Account, fake: FakeState, migrated: str) -> None:
    client = sdk(gw, account.proxy_key)
    async with client.responses.stream(model=MODELS[provider], input="satu dua tiga empat lima") as stream:
        kinds: list[str] = []
        pieces: list[str] = []
        async for event in stream:
            kinds.append(event.type)
            if event.type == "response.output_text.delta":
                pieces.append(event.delta)
        final = await stream.get_final_response()
    assert "".join(pieces) == "echo: satu dua tiga empat lima" and len(pieces) > 1
    assert kinds[:2] == ["response.created", "response.in_progress"] and kinds[-1] == "response.completed"
    assert final.output_text == "echo: satu dua tiga empat lima" and final.status == "completed"
    upstream = fake.last.usage
    assert upstream is not None and final.usage is not None
    assert (final.usage.input_tokens, final.usage.output_tokens) == (upstream.prompt_tokens,
                                                                     upstream.completion_tokens)
    rows = await wait_rows(migrated, 1)
    assert len(rows) == 1
    assert (rows[0]["endpoint"], rows[0]["stream"], rows[0]["status"], rows[0]["tokens_estimated"]) == \
        ("responses", True, 200, False)
    assert (rows[0]["prompt_tokens"], rows[0]["completion_tokens"]) == (upstream.prompt_tokens,
                                                                        upstream.completion_tokens)


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("stream", [False, True])
async def test_function_call_round_trip(provider: str, stream: bool, gw: Client, account: Account,
                                        fake: FakeState) -> None:
    client = sdk(gw, account.proxy_key)
    fake.script(scenario.tool_calls(("get_weather", {"city": "Jakarta", "unit": "celsius"})))
    question: list[Any] = [{"role": "user", "content": "Cuaca di Jakarta?"}]
    kwargs: dict[str, Any] = {"model": MODELS[provider], "tools": TOOLS, "tool_choice": "auto",
                              "input": question, "store": False}
    if stream:
        async with client.responses.stream(**kwargs) as s:
            resp = await s.get_final_response()
    else:
        resp = await client.responses.create(**kwargs)
    calls = [item for item in resp.output if item.type == "function_call"]
    assert len(calls) == 1
    call = calls[0]
    assert call.name == "get_weather" and json.loads(call.arguments) == {"city": "Jakarta", "unit": "celsius"}
    assert json.dumps(fake.last.body).count("get_weather") >= 1  # the tool definition reached the provider
    answer = await client.responses.create(model=MODELS[provider], tools=TOOLS, store=False, input=[
        *question, call.model_dump(exclude_none=True),  # type: ignore[list-item]
        {"type": "function_call_output", "call_id": call.call_id, "output": "31 C, cerah"}])
    assert tool_result_seen(fake.last.body, call.call_id, "get_weather") == "31 C, cerah"
    assert answer.output_text.startswith("echo: ") and "31 C, cerah" in answer.output_text


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("stream", [False, True])
async def test_previous_response_id_get_and_delete(provider: str, stream: bool, gw: Client, account: Account,
                                                   fake: FakeState) -> None:
    client = sdk(gw, account.proxy_key)
    if stream:
        async with client.responses.stream(model=MODELS[provider], input="nama saya Budi") as s:
            first = await s.get_final_response()
    else:
        first = await client.responses.create(model=MODELS[provider], input="nama saya Budi")
    second = await client.responses.create(model=MODELS[provider], previous_response_id=first.id,
                                           input="siapa nama saya?")
    assert second.output_text == "echo: siapa nama saya?"
    sent = json.dumps(fake.last.body)
    if provider == "openai":
        assert fake.last.body["previous_response_id"] == first.id  # OpenAI keeps the conversation itself
    else:  # Webrana sent the whole conversation: the first turn and its answer
        assert "nama saya Budi" in sent and "echo: nama saya Budi" in sent
    got = await client.responses.retrieve(first.id)
    assert got.id == first.id and got.output_text == "echo: nama saya Budi"
    await client.responses.delete(first.id)
    with pytest.raises(openai.NotFoundError):
        await client.responses.retrieve(first.id)
    with pytest.raises(openai.NotFoundError):
        await client.responses.delete(first.id)
