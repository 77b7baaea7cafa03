"""Fake DeepSeek, OpenRouter, Mistral, Groq and xAI: OpenAI-shaped, each with what its real API does differently
(docs/providers.md has the sources). Served by the ``openai_like`` machinery with a ``Flavor`` each.

- DeepSeek (``/v1``... at the root: ``{root}/chat/completions``): usage adds ``prompt_cache_hit_tokens`` /
  ``prompt_cache_miss_tokens``; errors OpenAI-shaped with ``code: "invalid_request_error"``; in thinking mode
  (``deepseek-reasoner``) an assistant tool-call turn without ``reasoning_content`` is a 400. No embeddings.
- OpenRouter (``/api/v1``): usage adds ``cost`` (USD), ``is_byok``, ``cost_details``; errors are
  ``{"error": {"message", "code": <status>}}``; ``GET /models`` needs no key, ``GET /key`` does. No embeddings
  here (OpenRouter routes chat).
- Mistral (``/v1``): usage comes on the last content chunk of every stream; ``stream_options``,
  ``max_completion_tokens`` and a message's ``reasoning_content`` are 422 ``extra_forbidden``; tool-call ids are
  9 letters and digits and any other id in the history is a 400; errors are top-level
  ``{"object": "error", "message", "type", "param", "code"}``; 401 is ``{"message": "Unauthorized"}``.
- Groq (``/openai/v1``): the finish chunk carries ``x_groq: {id, usage}``; usage has ``queue_time`` and friends.
- xAI (``/v1``): ``completion_tokens`` leaves reasoning out (``total`` includes it); usage has
  ``cost_in_usd_ticks``; errors are ``{"code", "error"}``; a wrong key is a 400.
"""

from __future__ import annotations

import re
from typing import Any

import orjson
from aiohttp import web

from tests.fakes.openai_like import Answer, Flavor, make_flavor_app
from tests.fakes.scenario import Behaviour, FakeState

MISTRAL_TOOL_ID = re.compile(r"[A-Za-z0-9]{9}")
ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
FAKE_PRICE_USD_PER_TOKEN = 0.000002  # what the fake OpenRouter and xAI say a token cost


def _deepseek_usage(usage: dict[str, Any], b: Behaviour) -> dict[str, Any]:
    return {**usage, "prompt_cache_hit_tokens": b.cached_tokens,
            "prompt_cache_miss_tokens": usage["prompt_tokens"] - b.cached_tokens,
            "completion_tokens_details": {"reasoning_tokens": b.reasoning_tokens}}


def _deepseek_check(body: dict[str, Any]) -> tuple[int, bytes] | None:
    if not str(body.get("model", "")).startswith("deepseek-reasoner"):
        return None
    for m in body["messages"]:
        if isinstance(m, dict) and m.get("role") == "assistant" and m.get("tool_calls") \
                and not isinstance(m.get("reasoning_content"), str):
            return 400, orjson.dumps({"error": {
                "message": "The `reasoning_content` in the thinking mode must be passed back to the API.",
                "type": "invalid_request_error", "param": None, "code": "invalid_request_error"}})
    return None


DEEPSEEK = Flavor(
    name="deepseek", prefix="", models=("deepseek-chat", "deepseek-reasoner", "deepseek-v4-flash"),
    stream_only_prefixes=(),
    errors={
        400: ("invalid_request_error", "invalid_request_error", "Invalid request."),
        401: ("authentication_error", "invalid_request_error", "Authentication Fails, Your api key is invalid"),
        402: ("unknown_error", "invalid_request_error", "Insufficient Balance"),
        404: ("invalid_request_error", "invalid_request_error", "Model Not Exist"),
        422: ("invalid_request_error", "invalid_request_error", "Invalid Parameters"),
        429: ("rate_limit_error", "rate_limit_error", "Rate Limit Reached"),
        500: ("api_error", "api_error", "Server Error"),
        503: ("api_error", "api_error", "Server Overloaded"),
    },
    usage_fields=_deepseek_usage, check=_deepseek_check, embeddings=False)


def _openrouter_usage(usage: dict[str, Any], b: Behaviour) -> dict[str, Any]:
    cost = round(usage["total_tokens"] * FAKE_PRICE_USD_PER_TOKEN, 12)
    return {**usage, "cost": cost, "is_byok": False, "cost_details": {"upstream_inference_cost": None},
            "completion_tokens_details": {"reasoning_tokens": b.reasoning_tokens, "image_tokens": 0}}


OPENROUTER = Flavor(
    name="openrouter", prefix="/api/v1",
    models=("deepseek/deepseek-v4-flash", "openai/gpt-6.1-terra", "anthropic/claude-sonnet-5.5"),
    stream_only_prefixes=(),
    errors={
        400: ("invalid_request_error", None, "Invalid request"),
        401: ("authentication_error", None, "No auth credentials found"),
        402: ("insufficient_credits", None, "Insufficient credits. Add more using https://openrouter.ai/credits"),
        404: ("not_found", None, "No endpoints found for this model."),
        429: ("rate_limited", None, "Rate limit exceeded"),
        500: ("server_error", None, "Internal Server Error"),
        502: ("bad_gateway", None, "Provider returned error"),
        503: ("unavailable", None, "No available model provider that meets your routing requirements"),
    },
    error_format="openrouter", usage_fields=_openrouter_usage, embeddings=False, key_path="/key")


def mistral_id(seq: int, index: int) -> str:
    n = seq * 1_000_003 + index * 7919 + 123_456_789
    out = []
    for _ in range(9):
        n, r = divmod(n, len(ALNUM))
        out.append(ALNUM[r])
    return "".join(out)


def _extra_forbidden(where: list[Any], value: Any) -> tuple[int, bytes]:
    return 422, orjson.dumps({"object": "error", "message": {"detail": [
        {"type": "extra_forbidden", "loc": ["body", *where], "msg": "Extra inputs are not permitted",
         "input": value}]}, "type": "invalid_request_error", "param": None, "code": None})


def _mistral_check(body: dict[str, Any]) -> tuple[int, bytes] | None:
    for name in ("stream_options", "max_completion_tokens"):
        if name in body:
            return _extra_forbidden([name], body[name])
    for i, m in enumerate(body["messages"]):
        if not isinstance(m, dict):
            continue
        if "reasoning_content" in m:
            return _extra_forbidden(["messages", i, m.get("role"), "reasoning_content"], m["reasoning_content"])
        ids = [c.get("id") for c in m.get("tool_calls") or () if isinstance(c, dict)]
        if m.get("role") == "tool":
            ids.append(m.get("tool_call_id"))
        for call_id in ids:
            if not (isinstance(call_id, str) and MISTRAL_TOOL_ID.fullmatch(call_id)):
                return 400, orjson.dumps({
                    "object": "error", "type": "invalid_request_error", "param": None, "code": None,
                    "message": f"Tool call id was {call_id} but must be a-z, A-Z, 0-9, with a length of 9."})
    return None


MISTRAL = Flavor(
    name="mistral", prefix="/v1",
    models=("mistral-large-latest", "mistral-small-latest", "codestral-latest", "mistral-embed"),
    stream_only_prefixes=(),
    errors={
        400: ("invalid_request_error", None, "Invalid request"),
        401: ("invalid_request_error", None, "Unauthorized"),
        404: ("invalid_request_error", None, "Invalid model"),
        429: ("rate_limited", "1300", "Requests rate limit exceeded"),
        500: ("internal_server_error", None, "Internal server error"),
        503: ("service_unavailable", None, "Service unavailable"),
    },
    error_format="mistral", tool_id=mistral_id, check=_mistral_check, usage_on_finish=True,
    bad_key=lambda key: (401, orjson.dumps({"message": "Unauthorized", "request_id": "fake-mistral-request"})))


def _groq_usage(usage: dict[str, Any], b: Behaviour) -> dict[str, Any]:
    return {"queue_time": 0.02, **usage, "prompt_time": 0.001, "completion_time": 0.004, "total_time": 0.005}


def _x_groq(a: Answer) -> dict[str, Any]:
    return {"x_groq": {"id": "req_fake" + a.id[-8:], "usage": a.usage_json}}


GROQ = Flavor(
    name="groq", prefix="/openai/v1",
    models=("llama-3.3-70b-versatile", "openai/gpt-oss-120b", "qwen/qwen3-32b"),
    stream_only_prefixes=(),
    errors={
        400: ("invalid_request_error", None, "Invalid request"),
        401: ("invalid_request_error", "invalid_api_key", "Invalid API Key"),
        404: ("invalid_request_error", "model_not_found", "The model does not exist or you do not have access "
                                                          "to it."),
        429: ("tokens", "rate_limit_exceeded", "Rate limit reached for model. Please try again in 1s."),
        500: ("internal_server_error", None, "Internal Server Error"),
        503: ("internal_server_error", "service_unavailable", "Service Unavailable"),
    },
    usage_fields=_groq_usage, finish_extra=_x_groq, embeddings=False)


def _xai_usage(usage: dict[str, Any], b: Behaviour) -> dict[str, Any]:
    # xAI: completion_tokens is the visible answer only; reasoning is beside it, and total counts both.
    out = {**usage, "completion_tokens": usage["completion_tokens"] - b.reasoning_tokens,
           "prompt_tokens_details": {"text_tokens": usage["prompt_tokens"], "audio_tokens": 0, "image_tokens": 0,
                                     "cached_tokens": b.cached_tokens},
           "completion_tokens_details": {"reasoning_tokens": b.reasoning_tokens, "audio_tokens": 0,
                                         "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0},
           "num_sources_used": 0}
    out["cost_in_usd_ticks"] = int(usage["total_tokens"] * FAKE_PRICE_USD_PER_TOKEN * 10**10)
    return out


XAI = Flavor(
    name="xai", prefix="/v1", models=("grok-4.7", "grok-3-mini", "grok-code-fast-1"), stream_only_prefixes=(),
    errors={
        400: ("Client specified an invalid argument", None, "Invalid request"),
        401: ("Unauthenticated", None, "No API key provided"),
        404: ("Some requested entity was not found", None, "The model does not exist or your team does not "
                                                           "have access to it."),
        429: ("Too many requests", None, "Your team has exhausted its rate limit."),
        500: ("Internal error", None, "Internal error"),
        503: ("Service unavailable", None, "Service unavailable"),
    },
    error_format="xai", usage_fields=_xai_usage, embeddings=False,
    bad_key=lambda key: (400, orjson.dumps({
        "code": "Client specified an invalid argument",
        "error": f"Incorrect API key provided: {key[:2]}***{key[-2:]}. You can obtain an API key from "
                 "https://console.x.ai."})))

FLAVORS = {f.name: f for f in (DEEPSEEK, OPENROUTER, MISTRAL, GROQ, XAI)}


def make_compat_app(state: FakeState, name: str) -> web.Application:
    """The fake for one of ``FLAVORS`` (deepseek, openrouter, mistral, groq, xai)."""
    return make_flavor_app(state, FLAVORS[name])
