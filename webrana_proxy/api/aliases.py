"""/api/aliases: a user's aliases (``wbr/fast`` = a chain of models tried in order), list, create, read, replace,
delete. Every change drops the user's key-cache entries on every replica (Redis pub/sub), so the gateway uses it
within a second; the gateway never reads this table itself (the alias comes with the cached principal)."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
from aiohttp import web

from webrana_proxy.aliases import MAX_ALIASES, Hop, check_name, parse_hops
from webrana_proxy.api.identity import current_user
from webrana_proxy.errors import BadRequest, NotFound, PlanLimitReached, ValidationFailed
from webrana_proxy.jsonio import json_response, path_uuid, read_json
from webrana_proxy.providers.registry import Registry
from webrana_proxy.state import KEYCACHE, POOL, REGISTRY, SETTINGS

routes = web.RouteTableDef()


def _public(row: asyncpg.Record) -> dict[str, Any]:
    return {"id": str(row["id"]), "name": row["name"], "hops": row["hops"],
            "created_at": row["created_at"].isoformat(), "updated_at": row["updated_at"].isoformat()}


def _checked_hops(registry: Registry, value: Any) -> list[dict[str, Any]]:
    hops: tuple[Hop, ...] = parse_hops(value)
    for i, h in enumerate(hops):
        try:
            registry.route(h.model)
        except BadRequest as exc:
            raise ValidationFailed(f"hops[{i}].model: {exc.message}", param=f"hops[{i}].model",
                                   code="model_not_found") from None
    return [h.as_json() for h in hops]


async def _fields(request: web.Request) -> tuple[str, list[dict[str, Any]]]:
    body = await read_json(request, request.app[SETTINGS].api_body_limit)
    return check_name(body.get("name")), _checked_hops(request.app[REGISTRY], body.get("hops"))


def _taken(name: str) -> ValidationFailed:
    return ValidationFailed(f"you already have an alias named {name}; change that one instead", param="name",
                            code="alias_exists")


@routes.get("/api/aliases")
async def list_aliases(request: web.Request) -> web.Response:
    user = await current_user(request)
    rows = await request.app[POOL].fetch(
        "SELECT id, name, hops, created_at, updated_at FROM model_aliases WHERE user_id = $1 ORDER BY name",
        user.id)
    return json_response({"data": [_public(r) for r in rows]})


@routes.post("/api/aliases")
async def create(request: web.Request) -> web.Response:
    user = await current_user(request)
    name, hops = await _fields(request)
    async with request.app[POOL].acquire() as conn, conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1::text))", f"aliases:{user.id}")
        count = await conn.fetchval("SELECT count(*) FROM model_aliases WHERE user_id = $1", user.id)
        if count >= MAX_ALIASES:
            raise PlanLimitReached(f"at most {MAX_ALIASES} aliases per account; delete one first",
                                   code="alias_limit")
        try:
            row = await conn.fetchrow(
                """INSERT INTO model_aliases (id, user_id, name, hops) VALUES ($1, $2, $3, $4)
                   RETURNING id, name, hops, created_at, updated_at""", uuid.uuid4(), user.id, name, hops)
        except asyncpg.UniqueViolationError:
            raise _taken(name) from None
    assert row is not None
    await request.app[KEYCACHE].invalidate_user(user.id)
    return json_response(_public(row), status=201)


@routes.get("/api/aliases/{id}")
async def read(request: web.Request) -> web.Response:
    user = await current_user(request)
    row = await request.app[POOL].fetchrow(
        "SELECT id, name, hops, created_at, updated_at FROM model_aliases WHERE id = $1 AND user_id = $2",
        path_uuid(request), user.id)
    if row is None:
        raise NotFound("alias not found")
    return json_response(_public(row))


@routes.put("/api/aliases/{id}")
async def replace(request: web.Request) -> web.Response:
    user = await current_user(request)
    alias_id = path_uuid(request)
    name, hops = await _fields(request)
    try:
        row = await request.app[POOL].fetchrow(
            """UPDATE model_aliases SET name = $3, hops = $4 WHERE id = $1 AND user_id = $2
               RETURNING id, name, hops, created_at, updated_at""", alias_id, user.id, name, hops)
    except asyncpg.UniqueViolationError:
        raise _taken(name) from None
    if row is None:
        raise NotFound("alias not found")
    await request.app[KEYCACHE].invalidate_user(user.id)
    return json_response(_public(row))


@routes.delete("/api/aliases/{id}")
async def delete(request: web.Request) -> web.Response:
    user = await current_user(request)
    alias_id = path_uuid(request)
    deleted = await request.app[POOL].fetchval(
        "DELETE FROM model_aliases WHERE id = $1 AND user_id = $2 RETURNING id", alias_id, user.id)
    if deleted is None:
        raise NotFound("alias not found")
    await request.app[KEYCACHE].invalidate_user(user.id)
    return json_response({"id": str(alias_id), "deleted": True})
