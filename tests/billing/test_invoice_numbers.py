"""Invoice numbers: WEB-YYYY-MM-NNNN per Jakarta month, sequential, never duplicated under concurrency."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import asyncpg
import pytest

from tests.billing.conftest import Billing
from webrana_proxy.billing.invoices import format_invoice_number, jakarta_month, next_invoice_number


def test_months_follow_the_jakarta_calendar() -> None:
    assert jakarta_month(datetime(2025, 1, 31, 16, 59, tzinfo=UTC)) == "2025-01"
    assert jakarta_month(datetime(2025, 1, 31, 17, 0, tzinfo=UTC)) == "2025-02"  # 00:00 WIB on 1 Feb
    assert jakarta_month(datetime(2025, 12, 31, 17, 0, tzinfo=UTC)) == "2026-01"


def test_number_format() -> None:
    assert format_invoice_number("2025-02", 7) == "WEB-2025-02-0007"
    assert format_invoice_number("2025-02", 12345) == "WEB-2025-02-12345"
    with pytest.raises(ValueError):
        format_invoice_number("2025-02", 0)


@pytest.fixture
async def pool(migrated: str, clean: None) -> AsyncIterator[asyncpg.Pool]:
    p = await asyncpg.create_pool(migrated, min_size=2, max_size=20)
    assert p is not None
    yield p
    await p.close()


async def test_concurrent_numbering_is_unique_and_gapless(pool: asyncpg.Pool) -> None:
    jan = datetime(2025, 1, 15, 3, 0, tzinfo=UTC)
    feb = datetime(2025, 1, 31, 18, 0, tzinfo=UTC)  # already February in Jakarta

    async def number(now: datetime, rollback: bool = False) -> str | None:
        async with pool.acquire() as conn:
            tx = conn.transaction()
            await tx.start()
            value = await next_invoice_number(conn, now)
            await asyncio.sleep(0)
            if rollback:
                await tx.rollback()
                return None
            await tx.commit()
            return value

    results = await asyncio.gather(*(number(jan) for _ in range(40)), *(number(feb) for _ in range(15)),
                                   *(number(jan, rollback=True) for _ in range(5)))
    numbers = [n for n in results if n is not None]
    assert len(numbers) == len(set(numbers)) == 55
    assert sorted(n for n in numbers if n.startswith("WEB-2025-01-")) == [
        f"WEB-2025-01-{i:04d}" for i in range(1, 41)]  # rolled-back numbers were given back
    assert sorted(n for n in numbers if n.startswith("WEB-2025-02-")) == [
        f"WEB-2025-02-{i:04d}" for i in range(1, 16)]


async def test_concurrent_checkouts_get_distinct_numbers(billing: Billing) -> None:
    users = [await billing.user() for _ in range(16)]  # one pending invoice per user: one checkout each
    checkouts = await asyncio.gather(*(billing.subscribe(h, "starter") for h in users[:8]),
                                     *(billing.subscribe(h, "pro") for h in users[8:]))
    numbers = [c["invoice_number"] for c in checkouts]
    assert len(set(numbers)) == 16
    assert all(re.fullmatch(r"WEB-\d{4}-\d{2}-\d{4}", n) for n in numbers)
    assert sorted(int(n[-4:]) for n in numbers) == list(range(1, 17))
