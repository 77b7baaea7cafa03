"""The e-mails billing sends: a receipt when an invoice is paid, a notice when a payment fails or expires, and a
reminder before a paid period ends (plans do not renew by themselves). Each is queued in the outbox inside the
transaction of the change that causes it, at most once per invoice or per period (its dedup key)."""

from __future__ import annotations

from datetime import datetime, timedelta

import asyncpg

from webrana_proxy.billing.invoice_state import InvoiceStatus
from webrana_proxy.billing.plans import get_plan
from webrana_proxy.db import Conn
from webrana_proxy.mail.outbox import enqueue

REMINDER_AHEAD = timedelta(days=3)  # the product rule: a reminder three days before a paid period ends
REMINDER_BATCH = 200  # subscriptions per lifecycle run; the rest waits a minute

_CLOSED_TEMPLATES = {InvoiceStatus.DENIED: "payment_failed", InvoiceStatus.EXPIRED: "payment_expired"}


def _amounts(invoice: asyncpg.Record) -> dict[str, object]:
    return {"number": invoice["number"], "plan_name": get_plan(invoice["plan"]).name,
            "total_idr": invoice["total_idr"]}


async def invoice_paid(conn: Conn, invoice: asyncpg.Record) -> None:
    """The receipt: number, DPP, PPN and total, and a link to the printable invoice in the console."""
    await enqueue(conn, invoice["user_id"], "invoice_paid", {
        **_amounts(invoice), "subtotal_idr": invoice["subtotal_idr"], "ppn_idr": invoice["ppn_idr"],
        "ppn_percent": invoice["ppn_percent"] if invoice["ppn_percent"] is not None else "",
        "path": f"/billing/invoices/{invoice['id']}"}, dedup_key=f"invoice_paid:{invoice['id']}")


async def payment_closed(conn: Conn, invoice: asyncpg.Record, status: InvoiceStatus) -> None:
    """A notice for a payment that failed (denied) or an invoice that expired unpaid; nothing for a checkout
    the user replaced (cancelled)."""
    template = _CLOSED_TEMPLATES.get(status)
    if template is not None:
        await enqueue(conn, invoice["user_id"], template, _amounts(invoice),
                      dedup_key=f"invoice_closed:{invoice['id']}")


async def remind_renewals(pool: asyncpg.Pool, now: datetime) -> int:
    """Queue the reminder for paid periods ending within ``REMINDER_AHEAD`` that got none yet: not for a
    subscription set to stop (cancelled) or whose next period is already paid (a paid downgrade).
    Returns how many were queued."""
    due = await pool.fetch(
        """SELECT s.id, s.user_id, s.plan, s.current_period_end FROM subscriptions s
           WHERE s.status = 'active' AND s.current_period_end > $1 AND s.current_period_end <= $2
             AND s.plan <> 'free' AND NOT s.cancel_at_period_end
             AND s.reminded_period_end IS DISTINCT FROM s.current_period_end
             AND NOT EXISTS (SELECT 1 FROM invoices i
                             WHERE i.subscription_id = s.id AND i.status = 'paid' AND i.kind = 'renewal'
                               AND i.period_start >= s.current_period_end)
           ORDER BY s.current_period_end LIMIT $3""", now, now + REMINDER_AHEAD, REMINDER_BATCH)
    queued = 0
    for sub in due:
        async with pool.acquire() as conn, conn.transaction():
            marked = await conn.fetchval(
                """UPDATE subscriptions SET reminded_period_end = current_period_end
                   WHERE id = $1 AND current_period_end = $2 AND status = 'active'
                     AND reminded_period_end IS DISTINCT FROM current_period_end RETURNING id""",
                sub["id"], sub["current_period_end"])
            if marked is None:  # renewed or ended meanwhile
                continue
            period_end = sub["current_period_end"]
            await enqueue(conn, sub["user_id"], "renewal_reminder", {
                "plan_name": get_plan(sub["plan"]).name, "period_end_at": period_end.isoformat()},
                dedup_key=f"renewal_reminder:{sub['id']}:{period_end.isoformat()}")
            queued += 1
    return queued
