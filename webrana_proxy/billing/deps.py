"""What billing needs at run time, in one value: settings, the pool, the Midtrans client, the key cache.

``billing_ctx`` (in the app's ``cleanup_ctx``) opens the Midtrans client on its own small HTTP session: the
gateway's shared session does not decompress bodies (it relays them as they are), while Midtrans answers
must be read as JSON. When ``settings.background_jobs`` is true it also runs the lifecycle job.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import aiohttp
import asyncpg
from aiohttp import web

from webrana_proxy.billing.midtrans import MidtransClient
from webrana_proxy.settings import Settings
from webrana_proxy.state import KEYCACHE, POOL, SETTINGS

if TYPE_CHECKING:
    from webrana_proxy.keycache import KeyCache

MIDTRANS_TIMEOUT_SECONDS = 10.0  # inside the 15 s Midtrans gives the webhook, which waits on a status call
MIDTRANS_CONNECTIONS = 20  # payments are rare next to gateway calls

MIDTRANS = web.AppKey("midtrans", MidtransClient)


@dataclass(frozen=True, slots=True)
class BillingDeps:
    settings: Settings
    pool: asyncpg.Pool
    midtrans: MidtransClient
    keycache: KeyCache

    @classmethod
    def from_app(cls, app: web.Application) -> BillingDeps:
        return cls(settings=app[SETTINGS], pool=app[POOL], midtrans=app[MIDTRANS], keycache=app[KEYCACHE])


def deps_of(app_or_deps: web.Application | BillingDeps) -> BillingDeps:
    return app_or_deps if isinstance(app_or_deps, BillingDeps) else BillingDeps.from_app(app_or_deps)


def make_midtrans_client(settings: Settings, session: aiohttp.ClientSession) -> MidtransClient:
    return MidtransClient(session, server_key=settings.midtrans_server_key,
                          snap_base_url=settings.midtrans_snap_base_url,
                          api_base_url=settings.midtrans_api_base_url,
                          timeout_seconds=MIDTRANS_TIMEOUT_SECONDS)


async def billing_ctx(app: web.Application) -> AsyncIterator[None]:
    """Open the Midtrans client; run the lifecycle job when background jobs are on. Add after the pool,
    Redis and key cache contexts."""
    from webrana_proxy.billing.lifecycle import running_lifecycle

    connector = aiohttp.TCPConnector(limit=MIDTRANS_CONNECTIONS, ttl_dns_cache=300)
    async with aiohttp.ClientSession(connector=connector) as session:
        app[MIDTRANS] = make_midtrans_client(app[SETTINGS], session)
        if app[SETTINGS].background_jobs:
            async with running_lifecycle(app):
                yield
        else:
            yield
