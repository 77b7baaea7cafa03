"""The OpenAPI 3.1 document of /api, served at /api/openapi.json. A test checks it against the router, so
a route cannot be added or removed without this document following."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from webrana_proxy import __version__
from webrana_proxy.jsonio import json_response
from webrana_proxy.providers.registry import provider_ids

routes = web.RouteTableDef()

ERROR = {"$ref": "#/components/schemas/Error"}
STR = {"type": "string"}
UUID = {"type": "string", "format": "uuid"}
DATE = {"type": "string", "format": "date"}
INT = {"type": "integer"}


def _obj(required: list[str], **props: Any) -> dict[str, Any]:
    return {"type": "object", "required": required, "properties": props, "additionalProperties": True}


def _op(summary: str, *, body: dict[str, Any] | None = None, ok: int = 200, auth: bool = True,
        params: list[dict[str, Any]] | None = None, response: dict[str, Any] | None = None,
        content_type: str = "application/json") -> dict[str, Any]:
    op: dict[str, Any] = {
        "summary": summary,
        "responses": {
            str(ok): {"description": "success",
                      "content": {content_type: {"schema": response or {"type": "object"}}}},
            "default": {"description": "error", "content": {"application/json": {"schema": ERROR}}},
        },
    }
    if body is not None:
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": body}}}
    if params:
        op["parameters"] = params
    op["security"] = [{"bearer": []}] if auth else []
    return op


def _path_id(description: str = "resource id") -> dict[str, Any]:
    return {"name": "id", "in": "path", "required": True, "schema": UUID, "description": description}


def _query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": description}


TOKENS_RESPONSE = _obj(["access_token", "refresh_token", "token_type", "expires_in", "user"],
                       access_token=STR, refresh_token=STR, token_type={"const": "bearer"},
                       expires_in=INT, user={"$ref": "#/components/schemas/User"})
CREDENTIALS = _obj(["email", "password"], email={"type": "string", "format": "email", "maxLength": 254},
                   password={"type": "string", "minLength": 8, "maxLength": 256})
REFRESH = _obj(["refresh_token"], refresh_token={"type": "string", "maxLength": 2048})
PROVIDER = {"type": "string", "enum": list(provider_ids())}
PLAN = {"type": "string", "enum": ["free", "starter", "pro", "team"]}
RANGE_PARAMS = [_query("from", DATE, "first day (Asia/Jakarta), YYYY-MM-DD"),
                _query("to", DATE, "last day (Asia/Jakarta), YYYY-MM-DD")]
MONEY = {"cost_idr": {"type": "number", "description": "rupiah, with decimals (exact: cost_idr_micro)"},
         "cost_idr_micro": {**INT, "description": "micro-rupiah"}, "cost_usd_nano": {**INT, "description": "nano-USD"}}
USAGE_SUMS = _obj(["requests", "errors", "prompt_tokens", "completion_tokens", "total_tokens", "cached_tokens",
                   "cache_write_tokens", "reasoning_tokens", "cost_idr", "cost_idr_micro", "cost_usd_nano",
                   "fallback_requests"],
                  requests=INT, errors=INT, prompt_tokens=INT, completion_tokens=INT, total_tokens=INT,
                  cached_tokens=INT, cache_write_tokens=INT, reasoning_tokens=INT,
                  fallback_requests={**INT, "description": "calls of a model with no price: cost estimated"},
                  **MONEY)
USAGE_SUMMARY = _obj(
    ["from", "to", "totals", "by_day", "by_provider", "by_model"], totals=USAGE_SUMS,
    by_day={"type": "array", "items": {"allOf": [USAGE_SUMS, _obj(["date"], date=DATE)]}},
    by_provider={"type": "array", "items": {"allOf": [USAGE_SUMS, _obj(["provider"], provider=STR)]}},
    by_model={"type": "array", "items": {"allOf": [USAGE_SUMS, _obj(["provider", "model"], provider=STR,
                                                                    model=STR)]}},
    **{"from": DATE, "to": DATE})
USAGE_ROW = _obj(["id", "request_id", "created_at", "provider", "model", "endpoint", "stream", "status",
                  "prompt_tokens", "completion_tokens", "total_tokens", "cached_tokens", "cache_write_tokens",
                  "reasoning_tokens", "tokens_estimated", "cost_idr", "cost_idr_micro", "cost_usd_nano",
                  "usd_to_idr", "price_source", "price_version", "latency_ms", "ttfb_ms", "error_type"],
                 id=UUID, request_id=STR, created_at={"type": "string", "format": "date-time"}, provider=STR,
                 model=STR, endpoint=STR, stream={"type": "boolean"}, status=INT, prompt_tokens=INT,
                 completion_tokens=INT, total_tokens=INT, cached_tokens=INT, cache_write_tokens=INT,
                 reasoning_tokens=INT, tokens_estimated={"type": "boolean"}, **MONEY,
                 usd_to_idr={"type": ["integer", "null"]},
                 price_source={"type": ["string", "null"],
                               "enum": ["catalogue", "override", "fallback", "provider", None]},
                 price_version={"type": ["string", "null"]},
                 latency_ms=INT, ttfb_ms={"type": ["integer", "null"]},
                 error_type={"type": ["string", "null"]})
USAGE_PAGE = _obj(["data", "next_cursor"], data={"type": "array", "items": USAGE_ROW},
                  next_cursor={"type": ["string", "null"]})
USAGE_REQUEST_PARAMS = [
    _query("from", DATE, "first day (Asia/Jakarta), YYYY-MM-DD; open if absent"),
    _query("to", DATE, "last day (Asia/Jakarta), YYYY-MM-DD; open if absent"),
    _query("model", STR, "only this model"),
    _query("provider", STR, "only this provider"),
    _query("status", STR, "an HTTP status code like 200 or 429, 'ok' (< 400) or 'error' (>= 400)"),
    _query("cursor", STR, "next_cursor of the previous page"),
    _query("limit", {"type": "integer", "minimum": 1, "maximum": 200, "default": 50}, "rows per page"),
]
PRICE_OVERRIDE = _obj(
    ["provider", "model_pattern", "prices"], provider=PROVIDER,
    model_pattern={"type": "string", "minLength": 1, "maxLength": 200,
                   "description": "a model id, or a prefix ending in one '*' (e.g. gpt-7*)"},
    prices={"type": "object", "description": "USD per million tokens: input, cache_read, cache_write, "
            "cache_write_1h, output, output_thinking; each a number or {base, tiers: [[start, price]]}"},
    valid_from={"type": "string", "format": "date-time"},
    context_window={"type": "integer", "minimum": 1, "maximum": 100_000_000},
    source={"type": "string", "maxLength": 500}, note={"type": "string", "maxLength": 2000})
ALIAS_HOP = {"oneOf": [{"type": "string", "description": "a model name"}, _obj(
    ["model"], model={"type": "string", "maxLength": 200, "description": "a model Webrana serves (not wbr/...)"},
    params=_obj([], max_tokens={"type": "integer", "minimum": 1, "maximum": 1_000_000},
                temperature={"type": "number", "minimum": 0, "maximum": 2},
                top_p={"type": "number", "minimum": 0, "maximum": 1}),
    first_byte_timeout={"type": "number", "minimum": 0.1, "maximum": 600,
                        "description": "seconds before falling back; default 15 (the last hop: the global one)"})]}
ALIAS_BODY = _obj(["name", "hops"], name={"type": "string", "pattern": "^wbr/[a-z0-9][a-z0-9._-]{0,62}$"},
                  hops={"type": "array", "minItems": 1, "maxItems": 5, "items": ALIAS_HOP,
                        "description": "tried in order: the next on 429, 5xx, unreachable, first-byte timeout, "
                        "an open circuit breaker, or a stream that failed before its first byte"})
ALIAS = _obj(["id", "name", "hops", "created_at", "updated_at"], id=UUID, name=STR,
             hops={"type": "array", "items": ALIAS_HOP}, created_at={"type": "string", "format": "date-time"},
             updated_at={"type": "string", "format": "date-time"})
META = _obj(["version", "demo", "mail", "providers"], version=STR, demo={"type": "boolean"},
            mail={"type": "boolean"},
            providers={"type": "array", "description": "the providers this deployment routes to, in order",
                       "items": _obj(["id", "name"], id=PROVIDER, name=STR)})


def overview_schema(plan_offer: dict[str, Any]) -> dict[str, Any]:
    return _obj(
        ["user", "plan", "monthly_requests", "month", "by_day", "provider_keys", "proxy_keys", "made_call", "demo"],
        user={"$ref": "#/components/schemas/User"}, plan=plan_offer, monthly_requests=INT,
        month={"allOf": [USAGE_SUMS, _obj(["from", "to"], **{"from": DATE, "to": DATE})]},
        by_day={"type": "array", "items": {"allOf": [USAGE_SUMS, _obj(["date"], date=DATE)]}},
        provider_keys=INT, proxy_keys=INT, made_call={"type": "boolean"}, demo={"type": "boolean"})


def paths() -> dict[str, dict[str, Any]]:
    """Every /api route: method -> operation."""
    from webrana_proxy.api.alerts_openapi import alerts_paths
    from webrana_proxy.api.auth_email_openapi import auth_email_paths  # they build on the helpers above
    from webrana_proxy.api.billing_openapi import PLAN_OFFER, billing_paths
    from webrana_proxy.api.orgs_openapi import orgs_paths, team_key_paths
    from webrana_proxy.api.rules_openapi import rules_paths

    personal = {
        **billing_paths(),
        **auth_email_paths(),
        **alerts_paths(),
        **orgs_paths(),  # teams; /api/orgs/{org_id}/... names the workspace a call acts in
        "/api/openapi.json": {"get": _op("This document", auth=False)},
        "/api/meta": {"get": _op("Facts about this deployment: the API version, whether the providers are "
                                 "local demo fakes (WEBRANA_DEMO), whether e-mail is sent (mail: an SMTP server "
                                 "is configured), and the providers it routes to", auth=False, response=META)},
        "/api/overview": {"get": _op("Everything the console's overview shows, in one call: the user, their plan, "
                                     "the monthly quota and this month's use (Asia/Jakarta), requests per day "
                                     "over the last 30 days, key counts, and the demo flag",
                                     response=overview_schema(PLAN_OFFER))},
        "/api/auth/register": {"post": _op("Create an account", body=CREDENTIALS, ok=201, auth=False,
                                           response=TOKENS_RESPONSE)},
        "/api/auth/login": {"post": _op("Sign in", body=CREDENTIALS, auth=False, response=TOKENS_RESPONSE)},
        "/api/auth/refresh": {"post": _op("Rotate a refresh token", body=REFRESH, auth=False,
                                          response=TOKENS_RESPONSE)},
        "/api/auth/logout": {"post": _op("Revoke a sign-in", body=REFRESH, auth=False)},
        "/api/auth/me": {"get": _op("The signed-in user", response={"$ref": "#/components/schemas/User"})},
        "/api/provider-keys": {
            "get": _op("List provider keys (masked)"),
            "post": _op("Store a provider key (encrypted)", ok=201, body=_obj(
                ["provider", "name", "key"], provider=PROVIDER, name={"type": "string", "maxLength": 100},
                key={"type": "string", "minLength": 8, "maxLength": 512})),
        },
        "/api/provider-keys/{id}": {"delete": _op("Delete a provider key", params=[_path_id()])},
        "/api/provider-keys/{id}/test": {"post": _op("Test a provider key against the provider",
                                                     params=[_path_id()])},
        **rules_paths(),  # /api/proxy-keys, spend caps
        "/api/aliases": {
            "get": _op("List your aliases", response=_obj(["data"], data={"type": "array", "items": ALIAS})),
            "post": _op("Create an alias: a model name (wbr/...) for models tried in order, usable in every "
                        "dialect; effective on every replica within a second", ok=201, body=ALIAS_BODY,
                        response=ALIAS),
        },
        "/api/aliases/{id}": {
            "get": _op("Read an alias", params=[_path_id()], response=ALIAS),
            "put": _op("Replace an alias's name and hops", params=[_path_id()], body=ALIAS_BODY, response=ALIAS),
            "delete": _op("Delete an alias", params=[_path_id()]),
        },
        "/api/prices": {"get": _op("The current models of every provider with their prices (USD per million "
                                   "tokens, as in force today) and context windows")},
        "/api/admin/prices": {
            "get": _op("The price overrides admins set (admin)"),
            "post": _op("Add a price override: wins over the vendored price data from valid_from on, on every "
                        "replica within a second; audited (admin)", ok=201, body=PRICE_OVERRIDE),
        },
        "/api/admin/prices/{id}": {
            "put": _op("Change a price override (audited) (admin)", params=[_path_id()], body=PRICE_OVERRIDE),
            "delete": _op("Remove a price override (audited) (admin)", params=[_path_id()]),
        },
        "/api/usage/summary": {"get": _op("Usage totals and per-day, per-provider and per-model sums "
                                          "(Asia/Jakarta days; default this month so far; at most 366 days)",
                                          params=RANGE_PARAMS, response=USAGE_SUMMARY)},
        "/api/usage/requests": {"get": _op("The caller's request log, newest first (cursor pagination)",
                                           params=USAGE_REQUEST_PARAMS, response=USAGE_PAGE)},
        "/api/usage/export.csv": {"get": _op("The caller's request log as CSV, streamed (default this month "
                                             "so far; at most 366 days)", params=RANGE_PARAMS,
                                             response=STR, content_type="text/csv")},
    }
    return {**personal, **team_key_paths(personal)}


def document() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {"title": "Webrana management API", "version": __version__},
        "paths": paths(),
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}},
            "schemas": {
                "Error": _obj(["error"], error=_obj(["message", "type"], message=STR, type=STR,
                                                    code={"type": ["string", "null"]},
                                                    param={"type": ["string", "null"]})),
                "User": _obj(["id", "email", "role", "plan", "status", "created_at"], id=UUID, email=STR,
                             role={"type": "string", "enum": ["user", "admin"]}, plan=PLAN,
                             status={"type": "string", "enum": ["active", "suspended"]},
                             created_at={"type": "string", "format": "date-time"},
                             email_verified={"type": "boolean"}, locale={"type": "string", "enum": ["id", "en"]}),
            },
        },
    }


@routes.get("/api/openapi.json")
async def serve(request: web.Request) -> web.Response:
    return json_response(document())
