"""Pricing one call: what ``PriceBook.price`` costs on the gateway's thread (it runs once per call, after the
answer is written, with no I/O). A mix of the shapes the gateway prices: cached input, a long-prompt tier, a
date-effective price, a service tier, a fine-tune, an unknown model (fallback) and an admin override."""

from __future__ import annotations

import statistics
import time
from datetime import UTC, datetime
from typing import Any

from webrana_proxy.providers.base import Usage
from webrana_proxy.providers.catalogue import load_catalogue
from webrana_proxy.providers.costs import Rates
from webrana_proxy.providers.pricebook import DbPrice, PriceBook

CALLS = 20_000  # priced per round
ROUNDS = 7  # the median round is reported
USD_TO_IDR = 16_500

MIX: tuple[tuple[str, str, Usage], ...] = (
    ("openai", "gpt-5.4-mini", Usage(100_000, 1_000, 101_000, 90_000, reasoning_tokens=600)),
    ("openai", "gpt-6-luna", Usage(300_000, 2_000, 302_000, 100_000, 50_000)),
    ("openai", "gpt-5.5", Usage(10_000, 1_000, 11_000, service_tier="flex")),
    ("openai", "ft:gpt-4o-mini-2024-07-18:acme::x1", Usage(1_000, 1_000, 2_000)),
    ("anthropic", "claude-sonnet-5-5", Usage(24_000, 500, 24_500, 20_000, 3_000, 1_000)),
    ("google", "gemini-4-argon", Usage(10_500, 2_000, 12_500, 4_000, reasoning_tokens=1_200)),
    ("qwen", "qwen-plus", Usage(1_000, 2_000, 3_000, reasoning_tokens=1_500)),
    ("openai", "gpt-7-preview", Usage(1_000, 100, 1_100)),  # unknown: fallback
    ("openai", "gpt-negotiated", Usage(1_000, 100, 1_100)),  # admin override
)


def measure() -> dict[str, Any]:
    book = PriceBook(load_catalogue())
    book.replace_db_overrides([DbPrice("bench", "openai", "gpt-negotiated", datetime(2026, 1, 1, tzinfo=UTC),
                                       Rates.from_json({"input": "1", "output": "4"}))])
    n = len(MIX)
    per_call: list[float] = []
    for _ in range(ROUNDS):
        started = time.perf_counter()
        for i in range(CALLS):
            provider, model, usage = MIX[i % n]
            book.price(provider, model, usage, USD_TO_IDR)  # the clock read included, as in record_call
        per_call.append((time.perf_counter() - started) / CALLS * 1e6)
    return {"calls_per_round": CALLS, "rounds": ROUNDS, "us_per_call_median": round(statistics.median(per_call), 2),
            "us_per_call_best": round(min(per_call), 2)}


def row(result: dict[str, Any]) -> str:
    return (f"pricing one call (no I/O): {result['us_per_call_median']:.2f} us median "
            f"({result['us_per_call_best']:.2f} us best) over {result['rounds']} x {result['calls_per_round']:,} calls")


def run_pricing() -> int:
    print(row(measure()))
    return 0
