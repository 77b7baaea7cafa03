"""Operations endpoints: /health (the process is alive), /health/ready (PostgreSQL and Redis answer, not
shutting down) and /metrics (Prometheus text format: this app's own registry, or the whole worker group's values
under ``serve --workers N``)."""

from __future__ import annotations

import asyncio

from aiohttp import web
from prometheus_client.exposition import choose_encoder

from webrana_proxy.jsonio import json_response
from webrana_proxy.state import METRICS, POOL, REDIS, SETTINGS, USAGE

routes = web.RouteTableDef()
SHUTTING_DOWN = web.AppKey("shutting_down", asyncio.Event)
PROBE_TIMEOUT = 1.0  # seconds; a dependency slower than this is not ready


@routes.get("/health")
async def alive(request: web.Request) -> web.Response:
    return json_response({"status": "ok"})


async def _probe_pg(request: web.Request) -> str:
    try:
        async with asyncio.timeout(PROBE_TIMEOUT):
            await request.app[POOL].fetchval("SELECT 1")
        return "ok"
    except Exception as exc:  # any failure means "not ready"; the reason is reported
        return f"down: {type(exc).__name__}"


async def _probe_redis(request: web.Request) -> str:
    try:
        async with asyncio.timeout(PROBE_TIMEOUT):
            await request.app[REDIS].ping()
        return "ok"
    except Exception as exc:  # any failure means "not ready"; the reason is reported
        return f"down: {type(exc).__name__}"


@routes.get("/health/ready")
async def ready(request: web.Request) -> web.Response:
    pg, rd = await asyncio.gather(_probe_pg(request), _probe_redis(request))
    if pg != "ok":  # before saying so: the usage rows this process holds are in Redis too (usage_redis.py)
        await request.app[USAGE].database_down()
    stopping = request.app[SHUTTING_DOWN].is_set()
    ok = pg == "ok" and rd == "ok" and not stopping
    body = {"status": "ready" if ok else "not_ready", "postgres": pg, "redis": rd,
            "shutting_down": stopping}
    return json_response(body, status=200 if ok else 503)


@routes.get("/metrics")
async def metrics(request: web.Request) -> web.Response:
    encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
    group_dir = request.app[SETTINGS].metrics_group_dir
    registry = request.app[METRICS].exported(group_dir)
    # A worker group's values are read from its files: off the event loop.
    body = await asyncio.to_thread(encoder, registry) if group_dir else encoder(registry)
    resp = web.Response(body=body)
    resp.headers["Content-Type"] = content_type
    return resp
