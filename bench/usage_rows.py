"""``python -m bench --usage-rows``: usage logging throughput into PostgreSQL, through the real ``UsageWriter``.

Rows go through the writer as the gateway's do: each one appended to the writer's journal, written to PostgreSQL
idempotently (staging table, ``ON CONFLICT DO NOTHING``, counters moved by the rows inserted). Rows are offered at a
steady rate (default 6,000/s, above the 5,000/s target) for the duration, spread over several providers and models
so the daily roll-up and the key counters do real work. Each row carries every column the gateway fills (the token
parts, both money columns, the rate and the price used: sql/0006). Written = offered minus still queued (a row
leaves the queue only after its batch commits). The run passes when the written rate is at least 5,000 rows/s and
the queue does not grow: its depth in the last second is no larger than a couple of batches.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import orjson

from bench.harness import BENCH_DATABASE, RESULTS
from bench.stack import ROOT, migrate

TARGET_ROWS_PER_S = 5_000
TICK = 0.01  # seconds between offers: 100 small bursts per second, like a busy gateway
MODELS = (("openai", "gpt-6-luna"), ("openai", "gpt-6-sol"), ("anthropic", "claude-haiku-5-5"),
          ("google", "gemini-3.8-flash"), ("qwen", "qwen-plus"))  # current models (providers/pricedata)
QUEUE_BOUND = 2  # batches: a healthy queue never holds more than this many BATCH_MAX batches at the end


async def _bench_user(database_url: str) -> tuple[uuid.UUID, uuid.UUID]:
    import asyncpg

    conn = await asyncpg.connect(database_url)
    try:
        user = await conn.fetchval("INSERT INTO users (email, password_hash) VALUES ($1, 'x') RETURNING id",
                                   f"rows-{secrets.token_hex(6)}@bench.example")
        key = await conn.fetchval(
            "INSERT INTO proxy_api_keys (user_id, key_hash, prefix, name) VALUES ($1, $2, 'wbr_bench', 'bench') "
            "RETURNING id", user, secrets.token_bytes(32))
        return user, key
    finally:
        await conn.close()


async def _run(database_url: str, rate: int, duration: float) -> dict[str, Any]:
    from webrana_proxy.db import create_pool
    from webrana_proxy.metrics import Metrics
    from webrana_proxy.pricing import RowPricer
    from webrana_proxy.providers.catalogue import load_catalogue
    from webrana_proxy.providers.pricebook import PriceBook
    from webrana_proxy.usage import BATCH_MAX, UsageRecord, UsageWriter

    user, key = await _bench_user(database_url)
    pool = await create_pool(database_url)
    journal = RESULTS / "usage-rows-journal"
    shutil.rmtree(journal, ignore_errors=True)  # a killed earlier run's journal belongs to a database now gone
    # The rows come priced, as the gateway's are by the time a flush takes them; the pricer is there for any not.
    price = RowPricer(PriceBook(load_catalogue()), 16_500, lambda provider, model: None)
    writer = UsageWriter(pool, Metrics(), max_queue=1_000_000, journal_dir=str(journal), price=price)
    await writer.start()
    offered = 0
    depth: list[tuple[float, int]] = []
    started = time.perf_counter()
    try:
        while (now := time.perf_counter()) - started < duration:
            due = int((now - started) * rate) - offered
            ts = datetime.now(UTC)
            for i in range(due):
                provider, model = MODELS[(offered + i) % len(MODELS)]
                writer.record(UsageRecord(
                    request_id=f"rows_{uuid.uuid4().hex}", user_id=user, proxy_key_id=key, provider=provider,
                    model=model, endpoint="chat", stream=bool(i % 2), status=200 if i % 50 else 429,
                    prompt_tokens=20, completion_tokens=17, total_tokens=37, tokens_estimated=False,
                    latency_ms=2, ttfb_ms=1, upstream_request_id=None, error_type=None, created_at=ts,
                    cost_idr_micro=3_086_250, cost_usd_nano=187_045, usd_to_idr=16_500, price_source="catalogue",
                    price_version="genai-prices 0.2.5 2026-12-06", cached_tokens=8, cache_write_tokens=4,
                    reasoning_tokens=4, service_tier="default"))
            offered += due
            depth.append((now - started, len(writer)))
            await asyncio.sleep(TICK)
        elapsed = time.perf_counter() - started
        queued_at_end = len(writer)
        written = offered - queued_at_end
        last_second = [d for t, d in depth if t >= elapsed - 1.0]
    finally:
        await writer.stop()
        await pool.close()
    rows_per_s = written / elapsed
    bounded = max(last_second, default=0) <= QUEUE_BOUND * BATCH_MAX
    return {"offered_rows": offered, "offered_per_s": round(offered / elapsed), "written_rows": written,
            "written_per_s": round(rows_per_s), "seconds": round(elapsed, 2), "queue_at_end": queued_at_end,
            "queue_max": max((d for _, d in depth), default=0), "queue_last_second_max": max(last_second, default=0),
            "queue_bound": QUEUE_BOUND * BATCH_MAX, "batch_max": BATCH_MAX,
            "pass": rows_per_s >= TARGET_ROWS_PER_S and bounded}


def run_usage_rows(*, rate: int, duration: float) -> int:
    import sys

    sys.path.insert(0, str(ROOT))
    import devstack

    RESULTS.mkdir(parents=True, exist_ok=True)
    with devstack.services(database=BENCH_DATABASE) as env:
        env = {**env, "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)}
        migrate(env)
        doc = asyncio.run(_run(env["DATABASE_URL"], rate, duration))
    doc["date"] = datetime.now(UTC).isoformat(timespec="seconds")
    print(f"usage rows: offered {doc['offered_per_s']}/s for {doc['seconds']} s, written {doc['written_per_s']}/s "
          f"(target >= {TARGET_ROWS_PER_S}); queue max {doc['queue_max']}, in the last second "
          f"<= {doc['queue_last_second_max']} (bound {doc['queue_bound']}), at the end {doc['queue_at_end']}: "
          f"{'PASS' if doc['pass'] else 'MISS'}")
    (RESULTS / "usage-rows.json").write_bytes(orjson.dumps(doc, option=orjson.OPT_INDENT_2))
    return 0 if doc["pass"] else 1
