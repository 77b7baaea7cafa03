"""Tenant isolation sweep: every /api route with a path parameter, taken from the OpenAPI document (so a new
route is swept the day it is added), called by user B with user A's real resource id. User routes answer 404,
exactly as for an id that does not exist (no oracle); admin routes refuse a non-admin with 403 whatever the id.
A's resources are untouched afterwards, and A can use every one of them (the ids were real)."""

from __future__ import annotations

import re
import uuid
from typing import Any

import orjson
import schemathesis
from aiohttp import web
from aiohttp.test_utils import TestClient
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import GenerationMode

from tests.fakes.midtrans import FakeMidtrans
from tests.gateway.conftest import Account, make_account
from tests.hardening.conftest import api_operations, error_shape_problems, promote_admin

PARAM = re.compile(r"\{(\w+)\}")
# Bodies the handler accepts, for kinds whose schema cannot say all the handler checks (a model pattern's '*'
# only at its end, the known price names): with a generated body an admin's call would stop at 422, before the id.
VALID_BODIES: dict[tuple[str, str], dict[str, Any]] = {
    ("put", "prices"): {"provider": "openai", "model_pattern": "sweep-model-changed", "prices": {"input": "1.5"}},
}


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
    case = cases[0]
    body = VALID_BODIES.get((operation.method.lower(), kind_of(operation.path)))
    if body is not None:
        case.body = body
    return case


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
    """One real resource of each kind, owned by ``owner`` (or, for the deployment-wide kinds such as price
    overrides, made by ``admin``): the value for each path parameter's kind."""
    h = owner.headers
    provider_keys = (await (await client.get("/api/provider-keys", headers=h)).json())["data"]
    proxy_keys = (await (await client.get("/api/proxy-keys", headers=h)).json())["data"]
    resp = await client.post("/api/billing/subscribe", json={"plan": "team"}, headers=h)
    assert resp.status == 201, await resp.text()
    checkout = await resp.json()
    openai_key = next(k for k in provider_keys if k["provider"] == "openai")
    resp = await client.post("/api/admin/prices", headers=admin.headers, json={
        "provider": "openai", "model_pattern": "sweep-model", "prices": {"input": "2", "output": "8"}})
    assert resp.status == 201, await resp.text()
    price_override = await resp.json()
    return {"prices": price_override["id"], "provider-keys": openai_key["id"], "proxy-keys": proxy_keys[0]["id"],
            "invoices": checkout["invoice_id"], "orders": checkout["order_id"], "users": owner.user_id}


async def test_another_users_ids_are_404_on_every_route(gw: TestClient[web.Request, web.Application],
                                                        migrated: str, fake_midtrans: FakeMidtrans) -> None:
    owner = await make_account(gw, migrated)
    intruder = await make_account(gw, migrated)
    admin = await make_account(gw, migrated, providers=())
    await promote_admin(migrated, admin.user_id)
    ids = await owned_ids(gw, owner, admin)
    swept = [op for op in api_operations() if PARAM.search(op.path)]
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
        status, _, raw = await send(gw, case, owner.headers)
        assert status < 400, f"the owner's own {op.method.upper()} {op.path} gave {status} {raw[:300]!r}"

    # An admin, by contrast, reaches A (or the override) through every admin route: those ids were real as well
    # (deleting ones last; a made-up id would give 404).
    for op in sorted((op for op in swept if op.path.startswith("/api/admin/")),
                     key=lambda op: op.method == "delete"):
        case = one_case(op, dict.fromkeys(PARAM.findall(op.path), ids[kind_of(op.path)]), admin.headers)
        status, _, raw = await send(gw, case, admin.headers)
        # 409: found, but not in the state the action needs (A's pending invoice is not refund-due).
        assert status < 400 or status == 409, (
            f"an admin's {op.method.upper()} {op.path} on a real user gave {status} {raw[:300]!r}")
