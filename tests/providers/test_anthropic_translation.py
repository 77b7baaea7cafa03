"""OpenAI <-> Anthropic Messages: requests, answers, streams and errors."""

from __future__ import annotations

import orjson
import pytest

from tests.providers.provider_testkit import chunks_of, fixture, reassemble, split_at
from webrana_proxy.errors import BadRequest
from webrana_proxy.providers import build_registry
from webrana_proxy.providers.anthropic_request import to_anthropic

BASE = "http://127.0.0.1:9"


def anthropic():  # type: ignore[no-untyped-def]
    return build_registry().get("anthropic")


def test_request_url_and_headers() -> None:
    req = anthropic().chat_request(
        {"model": "claude-sonnet-4-5", "messages": [{"role": "user", "content": "hi"}]},
        "claude-sonnet-4-5",
        "sk-ant-xyz",
        BASE + "/",
    )
    assert req.url == BASE + "/v1/messages" and req.method == "POST"
    assert req.headers["x-api-key"] == "sk-ant-xyz"
    assert req.headers["anthropic-version"] == "2023-06-01"
    assert "Authorization" not in req.headers
    assert orjson.loads(req.body or b"") == {
        "model": "claude-sonnet-4-5",
        "messages": [{"role": "user", "content": "hi"}],
        "max_tokens": 8192,
    }


def test_full_conversation_mapping() -> None:
    body = {
        "model": "anthropic/claude-sonnet-4-5",
        "messages": [
            {"role": "system", "content": "Kamu asisten."},
            {"role": "developer", "content": [{"type": "text", "text": "Jawab singkat."}]},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Apa ini?"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
                    {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}},
                ],
            },
            {
                "role": "assistant",
                "content": "Sebentar.",
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "look", "arguments": '{"q": "cat"}'},
                    },
                    {"id": "call_2", "type": "function", "function": {"name": "time", "arguments": ""}},
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": "a cat"},
            {"role": "tool", "tool_call_id": "call_2", "content": [{"type": "text", "text": "09:00"}]},
            {"role": "user", "content": "Terima kasih"},
            {"role": "user", "content": "Lagi?"},
        ],
        "tools": [
            {
                "type": "function",
                "function": {
                    "name": "look",
                    "description": "Look it up",
                    "parameters": {"type": "object", "properties": {"q": {}}},
                },
            },
            {"type": "function", "function": {"name": "time"}},
        ],
        "tool_choice": "required",
        "parallel_tool_calls": False,
        "temperature": 1.7,
        "top_p": 0.9,
        "stop": "END",
        "user": "user-42",
        "max_completion_tokens": 300,
        "max_tokens": 999,
        "seed": 3,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    out = to_anthropic(body, "claude-sonnet-4-5")
    assert out["system"] == "Kamu asisten.\n\nJawab singkat."
    assert out["messages"] == [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Apa ini?"},
                {
                    "type": "image",
                    "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="},
                },
                {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
            ],
        },
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "Sebentar."},
                {"type": "tool_use", "id": "call_1", "name": "look", "input": {"q": "cat"}},
                {"type": "tool_use", "id": "call_2", "name": "time", "input": {}},
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "call_1", "content": "a cat"},
                {"type": "tool_result", "tool_use_id": "call_2", "content": "09:00"},
                {"type": "text", "text": "Terima kasih"},
                {"type": "text", "text": "Lagi?"},
            ],
        },
    ]
    assert out["tools"] == [
        {
            "name": "look",
            "description": "Look it up",
            "input_schema": {"type": "object", "properties": {"q": {}}},
        },
        {"name": "time", "input_schema": {"type": "object", "properties": {}}},
    ]
    assert out["tool_choice"] == {"type": "any", "disable_parallel_tool_use": True}
    assert out["temperature"] == 1.0
    assert out["top_p"] == 0.9
    assert out["stop_sequences"] == ["END"]
    assert out["metadata"] == {"user_id": "user-42"}
    assert out["max_tokens"] == 300
    assert out["stream"] is True
    assert "seed" not in out and "stream_options" not in out and "parallel_tool_calls" not in out


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ("auto", {"type": "auto"}),
        ("none", {"type": "none"}),
        ({"type": "function", "function": {"name": "f"}}, {"type": "tool", "name": "f"}),
    ],
)
def test_tool_choice_mapping(choice: object, expected: dict[str, object]) -> None:
    body = {
        "messages": [{"role": "user", "content": "x"}],
        "tool_choice": choice,
        "tools": [{"type": "function", "function": {"name": "f"}}],
    }
    assert to_anthropic(body, "claude-haiku-4-5")["tool_choice"] == expected


def test_tool_choice_dropped_without_tools() -> None:
    out = to_anthropic({"messages": [{"role": "user", "content": "x"}], "tool_choice": "auto"}, "claude-haiku-4-5")
    assert "tool_choice" not in out


@pytest.mark.parametrize(
    ("model", "default"),
    [("claude-3-haiku-20240307", 4096), ("claude-sonnet-4-5", 8192), ("claude-3-opus-20240229", 4096)],
)
def test_max_tokens_default_per_model(model: str, default: int) -> None:
    assert to_anthropic({"messages": [{"role": "user", "content": "x"}]}, model)["max_tokens"] == default


def test_negative_temperature_clamped_to_zero() -> None:
    assert to_anthropic({"messages": [{"role": "user", "content": "x"}], "temperature": -1}, "c")["temperature"] == 0


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"messages": [{"role": "user", "content": "x"}], "n": 2}, "n"),
        ({"messages": []}, "messages"),
        ({"messages": "hi"}, "messages"),
        ({"messages": [{"role": "user", "content": 5}]}, "messages[0].content"),
        ({"messages": [{"role": "wizard", "content": "x"}]}, "messages[0]"),
        ({"messages": [{"role": "tool", "content": "x"}]}, "messages[0]"),
        (
            {
                "messages": [
                    {
                        "role": "assistant",
                        "tool_calls": [{"id": "a", "function": {"name": "f", "arguments": "{broken"}}],
                    }
                ]
            },
            "messages[0].tool_calls[0].function.arguments",
        ),
        (
            {"messages": [{"role": "user", "content": [{"type": "input_audio", "input_audio": {}}]}]},
            "messages[0].content",
        ),
        (
            {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "ftp://x"}}]}]},
            "messages[0].content[0]",
        ),
        ({"messages": [{"role": "user", "content": "x"}], "tools": [{"type": "retrieval"}]}, "tools[0]"),
        ({"messages": [{"role": "user", "content": "x"}], "stop": [1]}, "stop"),
        ({"messages": [{"role": "user", "content": "x"}], "temperature": "hot"}, "temperature"),
        ({"messages": [{"role": "user", "content": "x"}], "max_tokens": 0}, "max_tokens"),
    ],
)
def test_bad_inputs_are_400_naming_the_field(body: dict[str, object], param: str) -> None:
    with pytest.raises(BadRequest) as caught:
        to_anthropic(body, "claude-sonnet-4-5")
    assert caught.value.status == 400
    assert caught.value.param == param


def test_n_above_one_message_says_so() -> None:
    with pytest.raises(BadRequest, match="n > 1 is not supported"):
        to_anthropic({"messages": [{"role": "user", "content": "x"}], "n": 3}, "claude-sonnet-4-5")


# --- answers --------------------------------------------------------------------------------------------


def test_response_mapping_with_text_tools_and_cache_usage() -> None:
    result = anthropic().chat_response(fixture("anthropic_response.json"), "claude-sonnet-4-5")
    body = orjson.loads(result.body)
    assert body["object"] == "chat.completion"
    assert body["id"] == "msg_01XFDUDYJgAACzvnptvVoYEL" == result.upstream_id
    choice = body["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] == "Baik, saya cek cuaca dan waktu di Jakarta. Tunggu ☕"
    assert [
        (c["id"], c["function"]["name"], orjson.loads(c["function"]["arguments"]))
        for c in choice["message"]["tool_calls"]
    ] == [
        ("toolu_01T1x1fJ34qAmk2tNTrN7Up6", "get_weather", {"city": "Jakarta", "unit": "c"}),
        ("toolu_01Bq2", "get_time", {"tz": "Asia/Jakarta"}),
    ]
    assert body["usage"] == {
        "prompt_tokens": 472 + 100 + 2048,
        "completion_tokens": 89,
        "total_tokens": 472 + 100 + 2048 + 89,
        "prompt_tokens_details": {"cached_tokens": 2048},
    }
    assert result.usage is not None and result.usage.cached_tokens == 2048


@pytest.mark.parametrize(
    ("stop", "finish"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("max_tokens", "length"),
        ("tool_use", "tool_calls"),
        ("refusal", "content_filter"),
        ("model_context_window_exceeded", "length"),
        ("something_new", "stop"),
    ],
)
def test_stop_reasons(stop: str, finish: str) -> None:
    raw = orjson.dumps(
        {
            "id": "msg_1",
            "type": "message",
            "role": "assistant",
            "content": [],
            "model": "claude-haiku-4-5",
            "stop_reason": stop,
            "usage": {"input_tokens": 1, "output_tokens": 0},
        }
    )
    body = orjson.loads(anthropic().chat_response(raw, "claude-haiku-4-5").body)
    assert body["choices"][0]["finish_reason"] == finish
    assert body["choices"][0]["message"]["content"] is None


# --- streams --------------------------------------------------------------------------------------------


def translate(raw: bytes, include_usage: bool, cuts: list[int] | None = None):  # type: ignore[no-untyped-def]
    stream = anthropic().stream_translator("claude-sonnet-4-5", include_usage)
    out = b""
    for piece in split_at(raw, cuts or []):
        out += b"".join(stream.feed(piece))
    return stream, out + b"".join(stream.finish())


def test_stream_translation_chunk_by_chunk() -> None:
    stream, out = translate(fixture("anthropic_stream.sse"), include_usage=True)
    chunks = chunks_of(out)
    assert chunks[-1] == "[DONE]"
    first = chunks[0]
    assert first["object"] == "chat.completion.chunk"
    assert first["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert len({c["id"] for c in chunks[:-1]}) == 1 and len({c["created"] for c in chunks[:-1]}) == 1
    tool_start = next(c for c in chunks[:-1] if c["choices"] and "tool_calls" in c["choices"][0]["delta"])
    assert tool_start["choices"][0]["delta"]["tool_calls"] == [
        {
            "index": 0,
            "id": "toolu_01T1x1fJ34qAmk2tNTrN7Up6",
            "type": "function",
            "function": {"name": "get_weather", "arguments": ""},
        }
    ]
    usage_chunk = chunks[-2]
    assert usage_chunk["choices"] == []
    assert usage_chunk["usage"]["prompt_tokens"] == 2620 and usage_chunk["usage"]["completion_tokens"] == 89
    assert stream.done and stream.error is None
    assert stream.upstream_id == "msg_01XFDUDYJgAACzvnptvVoYEL"
    assert stream.usage is not None and stream.usage.total_tokens == 2620 + 89


def test_stream_reassembles_to_the_non_streamed_answer() -> None:
    _, out = translate(fixture("anthropic_stream.sse"), include_usage=False)
    got = reassemble(out)
    answer = orjson.loads(anthropic().chat_response(fixture("anthropic_response.json"), "c").body)
    message = answer["choices"][0]["message"]
    assert got.content == message["content"]
    assert [(c["id"], c["name"], orjson.loads(c["arguments"])) for c in got.tool_calls] == [
        (c["id"], c["function"]["name"], orjson.loads(c["function"]["arguments"])) for c in message["tool_calls"]
    ]
    assert got.finish_reason == answer["choices"][0]["finish_reason"]
    assert got.usage is None and got.done and got.roles == ["assistant"]


def test_stream_error_event_goes_in_band_and_ends() -> None:
    stream, out = translate(fixture("anthropic_stream_error.sse"), include_usage=True)
    chunks = chunks_of(out)
    assert chunks[-1]["error"]["code"] == "overloaded_error"
    assert chunks[-1]["error"]["message"] == "Overloaded"
    assert "[DONE]" not in chunks
    assert stream.error is not None and not stream.done
    assert stream.usage is None  # output never counted: the gateway estimates and marks it
    assert stream.completion_chars == len("Sebentar")


def test_stream_cut_before_message_stop_is_an_in_band_error() -> None:
    raw = fixture("anthropic_stream.sse")
    stream, out = translate(raw[: raw.index(b"event: message_delta")], include_usage=True)
    assert chunks_of(out)[-1]["error"]["code"] == "upstream_stream_truncated"
    assert not stream.done and stream.completion_chars > 40


def test_unknown_events_and_pings_are_tolerated() -> None:
    raw = (b'event: brand_new\ndata: {"type":"brand_new","x":1}\n\nevent: ping\ndata: not-json\n\n') + fixture(
        "anthropic_stream.sse"
    )
    _, out = translate(raw, include_usage=False)
    assert reassemble(out).done


def test_malformed_event_ends_the_stream_with_an_in_band_error() -> None:
    raw = fixture("anthropic_stream.sse")
    cut = raw.index(b"event: content_block_stop")
    broken = raw[:cut] + b'event: content_block_delta\ndata: {"type": "content_bl\n\n' + raw[cut:]
    stream, out = translate(broken, include_usage=True)
    chunks = chunks_of(out)
    assert chunks[-1]["error"]["code"] == "upstream_malformed"
    assert "[DONE]" not in chunks and not stream.done


# --- errors ----------------------------------------------------------------------------------------------


def test_overloaded_529_becomes_503_with_retry_after() -> None:
    err = anthropic().upstream_error(529, fixture("anthropic_error_529.json"), {"retry-after": "10"})
    assert err.status == 503 and err.retryable
    assert err.code == "overloaded_error" and err.type == "api_error"
    assert err.headers == {"Retry-After": "10"}
    assert "Overloaded" in err.message


@pytest.mark.parametrize(
    ("status", "kind", "openai_type"),
    [
        (400, "invalid_request_error", "invalid_request_error"),
        (401, "authentication_error", "authentication_error"),
        (403, "permission_error", "permission_error"),
        (404, "not_found_error", "not_found_error"),
        (413, "request_too_large", "invalid_request_error"),
        (429, "rate_limit_error", "rate_limit_error"),
        (500, "api_error", "api_error"),
    ],
)
def test_error_statuses_kept_with_openai_type_names(status: int, kind: str, openai_type: str) -> None:
    raw = orjson.dumps({"type": "error", "error": {"type": kind, "message": "m"}})
    err = anthropic().upstream_error(status, raw, {})
    assert (err.status, err.type, err.code) == (status, openai_type, kind)
    assert err.retryable is (status >= 429)


def test_embeddings_are_refused_and_models_request_is_authenticated() -> None:
    provider = anthropic()
    assert not provider.supports_embeddings
    with pytest.raises(BadRequest):
        provider.embeddings_request({"input": "x"}, "claude-sonnet-4-5", "k", BASE)
    req = provider.models_request("sk-ant-k", BASE)
    assert req.method == "GET" and req.url.startswith(BASE + "/v1/models")
    assert req.headers["x-api-key"] == "sk-ant-k"
