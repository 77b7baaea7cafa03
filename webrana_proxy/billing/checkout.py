"""``subscribe``: price the plan choice, issue the numbered invoice and open a Midtrans Snap checkout.

The invoice is written first (its own transaction, under a per-user lock), then Snap is called outside any
transaction. The Midtrans order id doubles as Midtrans' ``Idempotency-Key``, so a retry of an interrupted
checkout gets Midtrans' first answer instead of a second transaction. A client ``Idempotency-Key`` maps to
one invoice per user (a unique index): the same key returns that invoice's checkout.

A user has at most one pending invoice (a partial unique index; every insert also runs under the per-user
lock). Choosing the plan of the pending invoice again returns it (same number, no second Snap call).
Choosing another plan first closes the pending one: its Snap transaction is expired at Midtrans
(``POST /v2/{order_id}/expire``), outside any transaction, and Midtrans' answer is applied like a webhook's.
If Midtrans says it was paid meanwhile (expire refused, the status says settled), the payment is applied
(granted as usual), never lost, and the new choice is priced on the state that payment left. If card money
is held awaiting review, nothing is closed and the new checkout is refused (409) until it settles.
"""

from __future__ import annotations

import logging
import re
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import asyncpg

from webrana_proxy.api.identity import User
from webrana_proxy.billing import subscriptions
from webrana_proxy.billing.deps import MIDTRANS_TIMEOUT_SECONDS, BillingDeps
from webrana_proxy.billing.invoice_state import CLOSED_UNPAID, InvoiceStatus
from webrana_proxy.billing.invoices import PENDING_INVOICE_TTL, insert_invoice
from webrana_proxy.billing.midtrans import MidtransError, TransactionStatus, new_order_id
from webrana_proxy.billing.money import LineItem, build_charge
from webrana_proxy.billing.plans import Plan
from webrana_proxy.billing.seller import seller_details
from webrana_proxy.billing.transitions import apply_status
from webrana_proxy.db import Conn
from webrana_proxy.errors import BadRequest, UpstreamError, WebranaError

log = logging.getLogger("webrana.billing")

FINISH_PATH = "/billing/result"  # the console page Snap sends the browser back to (a team's: under /teams/{id})
IDEMPOTENCY_KEY_RE = re.compile(r"[\x21-\x7e]{1,100}")  # printable ASCII, no spaces, like Stripe's
MIN_EXPIRY_MINUTES = 1  # Snap wants a positive duration
# Each round closes the pending invoice another request just opened; more than this is a fight over the
# checkout (two tabs clicking different plans), and the caller is told to retry.
MAX_REPLACE_ROUNDS = 3
# A pending invoice without a Snap token younger than this is still being opened by another request (its
# Snap call is bounded by the Midtrans client timeout): replacing it now could leave that request's Snap page
# alive for a closed invoice, so the new choice waits (409). Older, its request is gone: it can be replaced.
SNAP_IN_FLIGHT = timedelta(seconds=3 * MIDTRANS_TIMEOUT_SECONDS)
ONE_PENDING_INDEX = "invoices_one_pending_per_user"


class IdempotencyConflict(WebranaError):
    status = 409
    type = "invalid_request_error"
    default_code = "idempotency_key_reused"


class PaymentInProgress(WebranaError):
    status = 409
    type = "invalid_request_error"
    default_code = "payment_in_progress"


class CheckoutBusy(WebranaError):
    status = 409
    type = "invalid_request_error"
    default_code = "checkout_busy"


@dataclass(frozen=True, slots=True)
class Checkout:
    body: dict[str, Any]
    replayed: bool


def finish_path(org_id: uuid.UUID | None) -> str:
    """The console page Snap returns to: the personal result page, or the team's (``/teams/{org_id}/...``)."""
    return FINISH_PATH if org_id is None else f"/teams/{org_id}{FINISH_PATH}"


def check_idempotency_key(raw: str | None) -> str | None:
    if raw is None:
        return None
    if not IDEMPOTENCY_KEY_RE.fullmatch(raw):
        raise BadRequest("Idempotency-Key must be 1..100 printable ASCII characters without spaces",
                         code="invalid_idempotency_key", param="Idempotency-Key")
    return raw


def _answer(row: asyncpg.Record) -> dict[str, Any]:
    return {
        "order_id": row["order_id"],
        "token": row["snap_token"],
        "redirect_url": row["redirect_url"],
        "invoice_id": str(row["id"]),
        "invoice_number": row["number"],
        "kind": row["kind"],
        "plan": row["plan"],
        "subtotal_idr": row["subtotal_idr"],
        "ppn_idr": row["ppn_idr"],
        "total_idr": row["total_idr"],
        "expires_at": row["expires_at"].isoformat(),
    }


async def _by_key(conn: Conn | asyncpg.Pool, user: User, key: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        """SELECT id, user_id, org_id, subscription_id, number, order_id, plan, kind, subtotal_idr, ppn_idr, total_idr,
                  status, payment_method, paid_at, expires_at, snap_token, redirect_url, idempotency_key,
                  period_start, period_end, buyer, seller, lines, ppn_percent, created_at, updated_at
           FROM invoices WHERE user_id = $1 AND idempotency_key = $2""", user.id, key)


async def _pending(conn: Conn, user: User) -> asyncpg.Record | None:
    """The buyer's pending invoice, for whichever account (their own, or their team's)."""
    return await conn.fetchrow(
        """SELECT id, user_id, org_id, subscription_id, number, order_id, plan, kind, subtotal_idr, ppn_idr, total_idr,
                  status, payment_method, paid_at, expires_at, snap_token, redirect_url, idempotency_key,
                  period_start, period_end, buyer, seller, lines, ppn_percent, created_at, updated_at
           FROM invoices WHERE user_id = $1 AND status = 'pending'""", user.id)


async def subscribe(deps: BillingDeps, user: User, plan: Plan, idempotency_key: str | None,
                    now: datetime, org_id: uuid.UUID | None = None) -> Checkout:
    """Start paying for ``plan``: for the buyer's own account, or with ``org_id`` for that organisation (the caller
    has checked that ``user`` owns it). Raises the Midtrans errors (502/503) when Snap cannot be reached."""
    account = subscriptions.Account(user.id, org_id)
    if idempotency_key is not None:
        existing = await _by_key(deps.pool, user, idempotency_key)
        if existing is not None:
            return await _replay(deps, user, _same_account(existing, account))
    for round_ in range(MAX_REPLACE_ROUNDS + 1):
        issued: asyncpg.Record | None = None
        replace: asyncpg.Record | None = None
        async with deps.pool.acquire() as conn, conn.transaction():
            await subscriptions.lock_user_billing(conn, user.id)  # one pending invoice per buyer
            if org_id is not None:
                await subscriptions.lock_user_billing(conn, org_id)  # the team's subscriptions
            existing = await _by_key(conn, user, idempotency_key) if idempotency_key is not None else None
            if existing is None:
                pending = await _pending(conn, user)
                if pending is None:
                    issued = await _issue(conn, deps, user, account, plan, idempotency_key, now)
                elif (pending["plan"] == plan.id and pending["org_id"] == org_id
                      and pending["expires_at"] > now):
                    existing = pending  # the same choice again: the same invoice, no second Snap call
                elif round_ == MAX_REPLACE_ROUNDS or (pending["snap_token"] is None
                                                      and pending["created_at"] > now - SNAP_IN_FLIGHT):
                    raise CheckoutBusy("another checkout of this account is opening or changing the pending "
                                       "invoice; retry in a moment")
                else:
                    replace = pending
            else:
                existing = _same_account(existing, account)
        if existing is not None:
            return await _replay(deps, user, existing)
        if issued is not None:
            return Checkout(await _open_snap(deps, user, issued, now), replayed=False)
        assert replace is not None
        await _close_replaced(deps, replace, now)  # then the next round issues the new invoice
    raise AssertionError("unreachable: the last round issues, returns or raises")


def _same_account(row: asyncpg.Record, account: subscriptions.Account) -> asyncpg.Record:
    """An Idempotency-Key names one checkout: reused for another account (personal vs. a team), it is refused."""
    if row["org_id"] != account.org_id:
        raise IdempotencyConflict("this Idempotency-Key was used for a checkout of another account (personal or a "
                                  "team); retry with a new key")
    return row


async def _expire_at_midtrans(deps: BillingDeps, order_id: str) -> TransactionStatus | None:
    """Expire the order at Midtrans. ``None`` when it can no longer be paid (expired now, or unknown to
    Midtrans: no payment method was chosen); otherwise what Midtrans says it is (paid, in review, closed).
    Raises MidtransUnavailable (503) when Midtrans cannot say."""
    try:
        await deps.midtrans.expire(order_id)
        return None
    except MidtransError as exc:
        if exc.not_found:
            return None
    # Refused (412): no longer pending. Paid, or closed already: the status says which.
    try:
        body = await deps.midtrans.get_status(order_id)
    except MidtransError as exc:
        if exc.not_found:
            return None
        raise
    try:
        return TransactionStatus.from_body(body)
    except ValueError:
        log.error("Midtrans status answer malformed", extra={"order_id": order_id})
        raise UpstreamError("payment provider answer is malformed", status=502,
                            code="payment_provider_error") from None


async def _close_replaced(deps: BillingDeps, invoice: asyncpg.Record, now: datetime) -> None:
    """Close the pending ``invoice`` that a new plan choice replaces, on Midtrans' word (see the module):
    cancelled, unless Midtrans says it was paid (applied as usual) or card money is held (409)."""
    status = await _expire_at_midtrans(deps, invoice["order_id"])
    async with deps.pool.acquire() as conn, conn.transaction():
        outcome = await apply_status(conn, invoice["id"], status, now,
                                     close_unsettled_as=InvoiceStatus.CANCELLED)
    if outcome.user_id is not None:
        await deps.keycache.invalidate_user(outcome.user_id)
    log.info("pending invoice replaced by a new plan choice",
             extra={"order_id": invoice["order_id"], "verdict": outcome.verdict})
    if outcome.verdict in {"amount_mismatch", "order_mismatch"}:
        log.error("Midtrans' record of a pending invoice does not match it",
                  extra={"order_id": invoice["order_id"], "verdict": outcome.verdict})
        raise UpstreamError("the payment provider's record of your pending invoice does not match it; "
                            "contact support", status=502, code="payment_provider_error")
    if outcome.verdict == f"no_change:{InvoiceStatus.PENDING.value}":
        raise PaymentInProgress("a payment of your pending invoice is being processed; wait for it to finish "
                                "before choosing another plan")


async def _issue(conn: Conn, deps: BillingDeps, user: User, account: subscriptions.Account, plan: Plan,
                 idempotency_key: str | None, now: datetime) -> asyncpg.Record:
    running = await subscriptions.running_subscription(conn, account, now)
    quote = subscriptions.quote(subscriptions.running_of(running), plan, now, deps.settings.ppn_percent)
    sub_id = quote.subscription_id
    if sub_id is None:
        sub_id = await subscriptions.create_pending(conn, account, plan.id)
    if quote.schedules_downgrade:
        await subscriptions.schedule_downgrade(conn, sub_id, plan.id)
    try:
        row = await insert_invoice(
            conn, user_id=user.id, subscription_id=sub_id, plan=plan.id, kind=quote.kind, charge=quote.charge,
            order_id=new_order_id(), idempotency_key=idempotency_key, now=now, period_start=quote.period_start,
            period_end=quote.period_end, buyer=_buyer(user, account), seller=seller_details(deps.settings),
            org_id=account.org_id)
    except asyncpg.UniqueViolationError as exc:  # only if a writer skipped the per-user lock
        if exc.constraint_name != ONE_PENDING_INDEX:
            raise
        raise CheckoutBusy("this account already has a pending invoice; retry") from None
    if quote.kind == "upgrade" and quote.period_end is not None and quote.period_end < row["expires_at"]:
        # An upgrade is only worth paying while the period lasts.
        shortened = await conn.fetchrow(
            """UPDATE invoices SET expires_at = $2 WHERE id = $1
               RETURNING id, user_id, org_id, subscription_id, number, order_id, plan, kind, subtotal_idr, ppn_idr,
                         total_idr, status, payment_method, paid_at, expires_at, snap_token, redirect_url,
                         idempotency_key, period_start, period_end, buyer, seller, lines, ppn_percent,
                         created_at, updated_at""",
            row["id"], quote.period_end)
        assert shortened is not None
        return shortened
    return row


def _buyer(user: User, account: subscriptions.Account) -> dict[str, Any]:
    buyer: dict[str, Any] = {"user_id": str(user.id), "email": user.email}
    if account.org_id is not None:
        buyer["org_id"] = str(account.org_id)
    return buyer


async def _replay(deps: BillingDeps, user: User, row: asyncpg.Record) -> Checkout:
    if InvoiceStatus(row["status"]) in CLOSED_UNPAID:  # its Snap page can no longer take a payment
        raise IdempotencyConflict(
            "the checkout made with this Idempotency-Key is closed (replaced by another plan choice, expired "
            "or failed); retry with a new key", code="checkout_closed")
    if row["snap_token"] is not None:
        return Checkout(_answer(row), replayed=True)
    if row["status"] != "pending":
        raise IdempotencyConflict("the request with this Idempotency-Key failed; retry with a new key")
    # The first attempt did not get Snap's answer: ask again with the same order id (Midtrans replays).
    return Checkout(await _open_snap(deps, user, row, row["created_at"]), replayed=True)


def _charge_items(row: asyncpg.Record) -> list[Any]:
    lines = tuple(LineItem(id=line["id"], name=line["name"], price_idr=line["price_idr"],
                           quantity=line["quantity"]) for line in row["lines"])
    charge = build_charge(lines, row["ppn_percent"])
    if charge.total_idr != row["total_idr"]:
        raise AssertionError("invoice lines do not add up to its total")
    return list(charge.item_details())


async def _open_snap(deps: BillingDeps, user: User, row: asyncpg.Record, issued: datetime) -> dict[str, Any]:
    minutes = max(MIN_EXPIRY_MINUTES, int((row["expires_at"] - issued).total_seconds() // 60))
    minutes = min(minutes, int(PENDING_INVOICE_TTL.total_seconds() // 60))
    try:
        snap = await deps.midtrans.create_snap_transaction(
            order_id=row["order_id"], gross_amount=row["total_idr"], item_details=_charge_items(row),
            customer_email=user.email, finish_url=deps.settings.console_url + finish_path(row["org_id"]),
            expiry_minutes=minutes, idempotency_key=row["order_id"])
    except MidtransError:
        log.warning("Midtrans refused a Snap checkout", extra={"order_id": row["order_id"]})
        async with deps.pool.acquire() as conn, conn.transaction():
            await conn.execute(
                "UPDATE invoices SET status = 'cancelled' WHERE id = $1 AND status = 'pending'", row["id"])
            await subscriptions.on_abandoned(conn, row)
        raise
    updated = await deps.pool.fetchrow(
        """UPDATE invoices SET snap_token = $2, redirect_url = $3 WHERE id = $1
           RETURNING id, user_id, org_id, subscription_id, number, order_id, plan, kind, subtotal_idr, ppn_idr,
                     total_idr, status, payment_method, paid_at, expires_at, snap_token, redirect_url,
                     idempotency_key, period_start, period_end, buyer, seller, lines, ppn_percent,
                     created_at, updated_at""",
        row["id"], snap.token, snap.redirect_url)
    assert updated is not None
    return _answer(updated)
