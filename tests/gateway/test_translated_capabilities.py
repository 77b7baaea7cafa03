"""Translated lanes send a model only what it accepts (``capabilities.json``): Claude Code's ``thinking`` and
``max_tokens: 32000`` to an OpenAI model without reasoning and a 16,384-token output limit, Codex's
``reasoning`` to a Gemini model without thinking, a large ``max_output_tokens`` to an older Claude; chat's
``reasoning_effort`` and ``max_tokens`` to Claude and Gemini models likewise. The native chat lane (OpenAI-shaped
providers) is left as it came."""

from __future__ import annotations

from typing import Any

import openai
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from tests.fakes import scenario
from tests.fakes.scenario import FakeState
from tests.gateway.conftest import Account, sdk

Client = TestClient[web.Request, web.Application]
MESSAGES_HEADERS = {"anthropic-version": "2023-06-01"}


async def test_messages_to_an_openai_model_without_reasoning(gw: Client, account: Account,
                                                             fake: FakeState) -> None:
    resp = await gw.post("/v1/messages?beta=true", headers={**MESSAGES_HEADERS, "x-api-key": account.proxy_key},
                         json={"model": "gpt-4o-mini", "max_tokens": 32000, "stream": True,
                               "thinking": {"type": "enabled", "budget_tokens": 31999},
                               "messages": [{"role": "user", "content": "satu dua"}]})
    assert resp.status == 200, await resp.text()
    assert b"message_stop" in await resp.read()
    sent = fake.last.body
    assert "reasoning_effort" not in sent and sent["max_completion_tokens"] == 16384


async def test_messages_to_an_openai_model_with_reasoning_keeps_it(gw: Client, account: Account,
                                                                   fake: FakeState) -> None:
    resp = await gw.post("/v1/messages", headers={**MESSAGES_HEADERS, "x-api-key": account.proxy_key},
                         json={"model": "gpt-5-mini", "max_tokens": 32000,
                               "thinking": {"type": "enabled", "budget_tokens": 31999},
                               "messages": [{"role": "user", "content": "satu dua"}]})
    assert resp.status == 200, await resp.text()
    sent = fake.last.body
    assert sent["reasoning_effort"] == "high" and sent["max_completion_tokens"] == 32000


async def test_responses_to_gemini_without_thinking_and_an_older_claude(gw: Client, account: Account,
                                                                        fake: FakeState) -> None:
    auth = {"Authorization": f"Bearer {account.proxy_key}"}
    body = {"input": "satu dua", "reasoning": {"effort": "high"}, "max_output_tokens": 100000, "store": False}
    resp = await gw.post("/v1/responses", headers=auth, json={**body, "model": "gemini-2.0-flash"})
    assert resp.status == 200, await resp.text()
    config = fake.last.body["generationConfig"]
    assert "thinkingConfig" not in config and config["maxOutputTokens"] == 8192
    resp = await gw.post("/v1/responses", headers=auth, json={**body, "model": "claude-3-5-haiku-latest"})
    assert resp.status == 200, await resp.text()
    assert fake.last.body["max_tokens"] == 8192
    resp = await gw.post("/v1/responses", headers=auth, json={**body, "model": "gemini-2.5-flash"})
    assert resp.status == 200, await resp.text()
    config = fake.last.body["generationConfig"]
    assert "thinkingConfig" in config and config["maxOutputTokens"] == 65536


async def test_chat_to_an_older_claude_and_gemini_without_reasoning(gw: Client, account: Account,
                                                                   fake: FakeState) -> None:
    client = sdk(gw, account.proxy_key)
    question: Any = [{"role": "user", "content": "satu dua"}]
    await client.chat.completions.create(model="claude-3-5-haiku-latest", messages=question,
                                         reasoning_effort="high", max_tokens=100000)
    sent = fake.last.body
    assert "thinking" not in sent and sent["max_tokens"] == 8192
    stream = await client.chat.completions.create(model="gemini-2.0-flash", messages=question, stream=True,
                                                  reasoning_effort="high", max_completion_tokens=100000)
    assert [c async for c in stream]
    config = fake.last.body["generationConfig"]
    assert "thinkingConfig" not in config and config["maxOutputTokens"] == 8192
    await client.chat.completions.create(model="claude-sonnet-4-5", messages=question, reasoning_effort="high")
    assert fake.last.body["thinking"]["type"] == "enabled"  # a model with reasoning keeps it


async def test_native_chat_goes_as_it_came(gw: Client, account: Account, fake: FakeState) -> None:
    with pytest.raises(openai.BadRequestError) as caught:  # OpenAI answers for itself, as without Webrana
        await sdk(gw, account.proxy_key).chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "satu dua"}], reasoning_effort="high",
            max_tokens=100000)
    assert "reasoning_effort" in caught.value.message
    sent = fake.last.body
    assert sent["reasoning_effort"] == "high" and sent["max_tokens"] == 100000


async def test_an_alias_next_hop_gets_the_request_as_the_client_sent_it(gw: Client, account: Account,
                                                                        fake: FakeState) -> None:
    resp = await gw.post("/api/aliases", headers=account.headers,
                         json={"name": "wbr/think", "hops": ["claude-3-5-haiku-latest", "gpt-5-mini"]})
    assert resp.status == 201, await resp.text()
    fake.script(scenario.http_error(500, provider="anthropic"))
    await sdk(gw, account.proxy_key).chat.completions.create(
        model="wbr/think", messages=[{"role": "user", "content": "satu dua"}], reasoning_effort="high")
    assert [r.provider for r in fake.requests] == ["anthropic", "openai"]
    assert "thinking" not in fake.requests[0].body and fake.last.body["reasoning_effort"] == "high"
