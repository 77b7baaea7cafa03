"""Admins' price overrides: admin only, validated, audited in the same transaction, in force at once (this
replica reloads before answering; the others on the key-cache channel's ``prices`` signal)."""

from __future__ import annotations

from datetime import UTC, datetime

from tests.billing.conftest import Billing
from webrana_proxy.providers.base import Usage
from webrana_proxy.state import PRICES

USAGE = Usage(prompt_tokens=1_000_000, completion_tokens=1_000_000, total_tokens=2_000_000)


async def test_an_admin_prices_a_model_released_this_morning_and_it_is_audited(billing: Billing) -> None:
    admin, _ = await billing.admin()
    book = billing.client.app[PRICES]
    before, unpriced = book.price("openai", "gpt-7-preview", USAGE, 16_500)
    assert (before.source, unpriced) == ("fallback", True)

    user = await billing.user()
    body = {"provider": "openai", "model_pattern": "gpt-7*", "prices": {"input": "3", "output": "12"},
            "source": "https://openai.com/api/pricing", "note": "launched today"}
    resp = await billing.client.post("/api/admin/prices", json=body, headers=user)
    assert resp.status == 403

    resp = await billing.client.post("/api/admin/prices", json=body, headers=admin)
    assert resp.status == 201, await resp.text()
    created = await resp.json()
    priced, unpriced = book.price("openai", "gpt-7-preview", USAGE, 16_500)
    # 1M x $3 + 1M x $12 = $15 = 15,000,000,000 nano-USD
    assert (priced.cost_usd_nano, priced.source, unpriced) == (15_000_000_000, "override", False)
    assert priced.version == f"db {created['id']}"

    body["prices"] = {"input": "2", "output": "8"}
    resp = await billing.client.put(f"/api/admin/prices/{created['id']}", json=body, headers=admin)
    assert resp.status == 200, await resp.text()
    assert book.price("openai", "gpt-7-preview", USAGE, 16_500)[0].cost_usd_nano == 10_000_000_000
    listed = await billing.get("/api/admin/prices", admin)
    assert [p["model_pattern"] for p in listed["data"]] == ["gpt-7*"]

    resp = await billing.client.delete(f"/api/admin/prices/{created['id']}", headers=admin)
    assert resp.status == 204
    assert book.price("openai", "gpt-7-preview", USAGE, 16_500)[0].source == "fallback"
    actions = [r["action"] for r in await billing.db.fetch("SELECT action FROM audit_log ORDER BY created_at")]
    assert actions == ["price.override.create", "price.override.update", "price.override.delete"]


async def test_an_override_from_a_future_date_waits_for_it(billing: Billing) -> None:
    admin, _ = await billing.admin()
    body = {"provider": "google", "model_pattern": "gemini-4-argon", "prices": {"input": "1", "output": "5"},
            "valid_from": "2099-01-01T00:00:00+07:00", "note": "negotiated from 2099"}
    resp = await billing.client.post("/api/admin/prices", json=body, headers=admin)
    assert resp.status == 201, await resp.text()
    book = billing.client.app[PRICES]
    assert book.price("google", "gemini-4-argon", USAGE, 16_500)[0].source == "catalogue"
    later = datetime(2099, 1, 2, tzinfo=UTC)
    assert book.price("google", "gemini-4-argon", USAGE, 16_500, later)[0].source == "override"


async def test_bad_overrides_are_refused_naming_the_field(billing: Billing) -> None:
    admin, _ = await billing.admin()
    bad = [({"provider": "nope", "model_pattern": "x", "prices": {"input": "1"}}, "provider"),
           ({"provider": "openai", "model_pattern": "a*b", "prices": {"input": "1"}}, "model_pattern"),
           ({"provider": "openai", "model_pattern": "x", "prices": {"inptu": "1"}}, "prices"),
           ({"provider": "openai", "model_pattern": "x", "prices": {"input": "-1"}}, "prices"),
           ({"provider": "openai", "model_pattern": "x", "prices": {"input": "1"}, "valid_from": "soon"},
            "valid_from")]
    for body, param in bad:
        resp = await billing.client.post("/api/admin/prices", json=body, headers=admin)
        assert resp.status in (400, 422), body
        assert (await resp.json())["error"]["param"] == param, body
    assert await billing.db.fetchval("SELECT count(*) FROM model_prices") == 0


async def test_the_price_list_shows_current_models_with_price_and_window(billing: Billing) -> None:
    user = await billing.user()
    doc = await billing.get("/api/prices", user)
    ids = {m["id"] for m in doc["data"]}
    assert {"gpt-6-luna", "claude-sonnet-5-5", "gemini-4-argon", "qwen3.8-max"} <= ids
    assert "gpt-4o" not in ids and "claude-sonnet-4-5" not in ids
    luna = next(m for m in doc["data"] if m["id"] == "gpt-6-luna")
    assert luna["context_window"] == 1_050_000 and luna["pricing"]["input"]["base"] == "0.1"
    assert doc["source"]["name"] == "genai-prices" and doc["source"]["version"]
