"""/api/orgs/{org_id}/members/{user_id}/limits: a team member's monthly request and spend limits in the team.

The owner or a manager sets them (``limits.manage``; a manager never the owner's: ``workspaces.may_limit``); every
member reads their own (``limits.own``; another member's answers 404, like another member's key). ``null`` means no
limit. They apply to the member's team proxy keys on the gateway, counted in Redis in the same Lua call as the team's
quota (``limits.RULED_SCRIPT``; a refusal is a 429 ``member_request_limit_reached`` or
``member_spend_limit_reached`` naming the member's team limit); the month is Asia/Jakarta's.

``{"monthly_request_limit": int | null, "monthly_spend_limit_idr": int | null}`` (PUT: both, a missing one is null).
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import asyncpg
from aiohttp import web

from webrana_proxy.errors import Forbidden, NotFound
from webrana_proxy.gateway.access import MEMBER_MONTH_SQL
from webrana_proxy.gateway.runtime import GATEWAY
from webrana_proxy.jsonio import json_response, opt_int, path_uuid, read_json
from webrana_proxy.keyrules import MAX_CAP_IDR, MICRO_PER_IDR
from webrana_proxy.limits import member_counter, member_requests_counter, month_start_utc
from webrana_proxy.spend import SPEND
from webrana_proxy.state import KEYCACHE, LIMITER, POOL, SETTINGS
from webrana_proxy.workspaces import Workspace, authorize, may_limit

routes = web.RouteTableDef()
MAX_REQUEST_LIMIT = 10**9  # far above any plan's month
_MEMBER = """SELECT m.user_id, u.email, m.role, m.monthly_request_limit, m.monthly_spend_limit_idr
             FROM org_members m JOIN users u ON u.id = m.user_id WHERE m.org_id = $1 AND m.user_id = $2"""


def _percent(used: int, limit: int | None) -> int | None:
    return used * 100 // limit if limit else None


async def _view(app: web.Application, org_id: uuid.UUID, row: asyncpg.Record) -> dict[str, Any]:
    """The limits and this month's use: the counters the gateway keeps while a limit is set, else the roll-up."""
    month, ttl = app[GATEWAY].months.at(time.time())
    user_id: uuid.UUID = row["user_id"]
    requests_limit: int | None = row["monthly_request_limit"]
    spend_limit: int | None = row["monthly_spend_limit_idr"]
    requests = await app[LIMITER].read_counter(member_requests_counter(org_id, user_id, month)) if requests_limit \
        else None
    if requests is None:
        requests = int(await app[POOL].fetchval(MEMBER_MONTH_SQL, org_id, user_id, month_start_utc(month)))
    spent = await app[SPEND].member_spend(org_id, user_id, month, ttl, capped=spend_limit is not None)
    return {"user_id": str(user_id), "email": row["email"], "role": row["role"], "month": month,
            "timezone": "Asia/Jakarta", "monthly_request_limit": requests_limit,
            "monthly_spend_limit_idr": spend_limit, "requests_this_month": requests,
            "spent_this_month_idr_micro": spent, "requests_percent": _percent(requests, requests_limit),
            "spend_percent": _percent(spent, spend_limit * MICRO_PER_IDR if spend_limit else None)}


def _org(ws: Workspace) -> uuid.UUID:
    assert ws.org_id is not None
    return ws.org_id


@routes.get("/api/orgs/{org_id}/members/{user_id}/limits")
async def get_limits(request: web.Request) -> web.Response:
    target = path_uuid(request, "user_id")
    ws = await authorize(request, "limits.own")
    _, bound = ws.scope("limits.manage")
    row = await request.app[POOL].fetchrow(_MEMBER, ws.org_id, target) if bound in (None, target) else None
    if row is None:
        raise NotFound("member not found")
    return json_response(await _view(request.app, _org(ws), row))


@routes.put("/api/orgs/{org_id}/members/{user_id}/limits")
async def put_limits(request: web.Request) -> web.Response:
    target = path_uuid(request, "user_id")
    body = await read_json(request, request.app[SETTINGS].api_body_limit)
    requests_limit = opt_int(body, "monthly_request_limit", minimum=1, maximum=MAX_REQUEST_LIMIT)
    spend_limit = opt_int(body, "monthly_spend_limit_idr", minimum=1, maximum=MAX_CAP_IDR)
    async with request.app[POOL].acquire() as conn, conn.transaction():
        ws = await authorize(request, "limits.manage", conn)
        before = await conn.fetchrow(_MEMBER + " FOR UPDATE OF m", ws.org_id, target)
        if before is None:
            raise NotFound("member not found")
        if not may_limit(ws.role, before["role"]):
            raise Forbidden("only the owner sets the owner's limits", code="org_role_required")
        row = await conn.fetchrow(
            """UPDATE org_members m SET monthly_request_limit = $3, monthly_spend_limit_idr = $4
               FROM users u WHERE m.org_id = $1 AND m.user_id = $2 AND u.id = m.user_id
               RETURNING m.user_id, u.email, m.role, m.monthly_request_limit, m.monthly_spend_limit_idr""",
            ws.org_id, target, requests_limit, spend_limit)
        await conn.execute(
            "INSERT INTO audit_log (actor_id, action, target_user_id, details, org_id) VALUES ($1, $2, $3, $4, $5)",
            ws.user.id, "org.member_limits", target,
            {"actor_email": ws.user.email, "org_name": ws.name, "email": before["email"],
             "from": {"monthly_request_limit": before["monthly_request_limit"],
                      "monthly_spend_limit_idr": before["monthly_spend_limit_idr"]},
             "to": {"monthly_request_limit": requests_limit, "monthly_spend_limit_idr": spend_limit}}, ws.org_id)
    assert row is not None
    org_id = _org(ws)
    # A counter nobody kept while there was no limit is stale: dropped, so the next call rebuilds it from PostgreSQL.
    month, _ = request.app[GATEWAY].months.at(time.time())
    stale = [c for c, was in ((member_requests_counter(org_id, target, month), before["monthly_request_limit"]),
                              (member_counter(org_id, target, month), before["monthly_spend_limit_idr"]))
             if was is None]
    await request.app[SPEND].forget(stale)
    await request.app[KEYCACHE].invalidate_user(target)  # their keys reload with the limits on every replica
    return json_response(await _view(request.app, org_id, row))
