"""What DeepSeek, OpenRouter, Mistral, Groq and xAI do differently from OpenAI, read and written right (offline,
against bytes in each provider's real format: docs/providers.md has the sources)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from tests.providers.provider_testkit import reassemble
from webrana_proxy.providers import build_registry
from webrana_proxy.providers.base import Usage
from webrana_proxy.providers.catalogue import load_catalogue
from webrana_proxy.providers.mistral import mistral_tool_id
from webrana_proxy.providers.pricebook import PriceBook

REGISTRY = build_registry()


def sse(*chunks: Any) -> bytes:
    return b"".join(b"data: " + orjson.dumps(c) + b"\n\n" for c in chunks) + b"data: [DONE]\n\n"


def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> dict[str, Any]:
    return {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}], **extra}


def relay(provider: str, stream: bytes, include_usage: bool) -> tuple[bytes, Usage | None]:
    translator = REGISTRY.get(provider).stream_translator("m", include_usage)
    out = [piece for i in range(0, len(stream), 7) for piece in translator.feed(stream[i:i + 7])]
    out += translator.finish()
    return b"".join(out), translator.usage


def sent(provider: str, body: dict[str, Any], model: str) -> dict[str, Any]:
    request = REGISTRY.get(provider).chat_request(body, model, "k", "https://up.example/v1")
    assert request.body is not None
    parsed: dict[str, Any] = orjson.loads(request.body)
    return parsed


# ---- DeepSeek ----

DEEPSEEK_USAGE = {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120,
                  "prompt_cache_hit_tokens": 64, "prompt_cache_miss_tokens": 36,
                  "completion_tokens_details": {"reasoning_tokens": 12}}


def test_deepseek_cache_hits_and_reasoning_are_counted() -> None:
    answer = {"id": "x", "object": "chat.completion", "choices": [{"index": 0, "finish_reason": "stop", "message": {
        "role": "assistant", "content": "hai", "reasoning_content": "berpikir dulu"}}], "usage": DEEPSEEK_USAGE}
    usage = REGISTRY.get("deepseek").chat_response(orjson.dumps(answer), "deepseek-reasoner").usage
    assert usage is not None
    assert (usage.prompt_tokens, usage.cached_tokens, usage.completion_tokens, usage.reasoning_tokens) == \
        (100, 64, 20, 12)
    stream = sse(chunk({"role": "assistant", "content": None, "reasoning_content": "berpikir"}),
                 chunk({"content": "hai"}), chunk({}, "stop"),
                 {"id": "c1", "object": "chat.completion.chunk", "choices": [], "usage": DEEPSEEK_USAGE})
    out, streamed = relay("deepseek", stream, include_usage=False)
    assert streamed is not None and streamed.cached_tokens == 64
    got = reassemble(out)
    assert (got.content, got.reasoning, got.usage) == ("hai", "berpikir", None)  # reasoning relayed as it came


def test_deepseek_thinking_tool_turns_get_their_reasoning_back() -> None:
    history = [{"role": "user", "content": "cuaca?"},
               {"role": "assistant", "content": None, "tool_calls": [
                   {"id": "call_1", "type": "function", "function": {"name": "w", "arguments": "{}"}}]},
               {"role": "tool", "tool_call_id": "call_1", "content": "cerah"}]
    body = {"model": "deepseek-reasoner", "messages": history}
    assert sent("deepseek", body, "deepseek-reasoner")["messages"][1]["reasoning_content"] == ""
    assert history[1].get("reasoning_content") is None  # the client's body is not mutated
    kept = [*history[:1], {**history[1], "reasoning_content": "pikir"}, history[2]]
    assert sent("deepseek", {**body, "messages": kept}, "deepseek-reasoner")["messages"][1]["reasoning_content"] \
        == "pikir"
    plain = sent("deepseek", {"model": "deepseek-chat", "messages": history}, "deepseek-chat")
    assert "reasoning_content" not in plain["messages"][1]  # not thinking: the body goes as it came


# ---- OpenRouter ----

def test_openrouter_cost_becomes_the_provider_cost_the_price_book_prefers() -> None:
    usage_json = {"prompt_tokens": 194, "completion_tokens": 2, "total_tokens": 196, "cost": 0.000142,
                  "is_byok": False, "cost_details": {"upstream_inference_cost": None},
                  "prompt_tokens_details": {"cached_tokens": 0}, "completion_tokens_details": {"reasoning_tokens": 0}}
    answer = {"id": "gen-1", "object": "chat.completion", "choices": [], "usage": usage_json}
    usage = REGISTRY.get("openrouter").chat_response(orjson.dumps(answer), "deepseek/deepseek-v4-flash").usage
    assert usage is not None and usage.provider_cost_usd_nano == 142_000
    book = PriceBook(load_catalogue())
    priced, fallback = book.price("openrouter", "deepseek/deepseek-v4-flash", usage, 16_500,
                                  datetime(2026, 12, 6, tzinfo=UTC))
    assert (priced.source, priced.cost_usd_nano, fallback) == ("provider", 142_000, False)
    assert priced.cost_idr_micro == 142_000 * 16_500 // 1000  # 2.343 rupiah
    byok = {**usage_json, "is_byok": True, "cost": 0.00001, "cost_details": {"upstream_inference_cost": 0.0002}}
    _, streamed = relay("openrouter", sse(chunk({"content": "ok"}, "stop"),
                                          {"id": "c1", "choices": [], "usage": byok}), include_usage=True)
    assert streamed is not None and streamed.provider_cost_usd_nano == 210_000  # fee + the vendor's charge


def test_openrouter_key_test_uses_the_authenticated_key_endpoint() -> None:
    request = REGISTRY.get("openrouter").models_request("sk-or-v1-x", "https://openrouter.ai/api/v1")
    assert (request.method, request.url) == ("GET", "https://openrouter.ai/api/v1/key")
    assert request.headers["Authorization"] == "Bearer sk-or-v1-x"


# ---- Mistral ----

def test_mistral_tool_ids_are_mapped_to_its_nine_characters_consistently() -> None:
    assert mistral_tool_id("D681PevKs") == "D681PevKs"  # its own ids pass unchanged
    mapped = mistral_tool_id("call_abc123")
    assert len(mapped) == 9 and mapped.isalnum() and mapped.isascii()
    assert mapped == mistral_tool_id("call_abc123") != mistral_tool_id("toolu_abc123")
    history = [{"role": "user", "content": "cuaca?"},
               {"role": "assistant", "content": None, "reasoning_content": "hmm", "tool_calls": [
                   {"id": "call_abc123", "type": "function", "function": {"name": "w", "arguments": "{}"}},
                   {"id": "D681PevKs", "type": "function", "function": {"name": "w", "arguments": "{}"}}]},
               {"role": "tool", "tool_call_id": "call_abc123", "content": "cerah"},
               {"role": "tool", "tool_call_id": "D681PevKs", "content": "hujan"}]
    out = sent("mistral", {"model": "mistral-large-latest", "messages": history, "stream": True,
                           "stream_options": {"include_usage": True}, "max_completion_tokens": 50},
               "mistral-large-latest")
    assert [c["id"] for c in out["messages"][1]["tool_calls"]] == [mapped, "D681PevKs"]
    assert [m["tool_call_id"] for m in out["messages"][2:]] == [mapped, "D681PevKs"]
    assert "reasoning_content" not in out["messages"][1]
    assert "stream_options" not in out and "max_completion_tokens" not in out and out["max_tokens"] == 50
    assert history[2]["tool_call_id"] == "call_abc123"  # the client's body is not mutated


def test_mistral_plain_request_goes_as_it_came() -> None:
    body = {"model": "mistral-small-latest", "messages": [{"role": "user", "content": "hai"}], "max_tokens": 9}
    assert sent("mistral", body, "mistral-small-latest") == body


@pytest.mark.parametrize("include_usage", [True, False])
def test_mistral_usage_on_the_last_chunk(include_usage: bool) -> None:
    usage_json = {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}
    stream = sse(chunk({"role": "assistant", "content": "ha"}), chunk({"content": "i"}),
                 chunk({"content": ""}, "stop", usage=usage_json))
    out, usage = relay("mistral", stream, include_usage)
    assert usage is not None and (usage.prompt_tokens, usage.completion_tokens) == (5, 2)
    got = reassemble(out)
    assert got.content == "hai" and got.finish_reason == "stop" and got.done
    assert got.usage == (usage_json if include_usage else None)  # not asked for: not shown


@pytest.mark.parametrize(("status", "body", "message", "code"), [
    (422, {"object": "error", "message": {"detail": [{"type": "extra_forbidden", "loc": ["body", "foo"],
                                                      "msg": "Extra inputs are not permitted", "input": 1}]},
           "type": "invalid_request_error", "param": None, "code": None}, "foo: Extra inputs are not permitted", None),
    (400, {"object": "error", "message": "Tool call id was x but must be a-z, A-Z, 0-9, with a length of 9.",
           "type": "invalid_request_error", "param": None, "code": "3280"}, "Tool call id was x", "3280"),
    (401, {"message": "Unauthorized", "request_id": "r1"}, "Unauthorized", None),
])
def test_mistral_errors(status: int, body: dict[str, Any], message: str, code: str | None) -> None:
    err = REGISTRY.get("mistral").upstream_error(status, orjson.dumps(body), {})
    assert err.status == status and message in err.message and err.code == (code or "upstream_error")


# ---- Groq ----

def test_groq_usage_from_x_groq_on_the_finish_chunk() -> None:
    usage_json = {"queue_time": 0.02, "prompt_tokens": 23, "prompt_time": 0.006, "completion_tokens": 19,
                  "completion_time": 0.02, "total_tokens": 42, "total_time": 0.03}
    stream = sse(chunk({"role": "assistant", "content": "hai"}),
                 chunk({}, "stop", x_groq={"id": "req_01", "usage": usage_json}))
    out, usage = relay("groq", stream, include_usage=False)
    assert usage is not None and (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (23, 19, 42)
    assert reassemble(out).content == "hai"


# ---- xAI ----

def test_xai_reasoning_is_output_and_its_reported_cost_wins() -> None:
    usage_json = {"prompt_tokens": 10120, "completion_tokens": 1499, "total_tokens": 14428,
                  "prompt_tokens_details": {"cached_tokens": 128},
                  "completion_tokens_details": {"reasoning_tokens": 2809}, "cost_in_usd_ticks": 232856000}
    answer = {"id": "x", "object": "chat.completion", "choices": [], "usage": usage_json}
    usage = REGISTRY.get("xai").chat_response(orjson.dumps(answer), "grok-4.3").usage
    assert usage is not None
    assert (usage.prompt_tokens, usage.completion_tokens, usage.reasoning_tokens, usage.cached_tokens) == \
        (10120, 1499 + 2809, 2809, 128)
    assert usage.provider_cost_usd_nano == 23_285_600  # $0.0232856
    openai_style = {**usage_json, "completion_tokens": 4308, "total_tokens": 14428}  # reasoning already inside
    usage = REGISTRY.get("xai").chat_response(orjson.dumps({**answer, "usage": openai_style}), "grok-4.3").usage
    assert usage is not None and usage.completion_tokens == 4308


def test_xai_wrong_key_400_is_a_401() -> None:
    body = {"code": "Client specified an invalid argument",
            "error": "Incorrect API key provided: xa***yz. You can obtain an API key from https://console.x.ai."}
    err = REGISTRY.get("xai").upstream_error(400, orjson.dumps(body), {})
    assert (err.status, err.code) == (401, "invalid_api_key") and "Incorrect API key" in err.message
    other = REGISTRY.get("xai").upstream_error(429, orjson.dumps({"code": "Too many requests", "error": "slow"}),
                                               {"retry-after": "2"})
    assert (other.status, other.code, other.retryable) == (429, "Too many requests", True)
    assert other.message == "xAI: slow" and other.headers == {"Retry-After": "2"}


# ---- keys ----

@pytest.mark.parametrize(("provider", "key", "ok"), [
    ("deepseek", "sk-" + "0123456789abcdef" * 2, True),
    ("deepseek", "sk-proj-" + "a" * 40, False),  # an OpenAI project key in the wrong place
    ("openrouter", "sk-or-v1-" + "ab" * 32, True),
    ("openrouter", "sk-" + "a" * 40, False),
    ("openai", "sk-or-v1-" + "ab" * 32, False),  # an OpenRouter key in the wrong place
    ("mistral", "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6", True),
    ("mistral", "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p", False),  # 31 characters
    ("mistral", "sk-2C3d4E5f6G7h8I9j0K1l2M3n4O5p6", False),
    ("groq", "gsk_" + "a1B2" * 13, True),
    ("groq", "sk-" + "a" * 40, False),
    ("xai", "xai-" + "a1B2" * 20, True),
    ("xai", "gsk_" + "a" * 40, False),
])
def test_key_formats(provider: str, key: str, ok: bool) -> None:
    assert REGISTRY.get(provider).accepts_key(key) is ok


def test_mistral_key_format_is_described_without_a_prefix() -> None:
    assert REGISTRY.get("mistral").spec.key_format.describe() == "a Mistral key is 32 letters and digits"
    assert REGISTRY.get("groq").spec.key_format.describe() == "it should start with 'gsk_'"
