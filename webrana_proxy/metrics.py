"""Prometheus metrics, one registry per application (so two apps in one process never collide).

``serve --workers N`` (N > 1) runs the workers in prometheus_client's multiprocess mode: the server gives the
group a fresh directory in ``PROMETHEUS_MULTIPROC_DIR`` before the workers start, every worker's values live in
memory-mapped files there, and ``/metrics`` in any worker reports the whole group (``group_registry``). A single
process (tests, ``--workers 1``) keeps plain in-memory values and exports its own registry.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.multiprocess import MultiProcessCollector

# Buckets from 100 µs to 2 min: the gateway's own time lives at the low end, upstream time at the high end.
LATENCY_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
                   2.5, 5.0, 10.0, 30.0, 60.0, 120.0)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter("webrana_requests",
                                "Gateway calls by provider, model, status and endpoint (the ingress dialect)",
                                ["provider", "model", "status", "endpoint"], registry=r)
        self.duration = Histogram("webrana_request_duration_seconds", "Total time of a gateway call",
                                  ["provider", "endpoint"], buckets=LATENCY_BUCKETS, registry=r)
        self.upstream = Histogram("webrana_upstream_duration_seconds", "Time spent waiting on the provider",
                                  ["provider"], buckets=LATENCY_BUCKETS, registry=r)
        self.overhead = Histogram("webrana_gateway_overhead_seconds",
                                  "Time the gateway itself adds to a call (total minus upstream)",
                                  buckets=LATENCY_BUCKETS, registry=r)
        self.tokens = Counter("webrana_tokens", "Tokens by provider, model and kind (prompt/completion)",
                              ["provider", "model", "kind"], registry=r)
        # Gauges say how a worker group adds them up (ignored by a single process): streams and queued rows of
        # the live workers are summed; "degraded" is 1 when any live worker runs on fallback limits.
        self.open_streams = Gauge("webrana_open_streams", "Streams being relayed now", registry=r,
                                  multiprocess_mode="livesum")
        self.limiter_rejections = Counter("webrana_limiter_rejections", "Calls refused by a limit",
                                          ["limit"], registry=r)
        self.limits_degraded = Gauge("webrana_limits_degraded",
                                     "1 while Redis is unreachable and per-process fallback limits apply",
                                     registry=r, multiprocess_mode="livemax")
        self.usage_queue_depth = Gauge("webrana_usage_queue_depth", "Usage rows waiting to be written",
                                       registry=r, multiprocess_mode="livesum")
        self.usage_write_failures = Counter("webrana_usage_write_failures", "Failed usage batch writes",
                                            registry=r)
        self.unpriced_calls = Counter("webrana_unpriced_calls",
                                      "Calls of a model with no price, charged at the provider's fallback model",
                                      ["provider", "model"], registry=r)
        # Circuit breakers per provider key (in-process, per replica: each replica learns a dead key on its own).
        self.circuit_breakers = Gauge("webrana_circuit_breakers",
                                      "Provider keys whose circuit breaker is open or half-open, by provider",
                                      ["provider", "state"], registry=r, multiprocess_mode="livesum")
        self.circuit_opened = Counter("webrana_circuit_opened", "Times a provider key's circuit breaker opened",
                                      ["provider"], registry=r)
        self.fallbacks = Counter("webrana_fallbacks", "Alias hops given up for the next one, by the provider "
                                 "left and why", ["provider", "reason"], registry=r)
        self.usage_rows_written = Counter("webrana_usage_rows_written", "Usage rows written to PostgreSQL",
                                          registry=r)

    def exported(self, group_dir: str) -> CollectorRegistry:
        """What ``/metrics`` reports: the worker group's values merged from ``group_dir`` when this process is
        one of a group (``serve --workers N``), else this app's own registry."""
        if not group_dir:
            return self.registry
        merged = CollectorRegistry(auto_describe=False)
        MultiProcessCollector(merged, path=group_dir)  # type: ignore[no-untyped-call]
        return merged
