"""The price book's life in a process: the vendored catalogue loaded once at start (with a loud log line when it
is stale), the admins' ``model_prices`` rows loaded on start and again whenever any replica changes one (the
key-cache channel's ``prices`` signal, so every replica prices with the new rate within a second)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import asyncpg
from aiohttp import web

from webrana_proxy.db import Conn
from webrana_proxy.providers.pricebook import PriceBook, db_price
from webrana_proxy.state import KEYCACHE, POOL, PRICES

log = logging.getLogger("webrana.prices")
SIGNAL = "prices"  # the key-cache channel's signal for "model_prices changed"
STALE_AFTER_DAYS = 45  # the source is re-checked against the providers' pages about monthly; 45 = a missed run


async def load_db_overrides(conn: Conn | asyncpg.Pool, book: PriceBook) -> None:
    rows = await conn.fetch(
        "SELECT id, provider, model_pattern, valid_from, prices, context_window FROM model_prices")
    good = []
    for row in rows:
        try:
            good.append(db_price(dict(row)))
        except (ValueError, KeyError, TypeError) as exc:  # checked on write; an old or hand-made row must not stop us
            log.error("model_prices row ignored", extra={"id": str(row["id"]), "error": str(exc)})
    book.replace_db_overrides(good)


def log_staleness(book: PriceBook, today: datetime) -> None:
    for line in book.catalogue.stale(today.date(), STALE_AFTER_DAYS):
        log.error("PRICES ARE STALE: %s", line, extra={"stale": line})


async def prices_ctx(app: web.Application) -> AsyncIterator[None]:
    book = app[PRICES]
    log_staleness(book, datetime.now(UTC))
    pool = app[POOL]
    pending: set[asyncio.Task[None]] = set()

    async def reload() -> None:
        try:
            await load_db_overrides(pool, book)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            log.warning("could not reload price overrides; keeping the ones loaded", extra={"error": str(exc)})

    def on_signal() -> None:
        task = asyncio.get_running_loop().create_task(reload())
        pending.add(task)
        task.add_done_callback(pending.discard)

    await reload()
    app[KEYCACHE].on_signal(SIGNAL, on_signal)
    yield
    for task in list(pending):
        task.cancel()
