"""The OpenAPI operations of the admins' own upstreams (merged into ``openapi.paths()``)."""

from __future__ import annotations

from typing import Any

from webrana_proxy.api.openapi import STR, UUID, _obj, _op, _path_id

DATETIME = {"type": "string", "format": "date-time"}
SLUG = {"type": "string", "pattern": "^[a-z][a-z0-9_-]{0,31}$",
        "description": "an admin's own upstream: its slug (GET /api/admin/upstreams)"}
AUTH = {"oneOf": [_obj(["style"], style={"const": "bearer", "description": "Authorization: Bearer <key>"}),
                  _obj(["style", "header"], style={"const": "header"},
                       header={"type": "string", "pattern": "^[A-Za-z0-9-]{1,64}$",
                               "description": "the user's key as this header's value, e.g. x-api-key"})]}
_FIELDS: dict[str, Any] = {
    "name": {"type": "string", "minLength": 1, "maxLength": 100},
    "base_url": {"type": "string", "maxLength": 2048, "description": "the OpenAI-compatible base (…/v1); https, "
                 "public addresses only unless WEBRANA_ALLOW_PRIVATE_UPSTREAMS=true (then also private and "
                 "loopback, and http:// to those); checked now and at every new connection, after DNS"},
    "model_prefix": {"type": "string", "pattern": "^[a-z0-9][a-z0-9._-]{0,39}/?$",
                     "description": "models it serves: 'sahabat/' (stripped before the call) or 'sealion-' (kept)"},
    "auth": AUTH,
    "static_headers": {"type": "object", "maxProperties": 20, "additionalProperties": {"type": "string"},
                       "description": "sent on every request; values are never shown again (masked)"},
    "keyless": {"type": "boolean", "description": "users call it without a key of their own"},
    "enabled": {"type": "boolean"},
}
CREATE = _obj(["slug", "name", "base_url", "model_prefix"], slug=SLUG, **_FIELDS)
UPDATE = _obj([], **_FIELDS)
UPSTREAM = _obj(["id", "slug", "name", "base_url", "model_prefix", "auth", "static_headers", "keyless", "enabled"],
                id=UUID, slug=SLUG, changed_by={"type": ["string", "null"]}, created_at=DATETIME,
                updated_at=DATETIME, **{**_FIELDS, "static_headers": {
                    "type": "object", "additionalProperties": STR, "description": "header names, values masked"}})


def upstreams_paths() -> dict[str, Any]:
    return {
        "/api/admin/upstreams": {
            "get": _op("The admins' own OpenAI-compatible upstreams (admin)",
                       response=_obj(["data"], data={"type": "array", "items": UPSTREAM})),
            "post": _op("Add an OpenAI-compatible upstream (a self-hosted vLLM, an Indonesian provider's API): "
                        "users add a key under its slug (or call it without one when keyless) and call models "
                        "named with its prefix in every dialect; effective on every replica within a second; "
                        "audited (admin)", ok=201, body=CREATE, response=UPSTREAM),
        },
        "/api/admin/upstreams/{id}": {
            "patch": _op("Change an upstream (fields given; the slug never changes); audited (admin)",
                         params=[_path_id()], body=UPDATE, response=UPSTREAM),
            "delete": _op("Remove an upstream (users' keys for it stay, unused); audited (admin)",
                          params=[_path_id()]),
        },
    }
