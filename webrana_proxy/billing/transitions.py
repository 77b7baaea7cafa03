"""Moving one invoice through its state machine on a Midtrans status answer, with the effects on the
subscription and the user's plan, in one transaction. Shared by the webhook, the lifecycle job and a checkout
that replaces a pending invoice."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime

from webrana_proxy.billing import receipts, subscriptions
from webrana_proxy.billing.invoice_state import InvoiceStatus, next_status
from webrana_proxy.billing.midtrans import TransactionStatus
from webrana_proxy.db import Conn

log = logging.getLogger("webrana.billing")


@dataclass(frozen=True, slots=True)
class Outcome:
    verdict: str  # e.g. "applied:paid", "no_change:pending", "amount_mismatch"
    changed: bool
    user_id: uuid.UUID | None = None  # whose plan or limits changed (a user's or a team's id): invalidate after commit


# Card payments whose money is already held and that wait on a review or a capture: they may still end "paid",
# so neither the lifecycle job nor a replacing checkout closes them. (A plain "pending" is closed; if it is
# paid after all, the invoice becomes refund_due for an operator.)
IN_FLIGHT = frozenset({"capture", "authorize"})


async def apply_status(conn: Conn, invoice_id: uuid.UUID, status: TransactionStatus | None,
                       now: datetime, *, close_unsettled_as: InvoiceStatus | None = None) -> Outcome:
    """Apply Midtrans' answer ``status`` (the truth) to the invoice, inside the caller's transaction.

    ``close_unsettled_as``: a pending invoice that the answer does not settle one way or another is closed
    in this state (the lifecycle job past the invoice's expiry: expired; a checkout that replaces it:
    cancelled), unless Midtrans says card money is held (``IN_FLIGHT``). ``status`` ``None``: nothing can be
    paid on the order (Midtrans does not know it, or it was just expired there). Replays and out-of-order
    answers are no-ops.
    """
    # account_id: whose subscription this invoice concerns now (the subscription may have moved to an
    # organisation since the invoice was issued: api/orgs.create locks these invoices before moving it).
    invoice = await conn.fetchrow(
        """SELECT i.id, i.user_id, i.org_id, i.subscription_id, i.number, i.order_id, i.plan, i.kind, i.total_idr,
                  i.status, i.period_end, i.subtotal_idr, i.ppn_idr, i.ppn_percent,
                  coalesce((SELECT coalesce(s.org_id, s.user_id) FROM subscriptions s WHERE s.id = i.subscription_id),
                           i.org_id, i.user_id) AS account_id
           FROM invoices i WHERE i.id = $1 FOR UPDATE OF i""", invoice_id)
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
    in_flight = status is not None and status.transaction_status in IN_FLIGHT
    if target is None and close_unsettled_as is not None and current is InvoiceStatus.PENDING and not in_flight:
        target = close_unsettled_as
    if target is None:
        return Outcome(f"no_change:{current.value}", False)
    await subscriptions.lock_user_billing(conn, invoice["account_id"])
    user_id: uuid.UUID | None = None
    if target in (InvoiceStatus.PAID, InvoiceStatus.REFUND_DUE):
        assert status is not None
        paid_at = min(status.paid_at or now, now)  # never in our future, whatever the clocks say
        refused: str | None = f"paid after the invoice was {current.value}"
        if current is InvoiceStatus.PENDING:
            grant = await subscriptions.on_paid(conn, invoice, paid_at)
            user_id, refused = grant.user_id, grant.refused
        if refused is not None:
            target = InvoiceStatus.REFUND_DUE
            log.error("payment received but nothing granted: refund due",
                      extra={"invoice": invoice["number"], "order_id": invoice["order_id"], "reason": refused})
        await conn.execute(
            """UPDATE invoices SET status = $2, paid_at = $3, payment_method = $4, refund_reason = $5
               WHERE id = $1""", invoice_id, target.value, paid_at, status.payment_type, refused)
        if target is InvoiceStatus.PAID:
            await receipts.invoice_paid(conn, invoice)
    elif target is InvoiceStatus.REFUNDED:
        await conn.execute("UPDATE invoices SET status = 'refunded', refunded_at = $2 WHERE id = $1",
                           invoice_id, now)
        if current is InvoiceStatus.PAID:  # a refund-due invoice granted nothing, so nothing ends
            user_id = await subscriptions.on_refunded(conn, invoice, now)
    else:
        await conn.execute("UPDATE invoices SET status = $2 WHERE id = $1", invoice_id, target.value)
        await subscriptions.on_abandoned(conn, invoice)
        await receipts.payment_closed(conn, invoice, target)
    return Outcome(f"applied:{target.value}", True, user_id)
