"""From a crossing to an alert: one row of ``alerts``, one e-mail and, when the user has a webhook, one delivery,
all in one transaction under one key (``alert:{scope}:{id}:{period}:{percent}``), so each threshold fires once
per period whichever replica saw it, and however often it was seen (a quota counter that went down when unused
leased calls were given back and passed a threshold again; a counter rebuilt after Redis lost it).

The crossings come from the counters' hooks (``SpendCounters.on_crossing``, ``Limiter.on_quota_crossing``), which
run on the loop turn of a gateway call: they only schedule ``record``, which nobody waits for.

A team's counters are keyed by its workspace id (the organisation's): such an alert is the team owner's (their
banner, mail and webhook), recorded with the team's ``org_id`` and deduplicated on the team.

A team member's own monthly limits in a team (``member_requests``, ``member_spend``; their counters come back from
the same limiter call and spend increment as the others, ``Limiter.on_member_crossing``): the alert is the member's
(their banner), recorded with the team's ``org_id`` and deduplicated on (team, member); both the member and the
team's owner are e-mailed (two messages under the one key: ``{key}`` and ``{key}:owner``; one when the owner is the
member), and the owner's webhook gets the event, as for the team's quota alerts. A member who left the team before
the alert was recorded gets none.
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
from webrana_proxy.limits import MemberCrossing, QuotaCrossing
from webrana_proxy.mail.outbox import enqueue
from webrana_proxy.spend import SPEND, Crossing
from webrana_proxy.state import LIMITER, POOL

log = logging.getLogger("webrana.alerts")
SCOPES = ("quota", "user_spend", "key_spend", "member_requests", "member_spend")
MEMBER_SCOPES = ("member_requests", "member_spend")  # a team member's own limits in a team (sql/0018)
REQUEST_SCOPES = ("quota", "member_requests")  # counted in requests; the others in micro-rupiah
OWNER_MAIL = ":owner"  # the team owner's copy of a member's alert: its outbox dedup key is the alert's plus this
ATTEMPTS = 3  # PostgreSQL away for a moment: try again a little later before giving an alert up (logged)
RETRY_SECONDS = 1.0
ALERT_EVENT = "alert.threshold"
TEST_EVENT = "webhook.test"


@dataclass(frozen=True, slots=True)
class NewAlert:
    user_id: uuid.UUID
    scope: str  # one of SCOPES
    key_id: uuid.UUID | None  # the key of a key_spend alert
    period: str  # YYYY-MM, Asia/Jakarta
    percent: int
    used: int  # requests, or micro-rupiah
    cap: int
    hard: bool
    org_id: uuid.UUID | None = None  # the team of a member's alert (user_id is then the member)

    @property
    def dedup_key(self) -> str:
        subject: object = self.key_id if self.scope == "key_spend" else self.user_id
        if self.scope in MEMBER_SCOPES:
            subject = f"{self.org_id}:{self.user_id}"
        return f"alert:{self.scope}:{subject}:{self.period}:{self.percent}"

    @classmethod
    def of_spend(cls, c: Crossing) -> NewAlert:
        scope = {"key": "key_spend", "member": "member_spend"}.get(c.scope, "user_spend")
        return cls(c.user_id, scope, c.key_id if scope == "key_spend" else None, c.month, c.percent,
                   c.spent_micro, c.cap_micro, c.hard, c.org_id if scope == "member_spend" else None)

    @classmethod
    def of_quota(cls, c: QuotaCrossing) -> NewAlert:
        return cls(uuid.UUID(c.user_id), "quota", None, c.month, c.percent, c.used, c.quota, True)

    @classmethod
    def of_member(cls, c: MemberCrossing) -> NewAlert:
        return cls(uuid.UUID(c.user_id), "member_requests", None, c.month, c.percent, c.used, c.limit, True,
                   uuid.UUID(c.org_id))


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
    if alert.scope in REQUEST_SCOPES:
        return "alert_" + alert.scope, {**params, "used": f"{alert.used:,}".replace(",", "."),
                                        "limit": f"{alert.cap:,}".replace(",", ".")}
    money = {"spent_idr": alert.used // MICRO_PER_IDR, "cap_idr": -(-alert.cap // MICRO_PER_IDR)}
    if alert.scope == "member_spend":
        return "alert_member_spend", {**params, **money}
    if alert.scope == "user_spend":
        return ("alert_user_spend" if alert.hard else "alert_user_spend_soft"), {**params, **money}
    assert key is not None
    return "alert_key_spend", {**params, **money, "key_name": key["name"], "key_prefix": key["prefix"],
                               "path": f"/proxy-keys/{alert.key_id}/edit"}


def alert_data(alert_id: uuid.UUID, alert: NewAlert, key: asyncpg.Record | None) -> dict[str, Any]:
    """An alert as the API and the webhook show it."""
    return {"alert_id": str(alert_id), "scope": alert.scope, "percent": alert.percent, "period": alert.period,
            "timezone": "Asia/Jakarta", "used": alert.used, "limit": alert.cap,
            "unit": "requests" if alert.scope in REQUEST_SCOPES else "idr_micro", "hard": alert.hard,
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
        member = alert.scope in MEMBER_SCOPES
        if member:  # the member's alert, in a team they are still in (with their address, for the owner's mail)
            team = await conn.fetchrow(
                """SELECT o.id, o.owner_id, o.name, u.email FROM organisations o
                   JOIN org_members m ON m.org_id = o.id AND m.user_id = $2 JOIN users u ON u.id = m.user_id
                   WHERE o.id = $1""", alert.org_id, alert.user_id)
            if team is None:
                return None
        else:  # a workspace id that is an organisation's: the team's owner is told (None: a personal workspace)
            team = await conn.fetchrow("SELECT id, owner_id, name FROM organisations WHERE id = $1", alert.user_id)
        org_id: uuid.UUID | None = team["id"] if team is not None else None
        recipient: uuid.UUID = team["owner_id"] if team is not None and not member else alert.user_id
        # One threshold of a counter at a time (80 % and 100 % may be crossed together, on two replicas), so the
        # higher one always finds the lower one, or the lower one finds the higher one, committed.
        await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", alert.dedup_key.rsplit(":", 1)[0])
        # 100 % says all that 80 % said: the banner shows the higher one only (a lower one arriving late is
        # recorded, and mailed, already dismissed).
        alert_id: uuid.UUID | None = await conn.fetchval(
            """INSERT INTO alerts (user_id, scope, proxy_key_id, period, percent, used, cap, hard, dedup_key,
                                   created_at, dismissed_at, org_id)
               SELECT u.id, $2, $3, $4, $5, $6, $7, $8, $9, $10::timestamptz,
                      CASE WHEN EXISTS (SELECT 1 FROM alerts h WHERE h.user_id = $1 AND h.scope = $2
                                          AND h.proxy_key_id IS NOT DISTINCT FROM $3 AND h.period = $4
                                          AND h.org_id IS NOT DISTINCT FROM $11
                                          AND h.percent > $5) THEN $10::timestamptz END, $11
               FROM users u WHERE u.id = $1
               ON CONFLICT (dedup_key) DO NOTHING RETURNING id""",
            recipient, alert.scope, alert.key_id, alert.period, alert.percent, alert.used, alert.cap,
            alert.hard, alert.dedup_key, now, org_id)
        if alert_id is None:
            return None
        await conn.execute(
            """UPDATE alerts SET dismissed_at = $6
               WHERE user_id = $1 AND scope = $2 AND proxy_key_id IS NOT DISTINCT FROM $3 AND period = $4
                 AND org_id IS NOT DISTINCT FROM $7 AND percent < $5 AND dismissed_at IS NULL""",
            recipient, alert.scope, alert.key_id, alert.period, alert.percent, now, org_id)
        template, params = _mail(alert, key)
        data = alert_data(alert_id, alert, key)
        hook_owner = recipient
        if team is not None:
            if alert.scope == "quota":
                template, params = "alert_team_quota", {**params, "org_name": team["name"]}
            data["team"] = {"id": str(org_id), "name": team["name"]}
        if member:
            assert team is not None
            data["member"] = {"id": str(alert.user_id), "email": team["email"]}
            params = {**params, "org_name": team["name"]}
            if team["owner_id"] != alert.user_id:
                await enqueue(conn, team["owner_id"], template + "_owner",
                              {**params, "email": team["email"], "path": f"/teams/{org_id}/members"},
                              dedup_key=alert.dedup_key + OWNER_MAIL)
            params["path"] = f"/teams/{org_id}/usage"
            hook_owner = team["owner_id"]  # the team's webhook is its owner's, as for the team's quota alerts
        await enqueue(conn, recipient, template, params, dedup_key=alert.dedup_key)
        await queue_event(conn, hook_owner, alert_id, ALERT_EVENT, now, data, alert.dedup_key)
    log.info("alert", extra={"user_id": str(recipient), "org_id": str(org_id) if org_id else None,
                             "scope": alert.scope, "percent": alert.percent, "period": alert.period})
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

    def member_crossed(self, crossing: MemberCrossing) -> None:
        self._schedule(NewAlert.of_member(crossing))

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
    """``cleanup_ctx`` entry, after the spend counters': the crossings of the counters become alerts."""
    recorder = app[RECORDER] = AlertRecorder(app[POOL])
    app[SPEND].on_crossing(recorder.spend_crossed)
    app[LIMITER].on_quota_crossing(recorder.quota_crossed)
    app[LIMITER].on_member_crossing(recorder.member_crossed)
    yield
    await recorder.drain()
