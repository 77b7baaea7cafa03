"""Translated lanes send a model only what it accepts (``capabilities.json``): Claude Code's ``thinking`` and
``max_tokens: 32000`` to an OpenAI model without reasoning and a 16,384-token output limit, Codex's
``reasoning`` to a Gemini model without thinking, a large ``max_output_tokens`` to an older Claude."""

from __future__ import annotations

from aiohttp import web
from aiohttp.test_utils import TestClient

from tests.fakes.scenario import FakeState
from tests.gateway.conftest import Account

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
