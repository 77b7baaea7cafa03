"""Rupiah arithmetic: PPN, proration and Midtrans line items. Integers only, no floats anywhere.

Rounding rule, everywhere: a fraction of a rupiah is rounded half up (a half rupiah or more goes to the next
whole rupiah, less is dropped); negative amounts mirror positive ones (half away from zero), so ``-x`` always
rounds to ``-(round(x))``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TypedDict

from webrana_proxy.billing.plans import PERIOD_DAYS, Plan

ITEM_NAME_MAX = 50  # Midtrans rejects item_details names longer than 50 characters
PPN_ITEM_ID = "PPN"


def div_round_half_up(numerator: int, denominator: int) -> int:
    """``numerator / denominator`` rounded to the nearest integer, halves away from zero."""
    if denominator <= 0:
        raise ValueError("denominator must be positive")
    quotient, remainder = divmod(abs(numerator), denominator)
    if 2 * remainder >= denominator:
        quotient += 1
    return quotient if numerator >= 0 else -quotient


def ppn_amount(subtotal_idr: int, ppn_percent: int) -> int:
    """PPN (VAT) on ``subtotal_idr`` at ``ppn_percent`` %, rounded half up to whole rupiah."""
    if ppn_percent < 0:
        raise ValueError("ppn_percent must not be negative")
    return div_round_half_up(subtotal_idr * ppn_percent, 100)


def prorate(old_price_idr: int, new_price_idr: int, remaining_days: int,
            period_days: int = PERIOD_DAYS) -> int:
    """``(new - old) * remaining_days / period_days``, rounded half up: an upgrade for the rest of a period.

    The result is negative for a downgrade; callers bill only upgrades (downgrades wait for the period end).
    """
    if not 0 <= remaining_days <= period_days:
        raise ValueError(f"remaining_days must be within 0..{period_days}")
    return div_round_half_up((new_price_idr - old_price_idr) * remaining_days, period_days)


def remaining_days(now: datetime, period_end: datetime, period_days: int = PERIOD_DAYS) -> int:
    """Whole days left until ``period_end``; a started day counts as a full day; within ``0..period_days``.

    Rounding up means an upgrade right after paying costs the full difference, never a day less.
    """
    left = period_end - now
    if left <= timedelta(0):
        return 0
    day = timedelta(days=1)
    whole, rest = divmod(left, day)
    return min(period_days, whole + (1 if rest else 0))


class ItemDetail(TypedDict):
    """One entry of Midtrans ``item_details``."""

    id: str
    price: int
    quantity: int
    name: str


@dataclass(frozen=True, slots=True)
class LineItem:
    id: str
    name: str
    price_idr: int
    quantity: int = 1

    @property
    def amount_idr(self) -> int:
        return self.price_idr * self.quantity

    def as_item_detail(self) -> ItemDetail:
        return {"id": self.id, "price": self.price_idr, "quantity": self.quantity,
                "name": self.name[:ITEM_NAME_MAX]}


@dataclass(frozen=True, slots=True)
class Charge:
    """What one invoice asks for: the lines before tax, the PPN and the total.

    ``total_idr == subtotal_idr + ppn_idr == sum(price * quantity)`` over ``item_details()`` by construction.
    """

    lines: tuple[LineItem, ...]
    ppn_percent: int
    subtotal_idr: int
    ppn_idr: int
    total_idr: int

    def item_details(self) -> list[ItemDetail]:
        """The Midtrans ``item_details``: every line, then a PPN line (left out when the PPN is zero)."""
        items = [line.as_item_detail() for line in self.lines]
        if self.ppn_idr:
            items.append({"id": PPN_ITEM_ID, "price": self.ppn_idr, "quantity": 1,
                          "name": f"PPN {self.ppn_percent}%"})
        return items


def build_charge(lines: tuple[LineItem, ...] | list[LineItem], ppn_percent: int) -> Charge:
    """A charge for ``lines`` with PPN computed once on their subtotal (not per line)."""
    lines = tuple(lines)
    if not lines:
        raise ValueError("a charge needs at least one line")
    for line in lines:
        if line.price_idr <= 0 or line.quantity <= 0:
            raise ValueError("line prices and quantities must be positive")
    subtotal = sum(line.amount_idr for line in lines)
    ppn = ppn_amount(subtotal, ppn_percent)
    return Charge(lines=lines, ppn_percent=ppn_percent, subtotal_idr=subtotal, ppn_idr=ppn,
                  total_idr=subtotal + ppn)


def plan_charge(plan: Plan, ppn_percent: int) -> Charge:
    """One full period of ``plan``: Starter at 11% is 49,000 + 5,390 = 54,390."""
    line = LineItem(id=plan.id, name=f"Webrana {plan.name} ({PERIOD_DAYS} hari)", price_idr=plan.price_idr)
    return build_charge((line,), ppn_percent)


def upgrade_charge(old: Plan, new: Plan, days_left: int, ppn_percent: int) -> Charge:
    """The prorated difference from ``old`` to ``new`` for ``days_left`` days of the current period."""
    if new.price_idr <= old.price_idr:
        raise ValueError("an upgrade must be to a more expensive plan")
    price = prorate(old.price_idr, new.price_idr, days_left)
    if price <= 0:
        raise ValueError("nothing to charge: no days left in the period")
    line = LineItem(id=f"upgrade-{new.id}",
                    name=f"Upgrade {old.name} -> {new.name} ({days_left} hari)", price_idr=price)
    return build_charge((line,), ppn_percent)


def format_idr(amount_idr: int) -> str:
    """``54390`` -> ``"Rp 54.390"`` (Indonesian thousands separator)."""
    sign = "-" if amount_idr < 0 else ""
    return f"{sign}Rp {abs(amount_idr):,}".replace(",", ".")

