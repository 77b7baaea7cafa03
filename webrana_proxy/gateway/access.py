"""Who is calling /v1 and whether they may: the proxy key (from the in-process cache), its rules (expiry, allowed
models and providers) and the limits (one Redis round trip, or none while a lease lasts; per-process fallback
limits while Redis is unreachable). Every gateway route passes through ``authenticate``, ``enforce_limits`` and
``check_model`` (the last from ``handlers.admit``, once the model is known), before anything goes upstream."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import asyncpg
from aiohttp import web
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from webrana_proxy.errors import Forbidden, RateLimited, Unauthorized
from webrana_proxy.gateway.runtime import GATEWAY
from webrana_proxy.keycache import Principal
from webrana_proxy.keyrules import MICRO_PER_IDR, KeyRules
from webrana_proxy.limits import Verdict, member_requests_counter, month_start_utc
from webrana_proxy.middleware import CLIENT_KEY, check_ip_limit
from webrana_proxy.spend import SPEND
from webrana_proxy.state import KEYCACHE, LIMITER, METRICS, POOL, SETTINGS
from webrana_proxy.tokens import PROXY_KEY_PREFIX, sha256

log = logging.getLogger("webrana.gateway")
LIMIT_MESSAGES = {
    "ip": "too many requests from this address ({limit}/minute)",
    "burst": "too many requests for this account ({limit}/minute); slow down",
    "quota": "monthly request quota of {limit} reached; upgrade your plan in the console for more",
    "key_rate": "too many requests for this API key ({limit}/minute, the key's own limit); slow down",
    "key_spend": "this API key's monthly spend cap of {limit} is reached; calls resume when the month ends "
                 "(Asia/Jakarta) or when the key's cap is raised in the console",
    "user_spend": "this account's monthly spend cap of {limit} is reached; calls resume when the month ends "
                  "(Asia/Jakarta) or when the cap is raised in the console settings",
    "member_requests": "your monthly request limit in this team ({limit} requests) is reached: it is your member "
                       "limit, set by the team's owner or a manager; calls with this team's keys resume when the "
                       "month ends (Asia/Jakarta) or when they raise it",
    "member_spend": "your monthly spend limit in this team ({limit}) is reached: it is your member limit, set by "
                    "the team's owner or a manager; calls with this team's keys resume when the month ends "
                    "(Asia/Jakarta) or when they raise it",
}
SPEND_LIMITS = ("key_spend", "user_spend", "member_spend")  # a month-long wait: the SDKs are told not to retry
MONTH_LIMITS = ("quota", "member_requests")  # also a wait until the next month: no retry either
LIMIT_CODES = {"quota": "quota_exceeded", "key_spend": "key_spend_cap_reached", "user_spend": "spend_cap_reached",
               "member_requests": "member_request_limit_reached", "member_spend": "member_spend_limit_reached"}


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
    rules = principal.rules
    if rules is not None and rules.expired(time.time()):
        raise Unauthorized("this API key has expired; extend it or create a new key in the console",
                           code="expired_api_key")
    return principal


def check_model(principal: Principal, provider_id: str, model: str) -> None:
    """The key's allowed models and providers (a set lookup, or one precompiled expression when it has globs)."""
    rules = principal.rules
    if rules is not None:
        refusal = rules.refusal(provider_id, model)
        if refusal is not None:
            raise Forbidden(refusal, code="model_not_allowed", param="model")


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
    rules = principal.rules
    try:
        if rules is not None and rules.counted:
            verdict = await _check_ruled(app, ip, principal, rules, month, month_ttl, now, quota)
        elif not quota:
            verdict = await limiter.check_burst(ip, principal.workspace_id_str, principal.burst_per_minute, now)
        else:
            verdict = await limiter.check_gateway(ip, principal.workspace_id_str, principal.burst_per_minute,
                                                  principal.monthly_requests, month, month_ttl, now)
        if verdict is None:
            await _seed_quota(app, principal, month, month_ttl)
            verdict = await limiter.check_gateway(ip, principal.workspace_id_str, principal.burst_per_minute,
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
            verdict = local.hit(f"burst:{principal.workspace_id_str}", principal.burst_per_minute, now)
        if verdict.allowed and rules is not None and rules.rpm is not None:
            verdict = local.hit(f"key_rate:{principal.proxy_key_id}", rules.rpm, now)
    if not verdict.allowed:
        metrics.limiter_rejections.labels(verdict.limit_name).inc()
        raise _refusal(verdict)
    return verdict


def _refusal(verdict: Verdict) -> RateLimited:
    name = verdict.limit_name
    code = LIMIT_CODES.get(name, "rate_limit_exceeded")
    if name in SPEND_LIMITS:
        cap = "Rp " + f"{-(-verdict.limit // MICRO_PER_IDR):,}".replace(",", ".")
        # Retry-After: the next Jakarta month; x-should-retry: false, or the SDKs would retry a month-long wait.
        return RateLimited(LIMIT_MESSAGES[name].format(limit=cap), retry_after=verdict.reset_seconds,
                           headers={"x-should-retry": "false"}, code=code)
    headers = rate_headers(verdict)
    if name in MONTH_LIMITS:
        headers["x-should-retry"] = "false"
    return RateLimited(LIMIT_MESSAGES[name].format(limit=verdict.limit), retry_after=verdict.reset_seconds,
                       headers=headers, code=code)


# The month's requests of one workspace: a team's (every member), or a user's personal ones.
TEAM_MONTH_SQL = """SELECT coalesce(sum(requests), 0) FROM usage_daily
                    WHERE org_id = $1 AND day >= ($2::timestamptz AT TIME ZONE 'Asia/Jakarta')::date"""
PERSONAL_MONTH_SQL = """SELECT coalesce(sum(requests), 0) FROM usage_daily
                        WHERE user_id = $1 AND org_id IS NULL
                          AND day >= ($2::timestamptz AT TIME ZONE 'Asia/Jakarta')::date"""
# A team member's requests in the team this month (their monthly request limit's counter, rebuilt).
MEMBER_MONTH_SQL = """SELECT coalesce(sum(requests), 0) FROM usage_daily
                      WHERE org_id = $1 AND user_id = $2
                        AND day >= ($3::timestamptz AT TIME ZONE 'Asia/Jakarta')::date"""


async def _seed_quota(app: web.Application, principal: Principal, month: str, month_ttl: int) -> None:
    """The month's request quota counter of the key's workspace, lost by Redis, rebuilt from PostgreSQL (never
    reset to 0)."""
    used = await app[POOL].fetchval(PERSONAL_MONTH_SQL if principal.org_id is None else TEAM_MONTH_SQL,
                                    principal.workspace_id, month_start_utc(month))
    await app[LIMITER].seed_quota(principal.workspace_id_str, month, int(used), month_ttl)


async def _check_ruled(app: web.Application, ip: str, principal: Principal, rules: KeyRules, month: str,
                       month_ttl: int, now: float, billable: bool) -> Verdict:
    """A key with a per-key rate, a spend cap or its holder's monthly limits in the team: one Redis call (two more,
    and PostgreSQL reads, only when a counter was missing: the first call of a month, a cap just set, Redis
    restarted empty)."""
    limiter = app[LIMITER]
    member = (str(principal.org_id), principal.user_id_str) if principal.org_id is not None else None
    for _ in range(3):
        result = await limiter.check_ruled(
            ip, principal.workspace_id_str, str(principal.proxy_key_id), principal.burst_per_minute,
            principal.monthly_requests, month, month_ttl, now, rpm=rules.rpm, key_cap=rules.key_cap_micro,
            user_cap=rules.user_cap_micro, billable=billable, member=member, member_requests=rules.member_requests,
            member_cap=rules.member_cap_micro)
        if isinstance(result, Verdict):
            return result
        spend = app[SPEND]
        if result & 1:
            await _seed_quota(app, principal, month, month_ttl)
        if result & 2:
            await spend.seed_key(principal.proxy_key_id, month, month_ttl)
        if result & 4:
            await spend.seed_user(principal.user_id, month, month_ttl)
        if result & 8:
            used = await app[POOL].fetchval(MEMBER_MONTH_SQL, principal.org_id, principal.user_id,
                                            month_start_utc(month))
            await limiter.seed_counter(member_requests_counter(principal.org_id, principal.user_id, month),
                                       int(used), month_ttl)
        if result & 16:
            assert principal.org_id is not None
            await spend.seed_member(principal.org_id, principal.user_id, month, month_ttl)
    raise RedisConnectionError("limit counters vanished while being rebuilt")  # falls back like Redis down


def rate_headers(verdict: Verdict) -> dict[str, str]:
    return {"x-ratelimit-limit-requests": str(verdict.limit),
            "x-ratelimit-remaining-requests": str(verdict.remaining),
            "x-ratelimit-reset-requests": f"{verdict.reset_seconds}s"}
