"""From a crossing to an alert: one row of ``alerts``, one e-mail and, when the user has a webhook, one delivery,
all in one transaction under one key (``alert:{scope}:{id}:{period}:{percent}``), so each threshold fires once
per period whichever replica saw it, and however often it was seen (a quota counter that went down when unused
leased calls were given back and passed a threshold again; a counter rebuilt after Redis lost it).

The crossings come from the counters' hooks (``SpendCounters.on_crossing``, ``Limiter.on_quota_crossing``), which
run on the loop turn of a gateway call: they only schedule ``record``, which nobody waits for.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg
import orjson
from aiohttp import web

from webrana_proxy.db import Conn
from webrana_proxy.keyrules import MICRO_PER_IDR
from webrana_proxy.limits import QuotaCrossing
from webrana_proxy.mail.outbox import enqueue
from webrana_proxy.spend import SPEND, Crossing
from webrana_proxy.state import LIMITER, POOL

log = logging.getLogger("webrana.alerts")
SCOPES = ("quota", "user_spend", "key_spend")
ATTEMPTS = 3  # PostgreSQL away for a moment: try again a little later before giving an alert up (logged)
RETRY_SECONDS = 1.0
ALERT_EVENT = "alert.threshold"
TEST_EVENT = "webhook.test"


@dataclass(frozen=True, slots=True)
class NewAlert:
    user_id: uuid.UUID
    scope: str  # "quota" | "user_spend" | "key_spend"
    key_id: uuid.UUID | None  # the key of a key_spend alert
    period: str  # YYYY-MM, Asia/Jakarta
    percent: int
    used: int  # requests, or micro-rupiah
    cap: int
    hard: bool

    @property
    def dedup_key(self) -> str:
        subject = self.key_id if self.scope == "key_spend" else self.user_id
        return f"alert:{self.scope}:{subject}:{self.period}:{self.percent}"

    @classmethod
    def of_spend(cls, c: Crossing) -> NewAlert:
        scope = "key_spend" if c.scope == "key" else "user_spend"
        return cls(c.user_id, scope, c.key_id if scope == "key_spend" else None, c.month, c.percent,
                   c.spent_micro, c.cap_micro, c.hard)

    @classmethod
    def of_quota(cls, c: QuotaCrossing) -> NewAlert:
        return cls(uuid.UUID(c.user_id), "quota", None, c.month, c.percent, c.used, c.quota, True)


def event_body(event_id: uuid.UUID, event_type: str, created_at: datetime, data: dict[str, Any]) -> str:
    """The JSON a webhook receives, exactly as signed (kept as text: every retry sends the same bytes)."""
    return orjson.dumps({"id": str(event_id), "type": event_type, "created_at": created_at.isoformat(),
                         "data": data}).decode()


async def queue_event(conn: Conn, user_id: uuid.UUID, event_id: uuid.UUID, event_type: str, created_at: datetime,
                      data: dict[str, Any], dedup_key: str | None) -> uuid.UUID | None:
    """A delivery for the user's webhook, inside the caller's transaction; None when they have none (or the key
    was used already)."""
    body = event_body(event_id, event_type, created_at, data)
    delivery: uuid.UUID | None = await conn.fetchval(
        """INSERT INTO webhook_deliveries (user_id, webhook_id, event_type, body, dedup_key)
           SELECT $1, w.id, $2, $3, $4 FROM webhooks w WHERE w.user_id = $1
           ON CONFLICT (dedup_key) DO NOTHING RETURNING id""", user_id, event_type, body, dedup_key)
    return delivery


def _mail(alert: NewAlert, key: asyncpg.Record | None) -> tuple[str, dict[str, Any]]:
    params: dict[str, Any] = {"percent": alert.percent, "period_month": alert.period}
    if alert.scope == "quota":
        return "alert_quota", {**params, "used": f"{alert.used:,}".replace(",", "."),
                               "limit": f"{alert.cap:,}".replace(",", ".")}
    money = {"spent_idr": alert.used // MICRO_PER_IDR, "cap_idr": -(-alert.cap // MICRO_PER_IDR)}
    if alert.scope == "user_spend":
        return ("alert_user_spend" if alert.hard else "alert_user_spend_soft"), {**params, **money}
    assert key is not None
    return "alert_key_spend", {**params, **money, "key_name": key["name"], "key_prefix": key["prefix"],
                               "path": f"/proxy-keys/{alert.key_id}/edit"}


def alert_data(alert_id: uuid.UUID, alert: NewAlert, key: asyncpg.Record | None) -> dict[str, Any]:
    """An alert as the API and the webhook show it."""
    return {"alert_id": str(alert_id), "scope": alert.scope, "percent": alert.percent, "period": alert.period,
            "timezone": "Asia/Jakarta", "used": alert.used, "limit": alert.cap,
            "unit": "requests" if alert.scope == "quota" else "idr_micro", "hard": alert.hard,
            "key": ({"id": str(alert.key_id), "name": key["name"], "prefix": key["prefix"]}
                    if key is not None else None)}


async def record(pool: asyncpg.Pool, alert: NewAlert, now: datetime | None = None) -> uuid.UUID | None:
    """The alert, its e-mail and its webhook delivery, once per dedup key; None when it was there already (or its
    user or key is gone)."""
    now = now or datetime.now(UTC)
    async with pool.acquire() as conn, conn.transaction():
        key = None
        if alert.key_id is not None:
            key = await conn.fetchrow("SELECT name, prefix FROM proxy_api_keys WHERE id = $1 AND user_id = $2",
                                      alert.key_id, alert.user_id)
            if key is None:
                return None
        # One threshold of a counter at a time (80 % and 100 % may be crossed together, on two replicas), so the
        # higher one always finds the lower one, or the lower one finds the higher one, committed.
        await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", alert.dedup_key.rsplit(":", 1)[0])
        # 100 % says all that 80 % said: the banner shows the higher one only (a lower one arriving late is
        # recorded, and mailed, already dismissed).
        alert_id: uuid.UUID | None = await conn.fetchval(
            """INSERT INTO alerts (user_id, scope, proxy_key_id, period, percent, used, cap, hard, dedup_key,
                                   created_at, dismissed_at)
               SELECT u.id, $2, $3, $4, $5, $6, $7, $8, $9, $10::timestamptz,
                      CASE WHEN EXISTS (SELECT 1 FROM alerts h WHERE h.user_id = $1 AND h.scope = $2
                                          AND h.proxy_key_id IS NOT DISTINCT FROM $3 AND h.period = $4
                                          AND h.percent > $5) THEN $10::timestamptz END
               FROM users u WHERE u.id = $1
               ON CONFLICT (dedup_key) DO NOTHING RETURNING id""",
            alert.user_id, alert.scope, alert.key_id, alert.period, alert.percent, alert.used, alert.cap,
            alert.hard, alert.dedup_key, now)
        if alert_id is None:
            return None
        await conn.execute(
            """UPDATE alerts SET dismissed_at = $6
               WHERE user_id = $1 AND scope = $2 AND proxy_key_id IS NOT DISTINCT FROM $3 AND period = $4
                 AND percent < $5 AND dismissed_at IS NULL""",
            alert.user_id, alert.scope, alert.key_id, alert.period, alert.percent, now)
        template, params = _mail(alert, key)
        await enqueue(conn, alert.user_id, template, params, dedup_key=alert.dedup_key)
        await queue_event(conn, alert.user_id, alert_id, ALERT_EVENT, now, alert_data(alert_id, alert, key),
                          alert.dedup_key)
    log.info("alert", extra={"user_id": str(alert.user_id), "scope": alert.scope, "percent": alert.percent,
                             "period": alert.period})
    return alert_id


class AlertRecorder:
    """Watches the counters and records their crossings in tasks of their own (drained at shutdown)."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool
        self._tasks: set[asyncio.Task[None]] = set()

    def spend_crossed(self, crossing: Crossing) -> None:
        self._schedule(NewAlert.of_spend(crossing))

    def quota_crossed(self, crossing: QuotaCrossing) -> None:
        self._schedule(NewAlert.of_quota(crossing))

    def _schedule(self, alert: NewAlert) -> None:
        task = asyncio.ensure_future(self._record(alert))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _record(self, alert: NewAlert) -> None:
        for attempt in range(1, ATTEMPTS + 1):
            try:
                await record(self._pool, alert)
                return
            except (OSError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError,
                    asyncpg.exceptions.SerializationError) as exc:
                if attempt == ATTEMPTS:
                    log.error("alert not recorded: PostgreSQL unreachable", extra={
                        "user_id": str(alert.user_id), "dedup_key": alert.dedup_key, "error": type(exc).__name__})
                    return
                await asyncio.sleep(RETRY_SECONDS * attempt)
            except Exception:  # a bug: logged, never an unretrieved task exception
                log.exception("alert not recorded", extra={"dedup_key": alert.dedup_key})
                return

    async def drain(self) -> None:
        if self._tasks:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.gather(*self._tasks, return_exceptions=True), timeout=5)


RECORDER = web.AppKey("alert_recorder", AlertRecorder)


async def alerts_ctx(app: web.Application) -> AsyncIterator[None]:
    """``cleanup_ctx`` entry, after the spend counters': the crossings of both counters become alerts."""
    recorder = app[RECORDER] = AlertRecorder(app[POOL])
    app[SPEND].on_crossing(recorder.spend_crossed)
    app[LIMITER].on_quota_crossing(recorder.quota_crossed)
    yield
    await recorder.drain()
