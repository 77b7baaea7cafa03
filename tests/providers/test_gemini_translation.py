"""OpenAI <-> Gemini generateContent: requests, answers, streams, embeddings and errors."""

from __future__ import annotations

import base64
import struct

import orjson
import pytest

from tests.providers.provider_testkit import chunks_of, fixture, reassemble, split_at
from webrana_proxy.errors import BadRequest
from webrana_proxy.providers import build_registry
from webrana_proxy.providers.gemini_request import to_gemini

BASE = "http://127.0.0.1:9"


def gemini():  # type: ignore[no-untyped-def]
    return build_registry().get("google")


def test_urls_and_key_header_never_in_query() -> None:
    body = {"model": "gemini-2.5-flash", "messages": [{"role": "user", "content": "hi"}]}
    req = gemini().chat_request(body, "gemini-2.5-flash", "AIzaKEY", BASE + "/")
    assert req.url == BASE + "/v1beta/models/gemini-2.5-flash:generateContent"
    assert req.headers["x-goog-api-key"] == "AIzaKEY"
    assert "key=" not in req.url
    stream = gemini().chat_request({**body, "stream": True}, "gemini-2.5-flash", "AIzaKEY", BASE)
    assert stream.url == BASE + "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
    assert orjson.loads(req.body or b"") == {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}


def test_full_conversation_mapping() -> None:
    body = {
        "messages": [
            {"role": "system", "content": "Kamu asisten."},
            {"role": "developer", "content": "Jawab singkat."},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Apa ini?"},
                    {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,/9j/4AAQ"}},
                ],
            },
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_a",
                        "type": "function",
                        "function": {"name": "look", "arguments": '{"q": "x"}'},
                    },
                    {"id": "call_b", "type": "function", "function": {"name": "time", "arguments": "{}"}},
                ],
            },
            {"role": "tool", "tool_call_id": "call_b", "content": "09:00"},
            {"role": "tool", "tool_call_id": "call_a", "content": '{"found": true}'},
            {"role": "assistant", "content": "Itu kucing."},
            {"role": "user", "content": "Terima kasih"},
        ],
        "tools": [
            {
                "type": "function",
                "function": {"name": "look", "description": "d", "parameters": {"type": "object"}},
            },
            {"type": "function", "function": {"name": "time"}},
        ],
        "tool_choice": {"type": "function", "function": {"name": "look"}},
        "temperature": 1.5,
        "top_p": 0.5,
        "max_tokens": 100,
        "stop": ["A", "B"],
        "n": 2,
        "presence_penalty": 0.1,
        "frequency_penalty": 0.2,
        "seed": 9,
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "s", "schema": {"type": "object"}},
        },
    }
    out = to_gemini(body)
    assert out["systemInstruction"] == {"parts": [{"text": "Kamu asisten."}, {"text": "Jawab singkat."}]}
    assert out["contents"] == [
        {
            "role": "user",
            "parts": [{"text": "Apa ini?"}, {"inlineData": {"mimeType": "image/jpeg", "data": "/9j/4AAQ"}}],
        },
        {
            "role": "model",
            "parts": [
                {"functionCall": {"name": "look", "args": {"q": "x"}}},
                {"functionCall": {"name": "time", "args": {}}},
            ],
        },
        {
            "role": "user",
            "parts": [
                {"functionResponse": {"name": "time", "response": {"result": "09:00"}}},
                {"functionResponse": {"name": "look", "response": {"result": '{"found": true}'}}},
            ],
        },
        {"role": "model", "parts": [{"text": "Itu kucing."}]},
        {"role": "user", "parts": [{"text": "Terima kasih"}]},
    ]
    assert out["generationConfig"] == {
        "temperature": 1.5,
        "topP": 0.5,
        "maxOutputTokens": 100,
        "stopSequences": ["A", "B"],
        "candidateCount": 2,
        "presencePenalty": 0.1,
        "frequencyPenalty": 0.2,
        "seed": 9,
        "responseMimeType": "application/json",
        "responseJsonSchema": {"type": "object"},
    }
    assert out["tools"] == [
        {
            "functionDeclarations": [
                {"name": "look", "description": "d", "parametersJsonSchema": {"type": "object"}},
                {"name": "time"},
            ]
        }
    ]
    assert out["toolConfig"] == {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["look"]}}


@pytest.mark.parametrize(("choice", "mode"), [("auto", "AUTO"), ("required", "ANY"), ("none", "NONE")])
def test_tool_choice_modes(choice: str, mode: str) -> None:
    out = to_gemini(
        {
            "messages": [{"role": "user", "content": "x"}],
            "tool_choice": choice,
            "tools": [{"type": "function", "function": {"name": "f"}}],
        }
    )
    assert out["toolConfig"] == {"functionCallingConfig": {"mode": mode}}


def test_json_object_format() -> None:
    out = to_gemini({"messages": [{"role": "user", "content": "x"}], "response_format": {"type": "json_object"}})
    assert out["generationConfig"] == {"responseMimeType": "application/json"}


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"messages": [{"role": "tool", "tool_call_id": "nope", "content": "x"}]}, "does not match"),
        (
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [{"type": "image_url", "image_url": {"url": "https://x/y.png"}}],
                    }
                ]
            },
            "cannot fetch other URLs",
        ),
        ({"messages": [{"role": "system", "content": "only system"}]}, "at least one"),
        (
            {"messages": [{"role": "user", "content": "x"}], "response_format": {"type": "xml"}},
            "response_format",
        ),
    ],
)
def test_bad_inputs_are_400(body: dict[str, object], fragment: str) -> None:
    with pytest.raises(BadRequest, match=fragment):
        to_gemini(body)


# --- answers --------------------------------------------------------------------------------------------


def test_response_mapping() -> None:
    result = gemini().chat_response(fixture("gemini_response.json"), "gemini-2.5-flash")
    body = orjson.loads(result.body)
    choice = body["choices"][0]
    assert choice["message"]["content"] == "Cuaca di Jakarta sedang cerah. ☀️ Saya cek juga waktunya."
    call = choice["message"]["tool_calls"][0]
    assert call["id"].startswith("call_") and call["type"] == "function"
    assert (call["function"]["name"], orjson.loads(call["function"]["arguments"])) == (
        "get_time",
        {"tz": "Asia/Jakarta"},
    )
    assert choice["finish_reason"] == "tool_calls"
    assert body["usage"]["prompt_tokens"] == 31
    assert body["usage"]["completion_tokens"] == 22 + 7
    assert body["usage"]["total_tokens"] == 60
    assert body["usage"]["completion_tokens_details"] == {"reasoning_tokens": 7}
    assert result.upstream_id == "mJfmaK3sGf2Vz7IP"
    assert body["model"] == "gemini-2.5-flash"


@pytest.mark.parametrize(
    ("reason", "finish"),
    [
        ("STOP", "stop"),
        ("MAX_TOKENS", "length"),
        ("SAFETY", "content_filter"),
        ("RECITATION", "content_filter"),
        ("PROHIBITED_CONTENT", "content_filter"),
        ("OTHER", "stop"),
    ],
)
def test_finish_reasons(reason: str, finish: str) -> None:
    raw = orjson.dumps(
        {"candidates": [{"content": {"role": "model", "parts": [{"text": "x"}]}, "finishReason": reason, "index": 0}]}
    )
    assert orjson.loads(gemini().chat_response(raw, "g").body)["choices"][0]["finish_reason"] == finish


def test_thought_parts_are_not_content() -> None:
    raw = orjson.dumps(
        {
            "candidates": [
                {
                    "content": {
                        "role": "model",
                        "parts": [{"text": "hmm", "thought": True}, {"text": "Jawaban"}],
                    },
                    "finishReason": "STOP",
                }
            ]
        }
    )
    message = orjson.loads(gemini().chat_response(raw, "g").body)["choices"][0]["message"]
    assert message["content"] == "Jawaban" and message["reasoning_content"] == "hmm"


def test_blocked_prompt_is_content_filter() -> None:
    raw = orjson.dumps({"promptFeedback": {"blockReason": "SAFETY"}, "usageMetadata": {"promptTokenCount": 5}})
    body = orjson.loads(gemini().chat_response(raw, "g").body)
    assert body["choices"][0]["finish_reason"] == "content_filter"
    assert body["choices"][0]["message"]["content"] is None


def test_several_candidates_become_several_choices() -> None:
    raw = orjson.dumps(
        {
            "candidates": [
                {"content": {"role": "model", "parts": [{"text": "a"}]}, "finishReason": "STOP", "index": 0},
                {"content": {"role": "model", "parts": [{"text": "b"}]}, "finishReason": "STOP", "index": 1},
            ]
        }
    )
    choices = orjson.loads(gemini().chat_response(raw, "g").body)["choices"]
    assert [(c["index"], c["message"]["content"]) for c in choices] == [(0, "a"), (1, "b")]


# --- streams --------------------------------------------------------------------------------------------


def translate(raw: bytes, include_usage: bool, cuts: list[int] | None = None):  # type: ignore[no-untyped-def]
    stream = gemini().stream_translator("gemini-2.5-flash", include_usage)
    out = b""
    for piece in split_at(raw, cuts or []):
        out += b"".join(stream.feed(piece))
    return stream, out + b"".join(stream.finish())


def test_stream_one_chunk_per_event_then_usage_and_done() -> None:
    stream, out = translate(fixture("gemini_stream.sse"), include_usage=True)
    chunks = chunks_of(out)
    assert len(chunks) == 3 + 2
    assert chunks[-1] == "[DONE]"
    assert chunks[-2]["choices"] == [] and chunks[-2]["usage"]["completion_tokens"] == 29
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert chunks[2]["choices"][0]["finish_reason"] == "tool_calls"
    assert stream.done and stream.usage is not None and stream.usage.prompt_tokens == 31
    assert stream.upstream_id == "mJfmaK3sGf2Vz7IP"


def test_stream_reassembles_to_the_non_streamed_answer() -> None:
    _, out = translate(fixture("gemini_stream.sse"), include_usage=False, cuts=[7, 100, 101, 333])
    got = reassemble(out)
    message = orjson.loads(gemini().chat_response(fixture("gemini_response.json"), "g").body)["choices"][0]
    assert got.content == message["message"]["content"]
    assert [(c["name"], orjson.loads(c["arguments"])) for c in got.tool_calls] == [
        (c["function"]["name"], orjson.loads(c["function"]["arguments"])) for c in message["message"]["tool_calls"]
    ]
    assert got.finish_reason == message["finish_reason"]
    assert got.usage is None and got.done


def test_stream_without_finish_reason_ends_with_in_band_error() -> None:
    raw = fixture("gemini_stream.sse")
    first_two = b"\r\n\r\n".join(raw.split(b"\r\n\r\n")[:2]) + b"\r\n\r\n"
    stream, out = translate(first_two, include_usage=True)
    assert chunks_of(out)[-1]["error"]["code"] == "upstream_stream_truncated"
    assert not stream.done and stream.completion_chars > 20


def test_malformed_event_is_an_in_band_error() -> None:
    stream, out = translate(b'data: {"candidates": [\r\n\r\n', include_usage=True)
    assert chunks_of(out)[-1]["error"]["code"] == "upstream_malformed"
    assert stream.error is not None and not stream.done


def test_stream_error_in_band() -> None:
    raw = b'data: {"error": {"code": 429, "message": "Resource exhausted", "status": "RESOURCE_EXHAUSTED"}}\r\n\r\n'
    stream, out = translate(raw, include_usage=False)
    error = chunks_of(out)[-1]["error"]
    assert error["type"] == "rate_limit_error" and error["code"] == "RESOURCE_EXHAUSTED"
    assert stream.error is not None


# --- embeddings -------------------------------------------------------------------------------------------


def test_embeddings_request_uses_batch_embed_contents() -> None:
    body = {"model": "text-embedding-004", "input": ["satu", "dua"], "dimensions": 256}
    req = gemini().embeddings_request(body, "text-embedding-004", "AIzaK", BASE)
    assert req.url == BASE + "/v1beta/models/text-embedding-004:batchEmbedContents"
    assert req.headers["x-goog-api-key"] == "AIzaK"
    assert orjson.loads(req.body or b"") == {
        "requests": [
            {
                "model": "models/text-embedding-004",
                "content": {"parts": [{"text": "satu"}]},
                "outputDimensionality": 256,
            },
            {
                "model": "models/text-embedding-004",
                "content": {"parts": [{"text": "dua"}]},
                "outputDimensionality": 256,
            },
        ]
    }


def test_embeddings_token_input_refused() -> None:
    with pytest.raises(BadRequest):
        gemini().embeddings_request({"input": [1, 2, 3]}, "text-embedding-004", "k", BASE)


def test_embeddings_response_in_openai_shape_with_estimated_usage() -> None:
    request = {"model": "gemini-embedding-001", "input": ["a" * 8, "b" * 4]}
    result = gemini().embeddings_response(fixture("gemini_embeddings.json"), "gemini-embedding-001", request)
    body = orjson.loads(result.body)
    assert body["object"] == "list" and body["model"] == "gemini-embedding-001"
    assert [d["index"] for d in body["data"]] == [0, 1]
    assert body["data"][1]["embedding"] == [0.5, -0.25, 0.125, 1.0]
    assert body["usage"] == {"prompt_tokens": 3, "total_tokens": 3}
    assert result.usage_estimated and result.usage is not None and result.usage.prompt_tokens == 3


def test_embeddings_base64_for_the_openai_sdk() -> None:
    request = {"input": ["x", "y"], "encoding_format": "base64"}
    body = orjson.loads(gemini().embeddings_response(fixture("gemini_embeddings.json"), "m", request).body)
    assert struct.unpack("<4f", base64.b64decode(body["data"][1]["embedding"])) == (0.5, -0.25, 0.125, 1.0)


# --- errors -----------------------------------------------------------------------------------------------


def test_resource_exhausted_is_429_with_retry_after() -> None:
    err = gemini().upstream_error(429, fixture("gemini_error_429.json"), {"Retry-After": "20"})
    assert (err.status, err.code, err.type, err.retryable) == (
        429,
        "RESOURCE_EXHAUSTED",
        "rate_limit_error",
        True,
    )
    assert err.headers == {"Retry-After": "20"}


def test_bad_key_is_401() -> None:
    err = gemini().upstream_error(400, fixture("gemini_error_badkey.json"), {})
    assert (err.status, err.type, err.retryable) == (401, "authentication_error", False)


def test_unavailable_keeps_503_and_array_bodies_are_read() -> None:
    raw = b'[{"error": {"code": 503, "message": "The model is overloaded.", "status": "UNAVAILABLE"}}]'
    err = gemini().upstream_error(503, raw, {})
    assert err.status == 503 and err.retryable and "overloaded" in err.message


def test_models_request() -> None:
    req = gemini().models_request("AIzaK", BASE)
    assert req.method == "GET" and req.url.startswith(BASE + "/v1beta/models")
    assert req.headers["x-goog-api-key"] == "AIzaK" and "key=" not in req.url
