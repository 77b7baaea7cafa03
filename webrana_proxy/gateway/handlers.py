"""/v1 routes: chat completions (streaming or not), embeddings, models; the steps every call shares."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from aiohttp import web

from webrana_proxy.aliases import is_alias_name
from webrana_proxy.errors import BadRequest, WebranaError
from webrana_proxy.gateway import fallback
from webrana_proxy.gateway.access import authenticate, check_model, enforce_limits, rate_headers
from webrana_proxy.gateway.calls import Call, client_gone, record_call, seal_early
from webrana_proxy.gateway.fallback import Admitted, serve
from webrana_proxy.gateway.upstream import open_upstream, relay_json, relay_stream
from webrana_proxy.jsonio import json_response, parse_json_object, read_body
from webrana_proxy.keycache import Principal, ProviderKey
from webrana_proxy.middleware import REQUEST_ID, check_ip_limit
from webrana_proxy.providers.base import Provider
from webrana_proxy.state import BREAKERS, PRICES, REGISTRY, SETTINGS, UPSTREAM, USAGE

routes = web.RouteTableDef()
Work = Callable[[web.Request, Call], Awaitable[web.StreamResponse]]


async def _run_call(request: web.Request, endpoint: str, work: Work) -> web.StreamResponse:
    """Authenticate, then run ``work`` and record exactly one usage row however it ends."""
    started = time.perf_counter()
    principal = await authenticate(request)
    call = Call(request[REQUEST_ID], principal, started, endpoint=endpoint, breakers=request.app[BREAKERS])
    cancelled = False
    try:
        return await work(request, call)
    except WebranaError as err:
        call.status = err.status
        call.error_type = err.code or err.type
        if call.attempts:
            err.headers.update(call.served_headers())
        raise
    except asyncio.CancelledError:  # the client went away: aiohttp cancelled this handler
        cancelled = True
        client_gone(call)
        raise
    except Exception:  # a bug: still one row, never none; the middleware answers 500
        call.status = 500
        call.error_type = "internal_error"
        raise
    finally:
        # The usage row goes to the journal now, before aiohttp writes a JSON or error answer (a stream sealed it
        # before its last write, and waited for it there), so a crash after the answer cannot lose it. The rest of
        # the bookkeeping (metrics, log line; the row too when the journal is off) runs on the next loop turn, after
        # the answer.
        sealed_now = seal_early(request.app, call)
        try:
            if sealed_now and not cancelled:  # nobody is waiting for an answer of a cancelled call
                await request.app[USAGE].durable()
        finally:  # scheduled after that turn, so it runs after the answer is written, not before
            asyncio.get_running_loop().call_soon(record_call, request.app, call)


run_call = _run_call  # the steps every call shares, for the other dialects' handlers (gateway/messages.py)


__all__ = ["Admitted", "admit", "run_call", "serve"]  # the other dialects' handlers build on these


async def admit(request: web.Request, call: Call, *, quota: bool = True) -> Admitted:
    """Limits, then the body (bounded, parsed once, never walked again), the route and the user's keys.
    ``quota=False``: a call that is not billable (per-IP and burst limits only)."""
    app = request.app
    # Limits first: every authenticated call counts, so a flood of malformed requests is throttled like any other.
    verdict = await enforce_limits(request, call.principal, quota=quota)
    raw = await read_body(request, app[SETTINGS].gateway_body_limit)
    body = parse_json_object(raw, max_depth=None)
    call.body = body
    model = body.get("model")
    if isinstance(model, str):
        call.model = model[:200]
        if is_alias_name(model):  # wbr/...: never a provider, always one of the account's aliases
            alias = call.principal.aliases.get(model.lower())
            if alias is None:
                raise BadRequest(f"unknown alias '{model}': model names starting with wbr/ are aliases; define it "
                                 "in the Webrana console under Aliases", param="model", code="model_not_found")
            return fallback.first(app, call, alias, raw, body, rate_headers(verdict))
    route = app[REGISTRY].route(model)
    call.provider, call.model = route.provider.id, route.model
    check_model(call.principal, route.provider.id, route.model)  # the key's allowed models, before upstream
    keys = _keys_for(call.principal, route.provider)
    return Admitted(raw, body, route, keys, rate_headers(verdict))


def _keys_for(principal: Principal, provider: Provider) -> tuple[ProviderKey, ...]:
    keys = principal.keys_in_order(provider.id, provider.spec.keyless_key_id)
    if not keys:
        raise BadRequest(f"no {provider.display_name} key on this account: add one in the Webrana console "
                         f"under Provider keys", param="model", code="provider_key_missing")
    return keys


async def _chat(request: web.Request, call: Call) -> web.StreamResponse:
    return await serve(request, call, await admit(request, call), _chat_once)


async def _chat_once(request: web.Request, call: Call, a: Admitted) -> web.StreamResponse:
    body, route, keys, headers = a.body, a.route, a.keys, a.headers
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise BadRequest("'messages' must be a non-empty list", param="messages")
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise BadRequest("'stream' must be true or false", param="stream")
    call.stream = stream
    options = body.get("stream_options")
    include_usage = stream and isinstance(options, dict) and options.get("include_usage") is True
    provider = route.provider
    if not provider.chat_native:  # translated: sent only what the model accepts, as on the other dialects' lanes
        body = call.body = dict(body)  # a copy: an alias's next hop starts again from the client's request
        request.app[PRICES].catalogue.capabilities_of(provider.id, route.model).fit(body)
    translator = provider.stream_translator(route.model, include_usage) if stream else None
    base_url = request.app[SETTINGS].base_url(provider.spec)
    upstream = await open_upstream(request.app[UPSTREAM], request.app[SETTINGS], provider, keys,
                                   lambda key: provider.chat_request(body, route.model, key, base_url), call)
    headers["x-request-id"] = call.request_id
    if translator is not None:
        return await relay_stream(request, upstream, call, request.app[SETTINGS], translator, headers)
    return await relay_json(upstream, call, request.app[SETTINGS],
                            lambda raw: provider.chat_response(raw, route.model), headers)


async def _embeddings(request: web.Request, call: Call) -> web.StreamResponse:
    return await serve(request, call, await admit(request, call), _embeddings_once)


async def _embeddings_once(request: web.Request, call: Call, a: Admitted) -> web.StreamResponse:
    body, route, keys, headers = a.body, a.route, a.keys, a.headers
    provider = route.provider
    if not provider.supports_embeddings:
        raise BadRequest(f"{provider.display_name} has no embeddings endpoint; use an OpenAI, Gemini or Qwen "
                         "embedding model", param="model", code="embeddings_unsupported")
    if "input" not in body:
        raise BadRequest("'input' is required", param="input")
    base_url = request.app[SETTINGS].base_url(provider.spec)
    upstream = await open_upstream(request.app[UPSTREAM], request.app[SETTINGS], provider, keys,
                                   lambda key: provider.embeddings_request(body, route.model, key, base_url), call)
    headers["x-request-id"] = call.request_id
    return await relay_json(upstream, call, request.app[SETTINGS],
                            lambda raw: provider.embeddings_response(raw, route.model, body), headers)


@routes.post("/v1/chat/completions")
async def chat_completions(request: web.Request) -> web.StreamResponse:
    return await _run_call(request, "chat", _chat)


@routes.post("/v1/embeddings")
async def embeddings(request: web.Request) -> web.StreamResponse:
    return await _run_call(request, "embeddings", _embeddings)


@routes.get("/v1/models")
async def models(request: web.Request) -> web.Response:
    principal = await authenticate(request)
    await check_ip_limit(request)
    book = request.app[PRICES]
    day = datetime.now(UTC).date()
    # Current models only (retired ones gone); price and context window as extra fields the SDKs ignore.
    registry = request.app[REGISTRY]
    data = [{"id": registry.public_name(p, m.id), "object": "model", "created": 0, "owned_by": p.id,
             **book.model_json(p.id, m, day)}
            for p in registry.all() if principal.provider_keys.get(p.id)
            for m in book.catalogue.current(p.id, day)]
    return json_response({"object": "list", "data": data})
