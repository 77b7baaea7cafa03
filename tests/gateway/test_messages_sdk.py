"""The official anthropic SDK against Webrana's /v1/messages, for every provider (Claude natively, the others
translated), against fake providers that speak the real wire formats."""

from __future__ import annotations

import json
from typing import Any

import anthropic
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from tests.fakes import scenario
from tests.fakes.scenario import FakeState
from tests.fakes.server import fake_name
from tests.gateway.conftest import MODELS, Account, tool_result_seen, wait_rows

PROVIDERS = tuple(MODELS)
TOOLS: list[Any] = [{"name": "get_weather", "description": "Weather in a city",
                     "input_schema": {"type": "object", "properties": {"city": {"type": "string"}},
                                      "required": ["city"]}}]
Client = TestClient[web.Request, web.Application]


def claude(client: Client, key: str) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(base_url=str(client.make_url("")), api_key=key, max_retries=0, timeout=20)


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_create(provider: str, gw: Client, account: Account, fake: FakeState, migrated: str) -> None:
    msg = await claude(gw, account.proxy_key).messages.create(
        model=MODELS[provider], max_tokens=100, system="Be brief.",
        messages=[{"role": "user", "content": "halo dari Jakarta"}])
    assert [b.type for b in msg.content] == ["text"]
    assert msg.content[0].text == "echo: halo dari Jakarta"  # type: ignore[union-attr]
    assert msg.stop_reason == "end_turn" and msg.role == "assistant"
    upstream = fake.last
    assert upstream.provider == fake_name(provider) and upstream.usage is not None
    assert msg.usage.output_tokens == upstream.usage.completion_tokens
    assert msg.usage.input_tokens + (msg.usage.cache_read_input_tokens or 0) \
        + (msg.usage.cache_creation_input_tokens or 0) == upstream.usage.prompt_tokens
    rows = await wait_rows(migrated, 1)
    assert len(rows) == 1
    row = rows[0]
    assert (row["endpoint"], row["provider"], row["status"], row["stream"], row["tokens_estimated"]) == \
        ("messages", provider, 200, False, False)
    assert (row["prompt_tokens"], row["completion_tokens"]) == (upstream.usage.prompt_tokens,
                                                                upstream.usage.completion_tokens)


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_stream(provider: str, gw: Client, account: Account, fake: FakeState, migrated: str) -> None:
    async with claude(gw, account.proxy_key).messages.stream(
            model=MODELS[provider], max_tokens=100,
            messages=[{"role": "user", "content": "satu dua tiga empat lima"}]) as stream:
        pieces = [text async for text in stream.text_stream]
        final = await stream.get_final_message()
    assert "".join(pieces) == "echo: satu dua tiga empat lima" and len(pieces) > 1
    assert final.stop_reason == "end_turn"
    upstream = fake.last.usage
    assert upstream is not None and final.usage.output_tokens == upstream.completion_tokens
    rows = await wait_rows(migrated, 1)
    assert len(rows) == 1
    assert (rows[0]["endpoint"], rows[0]["stream"], rows[0]["status"], rows[0]["tokens_estimated"]) == \
        ("messages", True, 200, False)
    assert (rows[0]["prompt_tokens"], rows[0]["completion_tokens"]) == (upstream.prompt_tokens,
                                                                        upstream.completion_tokens)


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("stream", [False, True])
async def test_tools_round_trip(provider: str, stream: bool, gw: Client, account: Account, fake: FakeState) -> None:
    client = claude(gw, account.proxy_key)
    fake.script(scenario.tool_calls(("get_weather", {"city": "Jakarta", "unit": "celsius"})))
    question: list[Any] = [{"role": "user", "content": "Cuaca di Jakarta?"}]
    kwargs: dict[str, Any] = {"model": MODELS[provider], "max_tokens": 200, "tools": TOOLS,
                              "tool_choice": {"type": "auto"}, "messages": question}
    if stream:
        async with client.messages.stream(**kwargs) as s:
            msg = await s.get_final_message()
    else:
        msg = await client.messages.create(**kwargs)
    assert msg.stop_reason == "tool_use"
    uses = [b for b in msg.content if b.type == "tool_use"]
    assert len(uses) == 1
    use = uses[0]
    assert use.name == "get_weather" and use.input == {"city": "Jakarta", "unit": "celsius"}  # type: ignore[union-attr]
    sent = fake.last.body
    assert json.dumps(sent).count("get_weather") >= 1  # the tool definition reached the provider
    answer = await client.messages.create(model=MODELS[provider], max_tokens=200, tools=TOOLS, messages=[
        *question,
        {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in msg.content]},  # type: ignore[misc]
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "31 C, cerah"}]}])
    assert tool_result_seen(fake.last.body, use.id, "get_weather") == "31 C, cerah"
    assert answer.stop_reason == "end_turn"


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_count_tokens(provider: str, gw: Client, account: Account, fake: FakeState, migrated: str) -> None:
    client = claude(gw, account.proxy_key)
    raw = await client.messages.with_raw_response.count_tokens(
        model=MODELS[provider], system="Be brief.", messages=[{"role": "user", "content": "satu dua tiga"}])
    counted = await raw.parse()
    estimated = raw.headers.get("x-webrana-estimated")
    if provider in ("anthropic", "google"):  # the provider's own count: the fake counts words
        assert counted.input_tokens == 5 and estimated is None
        assert fake.last.provider == fake_name(provider)
    else:
        assert counted.input_tokens > 0 and estimated == "true"
        assert not fake.requests  # nothing went upstream
    rows = await wait_rows(migrated, 1)
    assert len(rows) == 1
    assert (rows[0]["endpoint"], rows[0]["provider"], rows[0]["status"], rows[0]["total_tokens"],
            rows[0]["cost_idr"]) == ("count_tokens", provider, 200, 0, 0)
