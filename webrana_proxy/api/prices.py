"""/api/admin/prices: the admins' price overrides (``model_prices``). They win over the vendored price data from
``valid_from`` on: a negotiated rate, a model released this morning, a correction before the next ``make prices``.
Every change is written to ``audit_log`` in the same transaction and reaches every replica within a second (the
key-cache channel's ``prices`` signal). Admin role only. Also /api/prices: the current catalogue, for the console.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import asyncpg
from aiohttp import web

from webrana_proxy.api.identity import current_admin, current_user
from webrana_proxy.errors import NotFound, ValidationFailed
from webrana_proxy.jsonio import json_response, opt_int, path_uuid, read_json, req_str
from webrana_proxy.pricing import SIGNAL, STALE_AFTER_DAYS, load_db_overrides
from webrana_proxy.providers.costs import Rates
from webrana_proxy.state import KEYCACHE, POOL, PRICES, REGISTRY

routes = web.RouteTableDef()
BODY_LIMIT = 16 * 1024
MAX_CONTEXT_WINDOW = 100_000_000


def _view(row: asyncpg.Record) -> dict[str, Any]:
    return {"id": str(row["id"]), "provider": row["provider"], "model_pattern": row["model_pattern"],
            "valid_from": row["valid_from"].isoformat(), "prices": row["prices"],
            "context_window": row["context_window"], "source": row["source"], "note": row["note"],
            "changed_by": str(row["changed_by"]) if row["changed_by"] else None,
            "updated_at": row["updated_at"].isoformat()}


def _fields(request: web.Request, body: dict[str, Any]) -> dict[str, Any]:
    provider = req_str(body, "provider", max_len=40)
    if request.app[REGISTRY].find(provider) is None:
        raise ValidationFailed(f"unknown provider '{provider}'; known: {', '.join(request.app[REGISTRY].ids())}",
                               param="provider")
    pattern = req_str(body, "model_pattern", max_len=200).strip().lower()
    if "*" in pattern[:-1] or not pattern.isprintable() or pattern == "*":
        raise ValidationFailed("'model_pattern' is a model id, or a prefix ending in one '*' (e.g. gpt-7*)",
                               param="model_pattern")
    prices = body.get("prices")
    if not isinstance(prices, dict) or not prices:
        raise ValidationFailed("'prices' must be an object such as {\"input\": \"2.5\", \"output\": \"10\"} "
                               "(USD per million tokens)", param="prices")
    try:
        rates = Rates.from_json(prices)
    except (ValueError, TypeError, KeyError, ArithmeticError) as exc:
        raise ValidationFailed(f"'prices': {exc}", param="prices") from None
    if rates.input is None and rates.output is None:
        raise ValidationFailed("'prices' needs at least 'input' or 'output'", param="prices")
    valid_from = datetime.now(UTC)
    raw_from = body.get("valid_from")
    if raw_from is not None:
        try:
            valid_from = datetime.fromisoformat(str(raw_from))
        except ValueError:
            raise ValidationFailed("'valid_from' must be an ISO 8601 time such as 2027-01-01T00:00:00+07:00",
                                   param="valid_from") from None
        if valid_from.tzinfo is None:
            raise ValidationFailed("'valid_from' needs a time zone (e.g. +07:00)", param="valid_from")
    source = body.get("source", "")
    note = body.get("note", "")
    if not isinstance(source, str) or len(source) > 500 or not isinstance(note, str) or len(note) > 2000:
        raise ValidationFailed("'source' (the provider's page or the contract, at most 500 characters) and "
                               "'note' (at most 2000) must be text", param="source")
    return {"provider": provider, "pattern": pattern, "prices": rates.to_json(), "valid_from": valid_from,
            "context_window": opt_int(body, "context_window", minimum=1, maximum=MAX_CONTEXT_WINDOW),
            "source": source.strip(), "note": note.strip()}


async def _changed(request: web.Request) -> None:
    """Reload here at once (the caller sees its change in its next call) and tell every replica."""
    await load_db_overrides(request.app[POOL], request.app[PRICES])
    await request.app[KEYCACHE].publish_signal(SIGNAL)


async def _audit(conn: Any, actor: Any, action: str, details: dict[str, Any]) -> None:
    await conn.execute(
        "INSERT INTO audit_log (actor_id, action, target_user_id, details) VALUES ($1, $2, NULL, $3)",
        actor.id, action, {"actor_email": actor.email, **details})


@routes.get("/api/admin/prices")
async def list_overrides(request: web.Request) -> web.Response:
    await current_admin(request)
    rows = await request.app[POOL].fetch(
        """SELECT id, provider, model_pattern, valid_from, prices, context_window, source, note, changed_by,
                  updated_at
           FROM model_prices ORDER BY provider, model_pattern, valid_from DESC""")
    return json_response({"data": [_view(r) for r in rows]})


@routes.post("/api/admin/prices")
async def create_override(request: web.Request) -> web.Response:
    admin = await current_admin(request)
    f = _fields(request, await read_json(request, BODY_LIMIT))
    async with request.app[POOL].acquire() as conn, conn.transaction():
        try:
            row = await conn.fetchrow(
                """INSERT INTO model_prices (provider, model_pattern, valid_from, prices, context_window, source,
                                              note, changed_by)
                    VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
                    RETURNING id, provider, model_pattern, valid_from, prices, context_window, source, note,
                              changed_by, updated_at""",
                f["provider"], f["pattern"], f["valid_from"], f["prices"], f["context_window"], f["source"],
                f["note"], admin.id)
        except asyncpg.UniqueViolationError:
            raise ValidationFailed("an override for this provider, pattern and valid_from exists; change it "
                                   "instead", param="model_pattern") from None
        assert row is not None
        await _audit(conn, admin, "price.override.create", _view(row))
    await _changed(request)
    return json_response(_view(row), status=201)


@routes.put("/api/admin/prices/{id}")
async def update_override(request: web.Request) -> web.Response:
    admin = await current_admin(request)
    price_id = path_uuid(request)
    f = _fields(request, await read_json(request, BODY_LIMIT))
    async with request.app[POOL].acquire() as conn, conn.transaction():
        before = await conn.fetchrow(
            """SELECT id, provider, model_pattern, valid_from, prices, context_window, source, note, changed_by,
                      updated_at
               FROM model_prices WHERE id = $1 FOR UPDATE""", price_id)
        if before is None:
            raise NotFound("price override not found")
        row = await conn.fetchrow(
            """UPDATE model_prices SET provider = $2, model_pattern = $3, valid_from = $4, prices = $5,
                       context_window = $6, source = $7, note = $8, changed_by = $9
                WHERE id = $1
                RETURNING id, provider, model_pattern, valid_from, prices, context_window, source, note, changed_by,
                          updated_at""",
            price_id, f["provider"], f["pattern"], f["valid_from"], f["prices"], f["context_window"], f["source"],
            f["note"], admin.id)
        assert row is not None
        await _audit(conn, admin, "price.override.update", {"before": _view(before), "after": _view(row)})
    await _changed(request)
    return json_response(_view(row))


@routes.delete("/api/admin/prices/{id}")
async def delete_override(request: web.Request) -> web.Response:
    admin = await current_admin(request)
    price_id = path_uuid(request)
    async with request.app[POOL].acquire() as conn, conn.transaction():
        row = await conn.fetchrow(
            """DELETE FROM model_prices WHERE id = $1
               RETURNING id, provider, model_pattern, valid_from, prices, context_window, source, note, changed_by,
                         updated_at""", price_id)
        if row is None:
            raise NotFound("price override not found")
        await _audit(conn, admin, "price.override.delete", _view(row))
    await _changed(request)
    return web.Response(status=204)


@routes.get("/api/prices")
async def catalogue(request: web.Request) -> web.Response:
    """Current models with their prices and context windows (retired ones gone), and where the data came from."""
    await current_user(request)
    book = request.app[PRICES]
    cat = book.catalogue
    day = datetime.now(UTC).date()
    data = [{"provider": provider.id, "id": entry.id, **book.model_json(provider.id, entry, day)}
            for provider in request.app[REGISTRY].all() for entry in cat.current(provider.id, day)]
    return json_response({"data": data, "source": {
        "name": "genai-prices", "version": cat.source_version, "generated_on": cat.generated_on.isoformat(),
        "overrides_reviewed_on": cat.overrides_reviewed_on.isoformat(), "stale": cat.stale(day, STALE_AFTER_DAYS)}})
