"""The Midtrans payment notification (webhook): verify, ask Midtrans, act on its answer, keep the record.

1. The body (at most ``NOTIFICATION_BODY_LIMIT``) must be a JSON object signed with
   ``sha512(order_id + status_code + gross_amount + server_key)`` (constant-time compare, fields exactly as
   received). Forged or malformed: 4xx, logged, nothing changes.
2. The order must be one of our invoices and the notified amount its total.
3. ``GET /v2/{order_id}/status`` is the truth: the invoice moves on that answer only (amount checked again).
4. Every notification is recorded with the verdict (``payment_notifications``), whatever happened. A signed
   one is kept whole; a rejected one (forged, not JSON) keeps only what an investigation needs - the order id
   and status it claims, the SHA-256 and size of the body and its first ``REJECTED_EXCERPT_BYTES`` - and the
   lifecycle job deletes it after 30 days, so junk posted to this public route cannot fill the database.

Replays and out-of-order notifications are no-ops answered 200. A closed invoice is answered at once without
asking Midtrans, so repeats cost one indexed read - unless the notification says it was paid: then Midtrans is
asked, and a confirmed payment makes the invoice refund-due (never silently kept).
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from webrana_proxy.billing.deps import BillingDeps
from webrana_proxy.billing.invoice_state import CLOSED_UNPAID, FINAL_STATES, InvoiceStatus, is_paid
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

# Midtrans' notifications are about 2 KiB; 16 KiB leaves room for method extras, and anything larger is not
# Midtrans. Far below WEBRANA_API_BODY_LIMIT because this route is public and every post is recorded.
NOTIFICATION_BODY_LIMIT = 16 * 1024
REJECTED_EXCERPT_BYTES = 1024  # of a rejected body, kept for an investigation (with its hash and size)
CLAIM_MAX_CHARS = 64  # of the order id and status a rejected body claims


@dataclass(frozen=True, slots=True)
class Received:
    verdict: str
    order_id: str | None


class AmountMismatch(BadRequest):
    default_code = "amount_mismatch"


async def record(deps: BillingDeps, body: dict[str, Any], order_id: str | None, verdict: str) -> None:
    """A signed notification: kept whole (Midtrans wrote it, and the route's limit bounds it)."""
    await deps.pool.execute(
        "INSERT INTO payment_notifications (order_id, raw, verdict) VALUES ($1, $2, $3)",
        order_id[:100] if order_id else None, body, verdict)


def excerpt(raw: bytes, limit: int = REJECTED_EXCERPT_BYTES) -> str:
    """At most ``limit`` bytes (UTF-8) of ``raw`` as text: bytes that are not UTF-8 and NUL (which text
    columns cannot hold) shown as escapes, the result cut again to the limit on a character boundary."""
    text = raw[:limit].decode("utf-8", "backslashreplace").replace("\x00", "\\x00")
    return text.encode()[:limit].decode("utf-8", "ignore")


def _claim(body: dict[str, Any] | None, name: str) -> str | None:
    value = body.get(name) if body is not None else None
    return value[:CLAIM_MAX_CHARS] if isinstance(value, str) else None


async def record_rejected(deps: BillingDeps, raw: bytes, body: dict[str, Any] | None, verdict: str) -> None:
    """A rejected notification (unsigned or unreadable): never the body itself, only what an investigation
    needs. ``rejected`` rows are deleted by the lifecycle job after 30 days."""
    await deps.pool.execute(
        """INSERT INTO payment_notifications (order_id, transaction_status, body_sha256, body_bytes, excerpt,
               rejected, verdict)
           VALUES ($1, $2, $3, $4, $5, true, $6)""",
        _claim(body, "order_id"), _claim(body, "transaction_status"), hashlib.sha256(raw).hexdigest(),
        len(raw), excerpt(raw), verdict)


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
        await record_rejected(deps, raw, None, "malformed")
        log.warning("Midtrans notification refused: not a JSON object")
        raise BadRequest("notification must be a JSON object", code="invalid_notification")
    order_id = body.get("order_id") if isinstance(body.get("order_id"), str) else None
    if not verify_signature(body, deps.settings.midtrans_server_key):
        await record_rejected(deps, raw, body, "forged")
        log.warning("Midtrans notification refused: bad signature", extra={"order_id": _claim(body, "order_id")})
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
    current = InvoiceStatus(invoice["status"])
    claims_paid = is_paid(str(body.get("transaction_status")), body.get("fraud_status"))
    if current in FINAL_STATES or (current in CLOSED_UNPAID and not claims_paid):
        verdict = f"no_change:{current.value}"
        await record(deps, body, order_id, verdict)
        return Received(verdict, order_id)
    # Still open, or closed but reported paid: Midtrans' status decides (a confirmed payment for a closed
    # invoice becomes refund_due in apply_status).
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
