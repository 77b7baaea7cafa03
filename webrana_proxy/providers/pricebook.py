"""Which price a call pays, and what it cost: the catalogue (generated data + reviewed overrides) under the
admins' database overrides, with a never-under-charging fallback for models nobody priced.

``PriceBook.price`` runs once per call after the answer is written: no I/O, a dict lookup for the model (cached,
bounded), a handful of integer multiplications. The database layer is swapped whole by ``replace_db_overrides``
(on start and on every ``model_prices`` change, published to all replicas through the key-cache channel).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from webrana_proxy.providers.base import Usage
from webrana_proxy.providers.catalogue import Catalogue, Periods, PricedModel
from webrana_proxy.providers.costs import Rates, cost_pico, micro_idr, nano_usd

LOOKUP_CACHE_MAX = 4_096  # (provider, model) pairs remembered; clients can invent model names, so bounded
PRICE_SOURCES = ("catalogue", "override", "fallback", "provider")


@dataclass(frozen=True, slots=True)
class DbPrice:
    """One row of ``model_prices``: ``pattern`` is an exact model id, or a prefix ending in ``*``."""

    id: str
    provider: str
    pattern: str
    valid_from: datetime
    rates: Rates
    context_window: int | None = None

    def matches(self, model: str) -> bool:
        if self.pattern.endswith("*"):
            return model.startswith(self.pattern[:-1])
        return model == self.pattern


@dataclass(slots=True)  # not frozen: built once per call, and frozen dataclasses construct slower
class Priced:
    cost_usd_nano: int
    cost_idr_micro: int
    usd_to_idr: int
    source: str  # one of PRICE_SOURCES
    version: str  # which data priced it: "genai-prices 0.2.5 2026-12-06", "overrides 2026-12-06", "db <id>"
    model: str  # the catalogue model whose rates were used


class PriceBook:
    __slots__ = ("_cache", "_db", "_fallbacks", "catalogue")

    def __init__(self, catalogue: Catalogue) -> None:
        self.catalogue = catalogue
        self._db: tuple[DbPrice, ...] = ()
        self._cache: dict[tuple[str, str], tuple[tuple[DbPrice, ...], PricedModel | None]] = {}
        self._fallbacks: dict[tuple[str, date], PricedModel | None] = {}

    def replace_db_overrides(self, rows: list[DbPrice]) -> None:
        """The admins' overrides, newest ``valid_from`` first; forgets cached lookups."""
        self._db = tuple(sorted(rows, key=lambda r: r.valid_from, reverse=True))
        self._cache = {}

    @property
    def db_overrides(self) -> tuple[DbPrice, ...]:
        return self._db

    def _lookup(self, provider: str, model: str) -> tuple[tuple[DbPrice, ...], PricedModel | None]:
        key = (provider, model)
        found = self._cache.get(key)
        if found is None:
            ref = model.lower().removeprefix("models/")
            db = tuple(r for r in self._db if r.provider == provider and r.matches(ref))
            found = (db, self.catalogue.find(provider, ref))
            if len(self._cache) >= LOOKUP_CACHE_MAX:
                self._cache.clear()
            self._cache[key] = found
        return found

    def price(self, provider: str, model: str, usage: Usage, usd_to_idr: int,
              at: datetime | None = None) -> tuple[Priced, bool]:
        """The call's cost and the price it used; the bool is True when the model had no price (fallback)."""
        at = at or datetime.now(UTC)
        if usage.provider_cost_usd_nano is not None:
            nano = max(0, usage.provider_cost_usd_nano)
            return Priced(nano, micro_idr(nano * 1000, usd_to_idr), usd_to_idr, "provider", "reported", model), False
        day = (at if at.tzinfo is UTC else at.astimezone(UTC)).date()
        db, entry = self._lookup(provider, model)
        for row in db:
            if row.valid_from <= at:
                pico = cost_pico(row.rates, usage)
                return (Priced(nano_usd(pico), micro_idr(pico, usd_to_idr), usd_to_idr, "override",
                               f"db {row.id}", row.pattern), False)
        fallback = entry is None or entry.retired(day)
        if fallback:
            key = (provider, day)
            if key not in self._fallbacks:
                if len(self._fallbacks) >= LOOKUP_CACHE_MAX:
                    self._fallbacks.clear()
                self._fallbacks[key] = self.catalogue.fallback(provider, day)
            entry = self._fallbacks[key]
            if entry is None:  # an unknown provider (the call never reached one): nothing to charge
                return Priced(0, 0, usd_to_idr, "fallback", "none", ""), usage.total_tokens > 0
        assert entry is not None
        rates, (num, den) = entry.rates(day, usage.service_tier)
        pico = cost_pico(rates, usage) * num // den
        return (Priced(nano_usd(pico), micro_idr(pico, usd_to_idr), usd_to_idr,
                       "fallback" if fallback else entry.source, entry.version, entry.id), fallback)

    def model_json(self, provider: str, entry: PricedModel, day: date) -> dict[str, Any]:
        """A model's current price and window, for ``/v1/models`` and the console."""
        rates, _ = entry.rates(day)
        return {"context_window": entry.context_window, "kind": entry.kind,
                "pricing": {"currency": "USD", "per": "1M tokens", **rates.to_json()},
                "retires_on": entry.retires_on.isoformat() if entry.retires_on else None}


def db_price(row: dict[str, Any]) -> DbPrice:
    return DbPrice(id=str(row["id"]), provider=row["provider"], pattern=row["model_pattern"].lower(),
                   valid_from=row["valid_from"], rates=Rates.from_json(row["prices"]),
                   context_window=row.get("context_window"))


def periods_of(rates: Rates) -> Periods:
    return ((None, rates),)
