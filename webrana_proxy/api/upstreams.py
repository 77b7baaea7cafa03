"""/api/admin/upstreams: the admins' own OpenAI-compatible upstreams (a self-hosted vLLM serving Sahabat-AI, an
Indonesian provider's OpenAI-style API). Each is a provider to every user: they add a key for it under its id
(``slug``) in /api/provider-keys, or call it without one when it is ``keyless``; models named with its
``model_prefix`` go to it. Every change is audited in the same transaction and reaches every replica within a second
(the key-cache channel's ``upstreams`` signal). Admin role only.

The URL is admin input: checked here (form, then DNS and every address, ``netguard``) and again when the gateway
connects. Static header values may be secrets: they are never returned, only their names with a masked value.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

import asyncpg
from aiohttp import web

from webrana_proxy.aliases import PREFIX as ALIAS_PREFIX
from webrana_proxy.api.identity import User, current_admin
from webrana_proxy.crypto import mask_key
from webrana_proxy.errors import NotFound, ValidationFailed
from webrana_proxy.jsonio import json_response, path_uuid, read_json
from webrana_proxy.netguard import AddressRefused, resolve_target
from webrana_proxy.providers.keyformat import printable_ascii
from webrana_proxy.state import KEYCACHE, POOL, REGISTRY, SETTINGS, UPSTREAM
from webrana_proxy.upstreams import SIGNAL, load, policy_for

routes = web.RouteTableDef()
BODY_LIMIT = 16 * 1024
MAX_STATIC_HEADERS = 20  # a tenant id, an API version, a gateway token: a handful in practice
MAX_HEADER_VALUE = 1024
SLUG = re.compile(r"[a-z][a-z0-9_-]{0,31}")  # as api_keys.provider allows
MODEL_PREFIX = re.compile(r"[a-z0-9][a-z0-9._-]{0,39}/?")
HEADER_NAME = re.compile(r"[A-Za-z0-9-]{1,64}")
# Headers the gateway writes itself (or that would change how the request is framed): never the admin's.
RESERVED_HEADERS = frozenset({"host", "content-length", "content-type", "transfer-encoding", "connection",
                              "user-agent", "accept-encoding", "te", "upgrade", "keep-alive", "expect",
                              "proxy-authorization", "trailer"})


def _view(row: asyncpg.Record) -> dict[str, Any]:
    return {"id": str(row["id"]), "slug": row["slug"], "name": row["name"], "base_url": row["base_url"],
            "model_prefix": row["model_prefix"], "auth": {"style": "header", "header": row["auth_header"]}
            if row["auth_header"] else {"style": "bearer"},
            "static_headers": {k: mask_key(str(v)) for k, v in dict(row["static_headers"]).items()},
            "keyless": row["keyless"], "enabled": row["enabled"],
            "changed_by": str(row["changed_by"]) if row["changed_by"] else None,
            "created_at": row["created_at"].isoformat(), "updated_at": row["updated_at"].isoformat()}


def _text(body: dict[str, Any], name: str, max_len: int) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value.strip() or len(value) > max_len or not value.isprintable():
        raise ValidationFailed(f"'{name}' must be printable text of 1 to {max_len} characters", param=name)
    return value.strip()


def _auth_header(value: Any) -> str | None:
    """``{"style": "bearer"}`` -> None; ``{"style": "header", "header": "x-api-key"}`` -> the header name."""
    if value is None:
        return None
    style = value.get("style") if isinstance(value, dict) else None
    if style == "bearer":
        return None
    header = value.get("header") if isinstance(value, dict) else None
    if style != "header" or not isinstance(header, str) or not HEADER_NAME.fullmatch(header):
        raise ValidationFailed("'auth' is {\"style\": \"bearer\"} (Authorization: Bearer <key>) or {\"style\": "
                               "\"header\", \"header\": \"x-api-key\"} (the key as that header's value)",
                               param="auth")
    if header.lower() in RESERVED_HEADERS:
        raise ValidationFailed(f"'{header}' is written by the gateway itself; choose another header", param="auth")
    return None if header.lower() == "authorization" else header.lower()


def _static_headers(value: Any, auth_header: str | None) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or len(value) > MAX_STATIC_HEADERS:
        raise ValidationFailed(f"'static_headers' is an object of at most {MAX_STATIC_HEADERS} header names and "
                               "text values", param="static_headers")
    out: dict[str, str] = {}
    for name, text in value.items():
        if not HEADER_NAME.fullmatch(name) or name.lower() in RESERVED_HEADERS:
            raise ValidationFailed(f"'{name}' cannot be a static header (letters, digits and '-' only; not a "
                                   "header the gateway writes)", param="static_headers")
        if name.lower() in ("authorization", auth_header or "authorization"):
            raise ValidationFailed(f"'{name}' carries the user's key; set the auth style instead",
                                   param="static_headers")
        if not isinstance(text, str) or not text or len(text) > MAX_HEADER_VALUE or not (
                printable_ascii(text.replace(" ", "x"))):
            raise ValidationFailed(f"the value of '{name}' must be printable ASCII of 1 to {MAX_HEADER_VALUE} "
                                   "characters", param="static_headers")
        out[name.lower()] = text
    return out


async def _check_url(request: web.Request, url: str) -> str:
    """The URL's form, then its host's addresses now (the gateway checks again at every new connection)."""
    settings = request.app[SETTINGS]
    try:
        async with asyncio.timeout(settings.connect_timeout):
            target = await resolve_target(url, policy_for(settings), request.app[UPSTREAM].resolve)
    except TimeoutError:
        raise ValidationFailed(f"'base_url' refused: its host did not resolve within {settings.connect_timeout:g} s",
                               param="base_url", code="address_refused") from None
    except AddressRefused as exc:
        hint = "" if request.app[SETTINGS].allow_private_upstreams else (
            " (an upstream on a private network needs WEBRANA_ALLOW_PRIVATE_UPSTREAMS=true)")
        raise ValidationFailed(f"'base_url' refused: {exc}{hint}", param="base_url",
                               code="address_refused") from None
    return target.url.rstrip("/")


def _names(slug: str, prefix: str) -> set[str]:
    """The provider names an upstream takes: its id, and its prefix when that is a ``<name>/``."""
    return {slug, prefix[:-1]} if prefix.endswith("/") else {slug}


async def _check_names(request: web.Request, conn: Any, slug: str, prefix: str, own_id: Any) -> None:
    registry = request.app[REGISTRY]
    taken = registry.builtin_names()
    mine = _names(slug, prefix)
    if mine & taken or ALIAS_PREFIX.rstrip("/") in mine:
        raise ValidationFailed(f"'{slug}' / '{prefix}' is a built-in provider's name or reserved (wbr/ is for "
                               "aliases); choose another", param="slug", code="name_taken")
    if not prefix.endswith("/"):
        owner = registry.builtin_owner(prefix) or registry.builtin_owner(prefix + "x")
        if owner is not None:
            raise ValidationFailed(f"models starting with '{prefix}' go to {owner.display_name}; choose another "
                                   "prefix (e.g. 'myvllm/')", param="model_prefix", code="name_taken")
    for row in await conn.fetch("SELECT id, slug, model_prefix FROM upstreams WHERE id IS DISTINCT FROM $1",
                                own_id):
        if mine & _names(row["slug"], row["model_prefix"]):
            raise ValidationFailed(f"upstream '{row['slug']}' already uses that name", param="slug",
                                   code="name_taken")


async def _fields(request: web.Request, body: dict[str, Any], before: asyncpg.Record | None) -> dict[str, Any]:
    """The row's fields: from ``body``, else (an update) as they were."""
    def given(name: str) -> bool:
        return before is None or name in body

    f: dict[str, Any] = {}
    if before is None:
        slug = _text(body, "slug", 32).lower()
        if not SLUG.fullmatch(slug):
            raise ValidationFailed("'slug' is the provider id users see: a lowercase letter, then up to 31 "
                                   "lowercase letters, digits, '-' or '_'", param="slug")
        f["slug"] = slug
    else:
        f["slug"] = before["slug"]
    f["name"] = _text(body, "name", 100) if given("name") else before["name"]  # type: ignore[index]
    f["base_url"] = (await _check_url(request, _text(body, "base_url", 2048)) if given("base_url")
                     else before["base_url"])  # type: ignore[index]
    if given("model_prefix"):
        prefix = _text(body, "model_prefix", 41).lower()
        if not MODEL_PREFIX.fullmatch(prefix):
            raise ValidationFailed("'model_prefix' is what the upstream's model names start with, e.g. "
                                   "'sahabat/' (stripped before the call) or 'sealion-' (kept)", param="model_prefix")
        f["model_prefix"] = prefix
    else:
        f["model_prefix"] = before["model_prefix"]  # type: ignore[index]
    f["auth_header"] = _auth_header(body.get("auth")) if given("auth") else before["auth_header"]  # type: ignore[index]
    if given("static_headers"):
        f["static_headers"] = _static_headers(body.get("static_headers"), f["auth_header"])
    else:
        f["static_headers"] = _static_headers(dict(before["static_headers"]), f["auth_header"])  # type: ignore[index]
    for flag, default in (("keyless", False), ("enabled", True)):
        value = body.get(flag, default if before is None else before[flag])
        if not isinstance(value, bool):
            raise ValidationFailed(f"'{flag}' must be true or false", param=flag)
        f[flag] = value
    return f


async def _audit(conn: Any, actor: User, action: str, details: dict[str, Any]) -> None:
    await conn.execute(
        "INSERT INTO audit_log (actor_id, action, target_user_id, details) VALUES ($1, $2, NULL, $3)",
        actor.id, action, {"actor_email": actor.email, **details})


async def _changed(request: web.Request) -> None:
    """Load here at once (the admin's next call sees it) and tell every replica."""
    await load(request.app[POOL], request.app[REGISTRY], policy_for(request.app[SETTINGS]))
    await request.app[KEYCACHE].publish_signal(SIGNAL)


@routes.get("/api/admin/upstreams")
async def list_upstreams(request: web.Request) -> web.Response:
    await current_admin(request)
    rows = await request.app[POOL].fetch(
        """SELECT id, slug, name, base_url, model_prefix, auth_header, static_headers, keyless, enabled,
                  changed_by, created_at, updated_at
           FROM upstreams ORDER BY created_at, id""")
    return json_response({"data": [_view(r) for r in rows]})


@routes.post("/api/admin/upstreams")
async def create_upstream(request: web.Request) -> web.Response:
    admin = await current_admin(request)
    f = await _fields(request, await read_json(request, BODY_LIMIT), None)
    async with request.app[POOL].acquire() as conn, conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext('webrana:upstreams'))")  # names checked, then taken
        await _check_names(request, conn, f["slug"], f["model_prefix"], None)
        row = await conn.fetchrow(
            """INSERT INTO upstreams (slug, name, base_url, model_prefix, auth_header, static_headers, keyless,
                                      enabled, changed_by)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
               RETURNING id, slug, name, base_url, model_prefix, auth_header, static_headers, keyless, enabled,
                         changed_by, created_at, updated_at""",
            f["slug"], f["name"], f["base_url"], f["model_prefix"], f["auth_header"], f["static_headers"],
            f["keyless"], f["enabled"], admin.id)
        assert row is not None
        await _audit(conn, admin, "upstream.create", _view(row))
    await _changed(request)
    return json_response(_view(row), status=201)


@routes.patch("/api/admin/upstreams/{id}")
async def update_upstream(request: web.Request) -> web.Response:
    admin = await current_admin(request)
    upstream_id = path_uuid(request)
    body = await read_json(request, BODY_LIMIT)
    if "slug" in body:
        raise ValidationFailed("'slug' cannot change (users' keys and usage rows are stored under it); add a new "
                               "upstream instead", param="slug")
    async with request.app[POOL].acquire() as conn, conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext('webrana:upstreams'))")
        before = await conn.fetchrow(
            """SELECT id, slug, name, base_url, model_prefix, auth_header, static_headers, keyless, enabled,
                      changed_by, created_at, updated_at
               FROM upstreams WHERE id = $1 FOR UPDATE""", upstream_id)
        if before is None:
            raise NotFound("upstream not found")
        f = await _fields(request, body, before)
        await _check_names(request, conn, f["slug"], f["model_prefix"], upstream_id)
        row = await conn.fetchrow(
            """UPDATE upstreams SET name = $2, base_url = $3, model_prefix = $4, auth_header = $5,
                      static_headers = $6, keyless = $7, enabled = $8, changed_by = $9
               WHERE id = $1
               RETURNING id, slug, name, base_url, model_prefix, auth_header, static_headers, keyless, enabled,
                         changed_by, created_at, updated_at""",
            upstream_id, f["name"], f["base_url"], f["model_prefix"], f["auth_header"], f["static_headers"],
            f["keyless"], f["enabled"], admin.id)
        assert row is not None
        await _audit(conn, admin, "upstream.update", {"before": _view(before), "after": _view(row)})
    await _changed(request)
    return json_response(_view(row))


@routes.delete("/api/admin/upstreams/{id}")
async def delete_upstream(request: web.Request) -> web.Response:
    admin = await current_admin(request)
    upstream_id = path_uuid(request)
    async with request.app[POOL].acquire() as conn, conn.transaction():
        row = await conn.fetchrow(
            """DELETE FROM upstreams WHERE id = $1
               RETURNING id, slug, name, base_url, model_prefix, auth_header, static_headers, keyless, enabled,
                         changed_by, created_at, updated_at""", upstream_id)
        if row is None:
            raise NotFound("upstream not found")
        await _audit(conn, admin, "upstream.delete", _view(row))
    await _changed(request)
    return web.Response(status=204)
