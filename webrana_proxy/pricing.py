"""The price book's life in a process: the vendored catalogue loaded once at start (with a loud log line when it
is stale), the admins' ``model_prices`` rows loaded on start and again whenever any replica changes one (the
key-cache channel's ``prices`` signal, so every replica prices with the new rate within a second)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime

import asyncpg
from aiohttp import web

from webrana_proxy.db import Conn
from webrana_proxy.providers.base import Usage
from webrana_proxy.providers.pricebook import PriceBook, db_price
from webrana_proxy.state import KEYCACHE, POOL, PRICES
from webrana_proxy.usage import UsageRecord

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


class RowPricer:
    """Fills in a usage row's cost from its tokens, at the rate in force when its call was made (``created_at``).
    The gateway journals each row before its answer ends and prices it right after (``gateway.calls``); the usage
    writer prices, the same way, any row that reaches it unpriced (a replayed journal, the outage stream)."""

    __slots__ = ("_book", "_on_fallback", "_usd_to_idr")

    def __init__(self, book: PriceBook, usd_to_idr: int, on_fallback: Callable[[str, str], None]) -> None:
        self._book = book
        self._usd_to_idr = usd_to_idr
        self._on_fallback = on_fallback  # (provider, model): a model with no price, charged at the fallback

    def __call__(self, row: UsageRecord) -> None:
        if row.priced:
            return
        usage = Usage(prompt_tokens=row.prompt_tokens, completion_tokens=row.completion_tokens,
                      total_tokens=row.total_tokens, cached_tokens=row.cached_tokens,
                      cache_write_tokens=row.cache_write_tokens, cache_write_1h_tokens=row.cache_write_1h_tokens,
                      reasoning_tokens=row.reasoning_tokens, thinking_mode=row.thinking_mode,
                      service_tier=row.service_tier, provider_cost_usd_nano=row.provider_cost_usd_nano)
        priced, fallback = self._book.price(row.provider, row.model, usage, self._usd_to_idr, row.created_at)
        row.cost_idr_micro = priced.cost_idr_micro
        row.cost_usd_nano = priced.cost_usd_nano
        row.usd_to_idr = priced.usd_to_idr
        row.price_source = priced.source
        row.price_version = priced.version
        row.priced = True
        if fallback:
            self._on_fallback(row.provider, row.model)


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
