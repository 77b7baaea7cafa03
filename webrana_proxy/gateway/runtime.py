"""Per-process objects the hot path reuses instead of rebuilding per call: the Jakarta month clock and the
Prometheus label children for each (provider, model, status, endpoint)."""

from __future__ import annotations

from dataclasses import dataclass, field

from aiohttp import web
from prometheus_client import Counter, Histogram

from webrana_proxy.limits import MonthClock
from webrana_proxy.metrics import Metrics
from webrana_proxy.providers.registry import Registry
from webrana_proxy.settings import Settings

OTHER_MODEL = "other"  # metric label for models outside the catalogue: clients cannot grow label sets


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

    @classmethod
    def build(cls, settings: Settings, metrics: Metrics, registry: Registry) -> GatewayRuntime:
        known = frozenset((p.id, m.id) for p in registry.all() for m in p.models)
        return cls(MonthClock(), metrics, known)

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
