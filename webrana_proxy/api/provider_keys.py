"""/api/provider-keys: store (encrypted), list (masked), delete and test a user's provider keys; the same under
/api/orgs/{org_id}/provider-keys for a team's (managers only: members use them through their team proxy keys and
never see them). A team key is sealed with the team bound as associated data (``crypto.associated_data``)."""

from __future__ import annotations

import uuid
from typing import Any

import aiohttp
import asyncpg
from aiohttp import web

from webrana_proxy.billing.plans import cheapest_plan_with, get_plan
from webrana_proxy.crypto import Sealed, mask_key
from webrana_proxy.db import Conn
from webrana_proxy.errors import NotFound, PlanLimitReached, ValidationFailed
from webrana_proxy.jsonio import json_response, path_uuid, read_json, req_str
from webrana_proxy.providers.base import Provider
from webrana_proxy.providers.keyformat import printable_ascii
from webrana_proxy.state import HTTP, KEYCACHE, KEYRING, POOL, REGISTRY, SETTINGS
from webrana_proxy.workspaces import Workspace, authorize

routes = web.RouteTableDef()
KEY_TEST_TIMEOUT = aiohttp.ClientTimeout(total=15)  # a models list answers in well under a second normally
MAX_KEY_LENGTH = 512
ACTION = "provider_keys.manage"
# Every query is bound to the workspace by Workspace.scope(ACTION) = (org_id, user_id): a team's keys, or (NULL,
# the caller) for the personal workspace: "org_id IS NOT DISTINCT FROM $a AND ($b::uuid IS NULL OR user_id = $b)".


def _public(row: asyncpg.Record) -> dict[str, Any]:
    return {"id": str(row["id"]), "provider": row["provider"], "name": row["name"],
            "masked_key": row["masked_hint"], "created_at": row["created_at"].isoformat(),
            "last_used_at": row["last_used_at"].isoformat() if row["last_used_at"] else None}


async def _check_provider_limit(conn: Conn, ws: Workspace, provider: str) -> None:
    plan = get_plan(ws.plan)
    if plan.max_providers is None:
        return
    providers = {r["provider"] for r in await conn.fetch(
        """SELECT DISTINCT provider FROM api_keys
           WHERE org_id IS NOT DISTINCT FROM $1 AND ($2::uuid IS NULL OR user_id = $2)""", *ws.scope(ACTION))}
    if provider in providers or len(providers) < plan.max_providers:
        return
    better = cheapest_plan_with("max_providers", len(providers) + 1)
    hint = f"; upgrade to {better.name} to use more" if better else ""
    raise PlanLimitReached(f"the {plan.name} plan allows keys for {plan.max_providers} provider(s){hint}",
                           code="provider_limit")


def _format_problem(provider: Provider, key: str) -> str:
    """What to tell a person whose key ``provider.accepts_key`` refused."""
    if not printable_ascii(key):
        return (f"a {provider.display_name} key has only printable ASCII characters (no spaces, accented letters "
                "or invisible characters); copy it again from the provider's console")
    return (f"this does not look like a {provider.display_name} key ({provider.spec.key_format.describe()}; "
            "check that you copied all of it)")


@routes.post("/api/provider-keys")
@routes.post("/api/orgs/{org_id}/provider-keys")
async def create(request: web.Request) -> web.Response:
    ws = await authorize(request, ACTION)
    body = await read_json(request, request.app[SETTINGS].api_body_limit)
    registry = request.app[REGISTRY]
    provider_id = req_str(body, "provider", max_len=32)
    if provider_id not in registry.ids():
        raise ValidationFailed(f"unknown provider {provider_id!r}; use one of: {', '.join(registry.ids())}",
                               param="provider", code="unknown_provider")
    provider = registry.get(provider_id)
    name = req_str(body, "name", max_len=100)
    key = req_str(body, "key", max_len=MAX_KEY_LENGTH, min_len=8)
    if not provider.accepts_key(key):
        raise ValidationFailed(_format_problem(provider, key), param="key", code="invalid_key_format")
    key_id = uuid.uuid4()
    sealed = request.app[KEYRING].seal(key, ws.user.id, key_id, ws.org_id)
    async with request.app[POOL].acquire() as conn, conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1::text))", str(ws.id))
        await _check_provider_limit(conn, ws, provider_id)
        row = await conn.fetchrow(
            """INSERT INTO api_keys (id, user_id, provider, name, ciphertext, nonce, key_version, masked_hint, org_id)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
               RETURNING id, provider, name, masked_hint, created_at, last_used_at""",
            key_id, ws.user.id, provider_id, name, sealed.ciphertext, sealed.nonce, sealed.key_version,
            mask_key(key), ws.org_id)
    assert row is not None
    await request.app[KEYCACHE].invalidate_user(ws.id)
    return json_response(_public(row), status=201)


@routes.get("/api/provider-keys")
@routes.get("/api/orgs/{org_id}/provider-keys")
async def list_keys(request: web.Request) -> web.Response:
    ws = await authorize(request, ACTION)
    rows = await request.app[POOL].fetch(
        """SELECT id, provider, name, masked_hint, created_at, last_used_at FROM api_keys
           WHERE org_id IS NOT DISTINCT FROM $1 AND ($2::uuid IS NULL OR user_id = $2)
           ORDER BY created_at, id""", *ws.scope(ACTION))
    return json_response({"data": [_public(r) for r in rows]})


@routes.delete("/api/provider-keys/{id}")
@routes.delete("/api/orgs/{org_id}/provider-keys/{id}")
async def delete(request: web.Request) -> web.Response:
    ws = await authorize(request, ACTION)
    key_id = path_uuid(request)
    deleted = await request.app[POOL].fetchval(
        """DELETE FROM api_keys WHERE id = $1 AND org_id IS NOT DISTINCT FROM $2 AND ($3::uuid IS NULL OR user_id = $3)
           RETURNING id""", key_id, *ws.scope(ACTION))
    if deleted is None:
        raise NotFound("provider key not found")
    await request.app[KEYCACHE].invalidate_user(ws.id)
    return json_response({"id": str(key_id), "deleted": True})


@routes.post("/api/provider-keys/{id}/test")
@routes.post("/api/orgs/{org_id}/provider-keys/{id}/test")
async def test_key(request: web.Request) -> web.Response:
    ws = await authorize(request, ACTION)
    key_id = path_uuid(request)
    row = await request.app[POOL].fetchrow(
        """SELECT id, user_id, org_id, provider, ciphertext, nonce, key_version FROM api_keys
           WHERE id = $1 AND org_id IS NOT DISTINCT FROM $2 AND ($3::uuid IS NULL OR user_id = $3)""",
        key_id, *ws.scope(ACTION))
    if row is None:
        raise NotFound("provider key not found")
    key = request.app[KEYRING].open(Sealed(row["ciphertext"], row["nonce"], row["key_version"]), row["user_id"],
                                    row["id"], row["org_id"])
    provider = request.app[REGISTRY].get(row["provider"])
    if not provider.accepts_key(key):  # stored before the format check it fails was added: never sent
        return json_response({"id": str(key_id), "provider": provider.id, "status": "invalid_key",
                              "detail": _format_problem(provider, key) + "; delete this key and add it again"})
    base_url = request.app[SETTINGS].upstream_base_urls[provider.id]
    upstream = provider.models_request(key, base_url)
    try:
        async with request.app[HTTP].request(upstream.method, upstream.url, headers=upstream.headers,
                                             data=upstream.body, timeout=KEY_TEST_TIMEOUT) as resp:
            raw = await resp.read()
            status = resp.status
            headers = dict(resp.headers)
    except (aiohttp.ClientError, TimeoutError) as exc:
        return json_response({"id": str(key_id), "provider": provider.id, "status": "unreachable",
                              "detail": f"could not reach {provider.display_name}: {type(exc).__name__}"})
    if status >= 400:
        status = provider.upstream_error(status, raw, headers).status  # e.g. Gemini's 400 API_KEY_INVALID -> 401
    if status < 300:
        verdict, detail = "ok", f"{provider.display_name} accepted the key"
    elif status in (401, 403):
        verdict, detail = "invalid_key", f"{provider.display_name} rejected the key (HTTP {status})"
    else:
        verdict, detail = "unreachable", f"{provider.display_name} answered HTTP {status}"
    return json_response({"id": str(key_id), "provider": provider.id, "status": verdict, "detail": detail})
