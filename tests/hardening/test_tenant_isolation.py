"""Tenant isolation sweep: every /api route with a path parameter, taken from the OpenAPI document (so a new
route is swept the day it is added), called by user B with user A's real resource id. User routes answer 404,
exactly as for an id that does not exist (no oracle); admin routes refuse a non-admin with 403 whatever the id.
A's resources are untouched afterwards, and A can use every one of them (the ids were real).

Team routes (``/api/orgs/{org_id}/...``) get their own sweep: team B's real organisation, member and invitation
ids, called by an outsider and by a member and a manager of team A, answer 404 exactly like made-up ids; and
team A's own organisation id with team B's member, invitation and key ids answers 404 too; and a member never
reaches another member's team proxy key."""

from __future__ import annotations

import re
import uuid
from typing import Any

import asyncpg
import orjson
import schemathesis
from aiohttp import web
from aiohttp.test_utils import TestClient
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import GenerationMode

from tests.fakes.midtrans import FakeMidtrans
from tests.gateway.conftest import Account, make_account
from tests.hardening.conftest import api_operations, error_shape_problems, promote_admin
from webrana_proxy.mail.mailer import MAILER
from webrana_proxy.state import SETTINGS

PARAM = re.compile(r"\{(\w+)\}")
TEAM_ROUTES = "/api/orgs/"
PRICE_OVERRIDE = {"provider": "openai", "model_pattern": "gpt-sweep-*", "prices": {"input": 1, "output": 2}}
ALIAS = {"name": "wbr/sweep", "hops": ["gpt-4o-mini"]}
# An admin's own upstream at a public address given as a literal (no DNS; nothing ever connects to it here).
UPSTREAM = {"slug": "sweep", "name": "Sweep", "base_url": "https://93.184.215.14/v1", "model_prefix": "sweep/"}
# Bodies the generated ones cannot be trusted to get right (the schema is looser than the route's checks).
FIXED_BODIES = {("prices", "put"): PRICE_OVERRIDE, ("aliases", "put"): ALIAS}


def kind_of(path: str) -> str:
    """The resource a path parameter names: the path segment just before it (``/api/proxy-keys/{id}``)."""
    segments = path.split("/")
    first = next(i for i, s in enumerate(segments) if PARAM.fullmatch(s))
    return segments[first - 1]


def one_case(operation: Any, path_parameters: dict[str, str], headers: dict[str, str]) -> schemathesis.Case[Any]:
    """A valid request for ``operation`` (body and query per the schema) with these ids and credentials."""
    cases: list[schemathesis.Case[Any]] = []

    @settings(max_examples=1, deadline=None, database=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy(GenerationMode.POSITIVE, path_parameters=path_parameters, headers=headers))
    def collect(case: schemathesis.Case[Any]) -> None:
        cases.append(case)

    collect()
    return cases[0]


async def send(client: TestClient[web.Request, web.Application], case: schemathesis.Case[Any],
               headers: dict[str, str]) -> tuple[int, str, bytes]:
    kwargs = case.as_transport_kwargs(base_url=str(client.make_url("")).rstrip("/"))
    kwargs["headers"] = {**{k: v for k, v in (kwargs.get("headers") or {}).items()
                            if k.lower() not in {"authorization", "idempotency-key"}}, **headers}
    kwargs["params"] = {k: str(v) for k, v in (kwargs.get("params") or {}).items()}
    kwargs.pop("cookies", None)
    async with client.session.request(**kwargs) as resp:
        return resp.status, resp.headers.get("Content-Type", ""), await resp.read()


async def owned_ids(client: TestClient[web.Request, web.Application], owner: Account,
                    admin: Account) -> dict[str, str]:
    """One real resource of each kind, owned by ``owner`` (a price override: by ``admin``): the value for each
    path parameter's kind."""
    h = owner.headers
    resp = await client.post("/api/admin/prices", json=PRICE_OVERRIDE, headers=admin.headers)
    assert resp.status == 201, await resp.text()
    price_id = (await resp.json())["id"]
    resp = await client.post("/api/admin/upstreams", json=UPSTREAM, headers=admin.headers)
    assert resp.status == 201, await resp.text()
    upstream_id = (await resp.json())["id"]
    resp = await client.post("/api/aliases", json=ALIAS, headers=h)
    assert resp.status == 201, await resp.text()
    alias_id = (await resp.json())["id"]
    conn = await asyncpg.connect(client.app[SETTINGS].database_url)
    try:  # an alert as a quota crossing leaves it
        alert_id = await conn.fetchval(
            """INSERT INTO alerts (user_id, scope, period, percent, used, cap, hard, dedup_key)
               VALUES ($1::uuid, 'quota', '2026-01', 80, 8, 10, true, $2) RETURNING id""",
            owner.user_id, f"sweep:{owner.user_id}")
    finally:
        await conn.close()
    provider_keys = (await (await client.get("/api/provider-keys", headers=h)).json())["data"]
    proxy_keys = (await (await client.get("/api/proxy-keys", headers=h)).json())["data"]
    resp = await client.post("/api/billing/subscribe", json={"plan": "team"}, headers=h)
    assert resp.status == 201, await resp.text()
    checkout = await resp.json()
    openai_key = next(k for k in provider_keys if k["provider"] == "openai")
    return {"provider-keys": openai_key["id"], "proxy-keys": proxy_keys[0]["id"],
            "invoices": checkout["invoice_id"], "orders": checkout["order_id"], "users": owner.user_id,
            "prices": price_id, "aliases": alias_id, "alerts": str(alert_id), "upstreams": upstream_id}


async def test_another_users_ids_are_404_on_every_route(gw: TestClient[web.Request, web.Application],
                                                        migrated: str, fake_midtrans: FakeMidtrans) -> None:
    owner = await make_account(gw, migrated)
    intruder = await make_account(gw, migrated)
    admin = await make_account(gw, migrated, providers=())
    await promote_admin(migrated, admin.user_id)
    ids = await owned_ids(gw, owner, admin)
    swept = [op for op in api_operations() if PARAM.search(op.path) and not op.path.startswith(TEAM_ROUTES)]
    assert len(swept) >= 9, [op.path for op in swept]
    unknown = sorted({f"{op.method.upper()} {op.path}" for op in swept if kind_of(op.path) not in ids})
    assert not unknown, f"routes with ids this sweep cannot fill yet (add their kind to owned_ids): {unknown}"

    problems: list[str] = []
    for op in swept:
        label = f"{op.method.upper()} {op.path}"
        names = PARAM.findall(op.path)
        real = one_case(op, {n: ids[kind_of(op.path)] for n in names}, intruder.headers)
        made_up_id = str(uuid.uuid4()) if kind_of(op.path) != "orders" else "WEB-0000000000-deadbeef"
        made_up = one_case(op, dict.fromkeys(names, made_up_id), intruder.headers)
        real.body = made_up.body = FIXED_BODIES.get((kind_of(op.path), op.method), real.body)
        status, ctype, raw = await send(gw, real, intruder.headers)
        other_status, _, other_raw = await send(gw, made_up, intruder.headers)
        expected = 403 if op.path.startswith("/api/admin/") else 404
        if status != expected:
            problems.append(f"{label}: another user's id gave {status} {raw[:200]!r}, expected {expected}")
            continue
        problems += [f"{label}: {p}" for p in error_shape_problems(status, ctype, raw)]
        if (status, orjson.loads(raw)["error"]) != (other_status, orjson.loads(other_raw)["error"]):
            problems.append(f"{label}: a real id answers {status} {raw!r} but a made-up one {other_status} "
                            f"{other_raw!r}; the difference tells an intruder the id exists")
    assert not problems, "\n".join(problems)

    # A's resources are all still there and usable by A: the ids were real (deleting ones last).
    for op in sorted((op for op in swept if not op.path.startswith("/api/admin/")),
                     key=lambda op: op.method == "delete"):
        names = PARAM.findall(op.path)
        case = one_case(op, {n: ids[kind_of(op.path)] for n in names}, owner.headers)
        case.body = FIXED_BODIES.get((kind_of(op.path), op.method), case.body)
        status, _, raw = await send(gw, case, owner.headers)
        assert status < 400, f"the owner's own {op.method.upper()} {op.path} gave {status} {raw[:300]!r}"

    # An admin, by contrast, reaches A through every admin route: those ids were real as well (deleting ones last).
    for op in sorted((op for op in swept if op.path.startswith("/api/admin/")), key=lambda op: op.method == "delete"):
        case = one_case(op, dict.fromkeys(PARAM.findall(op.path), ids[kind_of(op.path)]), admin.headers)
        case.body = FIXED_BODIES.get((kind_of(op.path), op.method), case.body)
        status, _, raw = await send(gw, case, admin.headers)
        # 409: found, but not in the state the action needs (A's pending invoice is not refund-due).
        assert status < 400 or status == 409, (
            f"an admin's {op.method.upper()} {op.path} on a real user gave {status} {raw[:300]!r}")


# --- teams ------------------------------------------------------------------------------------------------------


def team_kind(path: str, name: str) -> str:
    """What a team route's path parameter names: the segment just before it (orgs, members, invitations)."""
    segments = path.split("/")
    return segments[segments.index("{" + name + "}") - 1]


async def team_of(gw: TestClient[web.Request, web.Application], migrated: str, owner: Account,
                  *joiners: tuple[Account, str]) -> dict[str, str]:
    """``owner``'s team with ``joiners`` (account, role) in it, one open invitation, a team provider key and a team
    proxy key of each joiner: the ids by kind (the last joiner's proxy key)."""
    conn = await asyncpg.connect(migrated)
    try:
        await conn.execute("UPDATE users SET plan = 'team' WHERE id = $1::uuid", owner.user_id)
        resp = await gw.post("/api/orgs", json={"name": f"team of {owner.user_id[:8]}"}, headers=owner.headers)
        assert resp.status == 201, await resp.text()
        org_id = (await resp.json())["id"]
        for account, role in joiners:
            email = await conn.fetchval("SELECT email FROM users WHERE id = $1::uuid", account.user_id)
            resp = await gw.post(f"/api/orgs/{org_id}/invitations", json={"email": email, "role": role},
                                 headers=owner.headers)
            assert resp.status == 201, await resp.text()
            token_id = await conn.fetchval("SELECT token_id FROM org_invitations WHERE id = $1::uuid",
                                           (await resp.json())["id"])
            token = gw.app[MAILER].links.token_for("invite", token_id)  # what the e-mail's link carries
            resp = await gw.post("/api/invitations/accept", json={"token": token}, headers=account.headers)
            assert resp.status == 200, await resp.text()
        resp = await gw.post(f"/api/orgs/{org_id}/invitations", json={"email": "open@example.co.id",
                                                                      "role": "member"}, headers=owner.headers)
        assert resp.status == 201, await resp.text()
        ids = {"orgs": org_id, "invitations": (await resp.json())["id"], "members": joiners[-1][0].user_id}
        # One of the team's invoices (its billing is the owner's alone: /api/orgs/{org_id}/billing/...).
        invoice = await conn.fetchrow(
            """INSERT INTO invoices (user_id, org_id, number, order_id, plan, kind, subtotal_idr, ppn_idr, total_idr,
                                    expires_at)
               VALUES ($1::uuid, $2::uuid, $3, $4, 'team', 'renewal', 1, 0, 1, now() + interval '1 day')
               RETURNING id, order_id""",
            owner.user_id, org_id, f"WEB-2000-01-{uuid.uuid4().hex[:8]}", f"WBR-sweep-{uuid.uuid4().hex[:12]}")
        ids["invoices"], ids["orders"] = str(invoice["id"]), invoice["order_id"]
        resp = await gw.post(f"/api/orgs/{org_id}/provider-keys", headers=owner.headers,
                             json={"provider": "openai", "name": "team", "key": "sk-proj-fakeTEAMSWEEP000000001"})
        assert resp.status == 201, await resp.text()
        ids["provider-keys"] = (await resp.json())["id"]
        for account, _ in joiners:
            resp = await gw.post(f"/api/orgs/{org_id}/proxy-keys", json={"name": "team"}, headers=account.headers)
            assert resp.status == 201, await resp.text()
            ids["proxy-keys"] = (await resp.json())["id"]
        return ids
    finally:
        await conn.close()


async def team_state(gw: TestClient[web.Request, web.Application], org_id: str, owner: Account) -> list[Any]:
    out = []
    for path in (f"/api/orgs/{org_id}", f"/api/orgs/{org_id}/members", f"/api/orgs/{org_id}/invitations"):
        resp = await gw.get(path, headers=owner.headers)
        assert resp.status == 200, await resp.text()
        out.append(await resp.json())
    return out


async def test_another_teams_ids_are_404_for_outsiders_members_and_managers(
        gw: TestClient[web.Request, web.Application], migrated: str) -> None:
    owner_a, manager_a, member_a = [await make_account(gw, migrated, providers=()) for _ in range(3)]
    owner_b, member_b = [await make_account(gw, migrated, providers=()) for _ in range(2)]
    outsider = await make_account(gw, migrated, providers=())
    a_ids = await team_of(gw, migrated, owner_a, (member_a, "member"), (manager_a, "manager"))
    org_a = a_ids["orgs"]
    b_ids = await team_of(gw, migrated, owner_b, (member_b, "member"))
    org_b = b_ids["orgs"]
    before = await team_state(gw, org_b, owner_b)

    swept = [op for op in api_operations() if op.path.startswith(TEAM_ROUTES) and PARAM.search(op.path)]
    assert len(swept) >= 21, [op.path for op in swept]
    assert {f"{TEAM_ROUTES}{{org_id}}/usage/{p}" for p in ("summary", "requests", "export.csv")} <= {
        op.path for op in swept}  # the team's usage: a member of A, a manager of A and an outsider get 404 for B's
    assert {f"{TEAM_ROUTES}{{org_id}}/billing/{p}" for p in ("subscription", "invoices/{id}", "orders/{order_id}")} <= {
        op.path for op in swept}  # the team's billing too (the owner's alone)
    problems: list[str] = []
    for caller_name, caller in (("outsider", outsider), ("member of A", member_a), ("manager of A", manager_a)):
        for op in swept:
            names = PARAM.findall(op.path)
            label = f"{caller_name}: {op.method.upper()} {op.path}"
            attempts = [({n: b_ids[team_kind(op.path, n)] for n in names},
                         dict.fromkeys(names, str(uuid.uuid4())))]
            if len(names) > 1:  # A's own organisation with B's member or invitation
                attempts.append(({n: org_a if n == "org_id" else b_ids[team_kind(op.path, n)] for n in names},
                                 {n: org_a if n == "org_id" else str(uuid.uuid4()) for n in names}))
            for real_ids, made_up_ids in attempts:
                status, ctype, raw = await send(gw, one_case(op, real_ids, caller.headers), caller.headers)
                other_status, _, other_raw = await send(gw, one_case(op, made_up_ids, caller.headers),
                                                        caller.headers)
                if status != 404 and not (real_ids["org_id"] == org_a and status == 403 and other_status == 403):
                    # (a member of A may be refused for their role in A before any id of B is looked at)
                    problems.append(f"{label} {real_ids}: gave {status} {raw[:200]!r}, expected 404")
                    continue
                problems += [f"{label}: {p}" for p in error_shape_problems(status, ctype, raw)]
                if (status, orjson.loads(raw)["error"]) != (other_status, orjson.loads(other_raw)["error"]):
                    problems.append(f"{label}: a real id answers {status} {raw!r} but a made-up one {other_status} "
                                    f"{other_raw!r}; the difference tells an intruder the id exists")
    assert not problems, "\n".join(problems)
    assert await team_state(gw, org_b, owner_b) == before  # B's team is untouched
    listed = await (await gw.get(f"/api/orgs/{org_b}/proxy-keys", headers=owner_b.headers)).json()
    assert [k["id"] for k in listed["data"]] == [b_ids["proxy-keys"]]

    # Within team A, a member reaches only their own team proxy key: the manager's answers 404.
    for method in ("PATCH", "DELETE"):
        resp = await gw.request(method, f"/api/orgs/{org_a}/proxy-keys/{a_ids['proxy-keys']}",
                                json={"name": "mine now"} if method == "PATCH" else None, headers=member_a.headers)
        assert resp.status == 404, (method, await resp.text())
    seen = await (await gw.get(f"/api/orgs/{org_a}/proxy-keys", headers=member_a.headers)).json()
    assert a_ids["proxy-keys"] not in [k["id"] for k in seen["data"]] and len(seen["data"]) == 1
