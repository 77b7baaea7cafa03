"""Every token type priced end to end: calls through each gateway endpoint against the fakes, with usage blocks that
carry cached, cache-write and reasoning tokens, land in ``proxy_requests`` with those counts, the cost in nano-USD and
micro-rupiah, the exchange rate and the price used; ``usage_daily`` sums them. Each expected cost is worked out by
hand below from the list prices (USD per million tokens = micro-USD per token)."""

from __future__ import annotations

from typing import Any

import asyncpg
import orjson
from aiohttp import web
from aiohttp.test_utils import TestClient
from prometheus_client.parser import text_string_to_metric_families

from tests.fakes import scenario
from tests.fakes.scenario import FakeState
from tests.gateway.conftest import Account, sdk, wait_rows
from webrana_proxy.providers.catalogue import read_data

Client = TestClient[web.Request, web.Application]
RATE = 16_500  # the default WEBRANA_USD_TO_IDR the tests run with


def versions() -> tuple[str, str]:
    """The price versions rows name: the generated data's and the reviewed overrides'."""
    source, overrides = read_data()
    return (f"genai-prices {source['source_version']} {source['generated_on']}",
            f"overrides {overrides['reviewed_on']}")


def idr_micro(usd_nano: int) -> int:
    """nano-USD x 16,500 IDR/USD = micro-rupiah / 1000 (every cost here is a whole number of nano-USD)."""
    return usd_nano * RATE // 1000


async def _daily(db_url: str, user_id: str) -> dict[str, int]:
    conn = await asyncpg.connect(db_url)
    try:
        row = await conn.fetchrow(
            """SELECT sum(requests)::bigint AS requests, sum(prompt_tokens)::bigint AS prompt_tokens,
                      sum(completion_tokens)::bigint AS completion_tokens, sum(cached_tokens)::bigint AS cached_tokens,
                      sum(cache_write_tokens)::bigint AS cache_write_tokens,
                      sum(reasoning_tokens)::bigint AS reasoning_tokens, sum(cost_usd_nano)::bigint AS cost_usd_nano,
                      sum(cost_idr_micro)::bigint AS cost_idr_micro, sum(fallback_requests)::bigint AS fallback_requests
               FROM usage_daily WHERE user_id = $1::uuid""", user_id)
    finally:
        await conn.close()
    assert row is not None
    return dict(row)


async def test_every_endpoint_prices_every_token_type(gw: Client, account: Account, fake: FakeState,
                                                      migrated: str) -> None:
    catalogue, reviewed = versions()
    client = sdk(gw, account.proxy_key)

    # 1. Chat, not streamed, gpt-6-sol ($2 in, $0.20 cache read, $2.50 cache write, $10 out).
    # The fake counts 4 prompt words + 1,000 cached + 200 written = 1,204 prompt tokens; 5 answer words + 300
    # reasoning = 305 completion tokens. 4 x 2 + 1,000 x 0.2 + 200 x 2.5 + 305 x 10 = 3,758 micro-USD.
    fake.script(scenario.text("a b c d e", cached_tokens=1_000, cache_creation_tokens=200, reasoning_tokens=300))
    await client.chat.completions.create(model="gpt-6-sol",
                                         messages=[{"role": "user", "content": "satu dua tiga empat"}])

    # 2. Chat, streamed, gpt-6-luna ($0.10 in, $0.01 cache read, $0.125 cache write, $0.50 out).
    # 1 + 2,000 cached + 1,000 written = 3,001 prompt; 3 + 100 reasoning = 103 completion.
    # 1 x 0.1 + 2,000 x 0.01 + 1,000 x 0.125 + 103 x 0.5 = 0.1 + 20 + 125 + 51.5 = 196.6 micro-USD.
    fake.script(scenario.text("satu dua tiga", cached_tokens=2_000, cache_creation_tokens=1_000,
                              reasoning_tokens=100))
    stream = await client.chat.completions.create(model="gpt-6-luna", stream=True,
                                                  messages=[{"role": "user", "content": "halo"}])
    async for _ in stream:
        pass

    # 3. Embeddings: 10 tokens of text-embedding-3-small ($0.02) = 0.2 micro-USD = 200 nano-USD, not 0.
    await client.embeddings.create(model="text-embedding-3-small",
                                   input="satu dua tiga empat lima enam tujuh delapan sembilan sepuluh")

    # 4. Messages, streamed, native lane, claude-sonnet-5-5 ($2 in, $0.10 cache read, $2.50 cache write, $10 out).
    # input 2 words + 1,000 written + 3,000 read = 4,002 prompt; 2 words + 50 thinking (output_tokens_details) = 52.
    # 2 x 2 + 3,000 x 0.1 + 1,000 x 2.5 + 52 x 10 = 4 + 300 + 2,500 + 520 = 3,324 micro-USD.
    fake.script(scenario.text("ya baik", cached_tokens=3_000, cache_creation_tokens=1_000, reasoning_tokens=50))
    resp = await gw.post("/v1/messages", headers={"x-api-key": account.proxy_key, "anthropic-version": "2023-06-01"},
                         data=orjson.dumps({"model": "claude-sonnet-5-5", "max_tokens": 100, "stream": True,
                                            "messages": [{"role": "user", "content": "tolong jelaskan"}]}))
    assert resp.status == 200, await resp.text()
    raw = await resp.read()
    assert b'"thinking_tokens":50' in raw  # passed through as it came

    # 5. Responses, native lane, gpt-5.5 ($5 in, $0.50 cache read, $30 out): 2 words + 500 cached = 502 input,
    # 2 words + 200 reasoning = 202 output. 2 x 5 + 500 x 0.5 + 202 x 30 = 10 + 250 + 6,060 = 6,320 micro-USD.
    fake.script(scenario.text("baik sekali", cached_tokens=500, reasoning_tokens=200))
    await client.responses.create(model="gpt-5.5", input="halo semua")

    # 6. Qwen thinking mode asked (enable_thinking), no reasoning count in the answer: qwen-plus' thinking output
    # price ($4, not $1.20) from the reviewed overrides. 1 x 0.4 + 2 x 4 = 8.4 micro-USD.
    fake.script(scenario.text("satu dua"))
    await client.chat.completions.create(model="qwen-plus", messages=[{"role": "user", "content": "halo"}],
                                         extra_body={"enable_thinking": True})

    # 7. A model nobody priced: charged as OpenAI's dearest current general model (gpt-6.2-astra, $8 in, $40 out),
    # marked fallback and counted. 1 prompt word, "echo: halo" = 2 words: 1 x 8 + 2 x 40 = 88 micro-USD.
    await client.chat.completions.create(model="gpt-9-mystery", messages=[{"role": "user", "content": "halo"}])
    await client.close()

    want: dict[str, dict[str, Any]] = {
        "gpt-6-sol": dict(prompt_tokens=1_204, completion_tokens=305, cached_tokens=1_000, cache_write_tokens=200,
                          reasoning_tokens=300, cost_usd_nano=3_758_000, price_source="catalogue",
                          price_version=catalogue, stream=False, endpoint="chat"),
        "gpt-6-luna": dict(prompt_tokens=3_001, completion_tokens=103, cached_tokens=2_000, cache_write_tokens=1_000,
                           reasoning_tokens=100, cost_usd_nano=196_600, price_source="catalogue",
                           price_version=catalogue, stream=True, endpoint="chat"),
        "text-embedding-3-small": dict(prompt_tokens=10, completion_tokens=0, cached_tokens=0, cache_write_tokens=0,
                                       reasoning_tokens=0, cost_usd_nano=200, price_source="catalogue",
                                       price_version=catalogue, stream=False, endpoint="embeddings"),
        "claude-sonnet-5-5": dict(prompt_tokens=4_002, completion_tokens=52, cached_tokens=3_000,
                                  cache_write_tokens=1_000, reasoning_tokens=50, cost_usd_nano=3_324_000,
                                  price_source="catalogue", price_version=catalogue, stream=True,
                                  endpoint="messages"),
        "gpt-5.5": dict(prompt_tokens=502, completion_tokens=202, cached_tokens=500, cache_write_tokens=0,
                        reasoning_tokens=200, cost_usd_nano=6_320_000, price_source="catalogue",
                        price_version=catalogue, stream=False, endpoint="responses"),
        "qwen-plus": dict(prompt_tokens=1, completion_tokens=2, cached_tokens=0, cache_write_tokens=0,
                          reasoning_tokens=0, cost_usd_nano=8_400, price_source="override", price_version=reviewed,
                          stream=False, endpoint="chat"),
        "gpt-9-mystery": dict(prompt_tokens=1, completion_tokens=2, cached_tokens=0, cache_write_tokens=0,
                              reasoning_tokens=0, cost_usd_nano=88_000, price_source="fallback",
                              price_version=catalogue, stream=False, endpoint="chat"),
    }
    rows = {r["model"]: r for r in await wait_rows(migrated, len(want))}
    assert set(rows) == set(want)
    for model, expected in want.items():
        row = rows[model]
        got = {name: row[name] for name in expected}
        assert got == expected, model
        assert row["total_tokens"] == row["prompt_tokens"] + row["completion_tokens"], model
        assert (row["usd_to_idr"], row["cost_idr_micro"]) == (RATE, idr_micro(expected["cost_usd_nano"])), model
        assert row["cost_idr"] == 0 and row["tokens_estimated"] is False and row["status"] == 200, model
    assert rows["text-embedding-3-small"]["cost_idr_micro"] == 3_300  # Rp 0,0033, not Rp 0

    # The daily roll-up sums the same figures (one user, one day).
    daily = await _daily(migrated, account.user_id)
    assert daily == {
        "requests": len(want),
        **{name: sum(w[name] for w in want.values())
           for name in ("prompt_tokens", "completion_tokens", "cached_tokens", "cache_write_tokens",
                        "reasoning_tokens", "cost_usd_nano")},
        "cost_idr_micro": sum(idr_micro(w["cost_usd_nano"]) for w in want.values()),
        "fallback_requests": 1,
    }

    # /metrics counts the unpriced call by model.
    text = await (await gw.get("/metrics")).text()
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for family in text_string_to_metric_families(text) for s in family.samples}
    assert samples[("webrana_unpriced_calls_total", (("model", "gpt-9-mystery"), ("provider", "openai")))] == 1
    assert not any(name == "webrana_unpriced_calls_total" and dict(labels)["model"] != "gpt-9-mystery"
                   for name, labels in samples)
