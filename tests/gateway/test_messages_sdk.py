"""The official anthropic SDK against Webrana's /v1/messages, for every provider (Claude natively, the others
translated), against fake providers that speak the real wire formats."""

from __future__ import annotations

import json
from typing import Any

import anthropic
import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from tests.fakes import scenario
from tests.fakes.scenario import FakeState
from tests.gateway.conftest import MODELS, PROVIDER_KEYS, Account, wait_rows

PROVIDERS = tuple(MODELS)
FAKE_NAME = {"openai": "openai", "anthropic": "anthropic", "google": "gemini", "qwen": "qwen"}
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
    assert upstream.provider == FAKE_NAME[provider] and upstream.usage is not None
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
