"""Who is calling /v1 and whether they may: the proxy key (from the in-process cache) and the limits
(one Redis round trip; per-process fallback limits while Redis is unreachable)."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import asyncpg
from aiohttp import web
from redis.exceptions import RedisError

from webrana_proxy.errors import Forbidden, RateLimited, Unauthorized
from webrana_proxy.gateway.runtime import GATEWAY
from webrana_proxy.keycache import Principal
from webrana_proxy.limits import Verdict, month_start_utc
from webrana_proxy.middleware import CLIENT_KEY, check_ip_limit
from webrana_proxy.state import KEYCACHE, LIMITER, METRICS, POOL, SETTINGS
from webrana_proxy.tokens import PROXY_KEY_PREFIX, sha256

log = logging.getLogger("webrana.gateway")
LIMIT_MESSAGES = {
    "ip": "too many requests from this address ({limit}/minute)",
    "burst": "too many requests for this account ({limit}/minute); slow down",
    "quota": "monthly request quota of {limit} reached; upgrade your plan in the console for more",
}


def proxy_key_of(request: web.Request) -> str:
    header = request.headers.get("Authorization")
    if header:
        scheme, _, token = header.partition(" ")
        key = token.strip() if scheme.lower() == "bearer" else ""
    else:
        key = request.headers.get("x-api-key", "").strip()
    if not key:
        raise Unauthorized("missing API key: send 'Authorization: Bearer wbr_...' (or x-api-key)")
    if not key.startswith(PROXY_KEY_PREFIX):
        raise Unauthorized("invalid API key: Webrana keys start with 'wbr_'; create one in the console")
    return key


async def authenticate(request: web.Request) -> Principal:
    key_hash = sha256(proxy_key_of(request))
    cache = request.app[KEYCACHE]
    found, principal = cache.peek(key_hash)
    if not found:
        # A key not in memory costs a PostgreSQL query: the address's per-minute limit applies first, so nobody
        # can flood the database with made-up keys. (Known keys are counted in the one gateway Lua call.)
        await check_ip_limit(request)
        principal = await cache.resolve(key_hash)
    if principal is None:
        raise Unauthorized("invalid or revoked API key")
    if not principal.active:
        raise Forbidden("this account is suspended; contact support", code="account_suspended")
    return principal


@dataclass(slots=True)
class LocalLimiter:
    """Per-process fallback used only while Redis is unreachable: same windows, this process's counts."""

    windows: dict[str, tuple[int, int]] = field(default_factory=dict)
    degraded: bool = False

    def hit(self, key: str, limit: int, now: float) -> Verdict:
        window = int(now // 60)
        start, count = self.windows.get(key, (window, 0))
        if start != window:
            count = 0
        count += 1
        self.windows[key] = (window, count)
        if len(self.windows) > 100_000:  # bounded: forget old windows
            self.windows = {k: v for k, v in self.windows.items() if v[0] == window}
        reset = int(60 - now % 60) or 1
        return Verdict(count <= limit, "" if count <= limit else key.split(":")[0], limit,
                       max(0, limit - count), reset)


FALLBACK = web.AppKey("limits_fallback", LocalLimiter)


async def enforce_limits(request: web.Request, principal: Principal, *, quota: bool = True) -> Verdict:
    """``quota=False`` for calls that are not billable (count_tokens): per-IP and burst only."""
    app = request.app
    limiter = app[LIMITER]
    ip = request[CLIENT_KEY]  # the address, or its IPv6 /64
    now = time.time()
    month, month_ttl = app[GATEWAY].months.at(now)
    metrics = app[METRICS]
    verdict: Verdict | None
    try:
        if not quota:
            verdict = await limiter.check_burst(ip, principal.user_id_str, principal.burst_per_minute, now)
        else:
            verdict = await limiter.check_gateway(ip, principal.user_id_str, principal.burst_per_minute,
                                                  principal.monthly_requests, month, month_ttl, now)
        if verdict is None:
            used = await app[POOL].fetchval(
                """SELECT coalesce(sum(requests), 0) FROM usage_daily
                   WHERE user_id = $1 AND day >= ($2::timestamptz AT TIME ZONE 'Asia/Jakarta')::date""",
                principal.user_id, month_start_utc(month))
            await limiter.seed_quota(principal.user_id_str, month, int(used), month_ttl)
            verdict = await limiter.check_gateway(ip, principal.user_id_str, principal.burst_per_minute,
                                                  principal.monthly_requests, month, month_ttl, now)
            assert verdict is not None
        if app[FALLBACK].degraded:
            app[FALLBACK].degraded = False
            metrics.limits_degraded.set(0)
            log.warning("limits restored: Redis is reachable again")
    except (RedisError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError):
        # Redis away, or PostgreSQL away while a lost quota counter needed rebuilding: never a 5xx for that.
        local = app[FALLBACK]
        if not local.degraded:
            local.degraded = True
            metrics.limits_degraded.set(1)
            log.warning("limits degraded: Redis unreachable, per-process fallback limits apply")
        verdict = local.hit(f"ip:{ip}", app[SETTINGS].ip_rate_limit, now)
        if verdict.allowed:
            verdict = local.hit(f"burst:{principal.user_id_str}", principal.burst_per_minute, now)
    if not verdict.allowed:
        metrics.limiter_rejections.labels(verdict.limit_name).inc()
        headers = rate_headers(verdict)
        raise RateLimited(LIMIT_MESSAGES[verdict.limit_name].format(limit=verdict.limit),
                          retry_after=verdict.reset_seconds, headers=headers,
                          code="quota_exceeded" if verdict.limit_name == "quota" else "rate_limit_exceeded")
    return verdict


def rate_headers(verdict: Verdict) -> dict[str, str]:
    return {"x-ratelimit-limit-requests": str(verdict.limit),
            "x-ratelimit-remaining-requests": str(verdict.remaining),
            "x-ratelimit-reset-requests": f"{verdict.reset_seconds}s"}
