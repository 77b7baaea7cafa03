"""/v1/messages and /v1/messages/count_tokens: the Anthropic Messages dialect (Claude Code, the anthropic SDK).

Two lanes, chosen by what the provider speaks, never by its name:

* native (the provider's own format is Messages): the body goes as it came, the answer comes back byte for
  byte, usage read from its events. The hot path: the body is parsed once, for the model and ``stream``.
* translated (every other provider): Messages -> the chat form (``dialects.messages_request``) -> the
  provider's own translator -> chat answers -> Messages answers and events (``dialects.messages_response``).

Auth, limits, key failover, client disconnects and the one usage row are the same steps chat takes
(``handlers.run_call`` / ``handlers.admit`` / ``upstream``); errors are rendered in Anthropic's shape by the
middleware (``dialects.errors``), in-band ones as ``event: error``. ``?beta=true`` (Claude Code) is accepted.
"""

from __future__ import annotations

import orjson
from aiohttp import web

from webrana_proxy.dialects.messages_request import to_chat, to_count_chat
from webrana_proxy.dialects.messages_response import MessagesStream, error_event, message_of
from webrana_proxy.errors import BadRequest
from webrana_proxy.gateway.calls import Call
from webrana_proxy.gateway.handlers import Admitted, admit, run_call, serve
from webrana_proxy.gateway.upstream import open_upstream, relay_json, relay_stream
from webrana_proxy.jsonio import json_response
from webrana_proxy.providers.base import ChatResult, Usage
from webrana_proxy.providers.estimate import estimate_prompt_tokens
from webrana_proxy.state import PRICES, SETTINGS, UPSTREAM

routes = web.RouteTableDef()
ESTIMATED_HEADER = "x-webrana-estimated"  # "true" when count_tokens is Webrana's estimate, not the provider's


def _stream_flag(value: object) -> bool:
    if not isinstance(value, bool):
        raise BadRequest("stream: must be true or false", param="stream")
    return value


async def _messages(request: web.Request, call: Call) -> web.StreamResponse:
    return await serve(request, call, await admit(request, call), _messages_once)


async def _messages_once(request: web.Request, call: Call, a: Admitted) -> web.StreamResponse:
    stream = call.stream = _stream_flag(a.body.get("stream", False))
    app = request.app
    settings, pool = app[SETTINGS], app[UPSTREAM]
    provider, model = a.route.provider, a.route.model
    base_url = settings.upstream_base_urls[provider.id]
    native = provider.messages_native
    if native is not None:
        upstream = await open_upstream(pool, settings, provider, a.keys, lambda key: native.messages_request(
            a.raw, a.body, model, key, base_url, request.headers), call)
        a.headers["x-request-id"] = call.request_id
        if stream:
            return await relay_stream(request, upstream, call, settings, native.messages_stream(), a.headers,
                                      inband=error_event)
        return await relay_json(upstream, call, settings, native.messages_response, a.headers)

    chat = call.body = to_chat(a.body, model)  # a 400 naming the field before anything goes upstream
    app[PRICES].catalogue.capabilities_of(provider.id, model).fit(chat)  # nothing the model would refuse
    upstream = await open_upstream(pool, settings, provider, a.keys,
                                   lambda key: provider.chat_request(chat, model, key, base_url), call)
    a.headers["x-request-id"] = call.request_id
    requested = a.route.requested
    if stream:
        translator = MessagesStream(provider.stream_translator(model, True), requested)
        return await relay_stream(request, upstream, call, settings, translator, a.headers, inband=error_event)

    def answer(raw: bytes) -> ChatResult:
        result = provider.chat_response(raw, model)
        result.body = message_of(result.body, requested, result.usage)
        return result

    return await relay_json(upstream, call, settings, answer, a.headers)


def _not_billed(body: bytes) -> ChatResult:
    return ChatResult(body=body, usage=Usage())


async def _count_tokens(request: web.Request, call: Call) -> web.StreamResponse:
    # Not billable: per-IP and burst limits only, and the row carries no tokens (it is not a generation).
    return await serve(request, call, await admit(request, call, quota=False), _count_tokens_once)


async def _count_tokens_once(request: web.Request, call: Call, a: Admitted) -> web.StreamResponse:
    call.usage = Usage()
    app = request.app
    settings, pool = app[SETTINGS], app[UPSTREAM]
    provider, model = a.route.provider, a.route.model
    base_url = settings.upstream_base_urls[provider.id]
    native = provider.messages_native
    if native is not None:
        upstream = await open_upstream(pool, settings, provider, a.keys, lambda key: native.count_tokens_request(
            a.raw, a.body, model, key, base_url, request.headers), call)
        a.headers["x-request-id"] = call.request_id
        return await relay_json(upstream, call, settings, _not_billed, a.headers)
    chat = to_count_chat(a.body, model)
    counter = provider.token_counter
    if counter is not None:
        upstream = await open_upstream(pool, settings, provider, a.keys,
                                       lambda key: counter.count_tokens_request(chat, model, key, base_url), call)
        a.headers["x-request-id"] = call.request_id
        return await relay_json(upstream, call, settings, lambda raw: _not_billed(
            orjson.dumps({"input_tokens": counter.count_tokens_response(raw)})), a.headers)
    call.status = 200
    return json_response({"input_tokens": estimate_prompt_tokens(chat)},
                         headers={**a.headers, ESTIMATED_HEADER: "true", "x-request-id": call.request_id,
                                  **call.served_headers()})


@routes.post("/v1/messages")
async def messages(request: web.Request) -> web.StreamResponse:
    return await run_call(request, "messages", _messages)


@routes.post("/v1/messages/count_tokens")
async def count_tokens(request: web.Request) -> web.StreamResponse:
    return await run_call(request, "count_tokens", _count_tokens)
