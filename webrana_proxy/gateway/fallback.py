"""Walking an alias's hops: the next model when one fails before anything reached the client.

``admit`` resolves an alias to its first hop this account can call (``first``): from then on the call is an
ordinary call of that model, with the hop's parameters and first-byte timeout. ``serve`` runs a dialect's
handler for it; only when that raises a retryable ``UpstreamError`` (429, 5xx, unreachable, first-byte timeout,
an open circuit breaker, a stream that failed before its first byte out) and nothing was sent yet does it look at
the next hop. A call without an alias is one plain await: the machinery is off the hot path until a hop fails.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web

from webrana_proxy.aliases import Alias, hop_timeout, with_params
from webrana_proxy.errors import BadRequest, UpstreamError
from webrana_proxy.gateway.access import check_model
from webrana_proxy.gateway.calls import Call
from webrana_proxy.gateway.upstream import attempt_failed
from webrana_proxy.keycache import ProviderKey
from webrana_proxy.middleware import RESPONSE_STARTED
from webrana_proxy.providers.base import Route
from webrana_proxy.state import METRICS, REGISTRY, SETTINGS


@dataclass(slots=True)
class AliasRun:
    """An alias call in progress: the client's request as it came, and the hop being tried."""

    alias: Alias
    raw: bytes
    body: dict[str, Any]
    index: int = -1


@dataclass(frozen=True, slots=True)
class Admitted:
    """A call past the limits: its body (raw and parsed once), route, keys in order, and rate headers. For an
    alias: the hop's model, its body (the hop's parameters applied) and ``run``, the alias in progress."""

    raw: bytes
    body: dict[str, Any]
    route: Route
    keys: tuple[ProviderKey, ...]
    headers: dict[str, str]
    run: AliasRun | None = None


Once = Callable[[web.Request, Call, Admitted], Awaitable[web.StreamResponse]]


def hop(app: web.Application, call: Call, run: AliasRun, headers: dict[str, str], start: int) -> Admitted | None:
    """The first hop from ``start`` on that this account can call (one whose provider it has no key for, whose model
    the proxy key's rules refuse, or whose model nothing serves any more, is passed over), with the call pointed at
    it; None when there is none."""
    hops = run.alias.hops
    registry = app[REGISTRY]
    for i in range(start, len(hops)):
        h = hops[i]
        try:
            route = registry.route(h.model)
        except BadRequest:
            continue
        rules = call.principal.rules
        if rules is not None and rules.refusal(route.provider.id, route.model) is not None:
            continue  # this proxy key may not use that model
        keys = call.principal.keys_in_order(route.provider.id)
        if not keys:
            continue
        run.index = i
        body, raw = run.body, run.raw
        if h.params:
            body = with_params(body, h.params, call.endpoint)
            raw = orjson.dumps(body)
        call.body = body
        call.provider, call.model = route.provider.id, route.model
        last = i == len(hops) - 1
        call.first_byte_timeout = hop_timeout(h, last, app[SETTINGS].first_byte_timeout)
        call.fallback = not last
        return Admitted(raw, body, Route(route.provider, route.model, route.model), keys, headers, run)
    return None


def first(app: web.Application, call: Call, alias: Alias, raw: bytes, body: dict[str, Any],
          headers: dict[str, str]) -> Admitted:
    call.alias = alias.name
    a = hop(app, call, AliasRun(alias, raw, body), headers, 0)
    if a is None:
        for h in alias.hops:  # a hop the key's rules refuse: say so, as calling that model would
            with contextlib.suppress(BadRequest):
                route = app[REGISTRY].route(h.model)
                check_model(call.principal, route.provider.id, route.model)
        models = ", ".join(h.model for h in alias.hops)
        raise BadRequest(f"alias '{alias.name}' has no model this account can call ({models}): add a key for one "
                         "of their providers in the Webrana console under Provider keys", param="model",
                         code="provider_key_missing")
    return a


async def serve(request: web.Request, call: Call, a: Admitted, once: Once) -> web.StreamResponse:
    """``once`` for ``a``; for an alias, the next hop each time one fails before anything reached the client."""
    run = a.run
    if run is None:
        return await once(request, call, a)
    while True:
        attempts, started = call.attempts, time.perf_counter()
        try:
            return await once(request, call, a)
        except UpstreamError as err:
            if not (err.retryable and call.fallback) or request.get(RESPONSE_STARTED, False):
                raise
            if call.attempts > attempts and (not call.failed or call.failed[-1].number != call.attempts):
                # failed after its headers (a stream that broke, an unreadable answer): not recorded yet
                attempt_failed(call, err, time.perf_counter() - started, call.provider)
            left = call.provider
            nxt = hop(request.app, call, run, a.headers, run.index + 1)
            if nxt is None:
                raise
            request.app[METRICS].fallbacks.labels(left, err.code or err.type).inc()
            call.usage, call.usage_estimated, call.completion_chars = None, False, 0
            call.ttfb, call.upstream_id, call.error_type, call.status = None, None, None, 0
            a = nxt
