"""Fake OpenAI and Qwen (DashScope compatible-mode) servers: chat completions, embeddings, models; and on OpenAI
the Responses API (``POST /v1/responses`` streamed or not, ``GET`` / ``DELETE /v1/responses/{id}``,
``GET /v1/responses/{id}/input_items``, ``POST /v1/responses/{id}/cancel``).

Standalone base URLs: ``make_openai_app`` serves ``{root}/v1/...`` (OpenAI base URL ``http://HOST:P/v1``);
``make_qwen_app`` serves ``{root}/compatible-mode/v1/...`` (base URL ``http://HOST:P/compatible-mode/v1``).

Wire details kept: ``Authorization: Bearer`` required (missing or a key containing "invalid": the provider's
401 body); ``stream_options`` without ``stream`` is a 400 (as OpenAI answers); the usage chunk
(``choices: []``) comes only with ``stream_options.include_usage``; every chunk has the same id/created; the
stream ends ``data: [DONE]``; tool calls stream with index/id/type/name on the first delta of each call, then
argument fragments (Qwen repeats ``"id": ""`` and ``"type"`` on later deltas, as DashScope does). Qwen's
stream-only models (``qwq*``, ``qvq*``) answer 400 when not streamed. A model containing ``does-not-exist``
answers 404. Embeddings honour ``encoding_format: base64`` (the openai SDK's default) and ``dimensions``.

Responses, as OpenAI sends them: ``event:`` lines, a rising ``sequence_number`` on every event, no ``[DONE]``;
``response.created`` / ``.in_progress`` carry the response shell, ``response.completed`` the whole response with
``usage`` near its end; non-streamed answers are pretty-printed. Stored responses (``store`` not false) are kept
per fake app and readable, deletable and continuable (``previous_response_id``) only with the key that made them.
Their input items (the earlier turns of the chain, then the response's own input, each with an id) list as OpenAI
lists them: ``limit`` 1-100 (20), ``order`` ``desc`` (newest first) or ``asc``, ``after`` an item id, ``has_more``.
Nothing runs in the background here, so cancelling is OpenAI's 400 for a response that did not.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web

from tests.fakes.playback import Exchange, intake
from tests.fakes.scenario import (
    EMBEDDING_DIMENSIONS,
    Behaviour,
    FakeState,
    HttpError,
    ToolCall,
    Usage,
    completion_tokens,
    embedding_vector,
    floats_to_base64,
    prompt_tokens,
    split_json_fragments,
    split_pieces,
)

STATE_KEY = web.AppKey("fake_openai_state", FakeState)
# OpenAI models without reasoning: real OpenAI answers a 400 ``unsupported_parameter`` to ``reasoning_effort``.
NON_REASONING_PREFIXES = ("gpt-4o", "gpt-4.1", "gpt-4-", "gpt-3.5", "chatgpt-")
# Output limits real OpenAI enforces with a 400 (``invalid_value``) when a request asks for more.
MAX_OUTPUT = (("gpt-4o", 16384), ("gpt-4.1", 32768))


@dataclass(frozen=True, slots=True)
class Flavor:
    name: str  # provider name recorded on requests: "openai" | "qwen" | the other OpenAI-shaped providers
    prefix: str  # path prefix of the API inside the app
    models: tuple[str, ...]
    stream_only_prefixes: tuple[str, ...]
    errors: Mapping[int, tuple[str, str | None, str]]  # status -> (type, code, message)
    # The other OpenAI-shaped providers (tests/fakes/compat_providers.py) differ only in these:
    error_format: str = "openai"  # "openai" | "mistral" (top-level object) | "xai" ({"code", "error"})
    #   | "openrouter" ({"error": {"code": <status>, "message"}})
    usage_fields: Any = None  # (usage_json, Behaviour) -> usage_json with the provider's own fields
    tool_id: Any = None  # (seq, index) -> the provider's tool-call id
    check: Any = None  # (body) -> (status, error body bytes) | None: what the provider refuses
    usage_on_finish: bool = False  # usage always on the last content chunk, no stream_options (Mistral)
    finish_extra: Any = None  # (Answer) -> extra fields on the finish chunk (Groq's x_groq)
    bad_key: Any = None  # (key) -> (status, body bytes) for a wrong key
    embeddings: bool = True
    key_path: str | None = None  # an authenticated key-info route (OpenRouter's GET /key); models are public
    # An admin's own upstream (issue 16): the key in this header instead of Authorization: Bearer; or no key at all
    key_header: str | None = None
    keyless: bool = False


OPENAI = Flavor(
    name="openai",
    prefix="/v1",
    models=("gpt-4o", "gpt-4o-mini", "gpt-4.1-mini", "o3-mini", "text-embedding-3-small"),
    stream_only_prefixes=(),
    errors={
        400: ("invalid_request_error", None, "Invalid request."),
        401: ("invalid_request_error", "invalid_api_key", "Incorrect API key provided."),
        403: (
            "request_forbidden",
            "unsupported_country_region_territory",
            "Country, region, or territory not supported",
        ),
        404: (
            "invalid_request_error",
            "model_not_found",
            "The model does not exist or you do not have access to it.",
        ),
        429: (
            "requests",
            "rate_limit_exceeded",
            "Rate limit reached for requests per min (RPM). Please try again in 1s.",
        ),
        500: (
            "server_error",
            None,
            "The server had an error while processing your request. Sorry about that!",
        ),
        503: ("server_error", None, "The engine is currently overloaded, please try again later."),
    },
)
QWEN = Flavor(
    name="qwen",
    prefix="/compatible-mode/v1",
    models=("qwen-plus", "qwen-max", "qwen-turbo", "qwq-plus", "text-embedding-v3"),
    stream_only_prefixes=("qwq", "qvq"),
    errors={
        400: ("invalid_request_error", "invalid_parameter_error", "The request parameters are invalid."),
        401: ("invalid_request_error", "invalid_api_key", "Incorrect API key provided. "),
        403: ("AccessDenied", "AccessDenied", "Access denied."),
        404: (
            "invalid_request_error",
            "model_not_found",
            "The model does not exist or you do not have access to it.",
        ),
        429: ("limit_requests", "limit_requests", "Requests rate limit exceeded, please try again later."),
        500: ("internal_error", "internal_error", "An internal error has occured, please try again later."),
        503: ("ServiceUnavailable", "ServiceUnavailable", "The service is temporarily unavailable."),
    },
)


# ---- error bodies ----


def error_body(
    flavor: Flavor,
    status: int,
    message: str | None = None,
    *,
    param: str | None = None,
    error_type: str | None = None,
    code: str | None = None,
) -> bytes:
    etype, ecode, emsg = flavor.errors.get(status, flavor.errors[500 if status >= 500 else 400])
    if flavor.error_format == "mistral":
        return orjson.dumps({"object": "error", "message": message or emsg, "type": error_type or etype,
                             "param": param, "code": code or ecode})
    if flavor.error_format == "xai":
        return orjson.dumps({"code": error_type or etype, "error": message or emsg})
    if flavor.error_format == "openrouter":
        return orjson.dumps({"error": {"message": message or emsg, "code": status}})
    err = {"message": message or emsg, "type": error_type or etype, "param": param, "code": code or ecode}
    body: dict[str, Any] = {"error": err}
    if flavor is QWEN:
        body["request_id"] = "fake-qwen-request"
    return orjson.dumps(body)


def _error_response(
    flavor: Flavor, status: int, body: bytes, headers: Mapping[str, str] | None = None
) -> web.Response:
    return web.Response(
        status=status,
        body=body,
        content_type="application/json",
        headers={"x-request-id": "req_fakeerror", **(headers or {})},
    )


def _scripted_error(flavor: Flavor, err: HttpError) -> web.Response:
    headers = dict(err.headers)
    if err.retry_after is not None:
        headers["retry-after"] = err.retry_after
    if err.status == 429 and flavor is OPENAI:
        headers.setdefault("x-ratelimit-limit-requests", "500")
        headers.setdefault("x-ratelimit-remaining-requests", "0")
        headers.setdefault("x-ratelimit-reset-requests", f"{err.retry_after or '1'}s")
    body = (
        err.body
        if err.body is not None
        else error_body(flavor, err.status, err.message, error_type=err.error_type)
    )
    return _error_response(flavor, err.status, body, headers)


def _bearer(request: web.Request) -> str | None:
    auth = request.headers.get("Authorization", "")
    if auth[:7].lower() == "bearer " and auth[7:].strip():
        return auth[7:].strip()
    return None


def _key_of(flavor: Flavor, request: web.Request) -> str | None:
    if flavor.key_header is not None:
        return request.headers.get(flavor.key_header) or None
    return _bearer(request)


def _auth_error(flavor: Flavor, key: str | None) -> web.Response | None:
    if flavor.keyless:
        return None
    if key is None:
        if flavor is OPENAI:
            msg = (
                "You didn't provide an API key. You need to provide your API key in an Authorization header "
                "using Bearer auth (i.e. Authorization: Bearer YOUR_KEY)."
            )
            return _error_response(flavor, 401, error_body(flavor, 401, msg, code="missing_api_key"))
        return _error_response(flavor, 401, error_body(flavor, 401))
    if "invalid" in key and flavor.bad_key is not None:
        status, body = flavor.bad_key(key)
        return _error_response(flavor, status, body)
    if "invalid" in key:
        shown: str | None = None
        if flavor is OPENAI:
            shown = f"Incorrect API key provided: {key[:3]}*****{key[-4:]}. You can find your API key at https://platform.openai.com/account/api-keys."
        return _error_response(flavor, 401, error_body(flavor, 401, shown))
    return None


# ---- reading the request ----


def _content_texts(content: Any) -> list[str]:
    if isinstance(content, str):
        return [content]
    if isinstance(content, list):
        return [p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str)]
    return []


def prompt_texts(messages: list[Any]) -> list[str]:
    """Every text the prompt holds: contents (strings and text parts) and tool-call arguments."""
    out: list[str] = []
    for m in messages:
        if not isinstance(m, dict):
            continue
        out.extend(_content_texts(m.get("content")))
        for tc in m.get("tool_calls") or ():
            args = (tc.get("function") or {}).get("arguments")
            if isinstance(args, str):
                out.append(args)
    return out


def last_user_text(messages: list[Any]) -> str:
    for m in reversed(messages):
        if isinstance(m, dict) and m.get("role") in ("user", "tool"):
            return " ".join(_content_texts(m.get("content")))
    return ""


def _validate(flavor: Flavor, body: Any) -> tuple[int, bytes] | None:
    if not isinstance(body, dict):
        return 400, error_body(
            flavor,
            400,
            "We could not parse the JSON body of your request. (HINT: This "
            "likely means you aren't using your HTTP library correctly.)",
        )
    if not isinstance(body.get("model"), str):
        return 400, error_body(
            flavor,
            400,
            "you must provide a model parameter",
            param="model",
            code="missing_required_parameter" if flavor is OPENAI else None,
        )
    if not isinstance(body.get("messages"), list) or not body["messages"]:
        return 400, error_body(
            flavor,
            400,
            "Missing required parameter: 'messages'.",
            param="messages",
            code="missing_required_parameter" if flavor is OPENAI else None,
        )
    streaming = body.get("stream") is True
    if body.get("stream_options") is not None and not streaming:
        return 400, error_body(
            flavor,
            400,
            "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
            param="stream_options",
            code="invalid_value",
        )
    model: str = body["model"]
    if "does-not-exist" in model:
        msg = f"The model `{model}` does not exist or you do not have access to it."
        return 404, error_body(flavor, 404, msg)
    if flavor is OPENAI and "reasoning_effort" in body and model.startswith(NON_REASONING_PREFIXES):
        return 400, error_body(
            flavor,
            400,
            "Unsupported parameter: 'reasoning_effort' is not supported with this model.",
            param="reasoning_effort",
            code="unsupported_parameter",
        )
    limit = next((n for prefix, n in MAX_OUTPUT if model.startswith(prefix)), None) if flavor is OPENAI else None
    for name in ("max_completion_tokens", "max_tokens"):
        asked = body.get(name)
        if limit is not None and isinstance(asked, int) and asked > limit:
            return 400, error_body(
                flavor,
                400,
                f"max_tokens is too large: {asked}. This model supports at most {limit} completion tokens, "
                f"whereas you provided {asked}.",
                param=name,
                code="invalid_value",
            )
    if flavor.check is not None:
        refused: tuple[int, bytes] | None = flavor.check(body)
        if refused is not None:
            return refused
    if not streaming and model.startswith(flavor.stream_only_prefixes):
        return 400, error_body(
            flavor,
            400,
            "This model only support stream mode, please enable the stream parameter to access the model. ",
        )
    return None


# ---- building the answer ----


@dataclass(frozen=True, slots=True)
class Answer:
    id: str
    created: int
    model: str
    text: str
    calls: tuple[ToolCall, ...]
    call_ids: tuple[str, ...]
    args_json: tuple[str, ...]
    finish: str
    usage: Usage
    usage_json: dict[str, Any]


def build_answer(flavor: Flavor, state: FakeState, body: dict[str, Any], b: Behaviour) -> Answer:
    seq = state.next_id()
    messages: list[Any] = body["messages"]
    calls = b.tool_calls
    answer = b.answer_text(last_user_text(messages)) if not calls or b.text is not None else ""
    args_json = tuple(orjson.dumps(dict(c.arguments)).decode() for c in calls)
    call_ids = tuple(c.id or (flavor.tool_id(seq, i) if flavor.tool_id else f"call_fake{seq:06d}x{i}")
                     for i, c in enumerate(calls))
    prompt = prompt_tokens(prompt_texts(messages)) + b.cached_tokens + b.cache_creation_tokens
    completion = completion_tokens(answer, calls, args_json) + b.reasoning_tokens
    usage_json: dict[str, Any] = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }
    if flavor is OPENAI:
        usage_json["prompt_tokens_details"] = {"cached_tokens": b.cached_tokens, "audio_tokens": 0}
        if b.cache_creation_tokens:  # input written to the prompt cache, part of prompt_tokens
            usage_json["prompt_tokens_details"]["cache_write_tokens"] = b.cache_creation_tokens
        usage_json["completion_tokens_details"] = {
            "reasoning_tokens": b.reasoning_tokens,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        }
    else:
        usage_json["prompt_tokens_details"] = {"cached_tokens": b.cached_tokens}
    if flavor.usage_fields is not None:
        usage_json = flavor.usage_fields(usage_json, b)
    finish = "length" if b.truncated else ("tool_calls" if calls else "stop")
    return Answer(
        id=f"chatcmpl-fake{seq:020d}",
        created=int(time.time()),
        model=body["model"],
        text=answer,
        calls=calls,
        call_ids=call_ids,
        args_json=args_json,
        finish=finish,
        usage=Usage(prompt, completion),
        usage_json=usage_json,
    )


def completion_body(flavor: Flavor, a: Answer, send_usage: bool) -> bytes:
    message: dict[str, Any] = {"role": "assistant", "content": a.text if a.text or not a.calls else None}
    if flavor is OPENAI:
        message["refusal"] = None
        message["annotations"] = []
    if a.calls:
        message["tool_calls"] = [
            {"id": cid, "type": "function", "function": {"name": c.name, "arguments": args}}
            for c, cid, args in zip(a.calls, a.call_ids, a.args_json, strict=True)
        ]
    choice = {"index": 0, "message": message, "logprobs": None, "finish_reason": a.finish}
    body: dict[str, Any]
    if flavor is OPENAI:
        body = {
            "id": a.id,
            "object": "chat.completion",
            "created": a.created,
            "model": a.model,
            "choices": [choice],
        }
        if send_usage:
            body["usage"] = a.usage_json
        body["service_tier"] = "default"
        body["system_fingerprint"] = "fp_fake"
    else:
        body = {"choices": [choice], "object": "chat.completion"}
        if send_usage:
            body["usage"] = a.usage_json
        body.update({"created": a.created, "system_fingerprint": None, "model": a.model, "id": a.id})
    return orjson.dumps(body)


def stream_events(flavor: Flavor, a: Answer, b: Behaviour, include_usage: bool) -> list[bytes]:
    """Every ``data:`` event of the stream, before ``[DONE]``."""
    ident = orjson.dumps(a.id).decode()
    model = orjson.dumps(a.model).decode()
    if flavor is OPENAI:
        head = (
            f'data: {{"id":{ident},"object":"chat.completion.chunk","created":{a.created},"model":{model},'
            f'"service_tier":"default","system_fingerprint":"fp_fake","choices":'
        ).encode()
        tail = b',"usage":null}\n\n' if include_usage else b"}\n\n"
    else:
        head = b'data: {"choices":'
        tail = (
            f',"object":"chat.completion.chunk","usage":null,"created":{a.created},'
            f'"system_fingerprint":null,"model":{model},"id":{ident}}}\n\n'
        ).encode()

    def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        return head + b"[" + orjson.dumps(choice) + b"]" + tail

    events: list[bytes] = []
    first: dict[str, Any] = {"role": "assistant", "content": ""}
    if flavor is OPENAI:
        first["refusal"] = None
    if a.text or not a.calls:
        events.append(chunk(first))
        events.extend(chunk({"content": piece}) for piece in split_pieces(a.text, b.words_per_chunk))
        first = {}
    for i, (c, cid, args) in enumerate(zip(a.calls, a.call_ids, a.args_json, strict=True)):
        opening = {"index": i, "id": cid, "type": "function", "function": {"name": c.name, "arguments": ""}}
        if first:
            first["content"] = None
            events.append(chunk({**first, "tool_calls": [opening]}))
            first = {}
        else:
            events.append(chunk({"tool_calls": [opening]}))
        for frag in split_json_fragments(args):
            later: dict[str, Any] = {"index": i, "function": {"arguments": frag}}
            if flavor is QWEN:
                later = {"index": i, "id": "", "type": "function", "function": {"arguments": frag}}
            events.append(chunk({"tool_calls": [later]}))
    if flavor.usage_on_finish or flavor.finish_extra is not None:
        last = orjson.loads(chunk({}, a.finish)[6:-2])
        if flavor.usage_on_finish:
            last["usage"] = a.usage_json if b.send_usage else None
        if flavor.finish_extra is not None and b.send_usage:
            last.update(flavor.finish_extra(a))
        events.append(b"data: " + orjson.dumps(last) + b"\n\n")
    else:
        events.append(chunk({"content": ""} if flavor is QWEN else {}, a.finish))
    if include_usage and b.send_usage and not flavor.usage_on_finish:
        if flavor is OPENAI:
            usage = (
                (
                    f'data: {{"id":{ident},"object":"chat.completion.chunk","created":{a.created},'
                    f'"model":{model},"service_tier":"default","system_fingerprint":"fp_fake","choices":[],'
                    f'"usage":'
                ).encode()
                + orjson.dumps(a.usage_json)
                + b"}\n\n"
            )
        else:
            usage = (
                b'data: {"choices":[],"object":"chat.completion.chunk","usage":'
                + orjson.dumps(a.usage_json)
                + f',"created":{a.created},"system_fingerprint":null,'.encode()
                + f'"model":{model},"id":{ident}}}\n\n'.encode()
            )
        events.append(usage)
    return events


def inband_error_event(flavor: Flavor, message: str) -> bytes:
    err = {"error": {"message": message, "type": "server_error", "param": None, "code": None}}
    return b"data: " + orjson.dumps(err) + b"\n\n"


DONE = b"data: [DONE]\n\n"


# ---- handlers ----


def _response_headers(flavor: Flavor) -> dict[str, str]:
    if flavor is OPENAI:
        return {
            "x-request-id": "req_fake",
            "openai-processing-ms": "1",
            "openai-version": "2020-10-01",
            "x-ratelimit-limit-requests": "10000",
            "x-ratelimit-remaining-requests": "9999",
            "x-ratelimit-reset-requests": "6ms",
        }
    return {"x-request-id": "fake-qwen-request"}


def _chat_handler(flavor: Flavor) -> Any:
    headers = _response_headers(flavor)

    async def chat_completions(request: web.Request) -> web.StreamResponse:
        state = request.app[STATE_KEY]
        key = _key_of(flavor, request)
        rec, body, parsed = await intake(request, state, flavor.name, key or "")
        denied = _auth_error(flavor, key)
        if denied is not None:
            rec.outcome = "error"
            return denied
        invalid = _validate(flavor, body if parsed else None)
        if invalid is not None:
            rec.outcome = "error"
            return _error_response(flavor, invalid[0], invalid[1])
        b = state.next_behaviour(flavor.name, key or "")
        ex = Exchange(request, state, rec, b)

        async def answer(ex: Exchange) -> web.StreamResponse:
            if b.error is not None:
                rec.outcome = "error"
                return _scripted_error(flavor, b.error)
            a = build_answer(flavor, state, body, b)
            rec.request_id = "req_" + a.id.removeprefix("chatcmpl-")
            hdrs = {**headers, "x-request-id": rec.request_id}
            if body.get("stream") is True:
                include = bool((body.get("stream_options") or {}).get("include_usage"))
                rec.usage = a.usage if (include or flavor.usage_on_finish) and b.send_usage else None
                msg = b.fault.message if b.fault is not None else ""
                return await ex.stream(
                    stream_events(flavor, a, b, include),
                    terminator=DONE,
                    inband=inband_error_event(flavor, msg),
                    headers=hdrs,
                )
            rec.usage = a.usage if b.send_usage else None
            return await ex.json(200, completion_body(flavor, a, b.send_usage), hdrs)

        return await ex.run(answer)

    return chat_completions


def _embeddings_handler(flavor: Flavor) -> Any:
    async def embeddings(request: web.Request) -> web.StreamResponse:
        state = request.app[STATE_KEY]
        key = _key_of(flavor, request)
        rec, body, parsed = await intake(request, state, flavor.name, key or "")
        denied = _auth_error(flavor, key)
        if denied is not None:
            rec.outcome = "error"
            return denied
        if not parsed or not isinstance(body, dict) or "input" not in body or "model" not in body:
            rec.outcome = "error"
            return _error_response(
                flavor, 400, error_body(flavor, 400, "'input' and 'model' are required", param="input")
            )
        b = state.next_behaviour(flavor.name, key or "")
        ex = Exchange(request, state, rec, b)

        async def answer(ex: Exchange) -> web.StreamResponse:
            if b.error is not None:
                rec.outcome = "error"
                return _scripted_error(flavor, b.error)
            inputs = body["input"]
            if isinstance(inputs, str) or (
                isinstance(inputs, list) and inputs and isinstance(inputs[0], int)
            ):
                inputs = [inputs]
            dims = body.get("dimensions") or EMBEDDING_DIMENSIONS
            b64 = body.get("encoding_format") == "base64"
            data = []
            tokens = 0
            for i, item in enumerate(inputs):
                as_text = item if isinstance(item, str) else " ".join(str(t) for t in item)
                tokens += len(as_text.split()) if isinstance(item, str) else len(item)
                vec = embedding_vector(as_text, int(dims))
                data.append(
                    {"object": "embedding", "index": i, "embedding": floats_to_base64(vec) if b64 else vec}
                )
            rec.usage = Usage(tokens, 0)
            out = {
                "object": "list",
                "data": data,
                "model": body["model"],
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            }
            if flavor is QWEN:
                out["id"] = f"fake-embedding-{state.next_id()}"
            return await ex.json(200, orjson.dumps(out), _response_headers(flavor))

        return await ex.run(answer)

    return embeddings


def _models_handler(flavor: Flavor) -> Any:
    listing = orjson.dumps(
        {
            "object": "list",
            "data": [
                {
                    "id": m,
                    "object": "model",
                    "created": 1700000000,
                    "owned_by": "system" if flavor is OPENAI else flavor.name,
                }
                for m in flavor.models
            ],
        }
    )

    async def models(request: web.Request) -> web.StreamResponse:
        state = request.app[STATE_KEY]
        key = _key_of(flavor, request)
        rec, _, _ = await intake(request, state, flavor.name, key or "")
        denied = None if flavor.key_path is not None else _auth_error(flavor, key)  # public when key_path
        if denied is not None:
            rec.outcome = "error"
            return denied
        b = state.next_behaviour(flavor.name, key or "")
        if b.error is not None:
            rec.outcome = "error"
            return _scripted_error(flavor, b.error)
        rec.outcome = "ok"
        return web.Response(body=listing, content_type="application/json", headers=_response_headers(flavor))

    return models


def _key_handler(flavor: Flavor) -> Any:
    """OpenRouter's ``GET /key``: the calling key's label, limit and usage; 401 for a wrong key."""

    async def key_info(request: web.Request) -> web.StreamResponse:
        state = request.app[STATE_KEY]
        key = _key_of(flavor, request)
        rec, _, _ = await intake(request, state, flavor.name, key or "")
        denied = _auth_error(flavor, key)
        if denied is not None:
            rec.outcome = "error"
            return denied
        rec.outcome = "ok"
        info = {"data": {"label": f"{(key or '')[:9]}...", "limit": None, "usage": 0.0, "is_free_tier": False,
                         "limit_remaining": None}}
        return web.Response(body=orjson.dumps(info), content_type="application/json")

    return key_info


def make_flavor_app(state: FakeState, flavor: Flavor) -> web.Application:
    """Any OpenAI-shaped fake: routes under ``flavor.prefix``."""
    return _make(state, flavor)


def _make(state: FakeState, flavor: Flavor) -> web.Application:
    app = web.Application()
    app[STATE_KEY] = state
    app.router.add_post(f"{flavor.prefix}/chat/completions", _chat_handler(flavor))
    if flavor.embeddings:
        app.router.add_post(f"{flavor.prefix}/embeddings", _embeddings_handler(flavor))
    app.router.add_get(f"{flavor.prefix}/models", _models_handler(flavor))
    if flavor.key_path is not None:
        app.router.add_get(f"{flavor.prefix}{flavor.key_path}", _key_handler(flavor))
    if flavor is OPENAI:
        app[RESPONSES_KEY] = {}
        create, retrieve, delete, input_items, cancel = _responses_handlers()
        app.router.add_post(f"{flavor.prefix}/responses", create)
        app.router.add_get(f"{flavor.prefix}/responses/{{response_id}}", retrieve)
        app.router.add_delete(f"{flavor.prefix}/responses/{{response_id}}", delete)
        app.router.add_get(f"{flavor.prefix}/responses/{{response_id}}/input_items", input_items)
        app.router.add_post(f"{flavor.prefix}/responses/{{response_id}}/cancel", cancel)
    return app


def make_openai_app(state: FakeState) -> web.Application:
    """Fake OpenAI: routes under ``/v1``."""
    return _make(state, OPENAI)


def make_qwen_app(state: FakeState) -> web.Application:
    """Fake Qwen DashScope compatible mode: routes under ``/compatible-mode/v1``."""
    return _make(state, QWEN)


# ---- the Responses API (OpenAI only) ----

# response id -> (creating key, response object, its input items)
RESPONSES_KEY = web.AppKey("fake_openai_responses", dict)
ITEM_PREFIXES = {"message": "msg", "function_call": "fc", "function_call_output": "fc",
                 "custom_tool_call": "ctc", "custom_tool_call_output": "ctc"}


def _input_texts(value: Any) -> list[str]:
    """Every text of a Responses ``input`` (a string, or items), function outputs and call arguments included."""
    if isinstance(value, str):
        return [value]
    out: list[str] = []
    for item in value if isinstance(value, list) else ():
        if not isinstance(item, dict):
            continue
        out.extend(_content_texts(item.get("content")))
        for name in ("arguments", "output"):
            if isinstance(item.get(name), str):
                out.append(item[name])
    return out


def _last_input_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    for item in reversed(value if isinstance(value, list) else []):
        if isinstance(item, dict) and item.get("type") == "function_call_output":
            return str(item.get("output") or "")
        if isinstance(item, dict) and item.get("role") == "user":
            return " ".join(_content_texts(item.get("content")))
    return ""


def stored_input_items(state: FakeState, body: dict[str, Any], stored: dict[str, Any]) -> list[dict[str, Any]]:
    """What OpenAI lists as a response's input items: the previous response's items and output, then the new
    input, each new item with an id (a string input is one user message of ``input_text``)."""
    previous = stored.get(body.get("previous_response_id") or "")
    items = [*previous[2], *previous[1]["output"]] if previous is not None else []
    value = body.get("input")
    given = [{"role": "user", "content": value}] if isinstance(value, str) else value or []
    for item in given:
        item = {"type": "message", **item} if isinstance(item, dict) and "role" in item else dict(item)
        if isinstance(item.get("content"), str):
            kind = "output_text" if item.get("role") == "assistant" else "input_text"
            item["content"] = [{"type": kind, "text": item["content"]}]
        if item["type"] == "message":
            item.setdefault("status", "completed")
        prefix = ITEM_PREFIXES.get(item["type"], "item")
        items.append({"id": f"{prefix}_{state.next_id():048x}", **item})
    return items


def list_page(items: list[dict[str, Any]], query: Mapping[str, str]) -> tuple[int, bytes]:
    limit_text, order, after = query.get("limit", "20"), query.get("order", "desc"), query.get("after")
    if not limit_text.isdigit() or not 1 <= int(limit_text) <= 100:
        return 400, error_body(OPENAI, 400, f"Invalid 'limit': integer below minimum value or above maximum value. "
                                            f"Expected a value between 1 and 100, but got {limit_text} instead.",
                               param="limit", code="integer_out_of_range")
    if order not in ("asc", "desc"):
        return 400, error_body(OPENAI, 400, f"Invalid value: '{order}'. Supported values are: 'asc' and 'desc'.",
                               param="order", code="invalid_value")
    ordered = items if order == "asc" else items[::-1]
    ids = [item["id"] for item in ordered]
    start = ids.index(after) + 1 if after in ids else 0
    data = ordered[start:start + int(limit_text)]
    return 200, orjson.dumps({"object": "list", "data": data, "first_id": data[0]["id"] if data else None,
                              "last_id": data[-1]["id"] if data else None,
                              "has_more": start + len(data) < len(ordered)})


def _responses_validate(body: Any, stored: dict[str, Any], key: str) -> tuple[int, bytes] | None:
    if not isinstance(body, dict) or not isinstance(body.get("model"), str):
        return 400, error_body(OPENAI, 400, "Missing required parameter: 'model'.", param="model",
                               code="missing_required_parameter")
    if "does-not-exist" in body["model"]:
        return 404, error_body(OPENAI, 404, f"The model `{body['model']}` does not exist or you do not have "
                                            "access to it.")
    previous = body.get("previous_response_id")
    if previous is not None and (previous not in stored or stored[previous][0] != key):
        return 400, error_body(OPENAI, 400, f"Previous response with id '{previous}' not found.",
                               param="previous_response_id", code="previous_response_not_found")
    return None


def response_object(body: dict[str, Any], rid: str, created: int, status: str, output: list[Any],
                    usage: dict[str, Any] | None) -> dict[str, Any]:
    """A response object with the fields (and key order) OpenAI sends; ``usage`` near the end."""
    return {
        "id": rid, "object": "response", "created_at": created, "status": status, "background": False,
        "error": None, "incomplete_details": None, "instructions": body.get("instructions"),
        "max_output_tokens": body.get("max_output_tokens"), "max_tool_calls": None, "model": body["model"],
        "output": output, "parallel_tool_calls": body.get("parallel_tool_calls", True),
        "previous_response_id": body.get("previous_response_id"), "prompt_cache_key": body.get("prompt_cache_key"),
        "reasoning": {"effort": None, "summary": None, **(body.get("reasoning") or {})},
        "safety_identifier": None, "service_tier": "default", "store": body.get("store", True),
        "temperature": 1.0, "text": {"format": {"type": "text"}, "verbosity": "medium"},
        "tool_choice": body.get("tool_choice", "auto"), "tools": body.get("tools", []), "top_logprobs": 0,
        "top_p": 1.0, "truncation": "disabled", "usage": usage, "user": None, "metadata": {},
    }


def responses_answer(state: FakeState, body: dict[str, Any], b: Behaviour) -> tuple[dict[str, Any], Usage,
                                                                                         list[bytes]]:
    """(the final response object, the usage it reports, every stream event in order)."""
    seq = state.next_id()
    rid = f"resp_{seq:048x}"
    created = int(time.time())
    calls = b.tool_calls
    text = b.answer_text(_last_input_text(body.get("input"))) if not calls or b.text is not None else ""
    args_json = [orjson.dumps(dict(c.arguments)).decode() for c in calls]
    texts = _input_texts(body.get("input"))
    if isinstance(body.get("instructions"), str):
        texts.append(body["instructions"])
    prompt = prompt_tokens(texts) + b.cached_tokens
    completion = completion_tokens(text, calls, args_json) + b.reasoning_tokens
    usage_json = {"input_tokens": prompt, "input_tokens_details": {"cached_tokens": b.cached_tokens},
                  "output_tokens": completion, "output_tokens_details": {"reasoning_tokens": b.reasoning_tokens},
                  "total_tokens": prompt + completion}
    events: list[dict[str, Any]] = []
    shell = response_object(body, rid, created, "in_progress", [], None)
    events.append({"type": "response.created", "response": shell})
    events.append({"type": "response.in_progress", "response": shell})
    output: list[Any] = []
    if text or not calls:
        mid = f"msg_{seq:048x}"
        item = {"id": mid, "type": "message", "status": "in_progress", "content": [], "role": "assistant"}
        events.append({"type": "response.output_item.added", "output_index": 0, "item": item})
        part = {"type": "output_text", "annotations": [], "logprobs": [], "text": ""}
        events.append({"type": "response.content_part.added", "item_id": mid, "output_index": 0,
                       "content_index": 0, "part": part})
        for piece in split_pieces(text, b.words_per_chunk):
            events.append({"type": "response.output_text.delta", "item_id": mid, "output_index": 0,
                           "content_index": 0, "delta": piece, "logprobs": [], "obfuscation": "fake"})
        events.append({"type": "response.output_text.done", "item_id": mid, "output_index": 0,
                       "content_index": 0, "text": text, "logprobs": []})
        done_part = {**part, "text": text}
        events.append({"type": "response.content_part.done", "item_id": mid, "output_index": 0,
                       "content_index": 0, "part": done_part})
        done = {**item, "status": "completed", "content": [done_part]}
        events.append({"type": "response.output_item.done", "output_index": 0, "item": done})
        output.append(done)
    for i, (c, args) in enumerate(zip(calls, args_json, strict=True)):
        index = len(output)
        fid = f"fc_{seq:046x}{i:02x}"
        item = {"id": fid, "type": "function_call", "status": "in_progress", "arguments": "",
                "call_id": c.id or f"call_fake{seq:06d}x{i}", "name": c.name}
        events.append({"type": "response.output_item.added", "output_index": index, "item": item})
        for frag in split_json_fragments(args):
            events.append({"type": "response.function_call_arguments.delta", "item_id": fid,
                           "output_index": index, "delta": frag, "obfuscation": "fake"})
        events.append({"type": "response.function_call_arguments.done", "item_id": fid, "output_index": index,
                       "arguments": args})
        done = {**item, "status": "completed", "arguments": args}
        events.append({"type": "response.output_item.done", "output_index": index, "item": done})
        output.append(done)
    status = "incomplete" if b.truncated else "completed"
    final = response_object(body, rid, created, status, output, usage_json if b.send_usage else None)
    if b.truncated:
        final["incomplete_details"] = {"reason": "max_output_tokens"}
    events.append({"type": f"response.{status}", "response": final})
    raw = [b"event: " + e["type"].encode() + b"\ndata: " + orjson.dumps({"type": e["type"], "sequence_number": n,
                                                                         **e}) + b"\n\n"
           for n, e in enumerate(events)]
    return final, Usage(prompt, completion), raw


def responses_error_event(message: str, sequence: int = 99) -> bytes:
    """An in-band error as OpenAI sends it on Responses streams (the error object nested)."""
    payload = {"type": "error", "sequence_number": sequence,
               "error": {"type": "server_error", "code": "server_error", "message": message, "param": None}}
    return b"event: error\ndata: " + orjson.dumps(payload) + b"\n\n"


def _responses_handlers() -> tuple[Any, Any, Any, Any, Any]:
    headers = _response_headers(OPENAI)

    async def create(request: web.Request) -> web.StreamResponse:
        state = request.app[STATE_KEY]
        stored = request.app[RESPONSES_KEY]
        key = _bearer(request)
        rec, body, parsed = await intake(request, state, OPENAI.name, key or "")
        denied = _auth_error(OPENAI, key)
        if denied is not None:
            rec.outcome = "error"
            return denied
        invalid = _responses_validate(body if parsed else None, stored, key or "")
        if invalid is not None:
            rec.outcome = "error"
            return _error_response(OPENAI, invalid[0], invalid[1])
        b = state.next_behaviour(OPENAI.name, key or "")
        ex = Exchange(request, state, rec, b)

        async def answer(ex: Exchange) -> web.StreamResponse:
            if b.error is not None:
                rec.outcome = "error"
                return _scripted_error(OPENAI, b.error)
            final, usage, events = responses_answer(state, body, b)
            rec.request_id = "req_" + final["id"].removeprefix("resp_")[:32]
            rec.usage = usage if b.send_usage else None
            if body.get("store", True) is not False:
                stored[final["id"]] = (key or "", final, stored_input_items(state, body, stored))
            hdrs = {**headers, "x-request-id": rec.request_id}
            if body.get("stream") is True:
                msg = b.fault.message if b.fault is not None else ""
                return await ex.stream(events, inband=responses_error_event(msg), headers=hdrs)
            # OpenAI answers non-streamed responses pretty-printed (two-space indent)
            return await ex.json(200, orjson.dumps(final, option=orjson.OPT_INDENT_2), hdrs)

        return await ex.run(answer)

    async def retrieve(request: web.Request) -> web.StreamResponse:
        state = request.app[STATE_KEY]
        key = _bearer(request)
        rec, _, _ = await intake(request, state, OPENAI.name, key or "")
        denied = _auth_error(OPENAI, key)
        if denied is not None:
            return denied
        rid = request.match_info["response_id"]
        found = request.app[RESPONSES_KEY].get(rid)
        if found is None or found[0] != key:  # a response lives in the project of the key that made it
            rec.outcome = "error"
            return _error_response(OPENAI, 404, error_body(OPENAI, 404, f"Response with id '{rid}' not found.",
                                                            param="response_id", code=None))
        rec.outcome = "ok"
        return web.Response(body=orjson.dumps(found[1], option=orjson.OPT_INDENT_2),
                            content_type="application/json", headers=headers)

    async def delete(request: web.Request) -> web.StreamResponse:
        state = request.app[STATE_KEY]
        key = _bearer(request)
        rec, _, _ = await intake(request, state, OPENAI.name, key or "")
        denied = _auth_error(OPENAI, key)
        if denied is not None:
            return denied
        rid = request.match_info["response_id"]
        stored = request.app[RESPONSES_KEY]
        if rid not in stored or stored[rid][0] != key:
            rec.outcome = "error"
            return _error_response(OPENAI, 404, error_body(OPENAI, 404, f"Response with id '{rid}' not found.",
                                                            param="response_id", code=None))
        del stored[rid]
        rec.outcome = "ok"
        return web.Response(body=orjson.dumps({"id": rid, "object": "response", "deleted": True}),
                            content_type="application/json", headers=headers)

    async def owned(request: web.Request) -> tuple[Any, web.Response | None]:
        """(the stored entry, None) for the key that made it, else (None, the answer: 401 or 404)."""
        state = request.app[STATE_KEY]
        key = _bearer(request)
        rec, _, _ = await intake(request, state, OPENAI.name, key or "")
        denied = _auth_error(OPENAI, key)
        if denied is not None:
            return None, denied
        rid = request.match_info["response_id"]
        found = request.app[RESPONSES_KEY].get(rid)
        if found is None or found[0] != key:
            rec.outcome = "error"
            return None, _error_response(OPENAI, 404, error_body(OPENAI, 404, f"Response with id '{rid}' not found.",
                                                                  param="response_id", code=None))
        rec.outcome = "ok"
        return found, None

    async def input_items(request: web.Request) -> web.StreamResponse:
        found, refused = await owned(request)
        if refused is not None:
            return refused
        status, body = list_page(found[2], request.query)
        if status != 200:
            return _error_response(OPENAI, status, body)
        return web.Response(body=body, content_type="application/json", headers=headers)

    async def cancel(request: web.Request) -> web.StreamResponse:
        _, refused = await owned(request)
        if refused is not None:
            return refused
        return _error_response(OPENAI, 400, error_body(OPENAI, 400, "Cannot cancel a synchronous response.",
                                                        param=None, code=None))

    return create, retrieve, delete, input_items, cancel
