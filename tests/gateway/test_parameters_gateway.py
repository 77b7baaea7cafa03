"""The conformance table end to end: through the gateway, the fake providers receive what
``providers/conformance.py`` says (they record every request), and what comes back is what the client asked for
(the JSON answer Anthropic gives through the forced tool, the cache savings in the usage row)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from tests.fakes import scenario
from tests.fakes.scenario import FakeState
from tests.gateway.conftest import Account, wait_rows
from webrana_proxy.providers.anthropic_request import ANSWER_TOOL
from webrana_proxy.providers.conformance import EPHEMERAL, IMAGE_URL, JSON_SCHEMA, SCHEMA

Client = TestClient[web.Request, web.Application]
MESSAGES_HEADERS = {"anthropic-version": "2023-06-01"}
ANSWER = {"kota": "Bandung", "suhu": 22.5}


def _bearer(account: Account) -> dict[str, str]:
    return {"Authorization": f"Bearer {account.proxy_key}"}


@pytest.mark.parametrize("stream", [False, True])
async def test_json_schema_reaches_anthropic_as_a_forced_tool_and_comes_back_as_json(
        stream: bool, gw: Client, account: Account, fake: FakeState) -> None:
    fake.script(scenario.tool_calls((ANSWER_TOOL, ANSWER), provider="anthropic"))
    resp = await gw.post("/v1/chat/completions", headers=_bearer(account), json={
        "model": "claude-sonnet-4-5", "stream": stream, "response_format": JSON_SCHEMA,
        "messages": [{"role": "user", "content": "cuaca Bandung"}]})
    assert resp.status == 200, await resp.text()
    raw = await resp.read()
    sent = fake.last.body
    assert sent["tools"][-1]["name"] == ANSWER_TOOL and sent["tools"][-1]["input_schema"] == SCHEMA
    assert sent["tool_choice"] == {"type": "tool", "name": ANSWER_TOOL} and "response_format" not in sent
    if stream:
        chunks = [orjson.loads(line[6:]) for line in raw.split(b"\n")
                  if line.startswith(b"data: {")]
        content = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
        finish = [c["choices"][0]["finish_reason"] for c in chunks if c["choices"] and
                  c["choices"][0]["finish_reason"]]
        assert not any(c["choices"][0]["delta"].get("tool_calls") for c in chunks if c["choices"])
    else:
        choice = orjson.loads(raw)["choices"][0]
        content, finish = choice["message"]["content"], [choice["finish_reason"]]
        assert "tool_calls" not in choice["message"]
    assert orjson.loads(content) == ANSWER and finish == ["stop"]


async def test_messages_cache_markers_and_thinking_reach_qwen_and_the_savings_reach_the_row(
        gw: Client, account: Account, fake: FakeState, migrated: str) -> None:
    fake.script(scenario.text("Baik.", cached_tokens=40, provider="qwen"))
    resp = await gw.post("/v1/messages", headers={**MESSAGES_HEADERS, "x-api-key": account.proxy_key}, json={
        "model": "qwen-plus", "max_tokens": 2000, "stream": True,
        "thinking": {"type": "enabled", "budget_tokens": 1024},
        "system": [{"type": "text", "text": "Kamu asisten yang teliti.", "cache_control": EPHEMERAL}],
        "messages": [{"role": "user", "content": [{"type": "text", "text": "halo", "cache_control": EPHEMERAL}]}]})
    assert resp.status == 200, await resp.text()
    assert b"message_stop" in await resp.read()
    sent: dict[str, Any] = fake.last.body
    assert sent["messages"][0]["content"][0]["cache_control"] == EPHEMERAL
    assert sent["messages"][1]["content"][0]["cache_control"] == EPHEMERAL
    assert (sent["enable_thinking"], sent["thinking_budget"]) == (True, 2048)  # 1,024 is "low"
    assert "reasoning_effort" not in sent
    row = (await wait_rows(migrated, 1))[0]
    assert (row["provider"], row["cached_tokens"]) == ("qwen", 40)


async def test_chat_cache_markers_reach_anthropic_and_leave_openai_clean(gw: Client, account: Account,
                                                                          fake: FakeState) -> None:
    messages = [{"role": "system", "content": [{"type": "text", "text": "Kamu asisten.",
                                                "cache_control": EPHEMERAL}]},
                {"role": "user", "content": [{"type": "text", "text": "halo", "cache_control": EPHEMERAL}]}]
    resp = await gw.post("/v1/chat/completions", headers=_bearer(account),
                         json={"model": "claude-sonnet-4-5", "messages": messages})
    assert resp.status == 200, await resp.text()
    sent = fake.last.body
    assert sent["system"] == [{"type": "text", "text": "Kamu asisten.", "cache_control": EPHEMERAL}]
    assert sent["messages"][0]["content"] == [{"type": "text", "text": "halo", "cache_control": EPHEMERAL}]
    resp = await gw.post("/v1/chat/completions", headers=_bearer(account),
                         json={"model": "gpt-4o-mini", "messages": messages})
    assert resp.status == 200, await resp.text()
    assert b"cache_control" not in orjson.dumps(fake.last.body)


async def test_responses_parameters_reach_deepseek_mistral_and_gemini(gw: Client, account: Account,
                                                                     fake: FakeState) -> None:
    resp = await gw.post("/v1/responses", headers=_bearer(account), json={
        "model": "deepseek-chat", "input": "halo", "store": False, "reasoning": {"effort": "none"},
        "text": {"format": {"type": "json_schema", "name": "response", "schema": SCHEMA}}})
    assert resp.status == 200, await resp.text()
    sent = fake.last.body
    assert sent["thinking"] == {"type": "disabled"} and sent["response_format"] == {"type": "json_object"}
    assert sent["messages"][0]["role"] == "system" and "reasoning_effort" not in sent
    resp = await gw.post("/v1/chat/completions", headers=_bearer(account), json={
        "model": "mistral-small-latest", "seed": 7, "user": "u-42", "reasoning_effort": "low",
        "messages": [{"role": "user", "content": "halo"}]})
    assert resp.status == 200, await resp.text()
    sent = fake.last.body
    assert (sent["random_seed"], sent["reasoning_effort"]) == (7, "high") and not {"seed", "user"} & set(sent)
    resp = await gw.post("/v1/responses", headers=_bearer(account), json={
        "model": "gemini-2.5-flash", "store": False, "top_p": 0.5, "reasoning": {"effort": "low"},
        "input": [{"role": "user", "content": [{"type": "input_text", "text": "apa ini?"},
                                               {"type": "input_image", "image_url": "data:image/png;base64,iVBO"}]}]})
    assert resp.status == 200, await resp.text()
    config = fake.last.body["generationConfig"]
    assert (config["topP"], config["thinkingConfig"]) == (0.5, {"thinkingBudget": 1024})


async def test_an_image_url_gemini_cannot_read_is_a_400_and_nothing_is_fetched(gw: Client, account: Account,
                                                                               fake: FakeState) -> None:
    resp = await gw.post("/v1/chat/completions", headers=_bearer(account), json={
        "model": "gemini-2.5-flash", "messages": [{"role": "user", "content": [
            {"type": "text", "text": "apa ini?"}, {"type": "image_url", "image_url": {"url": IMAGE_URL}}]}]})
    assert resp.status == 400, await resp.text()
    error = (await resp.json())["error"]
    assert error["param"] == "messages[0].content[1].image_url" and "does not fetch" in error["message"]
    assert fake.requests == []  # nothing went upstream (and Webrana fetched nothing)
