"""The admins' own upstreams in a process: the ``upstreams`` rows loaded into the registry at start and again
whenever any replica changes one (the key-cache channel's ``upstreams`` signal: every replica routes to the new set
within a second), and the address policy their URLs are held to.

The policy (``policy_for``): public addresses over https only; with ``WEBRANA_ALLOW_PRIVATE_UPSTREAMS=true`` also
private (RFC 1918, CGNAT, ULA) and loopback addresses, and plain http:// to those (an in-cluster vLLM, a sidecar).
Link-local (the cloud metadata address), multicast and reserved addresses never. It is checked when an admin saves
a URL and again, after DNS, whenever the gateway opens a connection (``upstreamhttp``).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Mapping
from typing import Any

import asyncpg
from aiohttp import web

from webrana_proxy.db import Conn
from webrana_proxy.netguard import Policy
from webrana_proxy.providers.custom import UpstreamConfig, spec_of
from webrana_proxy.providers.registry import Registry
from webrana_proxy.settings import Settings
from webrana_proxy.state import KEYCACHE, POOL, REGISTRY, SETTINGS

log = logging.getLogger("webrana.upstreams")
SIGNAL = "upstreams"  # the key-cache channel's signal for "upstreams changed"


def policy_for(settings: Settings) -> Policy:
    private = settings.allow_private_upstreams
    return Policy(allow_loopback=private, allow_private=private, allow_http_private=private)


def config_of(row: asyncpg.Record | Mapping[str, Any]) -> UpstreamConfig:
    headers = row["static_headers"]
    return UpstreamConfig(
        id=row["id"] if isinstance(row["id"], uuid.UUID) else uuid.UUID(str(row["id"])), slug=row["slug"],
        name=row["name"], base_url=row["base_url"], model_prefix=row["model_prefix"],
        auth_header=row["auth_header"], static_headers={str(k): str(v) for k, v in dict(headers).items()},
        keyless=row["keyless"])


async def load(conn: Conn | asyncpg.Pool, registry: Registry, policy: Policy) -> None:
    rows = await conn.fetch(
        """SELECT id, slug, name, base_url, model_prefix, auth_header, static_headers, keyless
           FROM upstreams WHERE enabled ORDER BY created_at, id""")
    taken = registry.builtin_names()
    specs = []
    for row in rows:
        try:
            spec = spec_of(config_of(row), policy)
        except (ValueError, KeyError, TypeError) as exc:  # checked on write; a hand-made row must not stop us
            log.error("upstreams row ignored", extra={"slug": row["slug"], "error": str(exc)})
            continue
        if taken.intersection((spec.id, *spec.aliases)):
            log.error("upstreams row ignored: its name is a built-in provider's", extra={"slug": row["slug"]})
            continue
        specs.append(spec)
    registry.replace_custom(specs)


async def upstreams_ctx(app: web.Application) -> AsyncIterator[None]:
    registry, pool, policy = app[REGISTRY], app[POOL], policy_for(app[SETTINGS])
    pending: set[asyncio.Task[None]] = set()

    async def reload() -> None:
        try:
            await load(pool, registry, policy)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            log.warning("could not reload upstreams; keeping the ones loaded", extra={"error": str(exc)})

    def on_signal() -> None:
        task = asyncio.get_running_loop().create_task(reload())
        pending.add(task)
        task.add_done_callback(pending.discard)

    await reload()
    app[KEYCACHE].on_signal(SIGNAL, on_signal)
    yield
    for task in list(pending):
        task.cancel()
