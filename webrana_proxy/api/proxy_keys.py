"""/api/proxy-keys: create (shown once), list, change the rules of, revoke the user's Webrana keys (``wbr_...``);
the same under /api/orgs/{org_id}/proxy-keys for team keys: any member creates and manages their own (calls go
through the team's provider keys, count against the team's plan); managers see, change and revoke every member's.

A key's rules (issue 14): a monthly spend cap in whole rupiah, a requests-per-minute limit, allowed models (exact
ids or globs) and providers, an expiry time and a note. Set at creation or later (PATCH: only the fields sent
change; ``null`` clears one); every replica applies a change within a second (the key-cache invalidation).
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime
from typing import Any

import asyncpg
from aiohttp import web

from webrana_proxy.api.auth_email import require_verified_email
from webrana_proxy.billing.plans import cheapest_plan_with, get_plan
from webrana_proxy.db import Conn
from webrana_proxy.errors import NotFound, PlanLimitReached, ValidationFailed
from webrana_proxy.gateway.runtime import GATEWAY
from webrana_proxy.jsonio import json_response, opt_int, path_uuid, read_json, req_str
from webrana_proxy.keyrules import (
    MAX_CAP_IDR,
    MAX_MODELS,
    MAX_PROVIDERS,
    MAX_RPM,
    MODEL_PATTERN_RE,
    NOTE_MAX,
)
from webrana_proxy.limits import key_counter
from webrana_proxy.spend import SPEND
from webrana_proxy.state import KEYCACHE, POOL, REGISTRY, SETTINGS
from webrana_proxy.tokens import new_proxy_key, proxy_key_display, sha256
from webrana_proxy.workspaces import Workspace, authorize

routes = web.RouteTableDef()
USE, ALL = "proxy_keys.use", "proxy_keys.all"  # own keys; every member's (Workspace.scope binds the queries)
RULES = ("spend_cap_idr", "rpm_limit", "allowed_models", "allowed_providers", "expires_at", "note")


def _public(row: asyncpg.Record, spent: dict[uuid.UUID, int] | None = None) -> dict[str, Any]:
    expires = row["expires_at"]
    return {"id": str(row["id"]), "prefix": row["prefix"], "name": row["name"],
            "created_at": row["created_at"].isoformat(),
            "last_used_at": row["last_used_at"].isoformat() if row["last_used_at"] else None,
            "request_count": row["request_count"],
            "revoked_at": row["revoked_at"].isoformat() if row["revoked_at"] else None,
            "note": row["note"], "spend_cap_idr": row["spend_cap_idr"], "rpm_limit": row["rpm_limit"],
            "allowed_models": row["allowed_models"], "allowed_providers": row["allowed_providers"],
            "expires_at": expires.isoformat() if expires else None,
            "expired": expires is not None and expires <= datetime.now(UTC),
            # This Jakarta month's spend, kept for keys with a cap (null for the others).
            "spent_this_month_idr_micro": (spent or {}).get(row["id"]),
            "user_id": str(row["user_id"])}  # who holds it (in a team: which member)


async def _check_key_limit(conn: Conn, ws: Workspace) -> None:
    plan = get_plan(ws.plan)
    if plan.max_proxy_keys is None:
        return
    org_id, user_id = ws.scope(ALL) if ws.org_id is None else (ws.org_id, None)  # a team's limit: all its keys
    active = await conn.fetchval(
        """SELECT count(*) FROM proxy_api_keys WHERE org_id IS NOT DISTINCT FROM $1
           AND ($2::uuid IS NULL OR user_id = $2) AND revoked_at IS NULL""", org_id, user_id)
    if active < plan.max_proxy_keys:
        return
    better = cheapest_plan_with("max_proxy_keys", active + 1)
    hint = f"; upgrade to {better.name} for more" if better else ""
    raise PlanLimitReached(f"the {plan.name} plan allows {plan.max_proxy_keys} active proxy key(s){hint}",
                           code="proxy_key_limit")


def _str_list(body: dict[str, Any], name: str, limit: int) -> list[str] | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValidationFailed(f"'{name}' must be a list of strings or null", param=name, code="invalid_type")
    items = list(dict.fromkeys(v.strip() for v in value if v.strip()))
    if len(items) > limit:
        raise ValidationFailed(f"'{name}' may hold at most {limit} entries", param=name)
    return items or None  # an empty list means no rule, like null


def _rules(request: web.Request, body: dict[str, Any], *, creating: bool) -> dict[str, Any]:
    """The rule fields present in ``body``, validated (absent ones are not in the result)."""
    out: dict[str, Any] = {}
    if "spend_cap_idr" in body:
        out["spend_cap_idr"] = opt_int(body, "spend_cap_idr", minimum=1, maximum=MAX_CAP_IDR)
    if "rpm_limit" in body:
        out["rpm_limit"] = opt_int(body, "rpm_limit", minimum=1, maximum=MAX_RPM)
    if "allowed_models" in body:
        models = _str_list(body, "allowed_models", MAX_MODELS)
        for m in models or ():
            if not MODEL_PATTERN_RE.match(m):
                raise ValidationFailed(f"'allowed_models': {m[:100]!r} is not a model id or pattern (letters, "
                                       "digits, . _ : @ / -, with * and ? as wildcards)", param="allowed_models")
        out["allowed_models"] = models
    if "allowed_providers" in body:
        providers = _str_list(body, "allowed_providers", MAX_PROVIDERS)
        known = request.app[REGISTRY].ids()
        for p in providers or ():
            if p not in known:
                raise ValidationFailed(f"'allowed_providers': unknown provider {p[:40]!r}; known: "
                                       f"{', '.join(known)}", param="allowed_providers", code="unknown_provider")
        out["allowed_providers"] = providers
    if "expires_at" in body:
        out["expires_at"] = _expiry(body.get("expires_at"), creating=creating)
    if "note" in body:
        note = body.get("note")
        if note is not None and not isinstance(note, str):
            raise ValidationFailed("'note' must be a string", param="note", code="invalid_type")
        note = (note or "").strip()
        if len(note) > NOTE_MAX:
            raise ValidationFailed(f"'note' must be at most {NOTE_MAX} characters", param="note")
        out["note"] = note
    return out


def _expiry(value: Any, *, creating: bool) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValidationFailed("'expires_at' must be an ISO 8601 time with a time zone, or null",
                               param="expires_at", code="invalid_type")
    try:
        when = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValidationFailed("'expires_at' must be an ISO 8601 time, e.g. 2026-12-31T23:59:00+07:00",
                               param="expires_at") from None
    if when.tzinfo is None:
        raise ValidationFailed("'expires_at' needs a time zone (e.g. +07:00 or Z)", param="expires_at")
    if creating and when <= datetime.now(UTC):
        raise ValidationFailed("'expires_at' must be in the future", param="expires_at")
    return when


@routes.post("/api/proxy-keys")
@routes.post("/api/orgs/{org_id}/proxy-keys")
async def create(request: web.Request) -> web.Response:
    ws = await authorize(request, USE)
    user = ws.user
    await require_verified_email(request, user)
    body = await read_json(request, request.app[SETTINGS].api_body_limit)
    name = req_str(body, "name", max_len=100)
    rules = _rules(request, body, creating=True)
    key = new_proxy_key()
    async with request.app[POOL].acquire() as conn, conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1::text))", str(ws.id))
        await _check_key_limit(conn, ws)
        row = await conn.fetchrow(
            """INSERT INTO proxy_api_keys (user_id, key_hash, prefix, name, spend_cap_idr, rpm_limit,
                                            allowed_models, allowed_providers, expires_at, note, org_id)
                VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
                RETURNING id, user_id, prefix, name, created_at, last_used_at, request_count, revoked_at,
                          spend_cap_idr, rpm_limit, allowed_models, allowed_providers, expires_at, note""",
            user.id, sha256(key), proxy_key_display(key), name, rules.get("spend_cap_idr"),
            rules.get("rpm_limit"), rules.get("allowed_models"), rules.get("allowed_providers"),
            rules.get("expires_at"), rules.get("note", ""), ws.org_id)
    assert row is not None
    return json_response({**_public(row), "key": key}, status=201)


@routes.get("/api/proxy-keys")
@routes.get("/api/orgs/{org_id}/proxy-keys")
async def list_keys(request: web.Request) -> web.Response:
    ws = await authorize(request, USE)
    rows = await request.app[POOL].fetch(
        """SELECT id, user_id, prefix, name, created_at, last_used_at, request_count, revoked_at, spend_cap_idr,
                  rpm_limit, allowed_models, allowed_providers, expires_at, note
           FROM proxy_api_keys WHERE org_id IS NOT DISTINCT FROM $1 AND ($2::uuid IS NULL OR user_id = $2)
           AND revoked_at IS NULL ORDER BY created_at, id""", *ws.scope(ALL))
    month, ttl = request.app[GATEWAY].months.at(time.time())
    spent = await request.app[SPEND].key_spend([r["id"] for r in rows if r["spend_cap_idr"]], month, ttl)
    return json_response({"data": [_public(r, spent) for r in rows]})


@routes.patch("/api/proxy-keys/{id}")
@routes.patch("/api/orgs/{org_id}/proxy-keys/{id}")
async def update(request: web.Request) -> web.Response:
    """Change a key's name or rules: only the fields sent change; ``null`` clears a rule."""
    ws = await authorize(request, USE)
    key_id = path_uuid(request)
    body = await read_json(request, request.app[SETTINGS].api_body_limit)
    rules = _rules(request, body, creating=False)
    name = req_str(body, "name", max_len=100) if "name" in body else None
    # Each column keeps its value unless its flag says it was sent: one fixed, parameterised statement.
    row = await request.app[POOL].fetchrow(
        """WITH before AS (SELECT spend_cap_idr FROM proxy_api_keys
                           WHERE id = $1 AND org_id IS NOT DISTINCT FROM $16 AND ($2::uuid IS NULL OR user_id = $2)
                           FOR UPDATE)
        UPDATE proxy_api_keys SET
                name = coalesce($3, name),
                spend_cap_idr = CASE WHEN $4 THEN $5 ELSE spend_cap_idr END,
                rpm_limit = CASE WHEN $6 THEN $7 ELSE rpm_limit END,
                allowed_models = CASE WHEN $8 THEN $9 ELSE allowed_models END,
                allowed_providers = CASE WHEN $10 THEN $11 ELSE allowed_providers END,
                expires_at = CASE WHEN $12 THEN $13 ELSE expires_at END,
                note = CASE WHEN $14 THEN $15 ELSE note END
            WHERE id = $1 AND org_id IS NOT DISTINCT FROM $16 AND ($2::uuid IS NULL OR user_id = $2)
              AND revoked_at IS NULL
            RETURNING id, user_id, prefix, name, created_at, last_used_at, request_count, revoked_at, spend_cap_idr,
                      rpm_limit, allowed_models, allowed_providers, expires_at, note,
                      (SELECT spend_cap_idr FROM before) AS cap_before""",
        key_id, ws.scope(ALL)[1], name, "spend_cap_idr" in rules, rules.get("spend_cap_idr"), "rpm_limit" in rules,
        rules.get("rpm_limit"), "allowed_models" in rules, rules.get("allowed_models"),
        "allowed_providers" in rules, rules.get("allowed_providers"), "expires_at" in rules,
        rules.get("expires_at"), "note" in rules, rules.get("note", ""), ws.org_id)
    if row is None:
        raise NotFound("proxy key not found")
    month, ttl = request.app[GATEWAY].months.at(time.time())
    if "spend_cap_idr" in rules and row["cap_before"] is None:
        # No increments reached the counter while the key had no cap: rebuilt from PostgreSQL at the next call.
        # A key that had a cap keeps its counter, which already holds the calls PostgreSQL does not have yet.
        await request.app[SPEND].forget([key_counter(key_id, month)])
    await request.app[KEYCACHE].invalidate_user(ws.id)
    spent = await request.app[SPEND].key_spend([key_id] if row["spend_cap_idr"] else [], month, ttl)
    return json_response(_public(row, spent))


@routes.delete("/api/proxy-keys/{id}")
@routes.delete("/api/orgs/{org_id}/proxy-keys/{id}")
async def revoke(request: web.Request) -> web.Response:
    ws = await authorize(request, USE)
    key_id = path_uuid(request)
    revoked = await request.app[POOL].fetchval(
        """UPDATE proxy_api_keys SET revoked_at = now()
           WHERE id = $1 AND org_id IS NOT DISTINCT FROM $2 AND ($3::uuid IS NULL OR user_id = $3)
             AND revoked_at IS NULL RETURNING id""", key_id, *ws.scope(ALL))
    if revoked is None:
        raise NotFound("proxy key not found")
    await request.app[KEYCACHE].invalidate_user(ws.id)
    return json_response({"id": str(key_id), "revoked": True})
