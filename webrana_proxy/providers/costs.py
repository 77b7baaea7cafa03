"""What a call cost: every token type at the rate in force, in integers only (no float money).

Prices are held as pico-USD per token (= USD per million tokens x 1e6), so every published rate is an exact
integer and a call's cost is an exact integer in pico-USD before it is rounded once, per row, to nano-USD and
micro-rupiah. A 10-token embedding at $0.02/Mtok is 200 nano-USD (3,300 micro-rupiah at 16,500), not 0.

Token semantics (the OpenAI convention every usage reader fills): ``prompt_tokens`` is all input, and
``cached_tokens`` (cache reads) and ``cache_write_tokens`` (of which ``cache_write_1h_tokens`` at the 1 h rate)
are parts of it; ``completion_tokens`` is all output, reasoning included. A prompt-size tier applies to every
token of the call once the whole input passes its start (the providers' "cliff" rule). Qwen's thinking mode is
priced at ``output_thinking`` for all output when the call asked for it (``enable_thinking``) or the answer
reported reasoning tokens (models that think by default).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from webrana_proxy.providers.base import Usage

PICO_PER_MTOK_USD = 1_000_000  # USD per million tokens x this = pico-USD per token
PICO_PER_NANO = 1_000
PICO_PER_USD = 10**12
# What a provider's service tier costs when the price data has no variant for it (OpenAI's published rule):
TIER_FACTORS: dict[str, tuple[int, int]] = {"flex": (1, 2), "batch": (1, 2), "priority": (2, 1)}

# ((start, pico per token), ...), highest start first, the base rate last with start -1. A tier applies when
# the call's whole input is above its start.
Rate = tuple[tuple[int, int], ...]
RATE_NAMES = ("input", "cache_read", "cache_write", "cache_write_1h", "output", "output_thinking")


def parse_rate(value: Any) -> Rate:
    """``"2.5"`` or ``{"base": "3", "tiers": [[200000, "6"], ...]}`` (USD per Mtok) as a ``Rate``."""
    if isinstance(value, dict):
        tiers = [(int(start), _pico(price)) for start, price in value.get("tiers", ())]
        tiers.sort(reverse=True)
        return (*tiers, (-1, _pico(value["base"])))
    return ((-1, _pico(value)),)


def _pico(value: Any) -> int:
    if isinstance(value, float):
        value = repr(value)
    exact = Decimal(str(value)) * PICO_PER_MTOK_USD
    if exact != exact.to_integral_value() or exact < 0:
        raise ValueError(f"price {value!r} must be a non-negative USD amount with at most 6 decimals per Mtok")
    return int(exact)


def rate_at(rate: Rate, prompt_tokens: int) -> int:
    for start, price in rate:
        if prompt_tokens > start:
            return price
    return rate[-1][1]


def rate_json(rate: Rate) -> Any:
    """A ``Rate`` back in the file's shape (USD per Mtok as decimal strings)."""
    def usd(p: int) -> str:
        return format((Decimal(p) / PICO_PER_MTOK_USD).normalize(), "f")
    if len(rate) == 1:
        return usd(rate[0][1])
    return {"base": usd(rate[-1][1]), "tiers": [[start, usd(p)] for start, p in reversed(rate[:-1])]}


@dataclass(frozen=True, slots=True)
class Rates:
    input: Rate | None = None
    cache_read: Rate | None = None
    cache_write: Rate | None = None
    cache_write_1h: Rate | None = None
    output: Rate | None = None
    output_thinking: Rate | None = None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Rates:
        unknown = set(data) - set(RATE_NAMES)
        if unknown:
            raise ValueError(f"unknown price names {sorted(unknown)}; known: {', '.join(RATE_NAMES)}")
        return cls(**{name: parse_rate(value) for name, value in data.items() if value is not None})

    def to_json(self) -> dict[str, Any]:
        return {name: rate_json(r) for name in RATE_NAMES if (r := getattr(self, name)) is not None}

    def over(self, base: Rates) -> Rates:
        """These rates where set, ``base``'s elsewhere (a service-tier variant over the standard prices)."""
        return Rates(*(mine if mine is not None else theirs
                       for mine, theirs in zip(self.as_tuple(), base.as_tuple(), strict=True)))

    def as_tuple(self) -> tuple[Rate | None, ...]:
        return (self.input, self.cache_read, self.cache_write, self.cache_write_1h, self.output,
                self.output_thinking)

    def is_empty(self) -> bool:
        return all(r is None for r in self.as_tuple())

    def output_usd_per_mtok(self, prompt_tokens: int = 0) -> Decimal:
        return Decimal(rate_at(self.output, prompt_tokens) if self.output else 0) / PICO_PER_MTOK_USD

    def input_usd_per_mtok(self, prompt_tokens: int = 0) -> Decimal:
        return Decimal(rate_at(self.input, prompt_tokens) if self.input else 0) / PICO_PER_MTOK_USD


def cost_pico(rates: Rates, usage: Usage) -> int:
    """The call's cost in pico-USD at ``rates`` (already chosen for the call's day and service tier)."""
    prompt = usage.prompt_tokens if usage.prompt_tokens > 0 else 0
    cached = min(max(0, usage.cached_tokens), prompt)
    written = min(max(0, usage.cache_write_tokens), prompt - cached)
    written_1h = min(max(0, usage.cache_write_1h_tokens), written)
    completion = usage.completion_tokens if usage.completion_tokens > 0 else 0
    inp = rates.input
    total = 0
    if inp is not None:
        total = (prompt - cached - written) * rate_at(inp, prompt)
    if cached:
        r = rates.cache_read or inp
        total += cached * rate_at(r, prompt) if r else 0
    if written:
        r5 = rates.cache_write or inp
        r1 = rates.cache_write_1h or r5
        total += (written - written_1h) * rate_at(r5, prompt) if r5 else 0
        total += written_1h * rate_at(r1, prompt) if r1 else 0
    if completion:
        thinking = usage.thinking_mode or usage.reasoning_tokens > 0
        out = rates.output_thinking if thinking and rates.output_thinking else rates.output
        total += completion * rate_at(out, prompt) if out else 0
    return total


def nano_usd(pico: int) -> int:
    return (pico + PICO_PER_NANO // 2) // PICO_PER_NANO


def micro_idr(pico: int, usd_to_idr: int) -> int:
    """pico-USD x IDR/USD = pico-IDR; to micro-rupiah, rounded half up."""
    return (pico * usd_to_idr + 500_000) // 1_000_000
