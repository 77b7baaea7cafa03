"""``create_app``: the proxy's aiohttp application (gateway /v1, management /api, health, metrics)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web
from redis.asyncio import Redis
from redis.exceptions import RedisError

from webrana_proxy import __version__, health
from webrana_proxy.alerts import banner
from webrana_proxy.alerts.delivery import webhooks_ctx
from webrana_proxy.alerts.record import alerts_ctx
from webrana_proxy.api import (
    admin,
    alerts,
    aliases,
    auth,
    auth_email,
    billing,
    member_limits,
    meta,
    openapi,
    org_billing,
    orgs,
    overview,
    plans,
    prices,
    provider_keys,
    proxy_keys,
    spend_caps,
    team_usage,
    upstreams,
    usage,
)
from webrana_proxy.billing.deps import billing_ctx
from webrana_proxy.breakers import CircuitBoard
from webrana_proxy.crypto import Keyring
from webrana_proxy.db import create_pool
from webrana_proxy.gateway import handlers as gateway
from webrana_proxy.gateway import messages as gateway_messages
from webrana_proxy.gateway import responses as gateway_responses
from webrana_proxy.gateway.access import FALLBACK, LocalLimiter
from webrana_proxy.gateway.responses_store import responses_store_ctx
from webrana_proxy.gateway.runtime import GATEWAY, GatewayRuntime
from webrana_proxy.keycache import KeyCache, running_listener
from webrana_proxy.limits import Limiter
from webrana_proxy.mail.job import mail_ctx
from webrana_proxy.metrics import Metrics
from webrana_proxy.middleware import REQUEST_IDS, RequestIds, pipeline
from webrana_proxy.passwords import Passwords
from webrana_proxy.pricing import RowPricer, prices_ctx
from webrana_proxy.providers.catalogue import load_catalogue
from webrana_proxy.providers.pricebook import PriceBook
from webrana_proxy.providers.registry import build_registry
from webrana_proxy.redispipe import RedisPipe
from webrana_proxy.settings import Settings
from webrana_proxy.spend import spend_ctx
from webrana_proxy.state import (
    BREAKERS,
    HTTP,
    KEYCACHE,
    KEYRING,
    LIMITER,
    METRICS,
    PASSWORDS,
    POOL,
    PRICES,
    REDIS,
    REGISTRY,
    SETTINGS,
    TOKENS,
    UPSTREAM,
    USAGE,
)
from webrana_proxy.tasks import background
from webrana_proxy.tokens import TokenIssuer
from webrana_proxy.upstreamhttp import UpstreamPool
from webrana_proxy.upstreams import upstreams_ctx
from webrana_proxy.usage import UsageWriter

log = logging.getLogger("webrana.app")
LEASE_SWEEP_SECONDS = 15.0


async def _database(app: web.Application) -> AsyncIterator[None]:
    app[POOL] = await create_pool(app[SETTINGS].database_url)
    yield
    await app[POOL].close()


async def _redis(app: web.Application) -> AsyncIterator[None]:
    client = Redis.from_url(app[SETTINGS].redis_url, socket_connect_timeout=2, socket_timeout=2,
                            health_check_interval=10)
    app[REDIS] = client
    url = app[SETTINGS].redis_url
    pipe = RedisPipe(url) if RedisPipe.supports(url) else None
    limiter = app[LIMITER] = Limiter(client, app[SETTINGS].ip_rate_limit, pipe)
    async with background(_return_leases(limiter), "lease-sweeper"):
        yield
    with contextlib.suppress(RedisError, OSError):
        await limiter.return_unused(None)  # this replica's unused leased calls go back to the quotas
    if pipe is not None:
        await pipe.close()
    await client.aclose()


async def _return_leases(limiter: Limiter) -> None:
    """Every LEASE_SWEEP_SECONDS: unused leased calls of finished minutes go back to the months' quotas."""
    while True:
        await asyncio.sleep(LEASE_SWEEP_SECONDS)
        try:
            await limiter.return_unused(time.time())
        except (RedisError, OSError) as exc:
            log.warning("could not return unused leased calls yet", extra={"error": type(exc).__name__})


async def _passwords(app: web.Application) -> AsyncIterator[None]:
    yield
    app[PASSWORDS].close()  # its hashing threads


async def _upstream_http(app: web.Application) -> AsyncIterator[None]:
    s = app[SETTINGS]
    connector = aiohttp.TCPConnector(limit=s.upstream_connections, limit_per_host=0, ttl_dns_cache=300,
                                     enable_cleanup_closed=True)
    session = aiohttp.ClientSession(connector=connector, auto_decompress=False,
                                    timeout=aiohttp.ClientTimeout(total=None, connect=s.connect_timeout))
    app[HTTP] = session
    pool = UpstreamPool(limit=s.upstream_connections, connect_timeout=s.connect_timeout,
                        user_agent=f"webrana/{__version__}")
    app[UPSTREAM] = pool
    yield
    await pool.close()
    await session.close()


async def _keycache(app: web.Application) -> AsyncIterator[None]:
    s = app[SETTINGS]
    cache = KeyCache(app[POOL], app[REDIS], app[KEYRING], max_size=s.key_cache_size, ttl=s.key_cache_ttl)
    app[KEYCACHE] = cache
    async with running_listener(cache):
        yield


async def _usage_writer(app: web.Application) -> AsyncIterator[None]:
    s = app[SETTINGS]
    price = RowPricer(app[PRICES], s.usd_to_idr, app[GATEWAY].count_unpriced)
    writer = UsageWriter(app[POOL], app[METRICS], max_queue=s.usage_queue_max, journal_dir=s.usage_journal_dir,
                         price=price, fsync_interval=s.usage_fsync_interval, redis=app[REDIS])
    app[USAGE] = writer
    await writer.start()
    yield
    await writer.stop()  # after in-flight requests finished: every queued row is written (or left in the journal)


def create_app(settings: Settings) -> web.Application:
    app = web.Application(middlewares=[pipeline], client_max_size=settings.gateway_body_limit,
                          handler_args={"max_field_size": 16 * 1024, "max_line_size": 16 * 1024,
                                        "keepalive_timeout": settings.keepalive_timeout})
    app[SETTINGS] = settings
    app[KEYRING] = Keyring(settings.master_key, settings.master_key_previous)
    app[TOKENS] = TokenIssuer(settings.jwt_secret)
    app[PASSWORDS] = Passwords(settings.password_hash_concurrency, settings.password_hash_wait)
    app[REGISTRY] = build_registry()
    app[METRICS] = Metrics()
    app[BREAKERS] = CircuitBoard(app[METRICS], threshold=settings.circuit_failures,
                                 cooldown=settings.circuit_cooldown)
    app[FALLBACK] = LocalLimiter()
    app[REQUEST_IDS] = RequestIds()
    app[PRICES] = PriceBook(load_catalogue())
    app[GATEWAY] = GatewayRuntime.build(settings, app[METRICS], app[PRICES])
    app[health.SHUTTING_DOWN] = asyncio.Event()
    # The usage writer after the price book's overrides: it prices the journals it replays at start.
    app.cleanup_ctx.extend([_passwords, _database, _redis, _upstream_http, _keycache, prices_ctx, _usage_writer,
                            auth.login_guard_ctx])
    app.cleanup_ctx.append(billing_ctx)  # the Midtrans client; the lifecycle job when background_jobs
    app.cleanup_ctx.append(responses_store_ctx)  # the stored responses' prune job when background_jobs
    app.cleanup_ctx.append(spend_ctx)  # the spend counters (per key, per account) of issue 14's caps
    app.cleanup_ctx.extend([mail_ctx, auth_email.throttle_ctx])  # the mailer; the mail job when background_jobs
    app.cleanup_ctx.extend([alerts_ctx, webhooks_ctx])  # crossings become alerts; the webhook job (issue 14)
    app.cleanup_ctx.append(upstreams_ctx)  # the admins' own upstreams in the registry, reloaded on change (issue 16)
    app.on_response_prepare.append(banner.add_header)  # the console's alert banner on signed-in answers
    for module in (gateway, gateway_messages, gateway_responses, health, auth, provider_keys, proxy_keys, usage,
                   plans, billing, admin, openapi, overview, meta, prices, spend_caps, auth_email, aliases, alerts,
                   orgs, org_billing, member_limits, team_usage, upstreams):
        app.router.add_routes(module.routes)
    return app
