"""The billing lifecycle job: one replica at a time (a PostgreSQL advisory lock), every minute.

* Pending invoices past their expiry: ask Midtrans first (a lost notification may hide a payment) and apply
  its answer; whatever it leaves unsettled becomes expired. Midtrans unreachable: try again next run.
* Active subscriptions past their period end: start the paid next period (a scheduled downgrade) or expire
  (the user goes back to Free).
* Paid periods ending within three days: a renewal reminder, once per period (``receipts.remind_renewals``).
* Rejected webhook records (bad signature, not JSON) older than ``REJECTED_NOTIFICATION_RETENTION`` are
  deleted, a batch at a time.

``run_once(app_or_deps, now)`` does one pass and is what tests call; ``running_lifecycle`` loops it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from aiohttp import web

from webrana_proxy.billing import receipts, subscriptions
from webrana_proxy.billing.deps import BillingDeps, deps_of
from webrana_proxy.billing.invoice_state import InvoiceStatus
from webrana_proxy.billing.midtrans import MidtransError, MidtransUnavailable, TransactionStatus
from webrana_proxy.billing.transitions import apply_status
from webrana_proxy.tasks import background

log = logging.getLogger("webrana.billing.lifecycle")

LIFECYCLE_LOCK_ID = 7_301_202_402  # advisory lock key of this job (next to the migration lock's)
LIFECYCLE_INTERVAL_SECONDS = 60.0  # periods and invoices are dated to the second; a minute late is fine
BATCH = 200  # rows per step per run; the rest waits for the next run
# Long enough to investigate an attack or a misconfigured server key; short enough that forged posts cannot
# pile up (each rejected row is at most ~1.3 KiB: ids, hash, the first 1 KiB of the body).
REJECTED_NOTIFICATION_RETENTION = timedelta(days=30)
PRUNE_BATCH = 5_000  # rows per DELETE, so one statement never holds locks for long
PRUNE_BATCHES_PER_RUN = 20  # 100,000 rows a minute at most; a backlog drains over a few runs


@dataclass(slots=True)
class RunReport:
    ran: bool = True  # False: another replica holds the lock
    invoices: dict[str, int] = field(default_factory=dict)  # verdict -> count
    subscriptions: dict[str, int] = field(default_factory=dict)  # rolled | expired -> count
    pruned_notifications: int = 0  # rejected webhook records deleted
    reminders: int = 0  # renewal reminders queued

    def count(self, table: dict[str, int], key: str) -> None:
        table[key] = table.get(key, 0) + 1


async def run_once(app_or_deps: web.Application | BillingDeps, now: datetime | None = None) -> RunReport:
    deps = deps_of(app_or_deps)
    now = now or datetime.now(UTC)
    async with deps.pool.acquire() as lock_conn:
        if not await lock_conn.fetchval("SELECT pg_try_advisory_lock($1)", LIFECYCLE_LOCK_ID):
            return RunReport(ran=False)
        try:
            report = RunReport()
            await _expire_invoices(deps, now, report)
            await _end_periods(deps, now, report)
            report.reminders = await receipts.remind_renewals(deps.pool, now)
            await _prune_rejected_notifications(deps, now, report)
            return report
        finally:
            await lock_conn.execute("SELECT pg_advisory_unlock($1)", LIFECYCLE_LOCK_ID)


async def _expire_invoices(deps: BillingDeps, now: datetime, report: RunReport) -> None:
    due = await deps.pool.fetch(
        """SELECT id, order_id FROM invoices WHERE status = 'pending' AND expires_at <= $1
           ORDER BY expires_at LIMIT $2""", now, BATCH)
    for invoice in due:
        status: TransactionStatus | None = None
        try:
            status = TransactionStatus.from_body(await deps.midtrans.get_status(invoice["order_id"]))
        except MidtransUnavailable:
            report.count(report.invoices, "status_unavailable")
            continue
        except MidtransError as exc:
            if not exc.not_found:  # refused for another reason: leave it for a person to look at
                log.error("Midtrans refused a status check", extra={"order_id": invoice["order_id"]})
                report.count(report.invoices, "status_refused")
                continue
            # Unknown to Midtrans: nobody ever chose a payment method. Nothing to settle.
        except ValueError:
            log.error("Midtrans status answer malformed", extra={"order_id": invoice["order_id"]})
            report.count(report.invoices, "status_malformed")
            continue
        async with deps.pool.acquire() as conn, conn.transaction():
            outcome = await apply_status(conn, invoice["id"], status, now,
                                         close_unsettled_as=InvoiceStatus.EXPIRED)
        if outcome.user_id is not None:
            await deps.keycache.invalidate_user(outcome.user_id)
        report.count(report.invoices, outcome.verdict)


async def _end_periods(deps: BillingDeps, now: datetime, report: RunReport) -> None:
    due = await deps.pool.fetch(
        """SELECT id FROM subscriptions WHERE status = 'active' AND current_period_end <= $1
           ORDER BY current_period_end LIMIT $2""", now, BATCH)
    for row in due:
        async with deps.pool.acquire() as conn, conn.transaction():
            ended = await subscriptions.end_period(conn, row["id"], now)
        if ended is not None:
            await deps.keycache.invalidate_user(ended.user_id)
            report.count(report.subscriptions, ended.outcome)


async def _prune_rejected_notifications(deps: BillingDeps, now: datetime, report: RunReport) -> None:
    cutoff = now - REJECTED_NOTIFICATION_RETENTION
    for _ in range(PRUNE_BATCHES_PER_RUN):
        deleted = await deps.pool.fetchval(
            """WITH gone AS (
                   DELETE FROM payment_notifications WHERE id IN (
                       SELECT id FROM payment_notifications WHERE rejected AND created_at < $1
                       ORDER BY created_at LIMIT $2)
                   RETURNING 1)
               SELECT count(*) FROM gone""", cutoff, PRUNE_BATCH)
        report.pruned_notifications += int(deleted)
        if deleted < PRUNE_BATCH:
            return


async def _loop(app: web.Application) -> None:
    while True:
        try:
            report = await run_once(app)
            if report.invoices or report.subscriptions or report.pruned_notifications:
                log.info("billing lifecycle run", extra={"invoices": report.invoices,
                                                         "subscriptions": report.subscriptions,
                                                         "pruned_notifications": report.pruned_notifications})
        except asyncio.CancelledError:
            raise
        except Exception:  # a bad run must not stop the job; the next one retries
            log.exception("billing lifecycle run failed")
        await asyncio.sleep(LIFECYCLE_INTERVAL_SECONDS)


@contextlib.asynccontextmanager
async def running_lifecycle(app: web.Application) -> AsyncIterator[None]:
    async with background(_loop(app), "billing-lifecycle"):
        yield
