"""/metrics exposes the gateway's own series after real calls."""

from __future__ import annotations

from aiohttp import web
from aiohttp.test_utils import TestClient
from prometheus_client.parser import text_string_to_metric_families

from tests.fakes import scenario
from tests.fakes.scenario import FakeState
from tests.gateway.conftest import Account, sdk
from webrana_proxy.state import METRICS


async def test_metrics_count_calls_tokens_and_overhead(gw: TestClient[web.Request, web.Application],
                                                       account: Account) -> None:
    client = sdk(gw, account.proxy_key)
    for _ in range(3):
        await client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "satu dua"}])
    await client.chat.completions.create(model="gpt-4o-mini-2099-01-01-made-up",
                                         messages=[{"role": "user", "content": "x"}])
    text = await (await gw.get("/metrics")).text()
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for family in text_string_to_metric_families(text) for s in family.samples}
    ok = ("webrana_requests_total", (("endpoint", "chat"), ("model", "gpt-4o-mini"), ("provider", "openai"),
                                     ("status", "200")))
    assert samples[ok] == 3
    # A model outside the catalogue is counted under "other": clients cannot grow the label set.
    other = ("webrana_requests_total", (("endpoint", "chat"), ("model", "other"), ("provider", "openai"),
                                        ("status", "200")))
    assert samples[other] == 1
    assert samples[("webrana_gateway_overhead_seconds_count", ())] == 4
    prompt = ("webrana_tokens_total", (("kind", "prompt"), ("model", "gpt-4o-mini"), ("provider", "openai")))
    assert samples[prompt] > 0
    assert ("webrana_usage_queue_depth", ()) in samples and ("webrana_open_streams", ()) in samples


async def test_open_streams_gauge_follows_streams(gw: TestClient[web.Request, web.Application], account: Account,
                                                  fake: FakeState) -> None:
    def gauge() -> float | None:
        return gw.app[METRICS].registry.get_sample_value("webrana_open_streams")

    fake.script(scenario.paced(0.05))
    stream = await sdk(gw, account.proxy_key).chat.completions.create(
        model="gpt-4o-mini", stream=True, messages=[{"role": "user", "content": "a b c d e f g h"}])
    seen = []
    async for _ in stream:
        seen.append(gauge())
    assert seen and max(v or 0 for v in seen) == 1
    assert gauge() == 0
