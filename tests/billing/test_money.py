"""Rupiah arithmetic: PPN, proration and Midtrans line items, integers only."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from webrana_proxy.billing.money import (
    ITEM_NAME_MAX,
    LineItem,
    build_charge,
    div_round_half_up,
    format_idr,
    plan_charge,
    ppn_amount,
    prorate,
    remaining_days,
    upgrade_charge,
)
from webrana_proxy.billing.plans import PERIOD_DAYS, PLANS, Plan, get_plan

amounts = st.integers(min_value=0, max_value=10**12)
percents = st.integers(min_value=0, max_value=100)
paid_plans = st.sampled_from([p for p in PLANS if p.price_idr > 0])


def reference_round_half_up(value: Fraction) -> int:
    """Exact rational rounding, halves away from zero: the definition the integer code must match."""
    sign = -1 if value < 0 else 1
    magnitude = abs(value)
    whole = magnitude.numerator // magnitude.denominator
    if magnitude - whole >= Fraction(1, 2):
        whole += 1
    return sign * whole


@pytest.mark.parametrize(("plan_id", "ppn", "total"), [
    ("starter", 5_390, 54_390), ("pro", 10_890, 109_890), ("team", 32_890, 331_890),
])
def test_known_plan_totals_with_ppn_11(plan_id: str, ppn: int, total: int) -> None:
    charge = plan_charge(get_plan(plan_id), 11)
    assert (charge.ppn_idr, charge.total_idr) == (ppn, total)
    assert sum(i["price"] * i["quantity"] for i in charge.item_details()) == total


def test_half_rupiah_rounds_up_and_less_is_dropped() -> None:
    assert ppn_amount(50, 11) == 6  # 5.5 -> 6
    assert ppn_amount(45, 11) == 5  # 4.95 -> 5
    assert ppn_amount(4, 11) == 0  # 0.44 -> 0
    assert ppn_amount(14, 11) == 2  # 1.54 -> 2
    assert div_round_half_up(-5, 10) == -1
    assert div_round_half_up(-4, 10) == 0


@given(st.integers(min_value=-(10**15), max_value=10**15), st.integers(min_value=1, max_value=10**6))
def test_div_round_half_up_matches_exact_rational_rounding(numerator: int, denominator: int) -> None:
    exact = Fraction(numerator, denominator)
    assert div_round_half_up(numerator, denominator) == reference_round_half_up(exact)


@given(amounts, percents)
def test_ppn_is_an_integer_within_half_a_rupiah_of_the_exact_value(subtotal: int, percent: int) -> None:
    ppn = ppn_amount(subtotal, percent)
    assert isinstance(ppn, int)
    exact = Fraction(subtotal * percent, 100)
    assert -Fraction(1, 2) < ppn - exact <= Fraction(1, 2)
    assert ppn == reference_round_half_up(exact)


@given(amounts, amounts, percents)
def test_ppn_is_monotonic_in_the_subtotal(a: int, b: int, percent: int) -> None:
    low, high = sorted((a, b))
    assert ppn_amount(low, percent) <= ppn_amount(high, percent)


@given(st.lists(st.tuples(st.integers(1, 10**9), st.integers(1, 100)), min_size=1, max_size=8), percents)
def test_charge_totals_equal_the_sum_of_item_details(lines: list[tuple[int, int]], percent: int) -> None:
    charge = build_charge([LineItem(id=f"l{i}", name="x" * 80, price_idr=p, quantity=q)
                           for i, (p, q) in enumerate(lines)], percent)
    items = charge.item_details()
    assert charge.subtotal_idr == sum(p * q for p, q in lines)
    assert charge.total_idr == charge.subtotal_idr + charge.ppn_idr
    assert sum(i["price"] * i["quantity"] for i in items) == charge.total_idr
    assert all(isinstance(i["price"], int) and isinstance(i["quantity"], int) for i in items)
    assert all(len(i["name"]) <= ITEM_NAME_MAX for i in items)
    assert all(i["price"] > 0 for i in items)  # a zero PPN line is left out, Midtrans has no use for it


@given(paid_plans, paid_plans, st.integers(0, PERIOD_DAYS))
def test_proration_is_the_rounded_exact_fraction(old: Plan, new: Plan, days: int) -> None:
    amount = prorate(old.price_idr, new.price_idr, days)
    exact = Fraction((new.price_idr - old.price_idr) * days, PERIOD_DAYS)
    assert amount == reference_round_half_up(exact)
    assert prorate(old.price_idr, new.price_idr, PERIOD_DAYS) == new.price_idr - old.price_idr
    assert prorate(old.price_idr, new.price_idr, 0) == 0


@given(st.integers(0, 10**9), st.integers(0, 10**9), st.integers(0, PERIOD_DAYS), st.integers(0, PERIOD_DAYS))
def test_proration_grows_with_the_days_left(old: int, new: int, d1: int, d2: int) -> None:
    lo, hi = sorted((d1, d2))
    if new >= old:
        assert 0 <= prorate(old, new, lo) <= prorate(old, new, hi) <= new - old


@given(paid_plans, paid_plans, st.integers(1, PERIOD_DAYS), percents)
def test_upgrade_charge_adds_ppn_on_the_prorated_difference(old: Plan, new: Plan, days: int,
                                                            percent: int) -> None:
    if new.price_idr <= old.price_idr:
        with pytest.raises(ValueError):
            upgrade_charge(old, new, days, percent)
        return
    charge = upgrade_charge(old, new, days, percent)
    assert charge.subtotal_idr == prorate(old.price_idr, new.price_idr, days)
    assert charge.ppn_idr == ppn_amount(charge.subtotal_idr, percent)
    assert sum(i["price"] * i["quantity"] for i in charge.item_details()) == charge.total_idr


def test_known_upgrade_starter_to_pro_with_15_days_left() -> None:
    charge = upgrade_charge(get_plan("starter"), get_plan("pro"), 15, 11)
    assert (charge.subtotal_idr, charge.ppn_idr, charge.total_idr) == (25_000, 2_750, 27_750)


def test_upgrade_with_one_day_left_rounds_half_up() -> None:
    # (99,000 - 49,000) * 1 / 30 = 1,666.67 -> 1,667; PPN 183.37 -> 183
    charge = upgrade_charge(get_plan("starter"), get_plan("pro"), 1, 11)
    assert (charge.subtotal_idr, charge.ppn_idr, charge.total_idr) == (1_667, 183, 1_850)


def test_proration_rejects_days_outside_the_period() -> None:
    with pytest.raises(ValueError):
        prorate(0, 1, PERIOD_DAYS + 1)
    with pytest.raises(ValueError):
        prorate(0, 1, -1)


@given(st.integers(-(10**7), 40 * 86_400))
def test_remaining_days_counts_started_days_and_stays_in_the_period(seconds_left: int) -> None:
    now = datetime(2025, 1, 1, tzinfo=UTC)
    days = remaining_days(now, now + timedelta(seconds=seconds_left))
    assert 0 <= days <= PERIOD_DAYS
    if seconds_left <= 0:
        assert days == 0
    else:
        assert days == min(PERIOD_DAYS, -(-seconds_left // 86_400))


def test_remaining_days_right_after_paying_is_the_whole_period() -> None:
    now = datetime(2025, 1, 1, 12, tzinfo=UTC)
    assert remaining_days(now, now + timedelta(days=PERIOD_DAYS)) == PERIOD_DAYS
    assert remaining_days(now, now + timedelta(days=PERIOD_DAYS) - timedelta(seconds=1)) == PERIOD_DAYS


def test_format_idr_uses_indonesian_separators() -> None:
    assert format_idr(54_390) == "Rp 54.390"
    assert format_idr(331_890) == "Rp 331.890"
    assert format_idr(0) == "Rp 0"
