"""One gateway call's record: filled in as the call proceeds, turned into exactly one usage row, one set of
metric observations and one log line when it ends, whatever way it ends.

With the usage journal on, the row is sealed (journaled, queued) before the end of the answer leaves: ``seal_call``
runs where the last write is about to happen (``handlers.run_call``'s ``finally`` before aiohttp writes a JSON or
error answer; ``upstream.relay_stream`` before the write that ends a stream). Its price, the spend counters, the
metrics and the log line follow on the next loop turn, after the answer (``record_call``): the row's tokens and its
time are all a price needs, so a replayed row is priced the same way."""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from webrana_proxy.breakers import CircuitBoard
from webrana_proxy.gateway.runtime import GATEWAY
from webrana_proxy.keycache import Principal
from webrana_proxy.providers.base import Usage
from webrana_proxy.providers.estimate import estimate_prompt_tokens, estimate_tokens
from webrana_proxy.spend import SPEND
from webrana_proxy.state import USAGE
from webrana_proxy.usage import UsageRecord

log = logging.getLogger("webrana.call")
CLIENT_CLOSED = 499  # nginx's convention for "the client went away before the answer"


@dataclass(frozen=True, slots=True)
class FailedAttempt:
    """An upstream attempt that failed while the call went on (the next key, or the alias's next hop)."""

    number: int
    provider: str
    model: str
    status: int
    error_type: str
    seconds: float
    upstream_id: str | None


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
    attempts: int = 0  # upstream requests sent (keys and hops); the last one is this call's own row
    failed: list[FailedAttempt] | None = None  # only once an attempt failed
    alias: str | None = None  # the alias the client called (wbr/...)
    breakers: CircuitBoard | None = None  # set by run_call; None: a lookup that is not a gateway call
    first_byte_timeout: float | None = None  # this hop's (alias hops); None: the global setting
    fallback: bool = False  # an alias hop follows: a failure before the first byte out goes to it
    key_id: uuid.UUID | None = None  # the provider key of the attempt under way
    sealed: Usage | None = None  # the usage its row was written with, once sealed
    row: UsageRecord | None = None  # that row, while the writer may still hold it in memory
    estimated: bool = False

    def fail_attempt(self, status: int, error_type: str, seconds: float, upstream_id: str | None) -> None:
        """The attempt under way failed: kept for its own usage row (unless it ends up the call's last)."""
        if self.failed is None:
            self.failed = []
        self.failed.append(FailedAttempt(self.attempts, self.provider, self.model, status, error_type, seconds,
                                         upstream_id))

    def served_headers(self) -> dict[str, str]:
        """Who served (or was tried last): on every answer."""
        return {"x-webrana-provider": self.provider, "x-webrana-model": self.model,
                "x-webrana-attempts": str(self.attempts)}


def client_gone(call: Call) -> None:
    """The client left before the last bytes of its answer: 499. A row sealed before those bytes (the journal on)
    is corrected in the writer's memory, where it waits for the next flush; its journal line keeps 200, so only a
    crash in that instant would replay it as answered."""
    call.status = CLIENT_CLOSED
    call.error_type = "client_disconnected"
    if call.row is not None:
        call.row.status = CLIENT_CLOSED
        call.row.error_type = "client_disconnected"


def seal_early(app: web.Application, call: Call) -> bool:
    """Seal the row now if the journal is on (the answer is about to end); otherwise ``record_call`` does it after
    the answer, as it always has (nothing would be durable earlier anyway). True: sealed now, so the caller awaits
    ``UsageWriter.durable`` before the answer (a row sealed earlier was waited for where it was sealed)."""
    if app[USAGE].journaled and call.sealed is None:
        seal_call(app, call)
        return True
    return False


def seal_call(app: web.Application, call: Call) -> None:
    """Hand the call's one usage row to the writer (journal + queue), unpriced: ``record_call`` prices it after the
    answer (the writer prices one it gets first). Synchronous: one write(2)."""
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
    if call.body is not None and call.body.get("enable_thinking") is True:
        usage.thinking_mode = True  # Qwen's thinking mode has its own output price, reasoning reported or not
    now = datetime.now(UTC)
    status = call.status or 500
    call.row = row = UsageRecord(
        request_id=call.request_id, user_id=call.principal.user_id, proxy_key_id=call.principal.proxy_key_id,
        provider=call.provider, model=call.model[:200], endpoint=call.endpoint, stream=call.stream,
        status=status, prompt_tokens=usage.prompt_tokens, completion_tokens=usage.completion_tokens,
        total_tokens=usage.total_tokens, tokens_estimated=estimated,
        latency_ms=int(elapsed * 1000), ttfb_ms=int(call.ttfb * 1000) if call.ttfb is not None else None,
        upstream_request_id=call.upstream_id, error_type=call.error_type, created_at=now,
        cached_tokens=usage.cached_tokens, cache_write_tokens=usage.cache_write_tokens,
        cache_write_1h_tokens=usage.cache_write_1h_tokens, reasoning_tokens=usage.reasoning_tokens,
        service_tier=usage.service_tier, attempt=call.attempts, alias=call.alias, org_id=call.principal.org_id,
        thinking_mode=usage.thinking_mode, provider_cost_usd_nano=usage.provider_cost_usd_nano, priced=False)
    app[USAGE].record(row)
    if call.failed is not None:
        _record_failed(app, call, now)
    call.sealed = usage
    call.estimated = estimated


def record_call(app: web.Application, call: Call) -> None:
    """Seal the row unless done, price it, observe metrics, write the log line. Synchronous and cheap: no I/O
    beyond the journal's one write."""
    if call.sealed is None:
        seal_call(app, call)
    usage = call.sealed
    row = call.row
    assert usage is not None and row is not None
    try:
        app[USAGE].price(row)  # a no-op if the writer priced it first
    except Exception:  # a bug: the writer tries again and sets the row aside; the metrics and log line still go
        log.exception("usage row could not be priced", extra={"request_id": call.request_id})
    estimated = call.estimated
    status = call.status or 500
    elapsed = time.perf_counter() - call.started
    runtime = app[GATEWAY]
    if row.cost_idr_micro > 0 and call.principal.rules is not None:  # keys and accounts with a spend cap
        app[SPEND].add(call.principal, row.cost_idr_micro, *runtime.months.at(time.time()))
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


def _record_failed(app: web.Application, call: Call, now: datetime) -> None:
    """One row per failed attempt the call moved on from, ``<request id>:<attempt>``: marked, never charged."""
    usage = app[USAGE]
    for f in call.failed or ():
        if f.number == call.attempts:  # the call ended on this failure: the call's own row says it
            continue
        usage.record(UsageRecord(
            request_id=f"{call.request_id}:{f.number}", user_id=call.principal.user_id,
            proxy_key_id=call.principal.proxy_key_id, provider=f.provider, model=f.model[:200],
            endpoint=call.endpoint, stream=call.stream, status=f.status, prompt_tokens=0, completion_tokens=0,
            total_tokens=0, tokens_estimated=False, latency_ms=int(f.seconds * 1000), ttfb_ms=None,
            upstream_request_id=f.upstream_id, error_type=f.error_type, created_at=now, attempt=f.number,
            failed_attempt=True, alias=call.alias, org_id=call.principal.org_id))
