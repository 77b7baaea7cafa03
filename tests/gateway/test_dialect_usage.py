"""The token breakdown of the prices issue (cache reads, cache writes, reasoning) reaches the usage table from
the agents' dialects: /v1/responses on the native lane (OpenAI) and the translated lanes, /v1/messages on the
native lane (Anthropic), streamed and not; and the Responses answer reports the same breakdown."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from tests.fakes import scenario
from tests.fakes.scenario import FakeState
from tests.gateway.conftest import Account, wait_rows

Client = TestClient[web.Request, web.Application]
CACHED, WRITTEN, REASONING = 7, 5, 3
# (model, fake, what the provider can report: cache reads, cache writes, reasoning)
RESPONSES_CASES = [
    pytest.param("gpt-5-mini", "openai", (CACHED, 0, REASONING), id="openai-native"),
    pytest.param("claude-sonnet-4-5", "anthropic", (CACHED, WRITTEN, REASONING), id="anthropic-translated"),
    pytest.param("gemini-2.5-flash", "gemini", (CACHED, 0, REASONING), id="gemini-translated"),
    pytest.param("qwen-plus", "qwen", (CACHED, 0, 0), id="qwen-translated"),  # the fake Qwen: no thinking mode
]


def _answer(raw: bytes, stream: bool) -> Any:
    if not stream:
        return orjson.loads(raw)
    events = [orjson.loads(line[6:]) for line in raw.split(b"\n") if line.startswith(b"data: ")]
    return events[-1]["response"]


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize(("model", "fake_name", "expected"), RESPONSES_CASES)
async def test_responses_usage_rows_carry_cache_and_reasoning(stream: bool, model: str, fake_name: str,
                                                             expected: tuple[int, int, int], gw: Client,
                                                             account: Account, fake: FakeState,
                                                             migrated: str) -> None:
    fake.script(scenario.text("Baik, sudah.", cached_tokens=CACHED, cache_creation_tokens=WRITTEN,
                              reasoning_tokens=REASONING, provider=fake_name))
    resp = await gw.post("/v1/responses", json={"model": model, "input": "satu dua tiga", "stream": stream,
                                                "store": False},
                         headers={"Authorization": f"Bearer {account.proxy_key}"})
    assert resp.status == 200, await resp.text()
    usage = _answer(await resp.read(), stream)["usage"]
    rows = await wait_rows(migrated, 1)
    row = rows[0]
    assert (row["endpoint"], row["tokens_estimated"]) == ("responses", False)
    assert (row["cached_tokens"], row["cache_write_tokens"], row["reasoning_tokens"]) == expected
    assert usage["input_tokens_details"]["cached_tokens"] == expected[0]
    assert usage["output_tokens_details"]["reasoning_tokens"] == expected[2]
    assert (usage["input_tokens"], usage["output_tokens"]) == (row["prompt_tokens"], row["completion_tokens"])


@pytest.mark.parametrize("stream", [False, True])
async def test_messages_native_usage_rows_carry_cache_reads_and_writes(stream: bool, gw: Client,
                                                                      account: Account, fake: FakeState,
                                                                      migrated: str) -> None:
    fake.script(scenario.text("Baik.", cached_tokens=CACHED, cache_creation_tokens=WRITTEN, provider="anthropic"))
    resp = await gw.post("/v1/messages", json={"model": "claude-sonnet-4-5", "max_tokens": 100, "stream": stream,
                                               "messages": [{"role": "user", "content": "satu dua"}]},
                         headers={"x-api-key": account.proxy_key, "anthropic-version": "2023-06-01"})
    assert resp.status == 200, await resp.text()
    await resp.read()
    row = (await wait_rows(migrated, 1))[0]
    assert (row["endpoint"], row["provider"]) == ("messages", "anthropic")
    assert (row["cached_tokens"], row["cache_write_tokens"], row["reasoning_tokens"]) == (CACHED, WRITTEN, 0)
    seen = fake.last.usage
    assert seen is not None and row["prompt_tokens"] == seen.prompt_tokens  # reads and writes are in the input
