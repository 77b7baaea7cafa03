"""``python -m bench --big-table``: 10 million ``proxy_requests`` rows, and the dashboard's usage queries on them.

The rows go into their own database (``webrana_bench_big``, kept between runs: generating again only happens
when the table holds fewer rows than asked). 1,000 users over 90 days; one heavy user owns a fifth of all rows
(2 million at the default size), which is the worst case for the per-user queries. ``generate_series`` fills
the table with the indexes dropped (and foreign-key triggers off for the session), then the indexes are built
once and ``usage_daily`` is rolled up from the rows, as the usage writer keeps it.

The queries are the ones ``webrana_proxy/api/usage.py`` runs (its own SQL builders are imported), each shown
with ``EXPLAIN (ANALYZE, BUFFERS)``; the second run's time counts (warm cache, as in production).
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from bench.harness import RESULTS
from bench.stack import ROOT, migrate

BIG_DATABASE = "webrana_bench_big"
USERS = 1_000
DAYS = 90
TARGET_MS = 50.0
HEAVY_SHARE = 5  # every 5th row belongs to the heavy user
MODELS = ("gpt-6-luna", "gpt-6-sol", "claude-haiku-5-5", "gemini-3.8-flash", "qwen-plus")  # current models
PROVIDERS = ("openai", "openai", "anthropic", "google", "qwen")

GENERATE_SQL = f"""
INSERT INTO proxy_requests (id, request_id, user_id, provider, model, endpoint, stream, status, prompt_tokens,
                            completion_tokens, total_tokens, cost_idr, latency_ms, ttfb_ms, created_at, updated_at)
SELECT gen_random_uuid(), 'big_' || g,
       CASE WHEN g % {HEAVY_SHARE} = 0 THEN u.ids[1] ELSE u.ids[2 + (g % ({USERS} - 1))] END,
       (ARRAY{list(PROVIDERS)!r})[1 + (g / 7) % 5], (ARRAY{list(MODELS)!r})[1 + (g / 7) % 5],
       'chat', g % 3 = 0, CASE WHEN (g / 3) % 50 = 0 THEN 429 ELSE 200 END,
       20 + g % 100, 10 + g % 300, 30 + g % 100 + g % 300, g % 40, 200 + g % 900, 50 + g % 200,
       ts, ts
FROM generate_series(1, $1::bigint) AS g,
     (SELECT array_agg(id ORDER BY email) AS ids FROM users WHERE email LIKE 'big-%') AS u,
     LATERAL (SELECT now() - ($1::bigint - g) * (interval '{DAYS} days' / $1::bigint) AS ts) AS t
"""  # noqa: S608 - built from our own constants only

ROLLUP_SQL = """
INSERT INTO usage_daily (user_id, day, provider, model, requests, errors, prompt_tokens, completion_tokens,
                         total_tokens, cost_idr)
SELECT user_id, (created_at AT TIME ZONE 'Asia/Jakarta')::date, provider, model, count(*),
       count(*) FILTER (WHERE status >= 400), sum(prompt_tokens), sum(completion_tokens), sum(total_tokens),
       sum(cost_idr)
FROM proxy_requests GROUP BY 1, 2, 3, 4
"""


async def _generate(conn: Any, rows: int) -> None:
    t0 = time.perf_counter()
    await conn.execute("SET synchronous_commit = off; SET maintenance_work_mem = '512MB'; "
                       "SET max_parallel_maintenance_workers = 2; SET session_replication_role = replica")
    await conn.execute("TRUNCATE proxy_requests, usage_daily")
    await conn.execute("DELETE FROM users WHERE email LIKE 'big-%'")
    await conn.execute(
        "INSERT INTO users (email, password_hash) SELECT 'big-' || lpad(i::text, 5, '0') || '@bench.example', 'x' "
        "FROM generate_series(1, $1) AS i", USERS)
    indexes = await conn.fetch(
        """SELECT i.relname AS name, pg_get_indexdef(i.oid) AS def, x.indisprimary AS primary
           FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid
           WHERE x.indrelid = 'proxy_requests'::regclass""")
    for ix in indexes:
        if ix["primary"]:
            await conn.execute(f'ALTER TABLE proxy_requests DROP CONSTRAINT "{ix["name"]}"')
        else:
            await conn.execute(f'DROP INDEX "{ix["name"]}"')
    print(f"  generating {rows:,} rows ...", flush=True)
    await conn.execute(GENERATE_SQL, rows)
    print(f"  rows in {time.perf_counter() - t0:.0f} s; building indexes ...", flush=True)
    for ix in indexes:
        if ix["primary"]:
            await conn.execute("ALTER TABLE proxy_requests ADD PRIMARY KEY (id)")
        else:
            await conn.execute(ix["def"])
    await conn.execute(ROLLUP_SQL)
    await conn.execute("SET session_replication_role = origin")
    await conn.execute("VACUUM ANALYZE proxy_requests")
    await conn.execute("VACUUM ANALYZE usage_daily")
    print(f"  ready in {time.perf_counter() - t0:.0f} s", flush=True)


async def _queries(conn: Any) -> list[tuple[str, str, list[Any]]]:
    from webrana_proxy.api.usage import SUMMARY_SQL, RequestFilter, jakarta_today, page_query, parse_status
    from webrana_proxy.limits import jakarta_month, month_start_utc

    heavy: uuid.UUID = await conn.fetchval("SELECT id FROM users WHERE email = 'big-00001@bench.example'")
    light: uuid.UUID = await conn.fetchval("SELECT id FROM users WHERE email = 'big-00500@bench.example'")
    today = jakarta_today()
    middle = await conn.fetchrow(
        "SELECT created_at, id FROM proxy_requests WHERE user_id = $1 ORDER BY created_at DESC, id DESC "
        "OFFSET 1000000 LIMIT 1", heavy)
    out: list[tuple[str, str, list[Any]]] = [
        ("summary, this month (heavy user)", SUMMARY_SQL, [heavy, today.replace(day=1), today]),
        ("summary, 90 days (heavy user)", SUMMARY_SQL, [heavy, today - timedelta(days=DAYS), today]),
        ("summary, 366 days (light user)", SUMMARY_SQL, [light, today - timedelta(days=365), today]),
    ]
    for label, f, after in (
        ("requests, first page (heavy user)", RequestFilter(heavy), None),
        ("requests, page at row 1,000,000 (heavy user)", RequestFilter(heavy),
         (middle["created_at"], middle["id"]) if middle else None),
        ("requests, model + errors filter (heavy user)",
         RequestFilter(heavy, model="gpt-6-sol", status=parse_status("error")), None),
        ("requests, a model never used: worst case (heavy user)", RequestFilter(heavy, model="gpt-3.5-turbo"),
         None),
        ("requests, one day (light user)",
         RequestFilter(light, start=datetime.now(UTC) - timedelta(days=2), end=datetime.now(UTC) - timedelta(days=1)),
         None),
    ):
        sql, args = page_query(f, after, 51)
        out.append((label, sql, args))
    month, _ = jakarta_month()
    out.append(("limiter quota seed (usage_daily, heavy user)",
                """SELECT coalesce(sum(requests), 0) FROM usage_daily
                   WHERE user_id = $1 AND day >= ($2::timestamptz AT TIME ZONE 'Asia/Jakarta')::date""",
                [heavy, month_start_utc(month)]))
    return out


async def _run(database_url: str, rows: int) -> dict[str, Any]:
    import asyncpg

    conn = await asyncpg.connect(database_url, command_timeout=3600)
    try:
        have = int(await conn.fetchval("SELECT count(*) FROM proxy_requests WHERE request_id LIKE 'big_%'")
                   if await conn.fetchval("SELECT reltuples FROM pg_class WHERE relname = 'proxy_requests'") > 0
                   else 0)
        if have < rows:
            await _generate(conn, rows)
        else:
            print(f"  reusing {have:,} rows", flush=True)
        total = int(await conn.fetchval("SELECT count(*) FROM proxy_requests"))
        size = await conn.fetchval("SELECT pg_size_pretty(pg_total_relation_size('proxy_requests'))")
        results = []
        for label, sql, args in await _queries(conn):
            plan = ""
            for _ in range(2):  # the first run warms the cache; the second is what a page load costs
                lines = await conn.fetch(f"EXPLAIN (ANALYZE, BUFFERS) {sql}", *args)
                plan = "\n".join(r[0] for r in lines)
            ms = next(float(x.split(":")[1].split()[0]) for x in plan.splitlines() if "Execution Time" in x)
            results.append({"query": label, "execution_ms": ms, "pass": ms < TARGET_MS, "plan": plan,
                            "sql": " ".join(sql.split())})
            print(f"  {label:<50} {ms:8.3f} ms  {'PASS' if ms < TARGET_MS else 'MISS'}", flush=True)
        return {"rows": total, "table_size": size, "queries": results,
                "pass": all(r["pass"] for r in results)}
    finally:
        await conn.close()


def run_big_table(*, rows: int) -> int:
    sys.path.insert(0, str(ROOT))
    import devstack

    RESULTS.mkdir(parents=True, exist_ok=True)
    with devstack.services(database=BIG_DATABASE) as env:
        env = {**env, "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)}
        migrate(env)
        print(f"big table: {rows:,} proxy_requests rows in database {BIG_DATABASE}", flush=True)
        doc = asyncio.run(_run(env["DATABASE_URL"], rows))
    doc["date"] = datetime.now(UTC).isoformat(timespec="seconds")
    doc["target_ms"] = TARGET_MS
    with (RESULTS / "big-table-plans.txt").open("w") as f:
        for q in doc["queries"]:
            f.write(f"-- {q['query']}: {q['execution_ms']:.3f} ms\n{q['sql']}\n{q['plan']}\n\n")
    (RESULTS / "big-table.json").write_bytes(orjson.dumps(doc, option=orjson.OPT_INDENT_2))
    print(f"{doc['rows']:,} rows, proxy_requests {doc['table_size']} with indexes; plans in "
          f"bench/results/big-table-plans.txt: {'PASS' if doc['pass'] else 'MISS'} (each < {TARGET_MS:g} ms)")
    return 0 if doc["pass"] else 1

