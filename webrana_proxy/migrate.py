"""Plain-SQL migrations from ``sql/``: applied in file-name order, each in a transaction, recorded in
``schema_migrations``, serialised across processes by a PostgreSQL advisory lock. Re-running is a no-op."""

from __future__ import annotations

import asyncio
from pathlib import Path

from webrana_proxy.db import Conn

MIGRATION_LOCK_ID = 7_301_202_401  # arbitrary constant shared by every Webrana process


def migrations_dir(override: str = "") -> Path:
    """``override`` (settings' WEBRANA_MIGRATIONS_DIR, for container images) or the repository's ``sql/``."""
    return Path(override) if override else Path(__file__).resolve().parent.parent / "sql"


def _read(path: Path) -> str:
    return path.read_text(encoding="utf-8")


async def apply_migrations(conn: Conn, directory: Path | None = None) -> list[str]:
    """Apply pending migrations; return the names applied now."""
    folder = directory or migrations_dir()
    files = sorted(p for p in folder.glob("*.sql") if p.is_file())
    applied_now: list[str] = []
    await conn.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK_ID)
    try:
        await conn.execute(
            """CREATE TABLE IF NOT EXISTS schema_migrations (
                   id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
                   name TEXT NOT NULL UNIQUE,
                   created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
                   updated_at TIMESTAMPTZ NOT NULL DEFAULT now())""")
        done = {r["name"] for r in await conn.fetch("SELECT name FROM schema_migrations")}
        for path in files:
            if path.name in done:
                continue
            sql = await asyncio.to_thread(_read, path)
            async with conn.transaction():
                await conn.execute(sql)
                await conn.execute("INSERT INTO schema_migrations (name) VALUES ($1)", path.name)
            applied_now.append(path.name)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK_ID)
    return applied_now
