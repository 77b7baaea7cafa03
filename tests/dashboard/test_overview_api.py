"""The API answers the console reads on its busiest paths: ``GET /api/overview`` (everything the overview page
shows, in one call) and ``GET /api/meta`` (the demo flag, public)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import asyncpg
from aiohttp import web
from aiohttp.test_utils import TestClient

from tests.conftest import Api, serve_app
from tests.gateway.conftest import PROVIDER_KEYS
from webrana_proxy.app import create_app
from webrana_proxy.settings import Settings

JAKARTA = timezone(timedelta(hours=7))


async def test_overview_answers_the_whole_page_in_one_call(api: Api, migrated: str) -> None:
    alice, bob = await api.register("alice-ov@example.co.id"), await api.register("bob-ov@example.co.id")
    auth = api.auth(alice)
    today = datetime.now(UTC).astimezone(JAKARTA).date()
    month_start = today.replace(day=1)
    chart_start = today - timedelta(days=29)
    before_month = month_start - timedelta(days=1)
    conn = await asyncpg.connect(migrated)
    try:
        await conn.execute("UPDATE users SET monthly_requests_override = 1234 WHERE id = $1",
                           alice["user"]["id"])
        await conn.executemany(
            """INSERT INTO usage_daily (user_id, day, provider, model, requests, prompt_tokens, completion_tokens,
                                        total_tokens, cost_idr) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)""", [
                (alice["user"]["id"], today, "openai", "gpt-4o-mini", 3, 10, 5, 15, 100),
                (alice["user"]["id"], today, "anthropic", "claude-sonnet-4-5", 2, 20, 10, 30, 300),
                (alice["user"]["id"], before_month, "openai", "gpt-4o-mini", 11, 1, 1, 2, 7),
                (alice["user"]["id"], today - timedelta(days=40), "openai", "gpt-4o-mini", 7, 1, 1, 2, 7),
                (bob["user"]["id"], today, "openai", "gpt-4o-mini", 99, 1, 1, 2, 7),
            ])
    finally:
        await conn.close()
    resp = await api.client.post("/api/provider-keys", headers=auth,
                                 json={"provider": "openai", "name": "main", "key": PROVIDER_KEYS["openai"]})
    assert resp.status == 201, await resp.text()
    for name in ("laptop", "server"):  # the free plan's one key, revoked, then another
        resp = await api.client.post("/api/proxy-keys", headers=auth, json={"name": name})
        assert resp.status == 201, await resp.text()
        if name == "laptop":
            key_id = (await resp.json())["id"]
            assert (await api.client.delete(f"/api/proxy-keys/{key_id}", headers=auth)).status == 200

    resp = await api.client.get("/api/overview", headers=auth)
    assert resp.status == 200, await resp.text()
    ov = await resp.json()
    assert ov["user"]["email"] == "alice-ov@example.co.id" and ov["user"]["plan"] == "free"
    assert ov["plan"]["id"] == "free" and ov["plan"]["monthly_requests"] == 1000 and "total_idr" in ov["plan"]
    assert ov["monthly_requests"] == 1234  # the admin's override, not the plan's figure
    month_extra = 11 if before_month >= month_start else 0  # never: the day before the month is not in it
    assert ov["month"] == {"from": month_start.isoformat(), "to": today.isoformat(), "requests": 5 + month_extra,
                           "errors": 0, "prompt_tokens": 30, "completion_tokens": 15, "total_tokens": 45,
                           # rolled up before sql/0006: whole rupiah in cost_idr, read as micro-rupiah
                           "cost_idr": 400, "cost_idr_micro": 400_000_000, "cost_usd_nano": 0,
                           "cached_tokens": 0, "cache_write_tokens": 0, "reasoning_tokens": 0,
                           "fallback_requests": 0}
    days = [d["date"] for d in ov["by_day"]]
    assert len(days) == 30 and days[0] == chart_start.isoformat() and days[-1] == today.isoformat()
    in_chart = 11 if before_month >= chart_start else 0  # the last month's day shows while it is within 30 days
    assert sum(d["requests"] for d in ov["by_day"]) == 5 + in_chart  # bob's and the 40-day-old rows are not
    assert (ov["provider_keys"], ov["proxy_keys"], ov["made_call"], ov["demo"]) == (1, 1, True, False)

    newcomer = await api.register("new-ov@example.co.id")
    ov = await (await api.client.get("/api/overview", headers=api.auth(newcomer))).json()
    assert (ov["provider_keys"], ov["proxy_keys"], ov["made_call"], ov["monthly_requests"]) == (0, 0, False, 1000)
    assert ov["month"]["requests"] == 0 and all(d["requests"] == 0 for d in ov["by_day"])

    assert (await api.client.get("/api/overview")).status == 401


async def test_meta_tells_whether_the_providers_are_demo_fakes(
        client: TestClient[web.Request, web.Application], base_env: dict[str, str]) -> None:
    resp = await client.get("/api/meta")
    assert resp.status == 200
    body = await resp.json()
    assert body["demo"] is False and body["version"]
    assert resp.headers["Cache-Control"] == "public, max-age=60"
    async with serve_app(create_app(Settings.from_env({**base_env, "WEBRANA_DEMO": "true"}))) as demo:
        assert (await (await demo.get("/api/meta")).json())["demo"] is True
        tokens = await Api(demo).register("demo-ov@example.co.id")
        ov = await (await demo.get("/api/overview", headers=Api.auth(tokens))).json()
        assert ov["demo"] is True
