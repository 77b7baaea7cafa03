"""The admin API: admin role only, real numbers, every change in the audit log, changes apply at once."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import orjson

from tests.billing.conftest import Billing
from webrana_proxy.billing.midtrans import JAKARTA
from webrana_proxy.state import KEYCACHE
from webrana_proxy.tokens import sha256

ADMIN_CALLS = [
    ("GET", "/api/admin/stats", None),
    ("GET", "/api/admin/users", None),
    ("GET", "/api/admin/audit-log", None),
    ("POST", "/api/admin/users/{id}/suspend", None),
    ("POST", "/api/admin/users/{id}/unsuspend", None),
    ("PUT", "/api/admin/users/{id}/plan", {"plan": "pro"}),
    ("PUT", "/api/admin/users/{id}/limits", {"burst_per_minute": 5, "monthly_requests": 5}),
    ("GET", "/api/admin/invoices", None),
    ("POST", "/api/admin/invoices/{id}/refunded", {}),
]


async def test_admin_endpoints_refuse_users_and_anonymous_callers(billing: Billing) -> None:
    tokens = await billing.api.register()
    h = billing.api.auth(tokens)
    for method, path, body in ADMIN_CALLS:
        url = path.format(id=tokens["user"]["id"])
        resp = await billing.client.request(method, url, json=body, headers=h)
        assert resp.status == 403, (url, await resp.text())
        assert (await resp.json())["error"]["code"] == "admin_only"
        resp = await billing.client.request(method, url, json=body)
        assert resp.status == 401, url
    assert await billing.db.fetchval("SELECT count(*) FROM audit_log") == 0
    me = await billing.get("/api/auth/me", h)
    assert (me["plan"], me["status"]) == ("free", "active")


async def test_stats_count_users_subscriptions_mrr_requests_and_latency(billing: Billing) -> None:
    admin, admin_user = await billing.admin()
    payer = await billing.user()
    await billing.pay(payer, "pro")
    await billing.pay(await billing.user(), "starter")
    now = datetime.now(UTC)
    today = now.astimezone(JAKARTA).date()
    earlier = today.replace(day=1) if today.day > 1 else None
    uid = uuid.UUID(admin_user["id"])
    await billing.db.execute(
        """INSERT INTO usage_daily (user_id, day, provider, model, requests) VALUES
           ($1, $2, 'openai', 'gpt-4o-mini', 7), ($1, $2, 'anthropic', 'claude-x', 3),
           ($1, $3, 'openai', 'gpt-4o-mini', 100)""", uid, today, today - timedelta(days=40))
    if earlier is not None:
        await billing.db.execute(
            "INSERT INTO usage_daily (user_id, day, provider, model, requests) VALUES ($1, $2, 'qwen', 'q', 5)",
            uid, earlier)
    await billing.db.executemany(
        """INSERT INTO proxy_requests (request_id, user_id, provider, model, status, latency_ms, created_at)
           VALUES ($1, $2, 'openai', 'gpt-4o-mini', 200, $3, $4)""",
        [(f"req-{i}", uid, i, now - timedelta(minutes=1)) for i in range(1, 101)]
        + [("req-old", uid, 99_999, now - timedelta(hours=2))])
    stats = await billing.get("/api/admin/stats", admin)
    assert stats["users"]["total"] == 3 and stats["users"]["by_plan"]["pro"] == 1
    assert stats["subscriptions"] == {"active": 2, "by_plan": {"pro": 1, "starter": 1}}
    assert stats["mrr_idr"] == 99_000 + 49_000
    assert stats["requests"]["today"] == 10
    assert stats["requests"]["this_month"] == 10 + (5 if earlier is not None else 0)
    latency = stats["latency_ms"]
    assert latency["count"] == 100 and latency["window_seconds"] == 3600
    assert (latency["p50"], latency["p95"], latency["p99"]) == (50.5, 95.05, 99.01)


async def test_user_search_and_pagination(billing: Billing) -> None:
    admin, _ = await billing.admin()
    for i in range(5):
        await billing.api.register(email=f"Budi{i}@Toko.co.id")
    await billing.api.register(email="siti_100%@example.com")
    page = await billing.get("/api/admin/users?q=toko&per_page=2&page=2", admin)
    assert (page["total"], page["page"], page["per_page"], len(page["data"])) == (5, 2, 2, 2)
    all_toko = await billing.get("/api/admin/users?q=TOKO&per_page=200", admin)
    assert sorted(u["email"] for u in all_toko["data"]) == [f"Budi{i}@Toko.co.id" for i in range(5)]
    # LIKE wildcards in the query are literal characters.
    assert (await billing.get("/api/admin/users?q=_100%25", admin))["total"] == 1
    assert (await billing.get("/api/admin/users?q=%25", admin))["total"] == 1
    assert (await billing.get("/api/admin/users", admin))["total"] == 7
    for bad in ("page=0", "per_page=201", "page=x"):
        await billing.get(f"/api/admin/users?{bad}", admin, expect=400)


async def test_suspend_unsuspend_plan_and_limits_apply_at_once_and_are_audited(billing: Billing) -> None:
    admin, admin_user = await billing.admin()
    tokens = await billing.api.register()
    h = billing.api.auth(tokens)
    target = tokens["user"]["id"]
    resp = await billing.client.post("/api/proxy-keys", json={"name": "k"}, headers=h)
    key = (await resp.json())["key"]
    cache = billing.client.app[KEYCACHE]

    resp = await billing.client.put(f"/api/admin/users/{target}/plan", json={"plan": "team"}, headers=admin)
    assert resp.status == 200 and (await resp.json())["plan"] == "team"
    principal = await cache.resolve(sha256(key))
    assert principal is not None and principal.monthly_requests == 200_000

    resp = await billing.client.put(f"/api/admin/users/{target}/limits",
                                    json={"burst_per_minute": 600, "monthly_requests": 5_000_000}, headers=admin)
    assert resp.status == 200, await resp.text()
    principal = await cache.resolve(sha256(key))
    assert principal is not None and (principal.burst_per_minute, principal.monthly_requests) == (600, 5_000_000)
    resp = await billing.client.put(f"/api/admin/users/{target}/limits",
                                    json={"burst_per_minute": None}, headers=admin)
    body = await resp.json()
    assert (body["burst_per_minute_override"], body["monthly_requests_override"]) == (None, None)
    principal = await cache.resolve(sha256(key))
    assert principal is not None and (principal.burst_per_minute, principal.monthly_requests) == (60, 200_000)

    resp = await billing.client.post(f"/api/admin/users/{target}/suspend", headers=admin)
    assert resp.status == 200 and (await resp.json())["status"] == "suspended"
    principal = await cache.resolve(sha256(key))
    assert principal is not None and principal.active is False
    assert (await billing.client.get("/api/auth/me", headers=h)).status == 403
    resp = await billing.client.post(f"/api/admin/users/{target}/unsuspend", headers=admin)
    assert resp.status == 200
    assert (await billing.client.get("/api/auth/me", headers=h)).status == 200

    log = await billing.get("/api/admin/audit-log", admin)
    actions = [e["action"] for e in log["data"]]
    assert actions == ["user.unsuspend", "user.suspend", "user.set_limits", "user.set_limits", "user.set_plan"]
    assert all(e["actor_id"] == admin_user["id"] and e["actor_email"] == admin_user["email"]
               and e["target_user_id"] == target and e["created_at"] for e in log["data"])
    plan_entry = log["data"][-1]
    assert (plan_entry["details"]["from"], plan_entry["details"]["to"]) == ("free", "team")
    only_target = await billing.get(f"/api/admin/audit-log?user_id={target}&per_page=2", admin)
    assert only_target["total"] == 5 and len(only_target["data"]) == 2
    rows = await billing.db.fetch("SELECT details FROM audit_log")
    assert all(orjson.loads(r["details"])["email"] == tokens["user"]["email"] for r in rows)


async def test_admin_input_and_targets_are_checked(billing: Billing) -> None:
    admin, admin_user = await billing.admin()
    target = (await billing.api.register())["user"]["id"]
    missing = str(uuid.uuid4())
    assert (await billing.client.post(f"/api/admin/users/{missing}/suspend", headers=admin)).status == 404
    assert (await billing.client.put(f"/api/admin/users/{missing}/plan", json={"plan": "pro"},
                                     headers=admin)).status == 404
    assert (await billing.client.post("/api/admin/users/nope/suspend", headers=admin)).status == 404
    resp = await billing.client.post(f"/api/admin/users/{admin_user['id']}/suspend", headers=admin)
    assert resp.status == 400 and (await resp.json())["error"]["code"] == "cannot_suspend_self"
    for body, param in (({"plan": "gold"}, "plan"), ({}, "plan")):
        resp = await billing.client.put(f"/api/admin/users/{target}/plan", json=body, headers=admin)
        assert resp.status == 400 and (await resp.json())["error"]["param"] == param
    for body, param in (({"burst_per_minute": 0}, "burst_per_minute"),
                        ({"monthly_requests": -1}, "monthly_requests"),
                        ({"burst_per_minute": "60"}, "burst_per_minute")):
        resp = await billing.client.put(f"/api/admin/users/{target}/limits", json=body, headers=admin)
        assert resp.status == 400 and (await resp.json())["error"]["param"] == param
    await billing.get("/api/admin/audit-log?user_id=nope", admin, expect=400)
    assert await billing.db.fetchval("SELECT count(*) FROM audit_log") == 0
