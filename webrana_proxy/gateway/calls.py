"""One gateway call's record: filled in as the call proceeds, turned into exactly one usage row, one set of
metric observations and one log line when it ends, whatever way it ends.

With the usage journal on, the row is sealed (priced, journaled, queued) before the end of the answer leaves:
``seal_call`` runs where the last write is about to happen (``handlers.run_call``'s ``finally`` before aiohttp
writes a JSON or error answer; ``upstream.relay_stream`` before the write that ends a stream). The metrics and the
log line follow on the next loop turn, after the answer."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from webrana_proxy.gateway.runtime import GATEWAY
from webrana_proxy.keycache import Principal
from webrana_proxy.providers.base import Usage
from webrana_proxy.providers.estimate import estimate_prompt_tokens, estimate_tokens
from webrana_proxy.state import PRICES, SETTINGS, USAGE
from webrana_proxy.usage import UsageRecord

log = logging.getLogger("webrana.call")
CLIENT_CLOSED = 499  # nginx's convention for "the client went away before the answer"


@dataclass(slots=True)
class Call:
    request_id: str
    principal: Principal
    started: float  # perf_counter at arrival
    endpoint: str = "chat"
    provider: str = "unknown"
    model: str = ""
    stream: bool = False
    status: int = 0
    usage: Usage | None = None
    usage_estimated: bool = False  # the provider's own answer carried no usage; the translator estimated it
    body: dict[str, Any] | None = None  # the client's request, kept for estimating prompt tokens
    reached_upstream: bool = False
    completion_chars: int = 0
    ttfb: float | None = None
    upstream_seconds: float = 0.0
    upstream_id: str | None = None
    error_type: str | None = None
    sealed: Usage | None = None  # the usage its row was written with, once sealed
    estimated: bool = False


def seal_early(app: web.Application, call: Call) -> None:
    """Seal the row now if the journal is on (the answer is about to end); otherwise ``record_call`` does it after
    the answer, as it always has (nothing would be durable earlier anyway)."""
    if app[USAGE].journaled and call.sealed is None:
        seal_call(app, call)


def seal_call(app: web.Application, call: Call) -> None:
    """Price the call and hand its one usage row to the writer (journal + queue). Synchronous: one write(2)."""
    elapsed = time.perf_counter() - call.started
    usage = call.usage
    estimated = call.usage_estimated
    if usage is None:
        usage = Usage()
        if call.reached_upstream:
            estimated = True
            usage.prompt_tokens = estimate_prompt_tokens(call.body) if call.body is not None else 0
            usage.completion_tokens = estimate_tokens(call.completion_chars)
            usage.total_tokens = usage.prompt_tokens + usage.completion_tokens
    now = datetime.now(UTC)
    priced, unpriced = app[PRICES].price(call.provider, call.model, usage, app[SETTINGS].usd_to_idr, now)
    status = call.status or 500
    app[USAGE].record(UsageRecord(
        request_id=call.request_id, user_id=call.principal.user_id, proxy_key_id=call.principal.proxy_key_id,
        provider=call.provider, model=call.model[:200], endpoint=call.endpoint, stream=call.stream,
        status=status, prompt_tokens=usage.prompt_tokens, completion_tokens=usage.completion_tokens,
        total_tokens=usage.total_tokens, tokens_estimated=estimated,
        latency_ms=int(elapsed * 1000), ttfb_ms=int(call.ttfb * 1000) if call.ttfb is not None else None,
        upstream_request_id=call.upstream_id, error_type=call.error_type, created_at=now,
        cost_idr_micro=priced.cost_idr_micro, cost_usd_nano=priced.cost_usd_nano, usd_to_idr=priced.usd_to_idr,
        price_source=priced.source, price_version=priced.version, cached_tokens=usage.cached_tokens,
        cache_write_tokens=usage.cache_write_tokens, cache_write_1h_tokens=usage.cache_write_1h_tokens,
        reasoning_tokens=usage.reasoning_tokens, service_tier=usage.service_tier))
    call.sealed = usage
    call.estimated = estimated
    if unpriced:
        app[GATEWAY].count_unpriced(call.provider, call.model[:200])


def record_call(app: web.Application, call: Call) -> None:
    """Seal the row unless done, observe metrics, write the log line. Synchronous and cheap: no I/O beyond the
    journal's one write."""
    if call.sealed is None:
        seal_call(app, call)
    usage = call.sealed
    assert usage is not None
    estimated = call.estimated
    status = call.status or 500
    elapsed = time.perf_counter() - call.started
    runtime = app[GATEWAY]
    series = runtime.series(call.provider, call.model, status, call.endpoint)
    series.requests.inc()
    series.duration.observe(elapsed)
    if call.reached_upstream:
        series.upstream.observe(call.upstream_seconds)
        runtime.metrics.overhead.observe(max(0.0, elapsed - call.upstream_seconds))
    if usage.total_tokens:
        series.prompt_tokens.inc(usage.prompt_tokens)
        series.completion_tokens.inc(usage.completion_tokens)
    if log.isEnabledFor(logging.INFO):
        log.info("call", extra={
            "request_id": call.request_id, "user_id": call.principal.user_id_str,
            "key_prefix": call.principal.key_prefix, "provider": call.provider, "model": call.model,
            "endpoint": call.endpoint, "stream": call.stream, "status": status,
            "latency_ms": round(elapsed * 1000, 2), "prompt_tokens": usage.prompt_tokens,
            "completion_tokens": usage.completion_tokens, "estimated": estimated, "error": call.error_type})
