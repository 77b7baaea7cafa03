"""A team's usage through the API (real PostgreSQL, rows written by the real usage writer's ``write_batch``): the
owner and managers see every member's calls in the team broken down per member, key, model and provider; a member
sees only their own calls in the team; an outsider gets 404; the CSV has the same rows as the request log."""

from __future__ import annotations

import csv
import io
import secrets
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from tests.fakes.smtp import MailSink
from tests.teams.conftest import Client, h, join, make_team, user
from webrana_proxy.usage import UsageRecord, write_batch

T0 = datetime(2024, 3, 5, 3, 0, tzinfo=UTC)
RANGE = "from=2024-03-01&to=2024-03-31"


def rec(user_id: str, key_id: str | None, org_id: str | None, at: datetime, *, provider: str = "openai",
        model: str = "gpt-4o-mini", cost: int = 100, status: int = 200) -> UsageRecord:
    return UsageRecord(request_id="req_" + secrets.token_hex(10), user_id=uuid.UUID(user_id),
                       proxy_key_id=uuid.UUID(key_id) if key_id else None, provider=provider, model=model,
                       endpoint="chat", stream=False, status=status, prompt_tokens=10, completion_tokens=5,
                       total_tokens=15, tokens_estimated=False, cost_idr_micro=cost * 1_000_000, latency_ms=250,
                       ttfb_ms=None, upstream_request_id=None, error_type=None, created_at=at,
                       org_id=uuid.UUID(org_id) if org_id else None)


async def team_key(client: Client, org_id: str, who: dict[str, Any]) -> str:
    resp = await client.post(f"/api/orgs/{org_id}/proxy-keys", json={"name": "team"}, headers=h(who))
    assert resp.status == 201, await resp.text()
    key_id: str = (await resp.json())["id"]
    return key_id


async def get(client: Client, path: str, who: dict[str, Any], status: int = 200) -> Any:
    resp = await client.get(path, headers=h(who))
    assert resp.status == status, await resp.text()
    return await resp.json()


async def export(client: Client, org_id: str, who: dict[str, Any]) -> list[dict[str, str]]:
    resp = await client.get(f"/api/orgs/{org_id}/usage/export.csv?{RANGE}", headers=h(who))
    assert resp.status == 200, await resp.text()
    return list(csv.DictReader(io.StringIO((await resp.read()).decode())))


async def team_with_calls(client: Client, migrated: str, sink: MailSink) -> dict[str, Any]:
    """A team (owner, a manager, two members), each member with a team key; member 1 made two calls in the team
    (openai and anthropic) and one personal call, member 2 one call in the team; another team's member one call."""
    owner = await user(client, migrated, "team")
    org_id = await make_team(client, owner)
    manager = await join(client, sink, migrated, org_id, owner, "manager")
    m1 = await join(client, sink, migrated, org_id, owner)
    m2 = await join(client, sink, migrated, org_id, owner)
    k1, k2 = await team_key(client, org_id, m1), await team_key(client, org_id, m2)
    other_owner = await user(client, migrated, "team")
    other_org = await make_team(client, other_owner, "Other")
    ids = {n: t["user"]["id"] for n, t in (("m1", m1), ("m2", m2), ("other", other_owner))}
    conn = await asyncpg.connect(migrated)
    try:
        await write_batch(conn, [
            rec(ids["m1"], k1, org_id, T0, cost=100),
            rec(ids["m1"], k1, org_id, T0 + timedelta(hours=1), provider="anthropic", model="claude-3-5-haiku",
                cost=300, status=500),
            rec(ids["m1"], None, None, T0 + timedelta(hours=2), cost=7),  # personal: never in the team's usage
            rec(ids["m2"], k2, org_id, T0 + timedelta(hours=3), cost=50),
            rec(ids["other"], None, other_org, T0 + timedelta(hours=4), cost=9),  # another team
        ])
    finally:
        await conn.close()
    return {"org_id": org_id, "owner": owner, "manager": manager, "m1": m1, "m2": m2, "k1": k1, "k2": k2,
            "other_owner": other_owner}


async def test_a_manager_sees_every_members_calls_broken_down_and_the_csv_has_the_same_rows(
        client: Client, migrated: str, sink: MailSink) -> None:
    t = await team_with_calls(client, migrated, sink)
    org_id, m1, m2 = t["org_id"], t["m1"]["user"], t["m2"]["user"]
    for caller in (t["manager"], t["owner"]):
        s = await get(client, f"/api/orgs/{org_id}/usage/summary?{RANGE}", caller)
        assert s["scope"] == "team"
        assert (s["totals"]["requests"], s["totals"]["errors"], s["totals"]["cost_idr"]) == (3, 1, 450.0)
        members = {m["email"]: (m["user_id"], m["role"], m["requests"], m["cost_idr"]) for m in s["by_member"]}
        assert members[m1["email"]] == (m1["id"], "member", 2, 400.0)
        assert members[m2["email"]] == (m2["id"], "member", 1, 50.0)
        assert members[t["owner"]["user"]["email"]][2:] == (0, 0.0) and len(members) == 4
        assert [(k["id"], k["user_id"], k["requests"], k["errors"], k["cost_idr"]) for k in s["by_key"]] == [
            (t["k1"], m1["id"], 2, 1, 400.0), (t["k2"], m2["id"], 1, 0, 50.0)]
        assert {(p["provider"], p["requests"]) for p in s["by_provider"]} == {("openai", 2), ("anthropic", 1)}
        assert {(m["model"], m["requests"]) for m in s["by_model"]} == {("gpt-4o-mini", 2),
                                                                        ("claude-3-5-haiku", 1)}

    log = await get(client, f"/api/orgs/{org_id}/usage/requests?{RANGE}", t["manager"])
    assert [(r["member"]["email"], r["proxy_key_id"], r["cost_idr"]) for r in log["data"]] == [
        (m2["email"], t["k2"], 50.0), (m1["email"], t["k1"], 300.0), (m1["email"], t["k1"], 100.0)]
    only_m2 = await get(client, f"/api/orgs/{org_id}/usage/requests?member={m2['id']}", t["manager"])
    assert [r["member"]["user_id"] for r in only_m2["data"]] == [m2["id"]]
    paged = await get(client, f"/api/orgs/{org_id}/usage/requests?limit=2", t["manager"])
    rest = await get(client, f"/api/orgs/{org_id}/usage/requests?limit=2&cursor={paged['next_cursor']}",
                     t["manager"])
    assert [r["id"] for r in paged["data"] + rest["data"]] == [r["id"] for r in log["data"]]
    assert rest["next_cursor"] is None

    rows = await export(client, org_id, t["manager"])
    assert [(r["request_id"], r["member_email"], r["member_id"], r["proxy_key_id"]) for r in rows] == [
        (r["request_id"], r["member"]["email"], r["member"]["user_id"], r["proxy_key_id"])
        for r in reversed(log["data"])]
    assert [r["cost_idr"] for r in rows] == ["100.000000", "300.000000", "50.000000"]


async def test_a_member_sees_only_their_own_calls_in_the_team(client: Client, migrated: str,
                                                              sink: MailSink) -> None:
    t = await team_with_calls(client, migrated, sink)
    org_id, m1, m2 = t["org_id"], t["m1"], t["m2"]
    s = await get(client, f"/api/orgs/{org_id}/usage/summary?{RANGE}", m1)
    assert s["scope"] == "own" and s["totals"]["requests"] == 2 and s["totals"]["cost_idr"] == 400.0
    assert [(m["user_id"], m["requests"]) for m in s["by_member"]] == [(m1["user"]["id"], 2)]
    assert [k["id"] for k in s["by_key"]] == [t["k1"]]
    for query in (RANGE, f"member={m2['user']['id']}"):  # naming another member changes nothing
        log = await get(client, f"/api/orgs/{org_id}/usage/requests?{query}", m1)
        assert {r["member"]["user_id"] for r in log["data"]} == {m1["user"]["id"]} and len(log["data"]) == 2
    rows = await export(client, org_id, m1)
    assert [r["member_id"] for r in rows] == [m1["user"]["id"]] * 2
    s2 = await get(client, f"/api/orgs/{org_id}/usage/summary?{RANGE}", m2)
    assert s2["totals"]["requests"] == 1 and [k["id"] for k in s2["by_key"]] == [t["k2"]]
    # Their personal usage stays their own: the team's calls are not in it.
    personal = await get(client, f"/api/usage/summary?{RANGE}", m1)
    assert personal["totals"]["requests"] == 1 and personal["totals"]["cost_idr"] == 7.0


async def test_an_outsider_and_another_teams_owner_get_404(client: Client, migrated: str, sink: MailSink) -> None:
    t = await team_with_calls(client, migrated, sink)
    outsider = await user(client, migrated)
    for caller in (outsider, t["other_owner"]):
        for path in ("usage/summary", "usage/requests", "usage/export.csv"):
            made_up = await client.get(f"/api/orgs/{uuid.uuid4()}/{path}", headers=h(caller))
            real = await client.get(f"/api/orgs/{t['org_id']}/{path}", headers=h(caller))
            assert real.status == made_up.status == 404
            assert await real.json() == await made_up.json()
