"""Rows journaled before they are priced: the gateway writes a call's usage row before its answer ends and prices
it just after; a journal replayed after a crash (or a row from the outage stream) is priced by the writer. Either
way the row carries everything a price needs: its tokens, its time, Qwen's thinking flag and a cost the provider
reported. Figures worked out by hand from the list prices (as in test_prices.py)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import orjson
import pytest

from webrana_proxy.pricing import RowPricer
from webrana_proxy.providers.catalogue import load_catalogue
from webrana_proxy.providers.pricebook import PriceBook
from webrana_proxy.usage import LINE_FIELDS, REFUSALS, UnpriceableRow, UsageRecord, write_batch

RATE = 16_500
DAY = datetime(2026, 12, 6, 10, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def book() -> PriceBook:
    return PriceBook(load_catalogue())


def unpriced(provider: str, model: str, prompt: int, completion: int, **extra: object) -> UsageRecord:
    return UsageRecord(request_id="req_" + uuid.uuid4().hex[:16], user_id=uuid.uuid4(), proxy_key_id=None,
                       provider=provider, model=model, endpoint="chat", stream=False, status=200,
                       prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion,
                       tokens_estimated=False, latency_ms=3, ttfb_ms=None, upstream_request_id=None,
                       error_type=None, created_at=DAY, priced=False, **extra)  # type: ignore[arg-type]


def replayed(row: UsageRecord) -> UsageRecord:
    """The row as a restarted process reads it back from its journal line."""
    return UsageRecord.from_json(row.to_line())


def test_an_unpriced_row_read_back_from_the_journal_is_priced_at_its_call_time(book: PriceBook) -> None:
    fallbacks: list[tuple[str, str]] = []
    price = RowPricer(book, RATE, lambda p, m: fallbacks.append((p, m)))
    # qwen-plus: input 0.4, output 1.2 USD per million tokens: 400 + 2,400 micro-USD
    row = replayed(unpriced("qwen", "qwen-plus", 1_000, 2_000))
    assert (row.priced, row.cost_usd_nano, row.price_source) == (False, 0, None)
    price(row)
    assert (row.priced, row.cost_usd_nano, row.cost_idr_micro) == (True, 2_800_000, 46_200_000)
    assert (row.usd_to_idr, row.price_source) == (RATE, "override") and row.price_version  # Qwen: reviewed overrides
    assert fallbacks == []


def test_qwen_thinking_mode_survives_the_journal(book: PriceBook) -> None:
    # the call asked for thinking (enable_thinking): output at the thinking rate, 4 USD: 400 + 8,000 micro-USD
    row = replayed(unpriced("qwen", "qwen-plus", 1_000, 2_000, thinking_mode=True))
    RowPricer(book, RATE, lambda p, m: None)(row)
    assert row.cost_usd_nano == 8_400_000


def test_a_cost_the_provider_reported_survives_the_journal(book: PriceBook) -> None:
    row = replayed(unpriced("openai", "gpt-6-luna", 1_000, 1_000, provider_cost_usd_nano=123_456))
    RowPricer(book, RATE, lambda p, m: None)(row)
    assert (row.cost_usd_nano, row.cost_idr_micro, row.price_source) == (123_456, 2_037_024, "provider")


def test_a_model_without_a_price_is_charged_at_the_fallback_and_counted(book: PriceBook) -> None:
    fallbacks: list[tuple[str, str]] = []
    row = unpriced("openai", "brand-new-model-x", 10, 10)
    RowPricer(book, RATE, lambda p, m: fallbacks.append((p, m)))(row)
    assert row.price_source == "fallback" and row.cost_usd_nano > 0
    assert fallbacks == [("openai", "brand-new-model-x")]


def test_a_priced_row_is_left_as_it_is(book: PriceBook) -> None:
    row = unpriced("qwen", "qwen-plus", 1_000, 2_000)
    price = RowPricer(book, RATE, lambda p, m: None)
    price(row)
    row.cost_idr_micro = 7  # whoever priced it first decided; a second pricing changes nothing
    price(row)
    assert row.cost_idr_micro == 7


def test_a_line_written_before_rows_were_priced_late_reads_as_priced() -> None:
    row = unpriced("qwen", "qwen-plus", 1_000, 2_000)
    row.priced, row.cost_idr_micro, row.price_source = True, 46_200_000, "catalogue"
    fields = orjson.loads(row.to_line())
    old = orjson.dumps(fields[:LINE_FIELDS.index("thinking_mode")])  # a line of the version before
    back = UsageRecord.from_json(old)
    assert (back.priced, back.cost_idr_micro, back.thinking_mode, back.provider_cost_usd_nano) == \
        (True, 46_200_000, False, None)


def test_an_unpriced_row_is_refused_before_any_write_when_it_cannot_be_priced(book: PriceBook) -> None:
    """``write_batch`` prices before it opens a transaction: a row with no price book, or one the book cannot price,
    is ``UnpriceableRow`` (one of the writer's refusals: set aside, never retried), and nothing is written."""
    assert UnpriceableRow in REFUSALS
    no_db = None  # never reached: the rows are refused first
    with pytest.raises(UnpriceableRow, match="no price book"):
        asyncio.run(write_batch(no_db, [unpriced("qwen", "qwen-plus", 1, 1)]))  # type: ignore[arg-type]
    damaged = unpriced("qwen", "qwen-plus", 1, 1)
    damaged.prompt_tokens = "many"  # type: ignore[assignment]
    with pytest.raises(UnpriceableRow, match="cannot be priced"):
        asyncio.run(write_batch(no_db, [damaged], RowPricer(book, RATE, lambda p, m: None)))  # type: ignore[arg-type]
