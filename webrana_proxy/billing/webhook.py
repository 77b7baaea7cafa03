"""The Midtrans payment notification (webhook): verify, ask Midtrans, act on its answer, keep the record.

1. The body must be a JSON object signed with ``sha512(order_id + status_code + gross_amount + server_key)``
   (constant-time compare, fields exactly as received). Forged or malformed: 4xx, logged, nothing changes.
2. The order must be one of our invoices and the notified amount its total.
3. ``GET /v2/{order_id}/status`` is the truth: the invoice moves on that answer only (amount checked again).
4. Every notification is stored raw with the verdict (``payment_notifications``), whatever happened.

Replays and out-of-order notifications are no-ops answered 200. A final invoice is answered at once without
asking Midtrans, so repeats cost one indexed read.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from webrana_proxy.billing.deps import BillingDeps
from webrana_proxy.billing.invoice_state import FINAL_STATES, InvoiceStatus, is_paid
from webrana_proxy.billing.midtrans import (
    MidtransError,
    MidtransUnavailable,
    TransactionStatus,
    parse_gross_amount,
    verify_signature,
)
from webrana_proxy.billing.transitions import apply_status
from webrana_proxy.errors import BadRequest, NotFound, ServiceUnavailable, Unauthorized, UpstreamError
from webrana_proxy.jsonio import structure_problem

log = logging.getLogger("webrana.billing.webhook")

RAW_TEXT_MAX = 4096  # how much of an unparseable body is kept for the audit record


@dataclass(frozen=True, slots=True)
class Received:
    verdict: str
    order_id: str | None


class AmountMismatch(BadRequest):
    default_code = "amount_mismatch"


async def record(deps: BillingDeps, raw: dict[str, Any], order_id: str | None, verdict: str) -> None:
    await deps.pool.execute(
        "INSERT INTO payment_notifications (order_id, raw, verdict) VALUES ($1, $2, $3)",
        order_id[:100] if order_id else None, raw, verdict)


def _parse(raw: bytes) -> dict[str, Any] | None:
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(value, dict) or structure_problem(value) is not None:
        return None  # not an object, absurdly deep, or holding NUL characters jsonb cannot store
    return value


async def receive(deps: BillingDeps, raw: bytes, now: datetime) -> Received:
    """Handle one notification. Raises a 4xx/5xx ``WebranaError`` after recording it when it is refused."""
    body = _parse(raw)
    if body is None:
        text = raw[:RAW_TEXT_MAX].decode("utf-8", "replace").replace("\x00", "\\u0000")
        await record(deps, {"unparsed": text}, None, "malformed")
        log.warning("Midtrans notification refused: not a JSON object")
        raise BadRequest("notification must be a JSON object", code="invalid_notification")
    order_id = body.get("order_id") if isinstance(body.get("order_id"), str) else None
    if not verify_signature(body, deps.settings.midtrans_server_key):
        await record(deps, body, order_id, "forged")
        log.warning("Midtrans notification refused: bad signature", extra={"order_id": order_id})
        raise Unauthorized("invalid notification signature", code="invalid_signature")
    assert order_id is not None  # a valid signature covers order_id
    invoice = await deps.pool.fetchrow(
        "SELECT id, status, total_idr FROM invoices WHERE order_id = $1", order_id)
    if invoice is None:
        await record(deps, body, order_id, "unknown_order")
        log.warning("Midtrans notification for an unknown order", extra={"order_id": order_id})
        raise NotFound("unknown order_id", code="unknown_order")
    try:
        notified = parse_gross_amount(body.get("gross_amount"))
    except ValueError:
        notified = -1
    if notified != invoice["total_idr"]:
        await record(deps, body, order_id, "amount_mismatch")
        log.error("Midtrans notification amount differs from the invoice", extra={"order_id": order_id})
        raise AmountMismatch("gross_amount does not match the invoice total")
    if InvoiceStatus(invoice["status"]) in FINAL_STATES:
        verdict = f"no_change:{invoice['status']}"
        if invoice["status"] != InvoiceStatus.PAID.value and is_paid(str(body.get("transaction_status")),
                                                                      body.get("fraud_status")):
            # Money arrived for an invoice we already closed: never silent; an operator refunds or applies it.
            verdict = f"paid_after_{invoice['status']}"
            log.error("Midtrans reports a payment for a closed invoice; refund or apply it by hand",
                      extra={"order_id": order_id, "invoice_status": invoice["status"]})
        await record(deps, body, order_id, verdict)
        return Received(verdict, order_id)
    try:
        answer = await deps.midtrans.get_status(order_id)
        status = TransactionStatus.from_body(answer)
    except MidtransUnavailable:
        await record(deps, body, order_id, "status_unavailable")
        log.warning("Midtrans status unavailable; the notification will be retried",
                    extra={"order_id": order_id})
        raise ServiceUnavailable("payment provider status is unavailable; retry later",
                                 code="payment_provider_unavailable") from None
    except MidtransError as exc:
        verdict = "status_not_found" if exc.not_found else "status_refused"
        await record(deps, body, order_id, verdict)
        log.warning("Midtrans status check refused", extra={"order_id": order_id, "verdict": verdict})
        return Received(verdict, order_id)
    except ValueError:
        await record(deps, body, order_id, "status_malformed")
        log.error("Midtrans status answer malformed", extra={"order_id": order_id})
        raise UpstreamError("payment provider status answer is malformed", status=502,
                            code="payment_provider_error") from None
    async with deps.pool.acquire() as conn, conn.transaction():
        outcome = await apply_status(conn, invoice["id"], status, now)
        await conn.execute("INSERT INTO payment_notifications (order_id, raw, verdict) VALUES ($1, $2, $3)",
                           order_id, body, outcome.verdict)
    if outcome.user_id is not None:
        await deps.keycache.invalidate_user(outcome.user_id)
    if outcome.verdict in {"amount_mismatch", "order_mismatch"}:  # recorded above; nothing changed
        log.error("Midtrans status answer does not match the invoice",
                  extra={"order_id": order_id, "verdict": outcome.verdict})
        raise AmountMismatch("Midtrans' record of this order does not match the invoice",
                             code=outcome.verdict)
    log.info("Midtrans notification processed", extra={"order_id": order_id, "verdict": outcome.verdict})
    return Received(outcome.verdict, order_id)
