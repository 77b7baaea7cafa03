"""The OpenAPI operations of proxy keys with rules and of spend caps (merged into ``openapi.paths()``)."""

from __future__ import annotations

from typing import Any

from webrana_proxy.api.openapi import INT, STR, UUID, _obj, _op, _path_id

NULL_INT = {"type": ["integer", "null"], "minimum": 1}
NULL_DATETIME = {"type": ["string", "null"], "format": "date-time"}
STR_LIST = {"type": ["array", "null"], "items": STR}
# The rules a key may carry; in a PATCH only the fields sent change, null clears one.
RULE_FIELDS: dict[str, Any] = {
    "spend_cap_idr": {**NULL_INT, "description": "monthly spend cap in whole rupiah (Asia/Jakarta months)"},
    "rpm_limit": {**NULL_INT, "description": "requests per minute through this key"},
    "allowed_models": {**STR_LIST, "maxItems": 50,
                       "description": "exact model ids or globs (* and ?), e.g. gpt-5*, claude-haiku-*"},
    "allowed_providers": {**STR_LIST, "maxItems": 20,
                          "description": "provider ids; a call is allowed when it matches either list"},
    "expires_at": {**NULL_DATETIME, "description": "after this the key is refused (401)"},
    "note": {"type": ["string", "null"], "maxLength": 500},
}
PROXY_KEY = _obj(["id", "prefix", "name", "created_at", "request_count", "expired"], id=UUID, prefix=STR, name=STR,
                 created_at={"type": "string", "format": "date-time"}, last_used_at=NULL_DATETIME,
                 request_count=INT, revoked_at=NULL_DATETIME, expired={"type": "boolean"},
                 spent_this_month_idr_micro={"type": ["integer", "null"]}, **RULE_FIELDS)
NAME = {"type": "string", "minLength": 1, "maxLength": 100}
CAP_BODY = _obj([], spend_cap_idr=NULL_INT, hard={"type": "boolean", "description": "true: calls stop at the cap "
                                                                                    "(default); false: alerts only"})
CAP = _obj(["spend_cap_idr", "hard", "month", "spent_this_month_idr_micro"], spend_cap_idr=NULL_INT,
           hard={"type": "boolean"}, month=STR, timezone=STR, spent_this_month_idr_micro=INT,
           percent={"type": ["integer", "null"]})


def rules_paths() -> dict[str, Any]:
    return {
        "/api/proxy-keys": {
            "get": _op("List active proxy keys with their rules",
                       response=_obj(["data"], data={"type": "array", "items": PROXY_KEY})),
            "post": _op("Create a proxy key (returned once), optionally with rules", ok=201,
                        body=_obj(["name"], name=NAME, **RULE_FIELDS), response=PROXY_KEY),
        },
        "/api/proxy-keys/{id}": {
            "patch": _op("Change a proxy key's name or rules (only the fields sent; null clears a rule); every "
                         "replica applies it within a second", params=[_path_id()],
                         body=_obj([], name=NAME, **RULE_FIELDS), response=PROXY_KEY),
            "delete": _op("Revoke a proxy key", params=[_path_id()]),
        },
        "/api/account/spend-cap": {
            "get": _op("The account's monthly spend cap and this month's spend (Asia/Jakarta)", response=CAP),
            "put": _op("Set the account's monthly spend cap (null removes it)", body=CAP_BODY, response=CAP),
        },
        "/api/admin/users/{id}/spend-cap": {"put": _op(
            "Set a user's monthly spend cap (audited) (admin)", params=[_path_id("user id")], body=CAP_BODY,
            response=CAP)},
    }
