"""/v1/responses: the OpenAI Responses dialect (Codex CLI, the OpenAI Agents SDK, ``client.responses``).

Two lanes, chosen by what the provider speaks, never by its name:

* native (the provider's own format is Responses): the body goes as it came, the answer comes back byte for byte,
  usage is located in the final event. The hot path: the body is parsed once, for the model and ``stream``.
  When OpenAI stores the response (``store`` not false) Webrana remembers which provider key created it, so
  ``GET`` / ``DELETE /v1/responses/{id}``, ``GET .../input_items``, ``POST .../cancel`` and
  ``previous_response_id`` reach OpenAI with that same key.
* translated (every other provider): Responses -> the chat form (``dialects.responses_request``) -> the
  provider's own translator -> chat answers -> Responses objects and events (``dialects.responses_response``).
  With ``store`` (the default) the conversation is kept in PostgreSQL before the last byte is sent, so
  ``previous_response_id``, ``GET`` and ``GET .../input_items`` (``dialects.responses_items``) work from any replica
  as soon as the answer ended (``responses_store``). ``POST .../cancel`` is OpenAI's 400 for a response that did not
  run in the background: ``background`` is refused on this lane, so every such response has already finished.

Auth, limits, key failover, client disconnects and the one usage row (endpoint ``responses``) are the steps
every call takes (``handlers.run_call`` / ``handlers.admit`` / ``upstream``). Errors are in OpenAI's shape: before
the first byte as an HTTP status, after it as an ``error`` event (and ``response.failed`` on the translated lane).
``GET``, ``DELETE``, input items and cancel count against the per-minute limits only and write no usage row (they
generate nothing); another user's response is a 404, as an unknown one.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import replace

import asyncpg
import orjson
from aiohttp import web

from webrana_proxy.dialects.responses_items import page, page_query, with_ids
from webrana_proxy.dialects.responses_request import input_items, to_chat
from webrana_proxy.dialects.responses_response import ResponsesStream, envelope, response_of
from webrana_proxy.errors import BadRequest, NotFound
from webrana_proxy.gateway import responses_store as store
from webrana_proxy.gateway.access import authenticate, enforce_limits
from webrana_proxy.gateway.calls import Call
from webrana_proxy.gateway.handlers import Admitted, admit, run_call, serve
from webrana_proxy.gateway.upstream import open_upstream, relay_json, relay_stream
from webrana_proxy.jsonio import json_response
from webrana_proxy.keycache import Principal, ProviderKey
from webrana_proxy.middleware import REQUEST_ID
from webrana_proxy.providers.base import JSON, ChatResult, Provider, ResponsesNative, UpstreamRequest
from webrana_proxy.state import POOL, PRICES, REDIS, REGISTRY, SETTINGS, UPSTREAM

routes = web.RouteTableDef()
log = logging.getLogger("webrana.responses")


def _flag(body: JSON, name: str, default: bool) -> bool:
    value = body.get(name, default)
    if not isinstance(value, bool):
        raise BadRequest(f"{name}: must be true or false", param=name)
    return value


def _previous(body: JSON) -> str | None:
    value = body.get("previous_response_id")
    if value is not None and (not isinstance(value, str) or not value):
        raise BadRequest("previous_response_id: must be a response id", param="previous_response_id")
    return value


async def _responses(request: web.Request, call: Call) -> web.StreamResponse:
    return await serve(request, call, await admit(request, call), _responses_once)


async def _responses_once(request: web.Request, call: Call, a: Admitted) -> web.StreamResponse:
    call.stream = _flag(a.body, "stream", False)
    keep = _flag(a.body, "store", True)
    previous = _previous(a.body)
    native = a.route.provider.responses_native
    if native is not None:
        return await _native(request, call, a, native, keep, previous)
    return await _translated(request, call, a, keep, previous)


async def _owner_first(request: web.Request, principal: Principal, response_id: str,
                       keys: tuple[ProviderKey, ...]) -> tuple[ProviderKey, ...]:
    """``keys`` with the one that created ``response_id`` first (a stored response lives in its key's project)."""
    owner = await store.owner_of(request.app[REDIS], response_id)
    if owner is None or owner[0] != principal.user_id:
        return keys
    return tuple(sorted(keys, key=lambda k: k.id != owner[1]))


async def _native(request: web.Request, call: Call, a: Admitted, native: ResponsesNative, keep: bool,
                  previous: str | None) -> web.StreamResponse:
    app = request.app
    settings = app[SETTINGS]
    provider, model = a.route.provider, a.route.model
    base_url = settings.base_url(provider.spec)
    keys = a.keys
    if previous is not None:
        if store.is_webrana_id(previous):
            raise BadRequest(f"previous_response_id: '{previous}' was stored by Webrana for a model another "
                             f"provider served; continue it with that kind of model, or send the conversation "
                             f"as input to {provider.display_name}", param="previous_response_id",
                             code="previous_response_unsupported")
        keys = await _owner_first(request, call.principal, previous, keys)
    tried: list[str] = []

    def build(api_key: str) -> UpstreamRequest:
        tried.append(api_key)
        return native.responses_request(a.raw, a.body, model, api_key, base_url)

    upstream = await open_upstream(app[UPSTREAM], settings, provider, keys, build, call)
    key = next(k for k in keys if k.key == tried[-1])
    a.headers["x-request-id"] = call.request_id
    redis, user = app[REDIS], call.principal.user_id
    if not call.stream:
        resp = await relay_json(upstream, call, settings, native.responses_response, a.headers)
        if keep and call.upstream_id is not None and call.upstream_id.startswith("resp_"):
            await store.remember_owner(redis, call.upstream_id, user, key.id)
        return resp
    translator = native.responses_stream()
    pending: list[asyncio.Task[None]] = []
    if keep:  # the id is known at response.created: remembered long before the last byte
        translator.on_id = lambda rid: pending.append(
            asyncio.ensure_future(store.remember_owner(redis, rid, user, key.id)))
    try:
        return await relay_stream(request, upstream, call, settings, translator, a.headers,
                                  inband=translator.inband_error)
    finally:
        if pending:
            await asyncio.gather(*pending)


async def _save(request: web.Request, call: Call, response_id: str, model: str, items: list[JSON],
                response: JSON) -> None:
    try:
        await store.save(request.app[POOL], call.principal.user_id, response_id, model, items, response)
    except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as exc:  # the answer itself is good
        log.warning("could not store a response", extra={"request_id": call.request_id,
                                                         "error": type(exc).__name__})


async def _translated(request: web.Request, call: Call, a: Admitted, keep: bool,
                      previous: str | None) -> web.StreamResponse:
    app = request.app
    settings = app[SETTINGS]
    provider, model = a.route.provider, a.route.model
    history: list[JSON] | None = None
    if previous is not None:
        if not store.is_webrana_id(previous):
            owner = _stored_at(request).display_name  # the provider that stores responses itself
            raise BadRequest(f"previous_response_id: '{previous}' is a response {owner} stored; only an {owner} model "
                             f"can continue it, not {provider.display_name}'s (send the conversation as input "
                             "instead)", param="previous_response_id", code="previous_response_unsupported")
        stored = await store.load(app[POOL], call.principal.user_id, previous)
        if stored is None:
            raise BadRequest(f"Previous response with id '{previous}' not found.", param="previous_response_id",
                             code="previous_response_not_found")
        history = stored.history()
    plan = to_chat(a.body, model, history)  # a 400 naming the field before anything goes upstream
    if plan.dropped_tools:
        log.info("tools without an equivalent dropped", extra={"request_id": call.request_id,
                                                              "provider": provider.id, "tools": plan.dropped_tools})
    chat = call.body = plan.chat
    app[PRICES].catalogue.capabilities_of(provider.id, model).fit(chat)  # nothing the model would refuse
    response_id = store.new_response_id()
    env = envelope(a.body, response_id, a.route.requested, keep)
    items = with_ids([*(history or ()), *input_items(a.body)], response_id) if keep else []
    base_url = settings.base_url(provider.spec)
    upstream = await open_upstream(app[UPSTREAM], settings, provider, a.keys,
                                   lambda key: provider.chat_request(chat, model, key, base_url), call)
    a.headers["x-request-id"] = call.request_id
    requested = a.route.requested
    if call.stream:
        translator = ResponsesStream(provider.stream_translator(model, True), env, plan.namespaces, plan.custom)

        async def last() -> bytes:
            if keep and translator.response is not None:
                await _save(request, call, response_id, requested, items, translator.response)
            return translator.completed_event()

        return await relay_stream(request, upstream, call, settings, translator, a.headers,
                                  inband=translator.inband_error, last=last)

    answered: list[JSON] = []

    def answer(raw: bytes) -> ChatResult:
        result = provider.chat_response(raw, model)
        response = response_of(result.body, env, plan.namespaces, result.usage, plan.custom)
        answered.append(response)
        result.body = orjson.dumps(response)
        return result

    resp = await relay_json(upstream, call, settings, answer, a.headers)
    if keep:
        await _save(request, call, response_id, requested, items, answered[0])
    return resp


@routes.post("/v1/responses")
async def create(request: web.Request) -> web.StreamResponse:
    return await run_call(request, "responses", _responses)


# ---- stored responses ----


def _not_found(response_id: str, why: str = "") -> NotFound:
    return NotFound(f"Response with id '{response_id}' not found.{why}", param="response_id")


def _stored_at(request: web.Request) -> Provider:
    """The provider that stores responses itself (the one whose own format Responses is)."""
    for provider in request.app[REGISTRY].all():
        if provider.responses_native is not None:
            return provider
    raise _not_found(request.match_info.get("response_id", ""))


async def _at_provider(request: web.Request, principal: Principal, method: str, response_id: str,
                       action: str = "") -> web.Response:
    """GET or DELETE a response the provider stored, list its input items (``action`` ``/input_items``) or cancel it
    (``/cancel``), with the key that created it (same user only)."""
    provider = _stored_at(request)
    native = provider.responses_native
    assert native is not None
    owner = await store.owner_of(request.app[REDIS], response_id)
    if owner is None or owner[0] != principal.user_id:
        raise _not_found(response_id)
    key = next((k for k in principal.provider_keys.get(provider.id, ()) if k.id == owner[1]), None)
    if key is None:
        raise _not_found(response_id, f" The {provider.display_name} key that created it is no longer on this "
                                      "account.")
    app = request.app
    settings = app[SETTINGS]
    base_url = settings.base_url(provider.spec)
    call = Call(request[REQUEST_ID], principal, time.perf_counter(), endpoint="responses")  # not recorded
    query = request.query_string

    def build(api_key: str) -> UpstreamRequest:
        # stored_request without a query is the stored response's URL; its input items and cancel are under it
        stored = native.stored_request(method, response_id, "", api_key, base_url)
        url = stored.url + action + (f"?{query}" if query else "")
        return replace(stored, url=url, body=b"" if method == "POST" else stored.body)

    upstream = await open_upstream(app[UPSTREAM], settings, provider, (key,), build, call)
    resp = await relay_json(upstream, call, settings, lambda raw: ChatResult(body=raw, usage=None), {})
    if method == "DELETE":
        await store.forget_owner(app[REDIS], response_id)
    return resp


async def _admitted(request: web.Request) -> tuple[Principal, str]:
    principal = await authenticate(request)
    await enforce_limits(request, principal, quota=False)
    return principal, request.match_info["response_id"]


@routes.get("/v1/responses/{response_id}")
async def retrieve(request: web.Request) -> web.StreamResponse:
    principal, response_id = await _admitted(request)
    if not store.is_webrana_id(response_id):
        return await _at_provider(request, principal, "GET", response_id)
    stored = await store.load(request.app[POOL], principal.user_id, response_id)
    if stored is None:
        raise _not_found(response_id)
    return json_response(stored.response)


@routes.delete("/v1/responses/{response_id}")
async def delete(request: web.Request) -> web.StreamResponse:
    principal, response_id = await _admitted(request)
    if not store.is_webrana_id(response_id):
        return await _at_provider(request, principal, "DELETE", response_id)
    if not await store.delete(request.app[POOL], principal.user_id, response_id):
        raise _not_found(response_id)
    return json_response({"id": response_id, "object": "response", "deleted": True})


@routes.get("/v1/responses/{response_id}/input_items")
async def list_input_items(request: web.Request) -> web.StreamResponse:
    principal, response_id = await _admitted(request)
    if not store.is_webrana_id(response_id):
        return await _at_provider(request, principal, "GET", response_id, "/input_items")
    query = page_query(request.query)  # a 400 naming the parameter before the database is asked
    stored = await store.load(request.app[POOL], principal.user_id, response_id)
    if stored is None:
        raise _not_found(response_id)
    return json_response(page(stored.input_items, response_id, query))


@routes.post("/v1/responses/{response_id}/cancel")
async def cancel(request: web.Request) -> web.StreamResponse:
    principal, response_id = await _admitted(request)
    if not store.is_webrana_id(response_id):
        return await _at_provider(request, principal, "POST", response_id, "/cancel")
    if await store.load(request.app[POOL], principal.user_id, response_id) is None:
        raise _not_found(response_id)
    # Webrana's responses never run in the background (``background`` is refused on the translated lane): each
    # one was answered before its id was known, so there is nothing to cancel, as OpenAI says of such a response.
    raise BadRequest("Cannot cancel a synchronous response: only responses created with background=true can be "
                     "cancelled, and this one already finished.", param="response_id")
