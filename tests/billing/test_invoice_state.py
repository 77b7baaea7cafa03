"""The invoice state machine: monotonic, idempotent, and deaf to out-of-order notifications."""

from __future__ import annotations

import itertools
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from webrana_proxy.billing.invoice_state import (
    CLOSED_UNPAID,
    FINAL_STATES,
    RANK,
    TRANSITIONS,
    InvoiceStatus,
    is_paid,
    next_status,
    target_status,
)

TRANSACTION_STATUSES = ["authorize", "capture", "settlement", "pending", "deny", "cancel", "expire",
                        "failure", "refund", "partial_refund", "chargeback", "partial_chargeback",
                        "something-new"]
FRAUD_STATUSES = [None, "accept", "challenge", "deny"]
answers = st.tuples(st.sampled_from(TRANSACTION_STATUSES), st.sampled_from(FRAUD_STATUSES))
states = st.sampled_from(list(InvoiceStatus))


def run(start: InvoiceStatus, sequence: list[tuple[str, str | None]]) -> list[InvoiceStatus]:
    trail = [start]
    for transaction_status, fraud_status in sequence:
        moved = next_status(trail[-1], transaction_status, fraud_status)
        if moved is not None:
            trail.append(moved)
    return trail


@pytest.mark.parametrize(("transaction_status", "fraud_status", "expected"), [
    ("settlement", None, InvoiceStatus.PAID),
    ("settlement", "accept", InvoiceStatus.PAID),
    ("capture", "accept", InvoiceStatus.PAID),
    ("capture", "challenge", None),
    ("capture", None, None),
    ("capture", "deny", InvoiceStatus.DENIED),
    ("pending", None, None),
    ("authorize", "accept", None),
    ("expire", None, InvoiceStatus.EXPIRED),
    ("cancel", None, InvoiceStatus.CANCELLED),
    ("deny", "accept", InvoiceStatus.DENIED),
    ("failure", None, InvoiceStatus.DENIED),
    ("refund", "accept", None),  # a pending invoice cannot be refunded
])
def test_a_pending_invoice_moves_as_midtrans_says(transaction_status: str, fraud_status: str | None,
                                                  expected: InvoiceStatus | None) -> None:
    assert next_status("pending", transaction_status, fraud_status) == expected


def test_card_capture_with_challenge_waits_then_accept_pays() -> None:
    sequence = [("pending", None), ("capture", "challenge"), ("capture", "accept")]
    assert run(InvoiceStatus.PENDING, sequence) == [InvoiceStatus.PENDING, InvoiceStatus.PAID]


def test_paid_moves_only_to_refunded() -> None:
    assert next_status(InvoiceStatus.PAID, "refund", "accept") == InvoiceStatus.REFUNDED
    assert next_status(InvoiceStatus.PAID, "chargeback", "accept") == InvoiceStatus.REFUNDED
    for late in ("pending", "expire", "cancel", "deny", "settlement", "partial_refund"):
        assert next_status(InvoiceStatus.PAID, late, "accept") is None


def test_final_states_never_move() -> None:
    assert {InvoiceStatus.REFUNDED} == FINAL_STATES
    for state in FINAL_STATES:
        for ts in TRANSACTION_STATUSES:
            for fs in FRAUD_STATUSES:
                assert next_status(state, ts, fs) is None


def test_a_closed_invoice_moves_only_when_midtrans_reports_it_paid_and_then_to_refund_due() -> None:
    assert {InvoiceStatus.EXPIRED, InvoiceStatus.CANCELLED, InvoiceStatus.DENIED} == CLOSED_UNPAID
    for state in CLOSED_UNPAID:
        for ts in TRANSACTION_STATUSES:
            for fs in FRAUD_STATUSES:
                moved = next_status(state, ts, fs)
                assert moved == (InvoiceStatus.REFUND_DUE if is_paid(ts, fs) else None), (state, ts, fs)


def test_refund_due_moves_only_to_refunded() -> None:
    assert next_status(InvoiceStatus.REFUND_DUE, "refund", "accept") == InvoiceStatus.REFUNDED
    for late in ("settlement", "capture", "pending", "expire", "cancel", "deny", "partial_refund"):
        assert next_status(InvoiceStatus.REFUND_DUE, late, "accept") is None


def test_paid_rule_is_settlement_or_accepted_capture() -> None:
    assert is_paid("settlement", None)
    assert is_paid("capture", "accept")
    assert not is_paid("capture", "challenge")
    assert not is_paid("pending", "accept")


def test_unknown_current_state_is_a_caller_bug() -> None:
    with pytest.raises(ValueError):
        next_status("archived", "settlement", None)


@given(states, st.lists(answers, max_size=30))
def test_the_state_never_goes_backwards_under_any_sequence(start: InvoiceStatus,
                                                           sequence: list[tuple[str, str | None]]) -> None:
    trail = run(start, sequence)
    for before, after in itertools.pairwise(trail):
        assert after in TRANSITIONS[before]
        assert RANK[after] > RANK[before]
    assert len(trail) <= 4  # pending -> expired -> refund_due -> refunded is the longest possible life


@given(states, answers)
def test_applying_the_same_answer_twice_is_a_no_op(start: InvoiceStatus,
                                                   answer: tuple[str, str | None]) -> None:
    first = next_status(start, *answer)
    after = first if first is not None else start
    assert next_status(after, *answer) is None


@given(st.lists(answers, max_size=20), st.randoms())
def test_replaying_the_notifications_changes_nothing(sequence: list[tuple[str, str | None]],
                                                     rnd: random.Random) -> None:
    end = run(InvoiceStatus.PENDING, sequence)[-1]
    shuffled = list(sequence)
    rnd.shuffle(shuffled)
    assert run(end, sequence + shuffled)[-1] in {end, *TRANSITIONS[end]}
    # replaying what already happened never moves a final state
    if end in FINAL_STATES:
        assert run(end, sequence + shuffled) == [end]


@given(st.lists(answers, max_size=20))
def test_the_first_decisive_answer_wins_for_a_pending_invoice(sequence: list[tuple[str, str | None]]) -> None:
    decisive = [target_status(ts, fs) for ts, fs in sequence
                if target_status(ts, fs) in TRANSITIONS[InvoiceStatus.PENDING]]
    trail = run(InvoiceStatus.PENDING, sequence)
    if decisive:
        assert trail[1] == decisive[0]
    else:
        assert trail == [InvoiceStatus.PENDING]
