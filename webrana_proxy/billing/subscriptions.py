"""Subscriptions: what a plan choice costs (new, renewal, upgrade, downgrade) and what a paid, refunded or
lapsed invoice does to the subscription and to ``users.plan``.

The model: payments are one-off Snap checkouts (no stored cards), so every period is paid for. A user has
at most one running subscription (``active`` with ``current_period_end`` in the future).

* No running subscription: a *new* invoice for the full plan; paid -> active for 30 days from payment.
* Same plan while running: a *renewal*; paid -> the current period is extended by 30 days.
* A dearer plan while running: an *upgrade* for ``(new - old) * remaining_days / 30`` + PPN; paid -> the
  plan changes at once, the end date stays. The price holds only for the period it was quoted against: an
  upgrade paid when the subscription's period end is no longer the invoice's ``period_end`` (a renewal was
  paid meanwhile, the period rolled or ended) is not granted; the invoice becomes ``refund_due``.
* A cheaper plan while running: a downgrade, scheduled for the period end (``scheduled_plan``). Its invoice
  pays for the next period at the cheaper plan; when the period ends the lifecycle job starts that paid
  period, or, unpaid, returns the user to Free.
* Cancel: no renewal; the plan stays until the period ends, then Free.

Whose subscription: an ``Account``, a user's own (personal: ``users.plan``) or an organisation's (``org_id``:
``organisations.plan``; sql/0017). A subscription row names its account (``org_id`` NULL = personal) and every
effect of a payment, refund or period end lands on the account of the subscription it concerns, whoever paid.

Every function here runs inside the caller's transaction; the caller invalidates the key cache after commit.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import asyncpg

from webrana_proxy.billing.money import (
    Charge,
    LineItem,
    build_charge,
    div_round_half_up,
    plan_charge,
    upgrade_charge,
)
from webrana_proxy.billing.plans import PERIOD_DAYS, Plan, get_plan
from webrana_proxy.db import Conn

PERIOD = timedelta(days=PERIOD_DAYS)
FREE_PLAN = "free"


@dataclass(frozen=True, slots=True)
class Account:
    """Who a subscription is for: ``user_id``'s own, or the organisation ``org_id`` (then ``user_id`` is who buys:
    its owner)."""

    user_id: uuid.UUID
    org_id: uuid.UUID | None = None

    @property
    def id(self) -> uuid.UUID:
        """The account's workspace id (the user's, or the organisation's): what the key cache is told about."""
        return self.org_id if self.org_id is not None else self.user_id

    @classmethod
    def of(cls, row: asyncpg.Record) -> Account:
        """The account of a subscription or invoice row."""
        return cls(row["user_id"], row["org_id"])


@dataclass(frozen=True, slots=True)
class Running:
    """The part of a running subscription that pricing needs."""

    id: uuid.UUID
    plan: str
    current_period_end: datetime


@dataclass(frozen=True, slots=True)
class Grant:
    """What a payment did: whose plan or limits changed (an account's workspace id: the user's or the
    organisation's), or why nothing was granted (the invoice is then refund-due)."""

    user_id: uuid.UUID | None
    refused: str | None = None


@dataclass(frozen=True, slots=True)
class Quote:
    """What choosing ``plan`` means now: the invoice to issue and, for a downgrade, the schedule."""

    kind: str  # new | renewal | upgrade (a downgrade is a renewal at the cheaper plan, scheduled)
    plan: Plan
    charge: Charge
    subscription_id: uuid.UUID | None  # None: a new subscription row is needed
    period_start: datetime | None  # known for renewals and upgrades; a new period starts at payment
    period_end: datetime | None
    schedules_downgrade: bool = False


def quote(running: Running | None, plan: Plan, now: datetime, ppn_percent: int) -> Quote:
    """Price a choice of ``plan`` (never Free: that is a cancel) given the running subscription, if any."""
    if plan.price_idr <= 0:
        raise ValueError("the Free plan is not bought; cancel the subscription instead")
    if running is None:
        return Quote("new", plan, plan_charge(plan, ppn_percent), None, None, None)
    current = get_plan(running.plan)
    end = running.current_period_end
    if plan.id == current.id:
        return Quote("renewal", plan, plan_charge(plan, ppn_percent), running.id, end, end + PERIOD)
    if plan.price_idr > current.price_idr:
        days = days_left(now, end)
        return Quote("upgrade", plan, _upgrade(current, plan, days, ppn_percent), running.id, now, end)
    return Quote("renewal", plan, plan_charge(plan, ppn_percent), running.id, end, end + PERIOD,
                 schedules_downgrade=True)


def days_left(now: datetime, end: datetime) -> int:
    """Whole days until ``end``, a started day counting as a full one (a renewed period can exceed 30)."""
    left = end - now
    if left <= timedelta(0):
        return 0
    whole, rest = divmod(left, timedelta(days=1))
    return int(whole) + (1 if rest else 0)


def _upgrade(old: Plan, new: Plan, days: int, ppn_percent: int) -> Charge:
    """``(new - old) * days / 30`` + PPN; past 30 days (a renewed period) the same formula, uncapped."""
    if days <= PERIOD_DAYS:
        return upgrade_charge(old, new, days, ppn_percent)
    price = div_round_half_up((new.price_idr - old.price_idr) * days, PERIOD_DAYS)
    line = LineItem(id=f"upgrade-{new.id}", name=f"Upgrade {old.name} -> {new.name} ({days} hari)",
                    price_idr=price)
    return build_charge((line,), ppn_percent)


async def running_subscription(conn: Conn | asyncpg.Pool, account: Account,
                               now: datetime) -> asyncpg.Record | None:
    return await conn.fetchrow(
        """SELECT id, user_id, org_id, plan, status, current_period_start, current_period_end, cancel_at_period_end,
                  scheduled_plan, created_at, updated_at
           FROM subscriptions
           WHERE org_id IS NOT DISTINCT FROM $2 AND ($2::uuid IS NOT NULL OR user_id = $1)
             AND status = 'active' AND current_period_end > $3
           ORDER BY current_period_end DESC LIMIT 1""", account.user_id, account.org_id, now)


def running_of(row: asyncpg.Record | None) -> Running | None:
    if row is None:
        return None
    return Running(row["id"], row["plan"], row["current_period_end"])


async def lock_user_billing(conn: Conn, account_id: uuid.UUID) -> None:
    """Serialise every billing change of one account (``Account.id``: checkout, payment, refund, period end,
    a subscription moving to a new organisation) in this transaction, so two payments of one account never race
    or deadlock on each other's subscriptions. A checkout also takes its buyer's (one pending invoice per
    buyer)."""
    await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1::text))", f"billing:{account_id}")


async def create_pending(conn: Conn, account: Account, plan: str) -> uuid.UUID:
    sub_id: uuid.UUID = await conn.fetchval(
        "INSERT INTO subscriptions (user_id, org_id, plan, status) VALUES ($1, $2, $3, 'pending') RETURNING id",
        account.user_id, account.org_id, plan)
    return sub_id


async def schedule_downgrade(conn: Conn, subscription_id: uuid.UUID, plan: str) -> None:
    await conn.execute(
        "UPDATE subscriptions SET scheduled_plan = $2, cancel_at_period_end = false WHERE id = $1",
        subscription_id, plan)


async def cancel(conn: Conn | asyncpg.Pool, account: Account,
                 now: datetime) -> asyncpg.Record | None:
    """No renewal: the plan stays until the period ends. ``None`` when nothing is running."""
    return await conn.fetchrow(
        """UPDATE subscriptions SET cancel_at_period_end = true, scheduled_plan = NULL
           WHERE id = (SELECT id FROM subscriptions
                       WHERE org_id IS NOT DISTINCT FROM $2 AND ($2::uuid IS NOT NULL OR user_id = $1)
                         AND status = 'active' AND current_period_end > $3
                       ORDER BY current_period_end DESC LIMIT 1)
           RETURNING id, user_id, org_id, plan, status, current_period_start, current_period_end,
                     cancel_at_period_end, scheduled_plan, created_at, updated_at""",
        account.user_id, account.org_id, now)


async def set_plan(conn: Conn, account: Account, plan: str) -> None:
    """The plan an account's limits run on: ``users.plan`` (personal) or ``organisations.plan``."""
    if account.org_id is None:
        await conn.execute("UPDATE users SET plan = $2 WHERE id = $1 AND plan <> $2", account.user_id, plan)
    else:
        await conn.execute("UPDATE organisations SET plan = $2 WHERE id = $1 AND plan <> $2", account.org_id, plan)


async def _other_running(conn: Conn, account: Account, sub_id: uuid.UUID,
                         now: datetime) -> bool:
    found = await conn.fetchval(
        """SELECT 1 FROM subscriptions
           WHERE org_id IS NOT DISTINCT FROM $2 AND ($2::uuid IS NOT NULL OR user_id = $1)
             AND id <> $3 AND status = 'active' AND current_period_end > $4 LIMIT 1""",
        account.user_id, account.org_id, sub_id, now)
    return found is not None


async def _lock(conn: Conn, sub_id: uuid.UUID | None) -> asyncpg.Record | None:
    if sub_id is None:
        return None
    return await conn.fetchrow(
        """SELECT id, user_id, org_id, plan, status, current_period_start, current_period_end, cancel_at_period_end,
                  scheduled_plan, created_at, updated_at
           FROM subscriptions WHERE id = $1 FOR UPDATE""", sub_id)


def upgrade_refusal(invoice: asyncpg.Record, sub: asyncpg.Record, paid_at: datetime) -> str | None:
    """Why a paid upgrade must not be granted, or ``None``. Its price was ``(new - old) * days / 30`` for the
    days up to the period end it was quoted against; granted on any other period, it would sell the new plan
    for a period it was not priced for (twelve renewals and a one-day upgrade = a year of the dearer plan)."""
    if sub["status"] != "active" or sub["current_period_end"] <= paid_at:
        return "the subscription period ended before the upgrade was paid"
    if invoice["period_end"] != sub["current_period_end"]:
        return "the subscription period changed after the upgrade was priced"
    if get_plan(sub["plan"]).price_idr >= get_plan(invoice["plan"]).price_idr:
        return "the subscription is already on this plan or a dearer one"
    return None


async def on_paid(conn: Conn, invoice: asyncpg.Record, paid_at: datetime) -> Grant:
    """Give the buyer what the invoice paid for (``invoice`` needs ``period_end`` and the identifying
    columns), or refuse it with a reason: the caller then marks the invoice refund-due. What it buys goes to the
    account of its subscription (which may have moved to an organisation since the invoice was issued)."""
    plan: str = invoice["plan"]
    sub = await _lock(conn, invoice["subscription_id"])
    if sub is None:  # the row was removed; a paid invoice still earns its period
        sub_id = await create_pending(conn, Account.of(invoice), plan)
        sub = await _lock(conn, sub_id)
        assert sub is not None
    account = Account.of(sub)
    user_id = account.id
    running = sub["status"] == "active" and sub["current_period_end"] > paid_at
    end: datetime = sub["current_period_end"]
    if invoice["kind"] == "upgrade":
        refused = upgrade_refusal(invoice, sub, paid_at)
        if refused is not None:
            return Grant(None, refused)
        await conn.execute("UPDATE subscriptions SET plan = $2, scheduled_plan = NULL WHERE id = $1",
                           sub["id"], plan)
        await set_plan(conn, account, plan)
        return Grant(user_id)
    if running and plan == sub["plan"]:  # a renewal: the current period grows by 30 days
        await conn.execute(
            """UPDATE subscriptions SET current_period_end = $2, cancel_at_period_end = false,
                   scheduled_plan = NULL WHERE id = $1""", sub["id"], end + PERIOD)
        await conn.execute("UPDATE invoices SET period_start = $2, period_end = $3 WHERE id = $1",
                           invoice["id"], end, end + PERIOD)
        return Grant(user_id)
    if running:  # a paid downgrade: the cheaper period starts when this one ends
        await conn.execute(
            "UPDATE subscriptions SET scheduled_plan = $2, cancel_at_period_end = false WHERE id = $1",
            sub["id"], plan)
        await conn.execute("UPDATE invoices SET period_start = $2, period_end = $3 WHERE id = $1",
                           invoice["id"], end, end + PERIOD)
        return Grant(None)
    # A period that starts now: a new subscription, or one that lapsed before the payment arrived.
    await conn.execute(
        """UPDATE subscriptions SET status = 'expired', current_period_end = LEAST(current_period_end, $4)
           WHERE org_id IS NOT DISTINCT FROM $2 AND ($2::uuid IS NOT NULL OR user_id = $1)
             AND id <> $3 AND status = 'active'""", account.user_id, account.org_id, sub["id"], paid_at)
    await conn.execute(
        """UPDATE subscriptions SET status = 'active', plan = $2, current_period_start = $3,
               current_period_end = $4, cancel_at_period_end = false, scheduled_plan = NULL WHERE id = $1""",
        sub["id"], plan, paid_at, paid_at + PERIOD)
    await conn.execute("UPDATE invoices SET period_start = $2, period_end = $3 WHERE id = $1",
                       invoice["id"], paid_at, paid_at + PERIOD)
    await set_plan(conn, account, plan)
    return Grant(user_id)


async def on_refunded(conn: Conn, invoice: asyncpg.Record, now: datetime) -> uuid.UUID | None:
    """The money went back: the service that subscription paid for ends now (for the subscription's account)."""
    sub = await _lock(conn, invoice["subscription_id"])
    if sub is None or sub["status"] != "active":
        return None
    account = Account.of(sub)
    await conn.execute(
        """UPDATE subscriptions SET status = 'cancelled', scheduled_plan = NULL,
               current_period_end = LEAST(current_period_end, $2) WHERE id = $1""", sub["id"], now)
    if not await _other_running(conn, account, sub["id"], now):
        await set_plan(conn, account, FREE_PLAN)
    return account.id


async def on_abandoned(conn: Conn, invoice: asyncpg.Record) -> None:
    """An invoice expired, was cancelled or denied: a subscription that never started is closed."""
    sub_id = invoice["subscription_id"]
    if sub_id is None:
        return
    await conn.execute(
        """UPDATE subscriptions SET status = 'cancelled' WHERE id = $1 AND status = 'pending'
           AND NOT EXISTS (SELECT 1 FROM invoices WHERE subscription_id = $1 AND status IN ('pending', 'paid')
                           AND id <> $2)""", sub_id, invoice["id"])


@dataclass(frozen=True, slots=True)
class PeriodEnd:
    outcome: str  # rolled (a paid next period started) | expired (back to Free)
    user_id: uuid.UUID  # the account's workspace id (the user's, or the organisation's)


async def end_period(conn: Conn, sub_id: uuid.UUID, now: datetime) -> PeriodEnd | None:
    """The period of ``sub_id`` is over: start its paid next period (a scheduled downgrade), or expire it."""
    owner = await conn.fetchrow("SELECT user_id, org_id FROM subscriptions WHERE id = $1", sub_id)
    if owner is None:
        return None
    locked = Account.of(owner)
    await lock_user_billing(conn, locked.id)
    sub = await conn.fetchrow(
        """SELECT id, user_id, org_id, plan, status, current_period_start, current_period_end, cancel_at_period_end,
                  scheduled_plan, created_at, updated_at
           FROM subscriptions
           WHERE id = $1 AND status = 'active' AND current_period_end <= $2 FOR UPDATE""", sub_id, now)
    if sub is None:
        return None
    account = Account.of(sub)
    if account.id != locked.id:  # it moved to a new organisation meanwhile: the next run ends it under that lock
        return None
    user_id = account.id
    prepaid = await conn.fetchrow(
        """SELECT id, plan, period_start, period_end FROM invoices
           WHERE subscription_id = $1 AND status = 'paid' AND kind = 'renewal' AND period_start >= $2
           ORDER BY period_start LIMIT 1""", sub["id"], sub["current_period_end"])
    if prepaid is not None:  # paid for, so it starts even if renewal was cancelled after paying
        await conn.execute(
            """UPDATE subscriptions SET plan = $2, current_period_start = $3, current_period_end = $4,
                   scheduled_plan = NULL WHERE id = $1""",
            sub["id"], prepaid["plan"], prepaid["period_start"], prepaid["period_end"])
        await set_plan(conn, account, prepaid["plan"])
        return PeriodEnd("rolled", user_id)
    await conn.execute("UPDATE subscriptions SET status = 'expired', scheduled_plan = NULL WHERE id = $1",
                       sub["id"])
    if not await _other_running(conn, account, sub["id"], now):
        await set_plan(conn, account, FREE_PLAN)
    return PeriodEnd("expired", user_id)


def subscription_view(row: asyncpg.Record, now: datetime) -> dict[str, Any]:
    end: datetime | None = row["current_period_end"]
    start: datetime | None = row["current_period_start"]
    return {
        "id": str(row["id"]),
        "plan": row["plan"],
        "plan_name": get_plan(row["plan"]).name,
        "status": row["status"],
        "current_period_start": start.isoformat() if start else None,
        "current_period_end": end.isoformat() if end else None,
        "days_left": days_left(now, end) if end and row["status"] == "active" else 0,
        "cancel_at_period_end": row["cancel_at_period_end"],
        "scheduled_plan": row["scheduled_plan"],
    }


async def lock_for_move(conn: Conn, user_id: uuid.UUID) -> str:
    """Before a new organisation takes over ``user_id``'s billing (``move_to_organisation``, same transaction):
    lock their billing and return the plan they are on now. The invoices of their subscriptions are locked
    before the billing lock, in the order a payment takes them (``transitions.apply_status``: the invoice, then the
    lock), so a payment arriving meanwhile waits or is waited for, never deadlocks."""
    await conn.execute(
        """SELECT 1 FROM invoices WHERE subscription_id IN (
               SELECT id FROM subscriptions WHERE user_id = $1 AND org_id IS NULL AND status IN ('active', 'pending'))
           ORDER BY id FOR UPDATE""", user_id)
    await lock_user_billing(conn, user_id)
    plan: str = await conn.fetchval("SELECT plan FROM users WHERE id = $1", user_id)
    return plan


async def move_to_organisation(conn: Conn, user_id: uuid.UUID, org_id: uuid.UUID, plan: str,
                               now: datetime) -> None:
    """The buyer ``user_id`` just created the organisation ``org_id`` on their ``plan`` (inside that transaction,
    after ``lock_for_move``): their running subscription and its open invoices (pending, or paid for a period not
    started yet) become the organisation's, the organisation runs on ``plan`` and the buyer's own account on Free.
    Past invoices stay in the buyer's personal history."""
    running = await running_subscription(conn, Account(user_id), now)
    if running is not None:
        await conn.execute("UPDATE subscriptions SET org_id = $2 WHERE id = $1", running["id"], org_id)
        await conn.execute(
            """UPDATE invoices SET org_id = $2
               WHERE subscription_id = $1 AND org_id IS NULL
                 AND (status = 'pending' OR (status = 'paid' AND period_start >= $3))""",
            running["id"], org_id, running["current_period_end"])
    await set_plan(conn, Account(user_id, org_id), plan)
    await set_plan(conn, Account(user_id), FREE_PLAN)


async def hand_back(conn: Conn, org_id: uuid.UUID, owner_id: uuid.UUID, now: datetime) -> str | None:
    """The organisation is being deleted (inside that transaction): its running subscription goes back to its owner's
    own account, with the plan it pays for, unless the owner has a running one of their own. Returns the plan the
    owner is on now, or None when nothing changed. (Its invoices stay: their org_id falls to NULL with the row.)"""
    await lock_user_billing(conn, org_id)
    await lock_user_billing(conn, owner_id)
    running = await running_subscription(conn, Account(owner_id, org_id), now)
    if running is None or await running_subscription(conn, Account(owner_id), now) is not None:
        return None
    await conn.execute("UPDATE subscriptions SET org_id = NULL, user_id = $2 WHERE id = $1", running["id"], owner_id)
    await set_plan(conn, Account(owner_id), running["plan"])
    return str(running["plan"])
