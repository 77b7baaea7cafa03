"""Per-process objects the hot path reuses instead of rebuilding per call: the Jakarta month clock and the
Prometheus label children for each (provider, model, status, endpoint)."""

from __future__ import annotations

from dataclasses import dataclass, field

from aiohttp import web
from prometheus_client import Counter, Histogram

from webrana_proxy.limits import MonthClock
from webrana_proxy.metrics import Metrics
from webrana_proxy.providers.pricebook import PriceBook
from webrana_proxy.settings import Settings

OTHER_MODEL = "other"  # metric label for models outside the catalogue: clients cannot grow label sets
UNPRICED_LABELS_MAX = 500  # distinct unpriced model names counted by name; the rest as "other"


@dataclass(slots=True)
class CallSeries:
    requests: Counter
    duration: Histogram
    upstream: Histogram
    prompt_tokens: Counter
    completion_tokens: Counter


@dataclass(slots=True)
class GatewayRuntime:
    months: MonthClock
    metrics: Metrics
    known_models: frozenset[tuple[str, str]]
    _series: dict[tuple[str, str, int, str], CallSeries] = field(default_factory=dict)
    _unpriced: set[tuple[str, str]] = field(default_factory=set)

    @classmethod
    def build(cls, settings: Settings, metrics: Metrics, prices: PriceBook) -> GatewayRuntime:
        known = frozenset((p, m.id) for p, entries in prices.catalogue.models.items() for m in entries)
        return cls(MonthClock(), metrics, known)

    def count_unpriced(self, provider: str, model: str) -> None:
        """A call of a model with no price (charged at the fallback): counted by model name, bounded."""
        key = (provider, model)
        if key not in self._unpriced:
            if len(self._unpriced) >= UNPRICED_LABELS_MAX:
                key = (provider, OTHER_MODEL)
            else:
                self._unpriced.add(key)
        self.metrics.unpriced_calls.labels(*key).inc()

    def series(self, provider: str, model: str, status: int, endpoint: str = "chat") -> CallSeries:
        key = (provider, model, status, endpoint)
        found = self._series.get(key)
        if found is None:
            label = model if (provider, model) in self.known_models else OTHER_MODEL
            m = self.metrics
            found = CallSeries(
                m.requests.labels(provider, label, str(status), endpoint), m.duration.labels(provider, endpoint),
                m.upstream.labels(provider), m.tokens.labels(provider, label, "prompt"),
                m.tokens.labels(provider, label, "completion"))
            if len(self._series) < 10_000:  # bounded even if clients invent model names
                self._series[key] = found
        return found


GATEWAY = web.AppKey("gateway_runtime", GatewayRuntime)
