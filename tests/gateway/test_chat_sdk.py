"""The official openai SDK against Webrana against fake providers that speak the real wire formats."""

from __future__ import annotations

import asyncio
import json

import openai
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from tests.fakes import scenario
from tests.fakes.scenario import FakeState
from tests.fakes.server import fake_name
from tests.gateway.conftest import MODELS, Account, sdk, wait_rows

PROVIDERS = tuple(MODELS)
TOOLS = [{"type": "function", "function": {"name": "get_weather", "description": "Weather in a city",
                                           "parameters": {"type": "object",
                                                          "properties": {"city": {"type": "string"}},
                                                          "required": ["city"]}}}]


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_non_streaming_chat(provider: str, gw: TestClient[web.Request, web.Application],
                                  account: Account, fake: FakeState, migrated: str) -> None:
    client = sdk(gw, account.proxy_key)
    resp = await client.chat.completions.create(
        model=MODELS[provider], messages=[{"role": "system", "content": "Be brief."},
                                          {"role": "user", "content": "halo dari Jakarta"}])
    assert resp.choices[0].message.content == "echo: halo dari Jakarta"
    assert resp.choices[0].finish_reason == "stop"
    upstream = fake.last
    assert upstream.provider == fake_name(provider)
    assert upstream.usage is not None
    assert resp.usage is not None and resp.usage.completion_tokens == upstream.usage.completion_tokens
    rows = await wait_rows(migrated, 1)
    assert len(rows) == 1
    row = rows[0]
    assert (row["provider"], row["status"], row["stream"], row["tokens_estimated"]) == (provider, 200, False, False)
    assert row["prompt_tokens"] == resp.usage.prompt_tokens
    assert row["completion_tokens"] == resp.usage.completion_tokens


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("include_usage", [True, False])
async def test_streaming_chat(provider: str, include_usage: bool, gw: TestClient[web.Request, web.Application],
                              account: Account, fake: FakeState, migrated: str) -> None:
    client = sdk(gw, account.proxy_key)
    kwargs = {"stream_options": {"include_usage": True}} if include_usage else {}
    stream = await client.chat.completions.create(
        model=MODELS[provider], messages=[{"role": "user", "content": "satu dua tiga empat lima"}],
        stream=True, **kwargs)
    text, usage_chunks, finish = [], [], None
    async for chunk in stream:
        if chunk.usage is not None:
            usage_chunks.append(chunk.usage)
        for choice in chunk.choices:
            if choice.delta.content:
                text.append(choice.delta.content)
            finish = choice.finish_reason or finish
    assert "".join(text) == "echo: satu dua tiga empat lima"
    assert finish == "stop"
    assert len(usage_chunks) == (1 if include_usage else 0)
    upstream_usage = fake.last.usage
    assert upstream_usage is not None
    rows = await wait_rows(migrated, 1)
    assert len(rows) == 1 and rows[0]["stream"] is True and rows[0]["tokens_estimated"] is False
    assert rows[0]["completion_tokens"] == upstream_usage.completion_tokens
    if include_usage:
        assert usage_chunks[0].total_tokens == rows[0]["total_tokens"]


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("stream", [False, True])
async def test_tool_call_round_trip(provider: str, stream: bool, gw: TestClient[web.Request, web.Application],
                                    account: Account, fake: FakeState) -> None:
    client = sdk(gw, account.proxy_key)
    fake.script(scenario.tool_calls(("get_weather", {"city": "Jakarta", "unit": "celsius"})))
    messages: list[dict[str, object]] = [{"role": "user", "content": "Cuaca di Jakarta?"}]
    if stream:
        args: dict[int, str] = {}
        names: dict[int, str] = {}
        ids: dict[int, str] = {}
        finish = None
        async for chunk in await client.chat.completions.create(model=MODELS[provider], messages=messages,
                                                                tools=TOOLS, stream=True):
            for choice in chunk.choices:
                for tc in choice.delta.tool_calls or []:
                    if tc.id:
                        ids[tc.index] = tc.id
                    if tc.function and tc.function.name:
                        names[tc.index] = tc.function.name
                    if tc.function and tc.function.arguments:
                        args[tc.index] = args.get(tc.index, "") + tc.function.arguments
                finish = choice.finish_reason or finish
        assert finish == "tool_calls"
        call_id, name, arguments = ids[0], names[0], args[0]
    else:
        resp = await client.chat.completions.create(model=MODELS[provider], messages=messages, tools=TOOLS)
        assert resp.choices[0].finish_reason == "tool_calls"
        tc = resp.choices[0].message.tool_calls[0]
        call_id, name, arguments = tc.id, tc.function.name, tc.function.arguments
    assert name == "get_weather" and json.loads(arguments) == {"city": "Jakarta", "unit": "celsius"}
    # Send the tool result back: the provider must receive it in its own shape, tied to the call.
    messages += [{"role": "assistant", "content": None,
                  "tool_calls": [{"id": call_id, "type": "function",
                                  "function": {"name": name, "arguments": arguments}}]},
                 {"role": "tool", "tool_call_id": call_id, "content": "31 derajat, cerah"}]
    fake.script(scenario.text("Cerah, 31 derajat."))
    final = await client.chat.completions.create(model=MODELS[provider], messages=messages, tools=TOOLS)
    assert final.choices[0].message.content == "Cerah, 31 derajat."
    # The provider received the result in its own shape, tied to the call.
    body = fake.last.body
    if provider == "anthropic":
        blocks = [b for m in body["messages"] if isinstance(m["content"], list) for b in m["content"]]
        assert any(b.get("type") == "tool_use" and b.get("id") == call_id for b in blocks), blocks
        results = [b for b in blocks if b.get("type") == "tool_result"]
        assert len(results) == 1 and results[0]["tool_use_id"] == call_id
        assert "31 derajat, cerah" in json.dumps(results[0]["content"])
    elif provider == "google":
        parts = [p for c in body["contents"] for p in c["parts"]]
        assert {"functionResponse": {"name": "get_weather", "response": {"result": "31 derajat, cerah"}}} in parts
    else:
        assert {"role": "tool", "tool_call_id": call_id, "content": "31 derajat, cerah"} in body["messages"]


@pytest.mark.parametrize("provider", ["openai", "google", "qwen", "mistral"])
async def test_embeddings(provider: str, gw: TestClient[web.Request, web.Application], account: Account,
                          migrated: str) -> None:
    model = {"openai": "text-embedding-3-small", "google": "gemini-embedding-001",
             "qwen": "text-embedding-v3", "mistral": "mistral-embed"}[provider]
    resp = await sdk(gw, account.proxy_key).embeddings.create(model=model, input=["satu", "dua tiga"])
    assert [d.index for d in resp.data] == [0, 1]
    assert all(len(d.embedding) > 0 for d in resp.data)
    assert resp.usage.prompt_tokens > 0
    rows = await wait_rows(migrated, 1)
    assert rows[0]["endpoint"] == "embeddings" and rows[0]["provider"] == provider


async def test_embeddings_on_anthropic_is_a_clear_400(gw: TestClient[web.Request, web.Application],
                                                      account: Account) -> None:
    with pytest.raises(openai.BadRequestError, match="no embeddings"):
        await sdk(gw, account.proxy_key).embeddings.create(model="claude-sonnet-4-5", input="x")


async def test_models_lists_only_providers_with_keys(gw: TestClient[web.Request, web.Application],
                                                     migrated: str) -> None:
    from tests.gateway.conftest import make_account

    acct = await make_account(gw, migrated, providers=("anthropic",))
    models = [m async for m in sdk(gw, acct.proxy_key).models.list()]
    assert models and all(m.owned_by == "anthropic" for m in models)
    assert any(m.id.startswith("claude-") for m in models)


async def test_sync_sdk_works_too(gw: TestClient[web.Request, web.Application], account: Account) -> None:
    def call() -> str:
        client = openai.OpenAI(base_url=str(gw.make_url("/v1")), api_key=account.proxy_key, max_retries=0)
        text = client.chat.completions.create(model="gpt-4o-mini",
                                              messages=[{"role": "user", "content": "sync"}])
        parts = [c.choices[0].delta.content or "" for c in client.chat.completions.create(
            model="claude-sonnet-4-5", messages=[{"role": "user", "content": "sync stream"}], stream=True)
            if c.choices]
        return f"{text.choices[0].message.content}|{''.join(parts)}"

    assert await asyncio.to_thread(call) == "echo: sync|echo: sync stream"


async def test_explicit_provider_prefix_and_x_api_key(gw: TestClient[web.Request, web.Application],
                                                      account: Account, fake: FakeState) -> None:
    resp = await gw.post("/v1/chat/completions", headers={"x-api-key": account.proxy_key},
                         json={"model": "anthropic/claude-3-5-haiku-latest",
                               "messages": [{"role": "user", "content": "hi"}]})
    assert resp.status == 200, await resp.text()
    assert resp.headers["x-request-id"]
    assert fake.last.provider == "anthropic" and fake.last.body["model"] == "claude-3-5-haiku-latest"
