"""/api/alerts and /api/webhook: the user's alerts (80 % and 100 % of the request quota, of the spend caps and of
their own monthly limits in a team),
dismissing one (the console's banner shows the undismissed ones), and the one webhook a user may configure.

A webhook's URL is checked when it is saved (its form, and where its host resolves now) and again at every send
(``alerts.delivery``). Its signing secret is made with it, sealed like a provider key, and shown once, in the
answer that made it (``rotate_secret: true`` makes a new one). See docs/webhooks.md.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import asyncpg
from aiohttp import web

from webrana_proxy.alerts.banner import PENDING
from webrana_proxy.alerts.delivery import SENDER
from webrana_proxy.alerts.record import REQUEST_SCOPES, TEST_EVENT, queue_event
from webrana_proxy.alerts.signing import hint, new_secret
from webrana_proxy.api.identity import current_user
from webrana_proxy.errors import NotFound, ValidationFailed
from webrana_proxy.jsonio import json_response, path_uuid, read_json
from webrana_proxy.netguard import AddressRefused, resolve_target
from webrana_proxy.state import KEYRING, POOL, SETTINGS

routes = web.RouteTableDef()
LIST_LIMIT = 100  # alerts listed at most (newest first)
RECENT_DELIVERIES = 10  # shown with the webhook

_ALERTS = """SELECT a.id, a.scope, a.percent, a.period, a.used, a.cap, a.hard, a.proxy_key_id, a.dismissed_at,
                    a.created_at, k.name AS key_name, k.prefix AS key_prefix, a.org_id, o.name AS org_name
             FROM alerts a LEFT JOIN proxy_api_keys k ON k.id = a.proxy_key_id
                  LEFT JOIN organisations o ON o.id = a.org_id
             WHERE a.user_id = $1 AND ($2 OR a.dismissed_at IS NULL)
             ORDER BY a.created_at DESC, a.percent DESC LIMIT $3"""


def _alert(row: asyncpg.Record) -> dict[str, Any]:
    return {"id": str(row["id"]), "scope": row["scope"], "percent": row["percent"], "period": row["period"],
            "timezone": "Asia/Jakarta", "used": row["used"], "limit": row["cap"],
            "unit": "requests" if row["scope"] in REQUEST_SCOPES else "idr_micro", "hard": row["hard"],
            "key": ({"id": str(row["proxy_key_id"]), "name": row["key_name"], "prefix": row["key_prefix"]}
                    if row["proxy_key_id"] else None),
            # a team's alert (its quota, or the caller's own member limits in it); name None once it was deleted
            "team": {"id": str(row["org_id"]), "name": row["org_name"]} if row["org_id"] else None,
            "dismissed_at": row["dismissed_at"].isoformat() if row["dismissed_at"] else None,
            "created_at": row["created_at"].isoformat()}


@routes.get("/api/alerts")
async def list_alerts(request: web.Request) -> web.Response:
    user = await current_user(request)
    everything = request.query.get("all", "") in ("1", "true")
    rows = await request.app[POOL].fetch(_ALERTS, user.id, everything, LIST_LIMIT)
    return json_response({"data": [_alert(r) for r in rows]})


@routes.post("/api/alerts/{id}/dismiss")
async def dismiss(request: web.Request) -> web.Response:
    user = await current_user(request)
    alert_id = path_uuid(request)
    row = await request.app[POOL].fetchrow(
        """WITH d AS (UPDATE alerts SET dismissed_at = coalesce(dismissed_at, now()) WHERE id = $1 AND user_id = $2
                      RETURNING *)
           SELECT d.id, d.scope, d.percent, d.period, d.used, d.cap, d.hard, d.proxy_key_id, d.dismissed_at,
                  d.created_at, k.name AS key_name, k.prefix AS key_prefix, d.org_id, o.name AS org_name
           FROM d LEFT JOIN proxy_api_keys k ON k.id = d.proxy_key_id
                  LEFT JOIN organisations o ON o.id = d.org_id""", alert_id, user.id)
    if row is None:
        raise NotFound("alert not found")
    request.pop(PENDING, None)  # this answer's banner must not show the alert just dismissed
    return json_response(_alert(row))


# --- the webhook -----------------------------------------------------------------------------------------------

_WEBHOOK = "SELECT id, url, secret_hint, created_at, updated_at FROM webhooks WHERE user_id = $1"
_DELIVERIES = """SELECT id, event_type, status, attempts, last_status, last_error, sent_at, next_attempt_at,
                        created_at
                 FROM webhook_deliveries WHERE user_id = $1 ORDER BY created_at DESC LIMIT $2"""


def _webhook(row: asyncpg.Record) -> dict[str, Any]:
    return {"id": str(row["id"]), "url": row["url"], "secret_hint": row["secret_hint"],
            "created_at": row["created_at"].isoformat(), "updated_at": row["updated_at"].isoformat()}


def _delivery(row: asyncpg.Record) -> dict[str, Any]:
    return {"id": str(row["id"]), "event_type": row["event_type"], "status": row["status"],
            "attempts": row["attempts"], "last_status": row["last_status"], "last_error": row["last_error"],
            "sent_at": row["sent_at"].isoformat() if row["sent_at"] else None,
            "next_attempt_at": row["next_attempt_at"].isoformat(), "created_at": row["created_at"].isoformat()}


async def _view(request: web.Request, user_id: uuid.UUID) -> dict[str, Any]:
    pool = request.app[POOL]
    row = await pool.fetchrow(_WEBHOOK, user_id)
    deliveries = await pool.fetch(_DELIVERIES, user_id, RECENT_DELIVERIES) if row is not None else []
    return {"webhook": _webhook(row) if row is not None else None,
            "deliveries": [_delivery(d) for d in deliveries]}


@routes.get("/api/webhook")
async def get_webhook(request: web.Request) -> web.Response:
    user = await current_user(request)
    return json_response(await _view(request, user.id))


@routes.put("/api/webhook")
async def put_webhook(request: web.Request) -> web.Response:
    """``{"url": "https://...", "rotate_secret": false}``: set the URL; a new webhook gets a secret (returned
    once, as ``secret``), as does ``rotate_secret: true``."""
    user = await current_user(request)
    body = await read_json(request, request.app[SETTINGS].api_body_limit)
    url = body.get("url")
    rotate = body.get("rotate_secret", False)
    if not isinstance(rotate, bool):
        raise ValidationFailed("'rotate_secret' must be true or false", param="rotate_secret", code="invalid_type")
    if not isinstance(url, str):
        raise ValidationFailed("'url' is required: the https:// address events are POSTed to", param="url",
                               code="missing_field")
    sender = request.app[SENDER]
    try:
        target = await resolve_target(url.strip(), sender.policy, sender.resolve)
    except AddressRefused as exc:
        raise ValidationFailed(f"webhook URL refused: {exc}", param="url", code="webhook_url_refused") from None
    keyring = request.app[KEYRING]
    secret: str | None = None
    async with request.app[POOL].acquire() as conn, conn.transaction():
        existing = await conn.fetchrow("SELECT id FROM webhooks WHERE user_id = $1 FOR UPDATE", user.id)
        if existing is None or rotate:
            webhook_id = existing["id"] if existing is not None else uuid.uuid4()
            secret = new_secret()
            sealed = keyring.seal(secret, user.id, webhook_id)
            await conn.execute(
                """INSERT INTO webhooks (id, user_id, url, secret_ciphertext, secret_nonce, key_version, secret_hint)
                   VALUES ($1, $2, $3, $4, $5, $6, $7)
                   ON CONFLICT (user_id) DO UPDATE SET url = EXCLUDED.url,
                       secret_ciphertext = EXCLUDED.secret_ciphertext, secret_nonce = EXCLUDED.secret_nonce,
                       key_version = EXCLUDED.key_version, secret_hint = EXCLUDED.secret_hint""",
                webhook_id, user.id, target.url, sealed.ciphertext, sealed.nonce, sealed.key_version, hint(secret))
        else:
            await conn.execute("UPDATE webhooks SET url = $2 WHERE user_id = $1", user.id, target.url)
    view = await _view(request, user.id)
    if secret is not None:
        view["secret"] = secret  # shown this once
    return json_response(view)


@routes.delete("/api/webhook")
async def delete_webhook(request: web.Request) -> web.Response:
    user = await current_user(request)
    deleted = await request.app[POOL].fetchval("DELETE FROM webhooks WHERE user_id = $1 RETURNING id", user.id)
    if deleted is None:
        raise NotFound("no webhook is configured")
    return json_response({"webhook": None, "deliveries": []})


@routes.post("/api/webhook/test")
async def test_webhook(request: web.Request) -> web.Response:
    """Queue a ``webhook.test`` event, sent like an alert's (signed, retried)."""
    user = await current_user(request)
    event_id = uuid.uuid4()
    async with request.app[POOL].acquire() as conn, conn.transaction():
        delivery = await queue_event(conn, user.id, event_id, TEST_EVENT, datetime.now(UTC),
                                     {"message": "a test event from Webrana"}, None)
    if delivery is None:
        raise NotFound("no webhook is configured")
    return json_response({"delivery_id": str(delivery), "event_id": str(event_id)}, status=202)
