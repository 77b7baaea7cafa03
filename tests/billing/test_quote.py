"""Pricing a plan choice (pure): new, renewal, prorated upgrade (also past 30 days), scheduled downgrade."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from webrana_proxy.billing.plans import get_plan
from webrana_proxy.billing.subscriptions import Running, days_left, quote

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def _running(plan: str, days: float) -> Running:
    return Running(uuid.uuid4(), plan, NOW + timedelta(days=days))


def test_new_renewal_upgrade_and_downgrade() -> None:
    new = quote(None, get_plan("pro"), NOW, 11)
    assert (new.kind, new.charge.total_idr, new.subscription_id, new.period_start) == ("new", 109_890, None, None)
    running = _running("starter", 10)
    renewal = quote(running, get_plan("starter"), NOW, 11)
    assert (renewal.kind, renewal.charge.total_idr) == ("renewal", 54_390)
    assert renewal.period_start == running.current_period_end
    assert renewal.period_end == running.current_period_end + timedelta(days=30)
    upgrade = quote(running, get_plan("pro"), NOW, 11)
    # (99,000 - 49,000) * 10 / 30 = 16,666.67 -> 16,667; PPN 1,833.37 -> 1,833.
    assert (upgrade.kind, upgrade.charge.subtotal_idr, upgrade.charge.ppn_idr) == ("upgrade", 16_667, 1_833)
    assert (upgrade.period_start, upgrade.period_end) == (NOW, running.current_period_end)
    down = quote(_running("team", 3), get_plan("starter"), NOW, 11)
    assert (down.kind, down.schedules_downgrade, down.charge.total_idr) == ("renewal", True, 54_390)
    with pytest.raises(ValueError):
        quote(None, get_plan("free"), NOW, 11)


def test_an_upgrade_of_a_renewed_period_counts_every_remaining_day() -> None:
    upgrade = quote(_running("starter", 45), get_plan("pro"), NOW, 11)
    assert upgrade.charge.subtotal_idr == 75_000  # 50,000 * 45 / 30


def test_days_left_counts_a_started_day_as_whole() -> None:
    assert days_left(NOW, NOW) == 0 and days_left(NOW, NOW - timedelta(days=1)) == 0
    assert days_left(NOW, NOW + timedelta(seconds=1)) == 1
    assert days_left(NOW, NOW + timedelta(days=30)) == 30


@given(days=st.integers(min_value=1, max_value=60), seconds=st.integers(min_value=0, max_value=86_399),
       pair=st.sampled_from([("free", "starter"), ("starter", "pro"), ("starter", "team"), ("pro", "team")]))
def test_upgrades_are_positive_integer_charges_whose_items_add_up(days: int, seconds: int,
                                                                  pair: tuple[str, str]) -> None:
    old, new = pair
    if old == "free":
        return  # Free is never a running subscription
    running = Running(uuid.uuid4(), old, NOW + timedelta(days=days - 1, seconds=seconds + 1))
    q = quote(running, get_plan(new), NOW, 11)
    charge = q.charge
    assert q.kind == "upgrade" and charge.total_idr > 0
    assert sum(i["price"] * i["quantity"] for i in charge.item_details()) == charge.total_idr
    assert charge.subtotal_idr <= (get_plan(new).price_idr - get_plan(old).price_idr) * 2
