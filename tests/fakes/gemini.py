"""Fake Google Gemini (generativelanguage v1beta): generate, stream, embed, list models.

Base URL ``http://HOST:P`` standalone. Routes: ``POST /v1beta/models/{model}:generateContent``,
``:streamGenerateContent`` (SSE only with ``?alt=sse``; without it one JSON array), ``:embedContent``,
``:batchEmbedContents``, ``:countTokens``; ``GET /v1beta/models``.

Wire details kept: auth by ``x-goog-api-key`` (or ``?key=``); missing: 403 PERMISSION_DENIED; a key containing
"invalid": 400 INVALID_ARGUMENT with reason API_KEY_INVALID, as real Gemini answers (set
``state.gemini_invalid_key_status = 401`` for UNAUTHENTICATED instead). Every SSE event is a whole
GenerateContentResponse, events end in ``\\r\\n\\r\\n``, there is NO ``[DONE]``: the stream ends when the
connection closes. Text streams incrementally; function calls arrive whole; ``finishReason`` and the full
``usageMetadata`` come on the last event (earlier events carry a partial usageMetadata, as Gemini does). A
function call ends with ``STOP``. Errors are ``{"error": {"code", "message", "status"}}``.
"""

from __future__ import annotations

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
    prompt_tokens,
    split_pieces,
)

STATE_KEY = web.AppKey("fake_gemini_state", FakeState)
LISTING_KEY = web.AppKey("fake_gemini_listing", bytes)
PROVIDER = "gemini"
CHAT_MODELS = ("gemini-2.5-flash", "gemini-2.5-pro", "gemini-2.0-flash")
EMBED_MODELS = ("text-embedding-004", "gemini-embedding-001")
STATUSES: dict[int, tuple[str, str]] = {
    400: ("INVALID_ARGUMENT", "Request contains an invalid argument."),
    401: ("UNAUTHENTICATED", "Request had invalid authentication credentials."),
    403: ("PERMISSION_DENIED", "The caller does not have permission"),
    404: ("NOT_FOUND", "Requested entity was not found."),
    429: ("RESOURCE_EXHAUSTED", "Resource has been exhausted (e.g. check quota)."),
    500: (
        "INTERNAL",
        "An internal error has occurred. Please retry or report in https://developers.generativeai.google/guide/troubleshooting",
    ),
    503: ("UNAVAILABLE", "The model is overloaded. Please try again later."),
    504: ("DEADLINE_EXCEEDED", "Deadline expired before operation could complete."),
}
JSON_TYPE = "application/json; charset=UTF-8"
SSE_TYPE = "text/event-stream"
SEP = b"\r\n\r\n"
QUOTA_METRIC = "generativelanguage.googleapis.com/generate_content_free_tier_requests"


def error_body(
    status: int,
    message: str | None = None,
    status_name: str | None = None,
    details: list[dict[str, Any]] | None = None,
) -> bytes:
    name, msg = STATUSES.get(status, STATUSES[500 if status >= 500 else 400])
    err: dict[str, Any] = {"code": status, "message": message or msg, "status": status_name or name}
    if details:
        err["details"] = details
    return orjson.dumps({"error": err})


def _error_response(status: int, body: bytes, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(status=status, body=body, headers={"Content-Type": JSON_TYPE, **(headers or {})})


def _scripted_error(err: HttpError) -> web.Response:
    headers = dict(err.headers)
    details: list[dict[str, Any]] | None = None
    if err.status == 429:
        details = [
            {
                "@type": "type.googleapis.com/google.rpc.QuotaFailure",
                "violations": [
                    {
                        "quotaMetric": QUOTA_METRIC,
                        "quotaId": "GenerateRequestsPerMinutePerProjectPerModel-FreeTier",
                    }
                ],
            },
            {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": f"{err.retry_after or '1'}s"},
        ]
    if err.retry_after is not None:
        headers["retry-after"] = err.retry_after
    body = err.body if err.body is not None else error_body(err.status, err.message, err.error_type, details)
    return _error_response(err.status, body, headers)


def _auth_error(state: FakeState, key: str | None) -> web.Response | None:
    if key is None:
        msg = (
            "Method doesn't allow unregistered callers (callers without established identity). Please use "
            "API Key or other form of API consumer identity to call this API."
        )
        return _error_response(403, error_body(403, msg))
    if "invalid" in key:
        status = state.gemini_invalid_key_status
        info = {
            "@type": "type.googleapis.com/google.rpc.ErrorInfo",
            "reason": "API_KEY_INVALID",
            "domain": "googleapis.com",
            "metadata": {"service": "generativelanguage.googleapis.com"},
        }
        return _error_response(
            status, error_body(status, "API key not valid. Please pass a valid API key.", details=[info])
        )
    return None


# ---- reading the request ----


def _part_texts(parts: Any) -> list[str]:
    out: list[str] = []
    for p in parts if isinstance(parts, list) else ():
        if not isinstance(p, dict):
            continue
        if isinstance(p.get("text"), str):
            out.append(p["text"])
        elif isinstance(p.get("functionCall"), dict):
            out.append(orjson.dumps(p["functionCall"].get("args", {})).decode())
        elif isinstance(p.get("functionResponse"), dict):
            out.append(orjson.dumps(p["functionResponse"].get("response", {})).decode())
    return out


def prompt_texts(body: dict[str, Any]) -> list[str]:
    out = _part_texts((body.get("systemInstruction") or {}).get("parts"))
    for c in body["contents"]:
        out.extend(_part_texts(c.get("parts")))
    return out


def last_user_text(contents: list[Any]) -> str:
    for c in reversed(contents):
        if c.get("role", "user") == "user":
            return " ".join(_part_texts(c.get("parts")))
    return ""


def _validate(model: str, body: Any) -> tuple[int, bytes] | None:
    if not isinstance(body, dict):
        return 400, error_body(400, "Invalid JSON payload received.")
    contents = body.get("contents")
    if not isinstance(contents, list) or not contents:
        return 400, error_body(400, "* GenerateContentRequest.contents: contents is not specified\n")
    for c in contents:
        if not isinstance(c, dict) or c.get("role", "user") not in ("user", "model"):
            return 400, error_body(400, "Please use a valid role: user, model.")
        if not isinstance(c.get("parts"), list) or not c["parts"]:
            return 400, error_body(
                400, "* GenerateContentRequest.contents.parts: contents.parts must not be empty.\n"
            )
    if "does-not-exist" in model:
        return 404, error_body(
            404,
            f"models/{model} is not found for API version v1beta, or is not supported "
            "for generateContent. Call ListModels to see the list of available models and "
            "their supported methods.",
        )
    return None


# ---- building the answer ----


@dataclass(frozen=True, slots=True)
class Answer:
    model: str
    response_id: str
    text: str
    calls: tuple[ToolCall, ...]
    finish: str
    prompt: int  # promptTokenCount (cached included)
    candidates: int
    thoughts: int
    cached: int

    @property
    def usage(self) -> Usage:
        return Usage(self.prompt, self.candidates + self.thoughts)

    def usage_json(self, final: bool) -> dict[str, Any]:
        u: dict[str, Any] = {"promptTokenCount": self.prompt}
        if final:
            u["candidatesTokenCount"] = self.candidates
        u["totalTokenCount"] = self.prompt + (self.candidates + self.thoughts if final else 0)
        if self.cached:
            u["cachedContentTokenCount"] = self.cached
        u["promptTokensDetails"] = [{"modality": "TEXT", "tokenCount": self.prompt}]
        if final and self.thoughts:
            u["thoughtsTokenCount"] = self.thoughts
        return u


def build_answer(state: FakeState, model: str, body: dict[str, Any], b: Behaviour) -> Answer:
    seq = state.next_id()
    calls = b.tool_calls
    answer = b.answer_text(last_user_text(body["contents"])) if not calls or b.text is not None else ""
    args_json = [orjson.dumps(dict(c.arguments)).decode() for c in calls]
    return Answer(
        model=model,
        response_id=f"fakeResp{seq:012d}",
        text=answer,
        calls=calls,
        finish="MAX_TOKENS" if b.truncated else "STOP",
        prompt=prompt_tokens(prompt_texts(body)) + b.cached_tokens,
        candidates=completion_tokens(answer, calls, args_json),
        thoughts=b.reasoning_tokens,
        cached=b.cached_tokens,
    )


def _response(a: Answer, parts: list[dict[str, Any]], final: bool, send_usage: bool) -> dict[str, Any]:
    candidate: dict[str, Any] = {"content": {"parts": parts, "role": "model"}}
    if final:
        candidate["finishReason"] = a.finish
    candidate["index"] = 0
    out: dict[str, Any] = {"candidates": [candidate]}
    if send_usage:
        out["usageMetadata"] = a.usage_json(final)
    out["modelVersion"] = a.model
    out["responseId"] = a.response_id
    return out


def _call_parts(a: Answer) -> list[dict[str, Any]]:
    return [{"functionCall": {"name": c.name, "args": dict(c.arguments)}} for c in a.calls]


def response_body(a: Answer, send_usage: bool) -> bytes:
    parts = ([{"text": a.text}] if a.text else []) + _call_parts(a)
    return orjson.dumps(_response(a, parts, True, send_usage))


def stream_objects(a: Answer, b: Behaviour) -> list[bytes]:
    """Each streamed GenerateContentResponse as JSON."""
    pieces = split_pieces(a.text, b.words_per_chunk) if a.text else []
    out: list[bytes] = []
    for i, piece in enumerate(pieces):
        final = i == len(pieces) - 1 and not a.calls
        out.append(orjson.dumps(_response(a, [{"text": piece}], final, b.send_usage)))
    if a.calls or not pieces:
        out.append(orjson.dumps(_response(a, _call_parts(a) or [{"text": ""}], True, b.send_usage)))
    return out


def inband_error_event(message: str) -> bytes:
    return b"data: " + error_body(503, message or None) + SEP


# ---- handlers ----


def _key(request: web.Request) -> str | None:
    return request.headers.get("x-goog-api-key") or request.query.get("key") or None


async def model_action(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE_KEY]
    key = _key(request)
    rec, body, parsed = await intake(request, state, PROVIDER, key or "")
    model, _, action = request.match_info["name"].partition(":")
    if action == "countTokens" and isinstance(body, dict) and isinstance(body.get("generateContentRequest"), dict):
        body = body["generateContentRequest"]  # the real API takes either form; this one counts system and tools
    refused = _auth_error(state, key)
    if refused is None and action not in ACTIONS:
        refused = _error_response(404, error_body(404, f"Unknown method {action!r}"))
    if refused is None and action in ("generateContent", "streamGenerateContent", "countTokens"):
        invalid = _validate(model, body if parsed else None)
        if invalid is not None:
            refused = _error_response(*invalid)
    if refused is not None:
        rec.outcome = "error"
        return refused
    if action == "countTokens":
        rec.outcome = "ok"
        count = orjson.dumps({"totalTokens": prompt_tokens(prompt_texts(body))})
        return web.Response(body=count, headers={"Content-Type": JSON_TYPE})
    b = state.next_behaviour(PROVIDER, key or "")
    return await Exchange(request, state, rec, b).run(lambda ex: ACTIONS[action](ex, model, body))


async def _generate(ex: Exchange, model: str, body: Any) -> web.StreamResponse:
    b, rec = ex.behaviour, ex.rec
    if b.error is not None:
        rec.outcome = "error"
        return _scripted_error(b.error)
    a = build_answer(ex.state, model, body, b)
    rec.usage = a.usage if b.send_usage else None
    rec.request_id = a.response_id
    return await ex.json(200, response_body(a, b.send_usage), {"Content-Type": JSON_TYPE})


async def _stream(ex: Exchange, model: str, body: Any) -> web.StreamResponse:
    b, rec = ex.behaviour, ex.rec
    if b.error is not None:
        rec.outcome = "error"
        return _scripted_error(b.error)
    a = build_answer(ex.state, model, body, b)
    rec.usage = a.usage if b.send_usage else None
    rec.request_id = a.response_id
    objects = stream_objects(a, b)
    if ex.request.query.get("alt") != "sse":
        return await ex.json(200, b"[" + b",\r\n".join(objects) + b"]", {"Content-Type": JSON_TYPE})
    msg = b.fault.message if b.fault is not None else ""
    events = [b"data: " + o + SEP for o in objects]
    return await ex.stream(events, inband=inband_error_event(msg), content_type=SSE_TYPE)


def _embed_one(request: dict[str, Any]) -> tuple[list[float], int]:
    texts = _part_texts((request.get("content") or {}).get("parts"))
    dims = int(request.get("outputDimensionality") or EMBEDDING_DIMENSIONS)
    return embedding_vector(" ".join(texts), dims), sum(len(t.split()) for t in texts)


async def _embed(ex: Exchange, model: str, body: Any) -> web.StreamResponse:
    if ex.behaviour.error is not None:
        ex.rec.outcome = "error"
        return _scripted_error(ex.behaviour.error)
    if not isinstance(body, dict) or not isinstance(body.get("content"), dict):
        ex.rec.outcome = "error"
        return _error_response(
            400, error_body(400, "* EmbedContentRequest.content: content is not specified\n")
        )
    vec, tokens = _embed_one(body)
    ex.rec.usage = Usage(tokens, 0)
    return await ex.json(200, orjson.dumps({"embedding": {"values": vec}}), {"Content-Type": JSON_TYPE})


async def _batch_embed(ex: Exchange, model: str, body: Any) -> web.StreamResponse:
    if ex.behaviour.error is not None:
        ex.rec.outcome = "error"
        return _scripted_error(ex.behaviour.error)
    requests = body.get("requests") if isinstance(body, dict) else None
    if not isinstance(requests, list) or not requests:
        ex.rec.outcome = "error"
        return _error_response(
            400, error_body(400, "* BatchEmbedContentsRequest.requests: requests is not specified\n")
        )
    embedded = [_embed_one(r if isinstance(r, dict) else {}) for r in requests]
    ex.rec.usage = Usage(sum(t for _, t in embedded), 0)
    out = {"embeddings": [{"values": v} for v, _ in embedded]}
    return await ex.json(200, orjson.dumps(out), {"Content-Type": JSON_TYPE})


ACTIONS = {
    "generateContent": _generate,
    "streamGenerateContent": _stream,
    "embedContent": _embed,
    "batchEmbedContents": _batch_embed,
    "countTokens": _generate,  # answered before dispatch; listed so the action is known
}


async def list_models(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE_KEY]
    key = _key(request)
    rec, _, _ = await intake(request, state, PROVIDER, key or "")
    refused = _auth_error(state, key)
    if refused is not None:
        rec.outcome = "error"
        return refused
    b = state.next_behaviour(PROVIDER, key or "")
    if b.error is not None:
        rec.outcome = "error"
        return _scripted_error(b.error)
    rec.outcome = "ok"
    return web.Response(body=request.app[LISTING_KEY], headers={"Content-Type": JSON_TYPE})


def _listing() -> bytes:
    def entry(m: str, methods: list[str], out_limit: int) -> dict[str, Any]:
        return {
            "name": f"models/{m}",
            "version": "001",
            "displayName": m,
            "description": f"Fake {m}",
            "inputTokenLimit": 1048576,
            "outputTokenLimit": out_limit,
            "supportedGenerationMethods": methods,
        }

    chat = [entry(m, ["generateContent", "countTokens"], 65536) for m in CHAT_MODELS]
    embed = [entry(m, ["embedContent", "batchEmbedContents"], 1) for m in EMBED_MODELS]
    return orjson.dumps({"models": chat + embed})


def make_gemini_app(state: FakeState) -> web.Application:
    """Fake Gemini: routes under ``/v1beta/models``."""
    app = web.Application()
    app[STATE_KEY] = state
    app[LISTING_KEY] = _listing()
    app.router.add_post("/v1beta/models/{name}", model_action)
    app.router.add_get("/v1beta/models", list_models)
    return app
