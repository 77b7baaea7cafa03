"""Moving one invoice through its state machine on a Midtrans status answer, with the effects on the
subscription and the user's plan, in one transaction. Shared by the webhook and the lifecycle job."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from webrana_proxy.billing import subscriptions
from webrana_proxy.billing.invoice_state import InvoiceStatus, next_status
from webrana_proxy.billing.midtrans import TransactionStatus
from webrana_proxy.db import Conn


@dataclass(frozen=True, slots=True)
class Outcome:
    verdict: str  # e.g. "applied:paid", "no_change:pending", "amount_mismatch"
    changed: bool
    user_id: uuid.UUID | None = None  # whose plan or limits changed: invalidate after commit


# Card payments whose money is already held and that wait on a review or a capture: they may still end "paid",
# so the lifecycle job does not expire them. (A plain "pending" past our expiry does expire; if it is paid after
# all, the webhook flags the payment for an operator.)
IN_FLIGHT = frozenset({"capture", "authorize"})


async def apply_status(conn: Conn, invoice_id: uuid.UUID, status: TransactionStatus | None,
                       now: datetime, *, expire_if_unsettled: bool = False) -> Outcome:
    """Apply Midtrans' answer ``status`` (the truth) to the invoice, inside the caller's transaction.

    ``expire_if_unsettled`` (the lifecycle job, past the invoice's expiry): a pending invoice that the
    answer does not settle one way or another becomes expired. Replays and out-of-order answers are no-ops.
    """
    invoice = await conn.fetchrow(
        """SELECT id, user_id, subscription_id, number, order_id, plan, kind, total_idr, status
           FROM invoices WHERE id = $1 FOR UPDATE""", invoice_id)
    if invoice is None:
        return Outcome("unknown_order", False)
    current = InvoiceStatus(invoice["status"])
    target: InvoiceStatus | None = None
    if status is not None:
        if status.order_id != invoice["order_id"]:
            return Outcome("order_mismatch", False)
        if status.gross_amount_idr != invoice["total_idr"]:
            return Outcome("amount_mismatch", False)
        target = next_status(current, status.transaction_status, status.fraud_status)
    # Past its expiry, a pending invoice expires, unless Midtrans says card money is held (see IN_FLIGHT).
    in_flight = status is not None and status.transaction_status in IN_FLIGHT
    if target is None and expire_if_unsettled and current is InvoiceStatus.PENDING and not in_flight:
        target = InvoiceStatus.EXPIRED
    if target is None:
        return Outcome(f"no_change:{current.value}", False)
    await subscriptions.lock_user_billing(conn, invoice["user_id"])
    user_id: uuid.UUID | None = None
    if target is InvoiceStatus.PAID:
        assert status is not None
        paid_at = min(status.paid_at or now, now)  # never in our future, whatever the clocks say
        await conn.execute(
            "UPDATE invoices SET status = 'paid', paid_at = $2, payment_method = $3 WHERE id = $1",
            invoice_id, paid_at, status.payment_type)
        user_id = await subscriptions.on_paid(conn, invoice, paid_at)
    elif target is InvoiceStatus.REFUNDED:
        await conn.execute("UPDATE invoices SET status = 'refunded' WHERE id = $1", invoice_id)
        user_id = await subscriptions.on_refunded(conn, invoice, now)
    else:
        await conn.execute("UPDATE invoices SET status = $2 WHERE id = $1", invoice_id, target.value)
        await subscriptions.on_abandoned(conn, invoice)
    return Outcome(f"applied:{target.value}", True, user_id)
