"""sql/0004_billing_hardening.sql on a database that already holds what the old code wrote: several pending
invoices of one user, and forged notifications stored whole."""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import orjson
import pytest

from webrana_proxy.migrate import apply_migrations, migrations_dir

MIGRATION = "0004_billing_hardening.sql"


@pytest.fixture
async def legacy_db(service_env: dict[str, str]) -> AsyncIterator[str]:
    name = f"webrana_test_{os.getpid()}_m0004"
    admin = await asyncpg.connect(service_env["DATABASE_URL"])
    try:
        for template in ("DROP DATABASE IF EXISTS %I WITH (FORCE)", "CREATE DATABASE %I"):
            await admin.execute(await admin.fetchval("SELECT format($1::text, $2::text)", template, name))
        parts = urlsplit(service_env["DATABASE_URL"])
        yield urlunsplit(parts._replace(path=f"/{name}"))
        await admin.execute(await admin.fetchval("SELECT format($1::text, $2::text)",
                                                 "DROP DATABASE IF EXISTS %I WITH (FORCE)", name))
    finally:
        await admin.close()


async def test_0004_keeps_one_pending_invoice_per_user_and_cuts_stored_forgeries(legacy_db: str,
                                                                                 tmp_path: Path) -> None:
    before = sorted(p for p in migrations_dir().glob("*.sql") if p.name < MIGRATION)
    for path in before:
        shutil.copy(path, tmp_path / path.name)
    conn = await asyncpg.connect(legacy_db)
    try:
        await apply_migrations(conn, tmp_path)
        user = await conn.fetchval("INSERT INTO users (email, password_hash) VALUES ('a@b.co', 'x') RETURNING id")
        other = await conn.fetchval("INSERT INTO users (email, password_hash) VALUES ('c@d.co', 'x') RETURNING id")
        subs = [await conn.fetchval(
            "INSERT INTO subscriptions (user_id, plan) VALUES ($1, $2) RETURNING id", u, p)
            for u, p in ((user, "starter"), (user, "pro"), (other, "team"))]
        for i, (owner, sub, minutes) in enumerate(((user, subs[0], 30), (user, subs[1], 20), (user, None, 10),
                                                   (other, subs[2], 5))):
            await conn.execute(
                """INSERT INTO invoices (user_id, subscription_id, number, order_id, plan, kind, subtotal_idr,
                       ppn_idr, total_idr, expires_at, created_at)
                   VALUES ($1, $2, $3, $4, 'pro', 'new', 1, 0, 1, now() + interval '1 day',
                           now() - make_interval(mins => $5))""",
                owner, sub, f"WEB-2025-01-000{i + 1}", f"WBR-legacy-{i}", minutes)
        forged = {"order_id": "WBR-x", "transaction_status": "settlement", "padding": "y" * 100_000}
        await conn.execute("INSERT INTO payment_notifications (order_id, raw, verdict) VALUES ('WBR-x', $1, 'forged')",
                           orjson.dumps(forged).decode())
        await conn.execute("""INSERT INTO payment_notifications (order_id, raw, verdict)
                              VALUES ('WBR-legacy-3', '{"order_id": "WBR-legacy-3"}', 'applied:paid')""")

        shutil.copy(migrations_dir() / MIGRATION, tmp_path / MIGRATION)
        assert await apply_migrations(conn, tmp_path) == [MIGRATION]

        rows = await conn.fetch("SELECT order_id, status FROM invoices ORDER BY order_id")
        assert [(r["order_id"], r["status"]) for r in rows] == [
            ("WBR-legacy-0", "cancelled"), ("WBR-legacy-1", "cancelled"), ("WBR-legacy-2", "pending"),
            ("WBR-legacy-3", "pending")]
        statuses = await conn.fetch("SELECT plan, status FROM subscriptions ORDER BY plan")
        assert [(s["plan"], s["status"]) for s in statuses] == [
            ("pro", "cancelled"), ("starter", "cancelled"), ("team", "pending")]
        with pytest.raises(asyncpg.UniqueViolationError):
            await conn.execute("UPDATE invoices SET status = 'pending' WHERE order_id = 'WBR-legacy-0'")

        kept = await conn.fetchrow("SELECT * FROM payment_notifications WHERE verdict = 'forged'")
        assert kept["raw"] is None and kept["rejected"] is True
        assert kept["transaction_status"] == "settlement"
        assert len(kept["excerpt"].encode()) <= 1024
        assert kept["excerpt"].startswith('{"padding": "yyy')  # jsonb's own key order
        stored_text = await conn.fetchval("SELECT $1::jsonb::text", orjson.dumps(forged).decode())
        assert kept["body_sha256"] == hashlib.sha256(stored_text.encode()).hexdigest()
        assert kept["body_bytes"] == len(stored_text.encode())
        genuine = await conn.fetchrow("SELECT raw, rejected FROM payment_notifications WHERE verdict <> 'forged'")
        assert genuine["rejected"] is False and orjson.loads(genuine["raw"]) == {"order_id": "WBR-legacy-3"}
        await conn.execute("UPDATE invoices SET status = 'refund_due' WHERE order_id = 'WBR-legacy-0'")
    finally:
        await conn.close()
