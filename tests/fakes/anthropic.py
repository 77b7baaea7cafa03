"""Fake Anthropic Messages API: ``POST /v1/messages`` (streaming or not), ``POST /v1/messages/count_tokens``
and ``GET /v1/models``.

Base URL ``http://HOST:P`` standalone (the SDK and the gateway append ``/v1/messages``).

Wire details kept: ``x-api-key`` and ``anthropic-version`` required (401 ``authentication_error`` /
400 ``invalid_request_error`` otherwise, body ``{"type":"error","error":{...},"request_id"}``); ``max_tokens``
required; roles only user/assistant; ``temperature`` within 0..1; streams as ``event:``/``data:`` pairs in the
real order: message_start (input usage), content_block_start, ping, content_block_delta (``text_delta`` or
``input_json_delta``), content_block_stop, message_delta (stop_reason, cumulative ``output_tokens``),
message_stop. In-band errors are ``event: error``. Usage: ``input_tokens`` excludes the cache fields.
count_tokens answers ``{"input_tokens": N}`` with N the fake's prompt count (words of every text, system
included), so it equals the ``input_tokens`` a ``/v1/messages`` call with the same prompt reports.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web

from tests.fakes.playback import Exchange, intake
from tests.fakes.scenario import (
    Behaviour,
    FakeState,
    HttpError,
    ToolCall,
    Usage,
    completion_tokens,
    prompt_tokens,
    split_json_fragments,
    split_pieces,
)

STATE_KEY = web.AppKey("fake_anthropic_state", FakeState)
PROVIDER = "anthropic"
MODELS = (
    ("claude-sonnet-4-5-20250929", "Claude Sonnet 4.5", "2025-09-29T00:00:00Z"),
    ("claude-haiku-4-5-20251001", "Claude Haiku 4.5", "2025-10-01T00:00:00Z"),
    ("claude-opus-4-1-20250805", "Claude Opus 4.1", "2025-08-05T00:00:00Z"),
)
ERRORS: dict[int, tuple[str, str]] = {
    400: ("invalid_request_error", "Invalid request."),
    401: ("authentication_error", "invalid x-api-key"),
    402: ("billing_error", "Your credit balance is too low to access the Anthropic API."),
    403: ("permission_error", "Your API key does not have permission to use the specified resource."),
    404: ("not_found_error", "The requested resource could not be found."),
    413: ("request_too_large", "Request exceeds the maximum allowed number of bytes."),
    429: ("rate_limit_error", "Number of request tokens has exceeded your per-minute rate limit."),
    500: ("api_error", "Internal server error"),
    504: ("timeout_error", "Request timeout"),
    529: ("overloaded_error", "Overloaded"),
}
REQUEST_ID = "req_011CFakeAnthropicRequest"
HEADERS = {"request-id": REQUEST_ID, "anthropic-organization-id": "fake-org"}
SSE_TYPE = "text/event-stream; charset=utf-8"


def error_body(status: int, message: str | None = None, error_type: str | None = None) -> bytes:
    etype, emsg = ERRORS.get(status, ERRORS[500 if status >= 500 else 400])
    return orjson.dumps(
        {
            "type": "error",
            "error": {"type": error_type or etype, "message": message or emsg},
            "request_id": REQUEST_ID,
        }
    )


def _error_response(status: int, body: bytes, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        status=status, body=body, content_type="application/json", headers={**HEADERS, **(headers or {})}
    )


def _scripted_error(err: HttpError) -> web.Response:
    headers = dict(err.headers)
    if err.retry_after is not None:
        headers["retry-after"] = err.retry_after
    if err.status == 429:
        headers.setdefault("anthropic-ratelimit-requests-limit", "50")
        headers.setdefault("anthropic-ratelimit-requests-remaining", "0")
    body = err.body if err.body is not None else error_body(err.status, err.message, err.error_type)
    return _error_response(err.status, body, headers)


def _check_headers(request: web.Request, key: str | None) -> web.Response | None:
    if key is None:
        return _error_response(401, error_body(401, "x-api-key header is required"))
    if "invalid" in key:
        return _error_response(401, error_body(401))
    if not request.headers.get("anthropic-version"):
        return _error_response(400, error_body(400, "anthropic-version: header is required"))
    return None


# ---- reading the request ----


def _block_texts(content: Any) -> list[str]:
    if isinstance(content, str):
        return [content]
    out: list[str] = []
    for block in content if isinstance(content, list) else ():
        if not isinstance(block, dict):
            continue
        kind = block.get("type")
        if kind == "text" and isinstance(block.get("text"), str):
            out.append(block["text"])
        elif kind == "tool_use":
            out.append(orjson.dumps(block.get("input", {})).decode())
        elif kind == "tool_result":
            out.extend(_block_texts(block.get("content", "")))
    return out


def prompt_texts(body: dict[str, Any]) -> list[str]:
    out = _block_texts(body.get("system", ""))
    for m in body["messages"]:
        out.extend(_block_texts(m.get("content")))
    return out


def last_user_text(messages: list[Any]) -> str:
    for m in reversed(messages):
        if m.get("role") == "user":
            return " ".join(_block_texts(m.get("content")))
    return ""


def _validate(body: Any) -> tuple[int, bytes] | None:
    def bad(msg: str) -> tuple[int, bytes]:
        return 400, error_body(400, msg)

    if not isinstance(body, dict):
        return bad("There was an issue with your request body. Please check that it is valid JSON.")
    if not isinstance(body.get("model"), str):
        return bad("model: Field required")
    if not isinstance(body.get("max_tokens"), int) or body["max_tokens"] < 1:
        return bad("max_tokens: Field required")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return bad("messages: Field required")
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or m.get("role") not in ("user", "assistant"):
            role = m.get("role") if isinstance(m, dict) else None
            if role == "system":
                return bad(
                    'messages: Unexpected role "system". The Messages API accepts a top-level `system` '
                    'parameter, not "system" as an input message role.'
                )
            return bad(f"messages.{i}.role: Input should be 'user' or 'assistant'")
        if "content" not in m:
            return bad(f"messages.{i}.content: Field required")
    temperature = body.get("temperature")
    if isinstance(temperature, int | float) and not 0 <= temperature <= 1:
        return bad("temperature: range: 0..1")
    if "does-not-exist" in body["model"]:
        return 404, error_body(404, f"model: {body['model']}")
    return None


# ---- building the answer ----


@dataclass(frozen=True, slots=True)
class Answer:
    id: str
    model: str
    text: str
    calls: tuple[ToolCall, ...]
    call_ids: tuple[str, ...]
    args_json: tuple[str, ...]
    stop_reason: str
    input_tokens: int
    output_tokens: int
    cache_creation: int
    cache_read: int
    thinking_tokens: int = 0  # of output_tokens: reported in output_tokens_details when there were any

    @property
    def usage(self) -> Usage:
        return Usage(self.input_tokens + self.cache_creation + self.cache_read, self.output_tokens)

    def usage_json(self, output_tokens: int) -> dict[str, Any]:
        return {
            "input_tokens": self.input_tokens,
            "cache_creation_input_tokens": self.cache_creation,
            "cache_read_input_tokens": self.cache_read,
            "output_tokens": output_tokens,
            "service_tier": "standard",
            **self.output_details(output_tokens),
        }

    def output_details(self, output_tokens: int) -> dict[str, Any]:
        """``output_tokens_details.thinking_tokens`` once the output includes the thinking (not at message_start)."""
        if not self.thinking_tokens or output_tokens < self.output_tokens:
            return {}
        return {"output_tokens_details": {"thinking_tokens": self.thinking_tokens}}


def build_answer(state: FakeState, body: dict[str, Any], b: Behaviour) -> Answer:
    seq = state.next_id()
    calls = b.tool_calls
    answer = b.answer_text(last_user_text(body["messages"])) if not calls or b.text is not None else ""
    args_json = tuple(orjson.dumps(dict(c.arguments)).decode() for c in calls)
    stop = "max_tokens" if b.truncated else ("tool_use" if calls else "end_turn")
    return Answer(
        id=f"msg_fake{seq:020d}",
        model=body["model"],
        text=answer,
        calls=calls,
        call_ids=tuple(c.id or f"toolu_fake{seq:06d}x{i}" for i, c in enumerate(calls)),
        args_json=args_json,
        stop_reason=stop,
        input_tokens=prompt_tokens(prompt_texts(body)),
        output_tokens=completion_tokens(answer, calls, args_json) + b.reasoning_tokens,
        cache_creation=b.cache_creation_tokens,
        cache_read=b.cached_tokens,
        thinking_tokens=b.reasoning_tokens,
    )


def message_body(a: Answer, send_usage: bool) -> bytes:
    content: list[dict[str, Any]] = [{"type": "text", "text": a.text}] if a.text else []
    content.extend(
        {"type": "tool_use", "id": cid, "name": c.name, "input": dict(c.arguments)}
        for c, cid in zip(a.calls, a.call_ids, strict=True)
    )
    body: dict[str, Any] = {
        "id": a.id,
        "type": "message",
        "role": "assistant",
        "model": a.model,
        "content": content,
        "stop_reason": a.stop_reason,
        "stop_sequence": None,
    }
    if send_usage:
        body["usage"] = a.usage_json(a.output_tokens)
    return orjson.dumps(body)


def sse(name: str, data: dict[str, Any]) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


PING = b'event: ping\ndata: {"type": "ping"}\n\n'


def stream_events(a: Answer, b: Behaviour) -> list[bytes]:
    start: dict[str, Any] = {
        "id": a.id,
        "type": "message",
        "role": "assistant",
        "model": a.model,
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": a.usage_json(1),
    }
    events = [sse("message_start", {"type": "message_start", "message": start})]
    index = 0
    if a.text or not a.calls:
        events.append(
            sse(
                "content_block_start",
                {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
            )
        )
        events.append(PING)
        prefix = (
            b"event: content_block_delta\n"
            b'data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":'
        )
        events.extend(
            prefix + orjson.dumps(piece) + b"}}\n\n" for piece in split_pieces(a.text, b.words_per_chunk)
        )
        events.append(sse("content_block_stop", {"type": "content_block_stop", "index": 0}))
        index = 1
    for c, cid, args in zip(a.calls, a.call_ids, a.args_json, strict=True):
        block = {"type": "tool_use", "id": cid, "name": c.name, "input": {}}
        events.append(
            sse(
                "content_block_start", {"type": "content_block_start", "index": index, "content_block": block}
            )
        )
        if index == 0:
            events.append(PING)
        for frag in ["", *split_json_fragments(args)]:
            events.append(
                sse(
                    "content_block_delta",
                    {
                        "type": "content_block_delta",
                        "index": index,
                        "delta": {"type": "input_json_delta", "partial_json": frag},
                    },
                )
            )
        events.append(sse("content_block_stop", {"type": "content_block_stop", "index": index}))
        index += 1
    delta: dict[str, Any] = {
        "type": "message_delta",
        "delta": {"stop_reason": a.stop_reason, "stop_sequence": None},
    }
    if b.send_usage:
        delta["usage"] = {"output_tokens": a.output_tokens, **a.output_details(a.output_tokens)}
    events.append(sse("message_delta", delta))
    events.append(sse("message_stop", {"type": "message_stop"}))
    return events


def inband_error_event(message: str) -> bytes:
    return sse("error", {"type": "error", "error": {"type": "overloaded_error", "message": message}})


# ---- handlers ----


async def messages(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE_KEY]
    key = request.headers.get("x-api-key") or None
    rec, body, parsed = await intake(request, state, PROVIDER, key or "")
    refused = _check_headers(request, key)
    if refused is None:
        invalid = _validate(body if parsed else None)
        if invalid is not None:
            refused = _error_response(*invalid)
    if refused is not None:
        rec.outcome = "error"
        return refused
    b = state.next_behaviour(PROVIDER, key or "")

    async def answer(ex: Exchange) -> web.StreamResponse:
        if b.error is not None:
            rec.outcome = "error"
            return _scripted_error(b.error)
        a = build_answer(state, body, b)
        rec.usage = a.usage if b.send_usage else None
        rec.request_id = "req_011C" + a.id.removeprefix("msg_")
        hdrs = {**HEADERS, "request-id": rec.request_id}
        if body.get("stream") is True:
            msg = b.fault.message if b.fault is not None else ""
            return await ex.stream(
                stream_events(a, b), inband=inband_error_event(msg), headers=hdrs, content_type=SSE_TYPE
            )
        return await ex.json(200, message_body(a, b.send_usage), hdrs)

    return await Exchange(request, state, rec, b).run(answer)


async def count_tokens(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE_KEY]
    key = request.headers.get("x-api-key") or None
    rec, body, parsed = await intake(request, state, PROVIDER, key or "")
    refused = _check_headers(request, key)
    if refused is None:
        # The same checks as /v1/messages, except that count_tokens takes no max_tokens.
        invalid = _validate({**body, "max_tokens": 1} if parsed and isinstance(body, dict) else None)
        if invalid is not None:
            refused = _error_response(*invalid)
    if refused is not None:
        rec.outcome = "error"
        return refused
    b = state.next_behaviour(PROVIDER, key or "")
    if b.error is not None:
        rec.outcome = "error"
        return _scripted_error(b.error)
    rec.outcome = "ok"
    return web.Response(body=orjson.dumps({"input_tokens": prompt_tokens(prompt_texts(body))}),
                        content_type="application/json", headers=HEADERS)


async def models(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE_KEY]
    key = request.headers.get("x-api-key") or None
    rec, _, _ = await intake(request, state, PROVIDER, key or "")
    refused = _check_headers(request, key)
    if refused is not None:
        rec.outcome = "error"
        return refused
    b = state.next_behaviour(PROVIDER, key or "")
    if b.error is not None:
        rec.outcome = "error"
        return _scripted_error(b.error)
    rec.outcome = "ok"
    return web.Response(body=request.app[LISTING_KEY], content_type="application/json", headers=HEADERS)


LISTING_KEY = web.AppKey("fake_anthropic_listing", bytes)


def make_anthropic_app(state: FakeState) -> web.Application:
    """Fake Anthropic: ``POST /v1/messages``, ``POST /v1/messages/count_tokens``, ``GET /v1/models``."""
    app = web.Application()
    app[STATE_KEY] = state
    app[LISTING_KEY] = orjson.dumps(
        {
            "data": [
                {"type": "model", "id": m, "display_name": name, "created_at": at} for m, name, at in MODELS
            ],
            "has_more": False,
            "first_id": MODELS[0][0],
            "last_id": MODELS[-1][0],
        }
    )
    app.router.add_post("/v1/messages", messages)
    app.router.add_post("/v1/messages/count_tokens", count_tokens)
    app.router.add_get("/v1/models", models)
    return app
