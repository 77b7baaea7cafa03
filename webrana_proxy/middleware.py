"""The request pipeline shared by every route: request id, the per-IP limit, and the one error renderer."""

from __future__ import annotations

import itertools
import logging
import secrets
from collections.abc import Awaitable, Callable

from aiohttp import web
from redis.exceptions import RedisError

from webrana_proxy.clientip import client_ip, limit_key
from webrana_proxy.dialects import errors as dialect_errors
from webrana_proxy.errors import (
    BadRequest,
    NotFound,
    PayloadTooLarge,
    RateLimited,
    WebranaError,
)
from webrana_proxy.state import LIMITER, SETTINGS

log = logging.getLogger("webrana.http")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
REQUEST_ID = web.RequestKey("request_id", str)
# Set by handlers that stream: once headers are sent, an error can no longer become an error response,
# so the middleware re-raises and aiohttp closes the connection (the client sees a cut stream, not a lie).
RESPONSE_STARTED = web.RequestKey("response_started", bool)
CLIENT_IP = web.RequestKey("client_ip", str)
CLIENT_KEY = web.RequestKey("client_key", str)  # what per-address limits count by: the address, or its IPv6 /64
UNLIMITED_PATHS = ("/health", "/metrics")  # probes and scrapes come from the platform, not from clients
GATEWAY_PREFIX = "/v1/"  # the gateway checks the IP limit inside its single Lua call


class RequestIds:
    """Unique request ids without a syscall per request: a random per-process prefix and a counter."""

    __slots__ = ("_next", "_prefix")

    def __init__(self) -> None:
        self._prefix = "req_" + secrets.token_hex(6)
        self._next = itertools.count(1).__next__

    def new(self) -> str:
        return f"{self._prefix}{self._next():x}"


REQUEST_IDS = web.AppKey("request_ids", RequestIds)


def error_response(err: WebranaError, request_id: str, path: str = "") -> web.Response:
    """``err`` in the shape of the route's dialect (Anthropic's on /v1/messages*, else OpenAI's)."""
    headers = {"x-request-id": request_id, **err.headers}
    status, body = dialect_errors.render(err, request_id, path)
    return web.Response(body=body, status=status, content_type="application/json", headers=headers)


def _from_http_exception(exc: web.HTTPException) -> WebranaError:
    if exc.status == 404:
        return NotFound("no such route; see /api/openapi.json for the management API and /v1 for the gateway",
                        code="route_not_found")
    if exc.status == 413:
        return PayloadTooLarge("request body is too large")
    return WebranaError(exc.reason or "request failed", status=exc.status,
                        code=exc.reason.lower().replace(" ", "_") if exc.reason else None)


@web.middleware
async def pipeline(request: web.Request, handler: Handler) -> web.StreamResponse:
    # Always our own id: it keys the usage row (unique), so a client must never be able to choose it.
    request_id = request.app[REQUEST_IDS].new()
    request[REQUEST_ID] = request_id
    settings = request.app[SETTINGS]
    request[CLIENT_IP] = ip = client_ip(request.remote, request.headers.get("X-Forwarded-For"),
                                        settings.trusted_proxies)
    request[CLIENT_KEY] = limit_key(ip)
    path = request.path
    try:
        if "\x00" in path or ("%00" in request.rel_url.raw_query_string
                                 and any("\x00" in k or "\x00" in v for k, v in request.query.items())):
            raise BadRequest("the URL contains a NUL character", code="invalid_characters")
        rate_headers: dict[str, str] = {}
        if not path.startswith(UNLIMITED_PATHS) and not path.startswith(GATEWAY_PREFIX):
            rate_headers = await check_ip_limit(request)
        response = await handler(request)
    except WebranaError as err:
        if request.get(RESPONSE_STARTED):
            raise
        return error_response(err, request_id, path)
    except web.HTTPException as exc:
        if exc.status < 400 or request.get(RESPONSE_STARTED):
            raise
        return error_response(_from_http_exception(exc), request_id, path)
    except Exception:
        log.exception("unhandled error", extra={"request_id": request_id, "path": path})
        if request.get(RESPONSE_STARTED):
            raise
        internal = WebranaError(f"internal error; quote request id {request_id} when reporting it",
                                code="internal_error")
        return error_response(internal, request_id, path)
    if not response.prepared:
        response.headers["x-request-id"] = request_id
        response.headers.update(rate_headers)
    return response


async def check_ip_limit(request: web.Request) -> dict[str, str]:
    """Count this request against its address's per-minute limit; RateLimited beyond it (allowed if Redis is away)."""
    limiter = request.app[LIMITER]
    try:
        verdict = await limiter.check_ip(request[CLIENT_KEY])
    except (RedisError, OSError):
        log.warning("rate limiter unavailable (Redis); allowing request", extra={"limits": "degraded"})
        return {}
    headers = {
        "X-RateLimit-Limit": str(verdict.limit),
        "X-RateLimit-Remaining": str(verdict.remaining),
        "X-RateLimit-Reset": str(verdict.reset_seconds),
    }
    if not verdict.allowed:
        raise RateLimited(f"too many requests from this address: limit is {verdict.limit} per minute",
                          retry_after=verdict.reset_seconds, headers=headers)
    return headers
