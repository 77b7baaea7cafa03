"""/api/proxy-keys: create (shown once), list, revoke the user's Webrana keys (``wbr_...``)."""

from __future__ import annotations

from typing import Any

import asyncpg
from aiohttp import web

from webrana_proxy.api.auth_email import require_verified_email
from webrana_proxy.api.identity import User, current_user
from webrana_proxy.billing.plans import cheapest_plan_with, get_plan
from webrana_proxy.db import Conn
from webrana_proxy.errors import NotFound, PlanLimitReached
from webrana_proxy.jsonio import json_response, path_uuid, read_json, req_str
from webrana_proxy.state import KEYCACHE, POOL, SETTINGS
from webrana_proxy.tokens import new_proxy_key, proxy_key_display, sha256

routes = web.RouteTableDef()


def _public(row: asyncpg.Record) -> dict[str, Any]:
    return {"id": str(row["id"]), "prefix": row["prefix"], "name": row["name"],
            "created_at": row["created_at"].isoformat(),
            "last_used_at": row["last_used_at"].isoformat() if row["last_used_at"] else None,
            "request_count": row["request_count"],
            "revoked_at": row["revoked_at"].isoformat() if row["revoked_at"] else None}


async def _check_key_limit(conn: Conn, user: User) -> None:
    plan = get_plan(user.plan)
    if plan.max_proxy_keys is None:
        return
    active = await conn.fetchval(
        "SELECT count(*) FROM proxy_api_keys WHERE user_id = $1 AND revoked_at IS NULL", user.id)
    if active < plan.max_proxy_keys:
        return
    better = cheapest_plan_with("max_proxy_keys", active + 1)
    hint = f"; upgrade to {better.name} for more" if better else ""
    raise PlanLimitReached(f"the {plan.name} plan allows {plan.max_proxy_keys} active proxy key(s){hint}",
                           code="proxy_key_limit")


@routes.post("/api/proxy-keys")
async def create(request: web.Request) -> web.Response:
    user = await current_user(request)
    await require_verified_email(request, user)
    body = await read_json(request, request.app[SETTINGS].api_body_limit)
    name = req_str(body, "name", max_len=100)
    key = new_proxy_key()
    async with request.app[POOL].acquire() as conn, conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1::text))", str(user.id))
        await _check_key_limit(conn, user)
        row = await conn.fetchrow(
            """INSERT INTO proxy_api_keys (user_id, key_hash, prefix, name) VALUES ($1, $2, $3, $4)
               RETURNING id, prefix, name, created_at""", user.id, sha256(key), proxy_key_display(key), name)
    assert row is not None
    return json_response({"id": str(row["id"]), "key": key, "prefix": row["prefix"], "name": row["name"],
                          "created_at": row["created_at"].isoformat()}, status=201)


@routes.get("/api/proxy-keys")
async def list_keys(request: web.Request) -> web.Response:
    user = await current_user(request)
    rows = await request.app[POOL].fetch(
        """SELECT id, prefix, name, created_at, last_used_at, request_count, revoked_at FROM proxy_api_keys
           WHERE user_id = $1 AND revoked_at IS NULL ORDER BY created_at, id""", user.id)
    return json_response({"data": [_public(r) for r in rows]})


@routes.delete("/api/proxy-keys/{id}")
async def revoke(request: web.Request) -> web.Response:
    user = await current_user(request)
    key_id = path_uuid(request)
    revoked = await request.app[POOL].fetchval(
        """UPDATE proxy_api_keys SET revoked_at = now()
           WHERE id = $1 AND user_id = $2 AND revoked_at IS NULL RETURNING id""", key_id, user.id)
    if revoked is None:
        raise NotFound("proxy key not found")
    await request.app[KEYCACHE].invalidate_user(user.id)
    return json_response({"id": str(key_id), "revoked": True})
