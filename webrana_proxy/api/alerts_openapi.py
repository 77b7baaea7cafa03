"""The OpenAPI operations of alerts and the webhook (merged into ``openapi.paths()``)."""

from __future__ import annotations

from typing import Any

from webrana_proxy.alerts.record import SCOPES
from webrana_proxy.api.openapi import INT, STR, UUID, _obj, _op, _path_id, _query

DATETIME = {"type": "string", "format": "date-time"}
NULL_DATETIME = {"type": ["string", "null"], "format": "date-time"}
ALERT = _obj(["id", "scope", "percent", "period", "used", "limit", "unit", "hard", "key", "created_at"],
             id=UUID, scope={"type": "string", "enum": list(SCOPES)},
             percent={"type": "integer", "enum": [80, 100]}, period={**STR, "description": "YYYY-MM, Asia/Jakarta"},
             timezone=STR, used=INT, limit=INT, unit={"type": "string", "enum": ["requests", "idr_micro"]},
             hard={"type": "boolean", "description": "reaching the limit stops calls"},
             key={"type": ["object", "null"], "properties": {"id": UUID, "name": STR, "prefix": STR}},
             team={"type": ["object", "null"], "properties": {"id": UUID, "name": {"type": ["string", "null"]}},
                   "description": "the team of a team's quota alert or of the caller's member limits in it"},
             dismissed_at=NULL_DATETIME, created_at=DATETIME)
WEBHOOK = _obj(["id", "url", "secret_hint", "created_at"], id=UUID, url=STR, secret_hint=STR, created_at=DATETIME,
               updated_at=DATETIME)
DELIVERY = _obj(["id", "event_type", "status", "attempts"], id=UUID, event_type=STR,
                status={"type": "string", "enum": ["queued", "sent", "failed"]}, attempts=INT,
                last_status={"type": ["integer", "null"]}, last_error={"type": ["string", "null"]},
                sent_at=NULL_DATETIME, next_attempt_at=DATETIME, created_at=DATETIME)
WEBHOOK_VIEW = _obj(["webhook", "deliveries"], webhook={"oneOf": [WEBHOOK, {"type": "null"}]},
                    deliveries={"type": "array", "items": DELIVERY},
                    secret={**STR, "description": "the signing secret (whsec_...): only in the answer that made it"})


def alerts_paths() -> dict[str, Any]:
    return {
        "/api/alerts": {"get": _op(
            "The caller's alerts (80 % and 100 % of the monthly request quota, of the account's spend cap, of "
            "each key's spend cap and of the caller's monthly request and spend limits in a team: member_requests, "
            "member_spend), newest first; undismissed ones unless all=true. Every signed-in answer also "
            "carries the undismissed ones (at most 5) in the Webrana-Alerts header",
            params=[_query("all", {"type": "boolean"}, "include dismissed alerts")],
            response=_obj(["data"], data={"type": "array", "items": ALERT}))},
        "/api/alerts/{id}/dismiss": {"post": _op("Dismiss an alert (the console's banner stops showing it)",
                                                 params=[_path_id("alert id")], response=ALERT)},
        "/api/webhook": {
            "get": _op("The caller's webhook (or null) and its recent deliveries", response=WEBHOOK_VIEW),
            "put": _op("Set the webhook URL (https; checked now and at every send: public addresses only). A new "
                       "webhook, or rotate_secret: true, returns its signing secret once (see docs/webhooks.md)",
                       body=_obj(["url"], url={"type": "string", "maxLength": 2048},
                                 rotate_secret={"type": "boolean"}), response=WEBHOOK_VIEW),
            "delete": _op("Remove the webhook (its pending deliveries too)", response=WEBHOOK_VIEW),
        },
        "/api/webhook/test": {"post": _op("Queue a signed webhook.test event", ok=202,
                                          response=_obj(["delivery_id", "event_id"], delivery_id=UUID,
                                                        event_id=UUID))},
    }
