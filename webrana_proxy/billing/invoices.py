"""Invoices: numbers (``WEB-YYYY-MM-NNNN`` per Jakarta month), rows, and how they are shown.

Numbers come from one ``invoice_counters`` row per month, incremented with ``INSERT ... ON CONFLICT DO
UPDATE ... RETURNING`` inside the transaction that inserts the invoice. The row lock that statement takes is
held until commit, so concurrent invoices queue for it and each gets the next number; a rolled-back invoice
gives its number back.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

import asyncpg

from webrana_proxy.billing.midtrans import JAKARTA
from webrana_proxy.billing.money import Charge
from webrana_proxy.billing.plans import get_plan
from webrana_proxy.db import Conn

NUMBER_PREFIX = "WEB"
NUMBER_DIGITS = 4  # NNNN; a month past 9,999 invoices simply gets a fifth digit
PENDING_INVOICE_TTL = timedelta(hours=24)  # a pending invoice expires after a day (Snap expiry matches)
CURRENCY = "IDR"

def jakarta_month(now: datetime) -> str:
    """``YYYY-MM`` of ``now`` on the Jakarta calendar (UTC+7): 2025-01-31T17:30Z is already February."""
    return now.astimezone(JAKARTA).strftime("%Y-%m")


def format_invoice_number(month: str, sequence: int) -> str:
    """``("2025-02", 7)`` -> ``"WEB-2025-02-0007"``."""
    if sequence < 1:
        raise ValueError("invoice sequence numbers start at 1")
    return f"{NUMBER_PREFIX}-{month}-{sequence:0{NUMBER_DIGITS}d}"


async def next_invoice_number(conn: Conn, now: datetime) -> str:
    """The next number of ``now``'s Jakarta month. Call inside the transaction that inserts the invoice."""
    month = jakarta_month(now)
    sequence = await conn.fetchval(
        """INSERT INTO invoice_counters (month, last_number) VALUES ($1, 1)
           ON CONFLICT (month) DO UPDATE SET last_number = invoice_counters.last_number + 1
           RETURNING last_number""", month)
    return format_invoice_number(month, int(sequence))


def charge_lines(charge: Charge) -> list[dict[str, Any]]:
    lines: list[dict[str, Any]] = [
        {"id": line.id, "name": line.name, "price_idr": line.price_idr, "quantity": line.quantity,
         "amount_idr": line.amount_idr} for line in charge.lines]
    return lines


async def insert_invoice(conn: Conn, *, user_id: uuid.UUID, subscription_id: uuid.UUID | None,
                         plan: str, kind: str, charge: Charge, order_id: str, idempotency_key: str | None,
                         now: datetime, period_start: datetime | None, period_end: datetime | None,
                         buyer: dict[str, Any], seller: dict[str, Any],
                         org_id: uuid.UUID | None = None) -> asyncpg.Record:
    """Number and insert a pending invoice (inside the caller's transaction). ``user_id`` is who pays;
    ``org_id``, when set, the organisation it is for (NULL: the payer's personal account)."""
    number = await next_invoice_number(conn, now)
    row = await conn.fetchrow(
        """INSERT INTO invoices (user_id, subscription_id, number, order_id, plan, kind, subtotal_idr,
               ppn_idr, total_idr, expires_at, idempotency_key, period_start, period_end, buyer, seller,
               lines, ppn_percent, org_id)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)
            RETURNING id, user_id, org_id, subscription_id, number, order_id, plan, kind, subtotal_idr, ppn_idr,
                      total_idr, status, payment_method, paid_at, expires_at, snap_token, redirect_url,
                      idempotency_key, period_start, period_end, buyer, seller, lines, ppn_percent,
                      created_at, updated_at""",
        user_id, subscription_id, number, order_id, plan, kind, charge.subtotal_idr, charge.ppn_idr,
        charge.total_idr, now + PENDING_INVOICE_TTL, idempotency_key, period_start, period_end, buyer, seller,
        charge_lines(charge), charge.ppn_percent, org_id)
    assert row is not None
    return row


async def fetch_invoice(conn: Conn | asyncpg.Pool, *, user_id: uuid.UUID,
                        invoice_id: uuid.UUID | None = None, order_id: str | None = None,
                        org_id: uuid.UUID | None = None) -> asyncpg.Record | None:
    """One invoice of an account, by id or by Midtrans order id: ``user_id``'s personal ones, or with ``org_id``
    the organisation's (whoever paid them); ``None`` when it is another account's."""
    if invoice_id is not None:
        return await conn.fetchrow(
            """SELECT id, user_id, org_id, subscription_id, number, order_id, plan, kind, subtotal_idr, ppn_idr,
                      total_idr, status, payment_method, paid_at, expires_at, snap_token, redirect_url,
                      idempotency_key, period_start, period_end, buyer, seller, lines, ppn_percent, refund_reason,
                      refunded_at, created_at, updated_at
               FROM invoices
               WHERE id = $1 AND org_id IS NOT DISTINCT FROM $3 AND ($3::uuid IS NOT NULL OR user_id = $2)""",
            invoice_id, user_id, org_id)
    return await conn.fetchrow(
        """SELECT id, user_id, org_id, subscription_id, number, order_id, plan, kind, subtotal_idr, ppn_idr,
                  total_idr, status, payment_method, paid_at, expires_at, snap_token, redirect_url, idempotency_key,
                  period_start, period_end, buyer, seller, lines, ppn_percent, refund_reason, refunded_at,
                  created_at, updated_at
           FROM invoices
           WHERE order_id = $1 AND org_id IS NOT DISTINCT FROM $3 AND ($3::uuid IS NOT NULL OR user_id = $2)""",
        order_id, user_id, org_id)


async def list_invoices(pool: asyncpg.Pool, user_id: uuid.UUID, limit: int,
                        org_id: uuid.UUID | None = None) -> list[asyncpg.Record]:
    """An account's invoices, newest first: ``user_id``'s personal ones, or the organisation ``org_id``'s."""
    if org_id is not None:
        rows: list[asyncpg.Record] = await pool.fetch(
            """SELECT id, user_id, org_id, subscription_id, number, order_id, plan, kind, subtotal_idr, ppn_idr,
                      total_idr, status, payment_method, paid_at, expires_at, snap_token, redirect_url,
                      idempotency_key, period_start, period_end, buyer, seller, lines, ppn_percent, refund_reason,
                      refunded_at, created_at, updated_at
               FROM invoices WHERE org_id = $1
               ORDER BY created_at DESC, id DESC LIMIT $2""", org_id, limit)
        return rows
    rows = await pool.fetch(
        """SELECT id, user_id, org_id, subscription_id, number, order_id, plan, kind, subtotal_idr, ppn_idr,
                  total_idr, status, payment_method, paid_at, expires_at, snap_token, redirect_url, idempotency_key,
                  period_start, period_end, buyer, seller, lines, ppn_percent, refund_reason, refunded_at,
                  created_at, updated_at
           FROM invoices WHERE user_id = $1 AND org_id IS NULL
           ORDER BY created_at DESC, id DESC LIMIT $2""", user_id, limit)
    return rows


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def invoice_summary(row: asyncpg.Record) -> dict[str, Any]:
    """What an invoice list shows."""
    return {
        "id": str(row["id"]),
        "number": row["number"],
        "order_id": row["order_id"],
        "kind": row["kind"],
        "plan": row["plan"],
        "status": row["status"],
        "currency": CURRENCY,
        "subtotal_idr": row["subtotal_idr"],
        "ppn_idr": row["ppn_idr"],
        "total_idr": row["total_idr"],
        "payment_method": row["payment_method"],
        "issued_at": row["created_at"].isoformat(),
        "paid_at": _iso(row["paid_at"]),
        "expires_at": row["expires_at"].isoformat(),
        # refund_due: paid, but nothing was granted for it (why, in refund_reason); an admin refunds it.
        "refund_reason": row["refund_reason"],
        "refunded_at": _iso(row["refunded_at"]),
    }


def invoice_view(row: asyncpg.Record) -> dict[str, Any]:
    """The whole invoice: a proper Indonesian invoice (faktur) needs seller, buyer, lines, DPP, PPN, total."""
    view = invoice_summary(row)
    lines = row["lines"] or []
    view.update({
        "plan_name": get_plan(row["plan"]).name,
        "lines": lines,
        "ppn_percent": row["ppn_percent"],
        "period_start": _iso(row["period_start"]),
        "period_end": _iso(row["period_end"]),
        "seller": row["seller"] or {},
        "buyer": row["buyer"] or {},
        # Only while it can still be paid: the Snap page to pay it.
        "redirect_url": row["redirect_url"] if row["status"] == "pending" else None,
        "snap_token": row["snap_token"] if row["status"] == "pending" else None,
    })
    return view
