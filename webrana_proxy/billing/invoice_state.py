"""The invoice state machine, as pure functions over Midtrans status answers.

``pending -> paid | expired | cancelled | denied``, ``paid -> refunded``, and for money nothing was granted
for, ``refund_due -> refunded``: an expired, cancelled or denied invoice that Midtrans reports paid after all
becomes ``refund_due`` (never silently kept), and so does a paid invoice whose grant is refused
(``subscriptions.on_paid``: an upgrade whose period changed after it was priced). Feed it the answer of
``GET /v2/{order_id}/status`` (the truth), never the notification body. Because every move goes strictly
forward and every state has at most one way out per answer, replayed and out-of-order answers are no-ops
(``None``) and the state never goes backwards.
"""

from __future__ import annotations

from enum import StrEnum


class InvoiceStatus(StrEnum):
    PENDING = "pending"
    PAID = "paid"
    EXPIRED = "expired"
    CANCELLED = "cancelled"
    DENIED = "denied"
    REFUND_DUE = "refund_due"  # paid, nothing granted: an admin refunds it (or Midtrans reports a refund)
    REFUNDED = "refunded"


# Where each state may go; everything else is a no-op.
TRANSITIONS: dict[InvoiceStatus, frozenset[InvoiceStatus]] = {
    InvoiceStatus.PENDING: frozenset({InvoiceStatus.PAID, InvoiceStatus.EXPIRED, InvoiceStatus.CANCELLED,
                                      InvoiceStatus.DENIED}),
    InvoiceStatus.PAID: frozenset({InvoiceStatus.REFUNDED}),
    InvoiceStatus.EXPIRED: frozenset({InvoiceStatus.REFUND_DUE}),
    InvoiceStatus.CANCELLED: frozenset({InvoiceStatus.REFUND_DUE}),
    InvoiceStatus.DENIED: frozenset({InvoiceStatus.REFUND_DUE}),
    InvoiceStatus.REFUND_DUE: frozenset({InvoiceStatus.REFUNDED}),
    InvoiceStatus.REFUNDED: frozenset(),
}

# How far along the lifecycle a state is; a transition always strictly increases it.
RANK: dict[InvoiceStatus, int] = {
    InvoiceStatus.PENDING: 0,
    InvoiceStatus.PAID: 1,
    InvoiceStatus.EXPIRED: 1,
    InvoiceStatus.CANCELLED: 1,
    InvoiceStatus.DENIED: 1,
    InvoiceStatus.REFUND_DUE: 2,
    InvoiceStatus.REFUNDED: 3,
}

FINAL_STATES = frozenset(s for s, out in TRANSITIONS.items() if not out)
# Closed without payment: only a payment that Midtrans confirms after all still moves them (to refund_due).
CLOSED_UNPAID = frozenset({InvoiceStatus.EXPIRED, InvoiceStatus.CANCELLED, InvoiceStatus.DENIED})

# Midtrans transaction_status values with a fixed meaning for the invoice, whatever the fraud_status.
_DIRECT: dict[str, InvoiceStatus] = {
    "settlement": InvoiceStatus.PAID,
    "expire": InvoiceStatus.EXPIRED,
    "cancel": InvoiceStatus.CANCELLED,
    "deny": InvoiceStatus.DENIED,
    "failure": InvoiceStatus.DENIED,  # the payment failed for good; Midtrans will not retry this order_id
    "refund": InvoiceStatus.REFUNDED,
    "chargeback": InvoiceStatus.REFUNDED,  # the money went back to the payer, like a refund
}


def is_paid(transaction_status: str, fraud_status: str | None) -> bool:
    """Midtrans' rule: paid = settlement, or capture with fraud_status accept (a challenge waits)."""
    if transaction_status == "settlement":
        return True
    return transaction_status == "capture" and fraud_status == "accept"


def target_status(transaction_status: str, fraud_status: str | None) -> InvoiceStatus | None:
    """The invoice state a Midtrans answer means, or ``None`` when it means "still waiting" or "ignore".

    ``pending``/``authorize``, ``capture`` with ``challenge`` (or no fraud verdict yet), the partial refunds
    and chargebacks and any unknown value mean nothing for the invoice.
    """
    if transaction_status == "capture":
        if fraud_status == "accept":
            return InvoiceStatus.PAID
        if fraud_status == "deny":
            return InvoiceStatus.DENIED
        return None
    return _DIRECT.get(transaction_status)


def next_status(current: InvoiceStatus | str, transaction_status: str,
                fraud_status: str | None) -> InvoiceStatus | None:
    """The state to move the invoice to after this Midtrans answer, or ``None`` for no change.

    Raises ``ValueError`` for an unknown ``current`` (a bug in the caller, not bad input from outside).
    """
    state = InvoiceStatus(current)
    target = target_status(transaction_status, fraud_status)
    if target is InvoiceStatus.PAID and state in CLOSED_UNPAID:
        target = InvoiceStatus.REFUND_DUE  # money for an invoice already closed: never granted, never lost
    if target is None or target not in TRANSITIONS[state]:
        return None
    return target
