"""OpenAI and Qwen: the body goes up almost untouched and the answer comes back byte for byte."""

from __future__ import annotations

import base64
import struct

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.providers.provider_testkit import chunks_of, fixture, reassemble, split_at
from webrana_proxy.providers import build_registry
from webrana_proxy.providers.openai_compat import OpenAICompatProvider
from webrana_proxy.providers.passthrough import PassthroughStream

BASE = "http://127.0.0.1:9/v1"


def provider(pid: str) -> OpenAICompatProvider:
    p = build_registry().get(pid)
    assert isinstance(p, OpenAICompatProvider)
    return p


def run(stream: PassthroughStream, pieces: list[bytes]) -> bytes:
    out = b""
    for piece in pieces:
        out += b"".join(stream.feed(piece))
    return out + b"".join(stream.finish())


def is_usage_chunk(event: bytes) -> bool:
    data = event.removeprefix(b"data: ")
    if not data.startswith(b"{"):
        return False
    chunk = orjson.loads(data)
    return chunk.get("choices") == [] and bool(chunk.get("usage"))


def without_usage_chunk(raw: bytes) -> bytes:
    events = raw.split(b"\n\n")
    return b"\n\n".join(e for e in events if not is_usage_chunk(e))


# --- requests ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("pid", ["openai", "qwen"])
def test_non_stream_body_is_forwarded_untouched_with_unknown_fields(pid: str) -> None:
    body = {
        "model": "gpt-4o",
        "messages": [{"role": "user", "content": "hi"}],
        "seed": 7,
        "some_future_field": {"x": [1, 2]},
        "logit_bias": {"50256": -100},
    }
    req = provider(pid).chat_request(body, "gpt-4o", "sk-test", BASE + "/")
    assert req.method == "POST"
    assert req.url == BASE + "/chat/completions"
    assert req.headers["Authorization"] == "Bearer sk-test"
    assert orjson.loads(req.body or b"") == body


def test_model_is_replaced_by_the_upstream_name_and_the_client_body_not_mutated() -> None:
    body = {"model": "openai/gpt-4o", "messages": []}
    req = provider("openai").chat_request(body, "gpt-4o", "sk-test", BASE)
    assert orjson.loads(req.body or b"")["model"] == "gpt-4o"
    assert body["model"] == "openai/gpt-4o"


def test_stream_asks_for_usage_and_keeps_other_stream_options() -> None:
    body = {"model": "gpt-4o", "messages": [], "stream": True, "stream_options": {"future": 1}}
    sent = orjson.loads(provider("openai").chat_request(body, "gpt-4o", "k", BASE).body or b"")
    assert sent["stream_options"] == {"future": 1, "include_usage": True}
    assert body["stream_options"] == {"future": 1}
    plain = orjson.loads(
        provider("qwen")
        .chat_request({"model": "qwen-plus", "messages": [], "stream": True}, "qwen-plus", "k", BASE)
        .body
        or b""
    )
    assert plain["stream_options"] == {"include_usage": True}


# --- non-stream answers -----------------------------------------------------------------------------


def test_response_bytes_come_back_unchanged_with_usage_read() -> None:
    raw = fixture("openai_response.json")
    result = provider("openai").chat_response(raw, "gpt-4o-mini")
    assert result.body is raw
    assert result.upstream_id == "chatcmpl-C1xA0"
    assert result.usage is not None
    usage = result.usage
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (19, 10, 29)


def test_unparseable_response_is_still_relayed() -> None:
    result = provider("openai").chat_response(b"not json", "gpt-4o")
    assert result.body == b"not json" and result.usage is None


# --- streams ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["openai_stream.sse", "openai_stream_tools.sse", "qwen_stream.sse"])
def test_stream_relayed_byte_for_byte_when_client_asked_for_usage(name: str) -> None:
    raw = fixture(name)
    stream = provider("openai").stream_translator("gpt-4o-mini", include_usage=True)
    assert run(stream, [raw]) == raw
    assert stream.done and stream.error is None
    assert stream.usage is not None and stream.usage.total_tokens > 0


@pytest.mark.parametrize("name", ["openai_stream.sse", "openai_stream_tools.sse", "qwen_stream.sse"])
def test_usage_chunk_stripped_when_client_did_not_ask(name: str) -> None:
    raw = fixture(name)
    stream = provider("qwen").stream_translator("qwen-plus", include_usage=False)
    out = run(stream, [raw])
    assert out == without_usage_chunk(raw)
    assert out != raw
    assert all(c == "[DONE]" or c["choices"] for c in chunks_of(out))
    assert stream.usage is not None  # still counted for billing
    assert stream.done


def test_usage_and_cached_tokens_read_from_the_stream() -> None:
    stream = provider("openai").stream_translator("gpt-4o-mini", include_usage=False)
    run(stream, [fixture("openai_stream_tools.sse")])
    assert stream.usage is not None
    usage = stream.usage
    assert (usage.prompt_tokens, usage.completion_tokens, usage.cached_tokens) == (80, 40, 64)
    assert stream.upstream_id == "chatcmpl-C1x9ZkQ2bTtY7"


def test_stream_content_and_tools_survive() -> None:
    stream = provider("openai").stream_translator("gpt-4o-mini", include_usage=False)
    got = reassemble(run(stream, [fixture("openai_stream_tools.sse")]))
    assert [(c["name"], orjson.loads(c["arguments"])) for c in got.tool_calls] == [
        ("get_weather", {"city": "Jakarta"}),
        ("get_time", {"tz": "Asia/Jakarta"}),
    ]
    assert got.finish_reason == "tool_calls" and got.done


def test_completion_chars_estimate_is_close_for_text() -> None:
    raw = fixture("openai_stream.sse")
    stream = provider("openai").stream_translator("gpt-4o-mini", include_usage=True)
    run(stream, [raw[i : i + 50] for i in range(0, len(raw), 50)])
    actual = len(reassemble(raw).content)
    assert abs(stream.completion_chars - actual) <= actual // 2 + 4


def test_a_whole_stream_in_one_read_is_estimated_from_its_size_after_the_first_text() -> None:
    """The first read holds everything (a fast upstream): the envelope is learnt from the first text chunk and
    the deltas after it are counted by size, like any later read's; only the usage chunk and [DONE] are read."""
    raw = fixture("openai_stream.sse")
    stream = provider("openai").stream_translator("gpt-4o-mini", include_usage=True)
    assert run(stream, [raw]) == raw
    actual = len(reassemble(raw).content)
    assert abs(stream.completion_chars - actual) <= actual // 2 + 4
    assert stream.done and stream.usage is not None


def test_an_error_after_deltas_in_the_same_read_is_read_and_recorded() -> None:
    delta = b'data: {"id":"c1","choices":[{"index":0,"delta":{"content":"Hi"}}],"usage":null}\n\n'
    error = b'data: {"error":{"message":"overloaded","type":"server_error","code":null}}\n\n'
    stream = provider("openai").stream_translator("gpt-4o-mini", include_usage=True)
    assert b"".join(stream.feed(delta * 4 + error)) == delta * 4 + error
    assert stream.error is not None and stream.error["error"]["message"] == "overloaded"
    assert stream.completion_chars == 8  # "Hi" four times: the first parsed, the other three by size
    assert stream.finish() == []  # ended by its error: no truncation error added


def test_in_band_error_is_relayed_and_recorded() -> None:
    raw = (
        b'data: {"id":"c1","choices":[{"index":0,"delta":{"content":"Hi"}}]}\n\n'
        b'data: {"error":{"message":"The server had an error","type":"server_error","code":null}}\n\n'
    )
    stream = provider("openai").stream_translator("gpt-4o", include_usage=False)
    out = run(stream, [raw])
    assert out == raw
    assert stream.error == {"error": {"message": "The server had an error", "type": "server_error", "code": None}}
    assert not stream.done


def test_stream_cut_before_done_ends_with_an_in_band_error() -> None:
    raw = fixture("openai_stream.sse")
    cut = raw.index(b"data: [DONE]") - 200
    stream = provider("openai").stream_translator("gpt-4o", include_usage=True)
    out = run(stream, [raw[:cut]])
    assert not stream.done
    assert stream.error is not None
    assert chunks_of(out)[-1]["error"]["code"] == "upstream_stream_truncated"
    assert stream.completion_chars > 0


@pytest.mark.parametrize("include_usage", [True, False])
def test_malformed_event_is_replaced_by_an_in_band_error(include_usage: bool) -> None:
    raw = fixture("openai_stream.sse")
    events = raw.split(b"\n\n")
    broken = b"\n\n".join(events[:3]) + b'\n\ndata: {"id": "broken", "choices": [{"delta": {"content": \n\n'
    stream = provider("openai").stream_translator("gpt-4o", include_usage=include_usage)
    out = run(stream, [e + b"\n\n" for e in broken.split(b"\n\n") if e])
    chunks = chunks_of(out)
    assert chunks[-1]["error"]["code"] == "upstream_malformed"
    assert len(chunks) == 4 and stream.error is not None and not stream.done
    assert reassemble(out).content == "Halo!"


def test_keepalive_comments_pass_through() -> None:
    raw = b": OPENROUTER PROCESSING\n\n" + fixture("openai_stream.sse")
    stream = provider("openai").stream_translator("gpt-4o", include_usage=True)
    assert run(stream, [raw]) == raw


@given(
    st.sampled_from(["openai_stream.sse", "openai_stream_tools.sse", "qwen_stream.sse"]),
    st.booleans(),
    st.lists(st.integers(0, 4000), max_size=25),
)
def test_passthrough_output_is_input_minus_the_stripped_usage_chunk(
    name: str, include_usage: bool, cuts: list[int]
) -> None:
    raw = fixture(name)
    stream = PassthroughStream(include_usage)
    out = run(stream, split_at(raw, cuts))
    assert out == (raw if include_usage else without_usage_chunk(raw))
    assert stream.done and stream.usage is not None


# --- embeddings ---------------------------------------------------------------------------------------


def test_openai_embeddings_forwarded_and_answer_untouched() -> None:
    body = {"model": "text-embedding-3-small", "input": ["a", "b"], "encoding_format": "base64"}
    req = provider("openai").embeddings_request(body, "text-embedding-3-small", "sk-x", BASE)
    assert req.url == BASE + "/embeddings" and orjson.loads(req.body or b"") == body
    raw = (
        b'{"object":"list","data":[{"object":"embedding","index":0,"embedding":"AACAPw=="}],'
        b'"model":"text-embedding-3-small","usage":{"prompt_tokens":2,"total_tokens":2}}'
    )
    result = provider("openai").embeddings_response(raw, "text-embedding-3-small", body)
    assert result.body is raw
    assert result.usage is not None and result.usage.prompt_tokens == 2 and not result.usage_estimated


def test_qwen_embeddings_asked_as_floats_and_encoded_for_a_base64_client() -> None:
    body = {"model": "text-embedding-v3", "input": "halo", "encoding_format": "base64"}
    req = provider("qwen").embeddings_request(body, "text-embedding-v3", "sk-x", BASE)
    assert orjson.loads(req.body or b"")["encoding_format"] == "float"
    raw = (
        b'{"data":[{"embedding":[0.5,-1.0],"index":0,"object":"embedding"}],"model":"text-embedding-v3",'
        b'"object":"list","usage":{"prompt_tokens":1,"total_tokens":1},"id":"e1"}'
    )
    result = provider("qwen").embeddings_response(raw, "text-embedding-v3", body)
    encoded = orjson.loads(result.body)["data"][0]["embedding"]
    assert struct.unpack("<2f", base64.b64decode(encoded)) == (0.5, -1.0)


def test_embeddings_usage_estimated_when_missing() -> None:
    body = {"model": "text-embedding-v3", "input": "a" * 40}
    raw = b'{"data":[{"embedding":[0.5],"index":0,"object":"embedding"}],"object":"list"}'
    result = provider("qwen").embeddings_response(raw, "text-embedding-v3", body)
    assert result.usage_estimated and result.usage is not None and result.usage.prompt_tokens == 10
    assert orjson.loads(result.body)["usage"]["prompt_tokens"] == 10


# --- errors and key test --------------------------------------------------------------------------------


def test_openai_error_keeps_status_type_and_retry_after() -> None:
    err = provider("openai").upstream_error(
        429, fixture("openai_error_429.json"), {"Retry-After": "3", "x-ratelimit-remaining-requests": "0"}
    )
    assert err.status == 429 and err.retryable
    assert err.code == "rate_limit_exceeded" and err.type == "requests"
    assert err.headers == {"Retry-After": "3"}
    assert "Rate limit reached" in err.message


@pytest.mark.parametrize(
    ("status", "retryable"), [(400, False), (401, False), (404, False), (500, True), (502, True), (503, True)]
)
def test_error_status_kept_and_retryable_only_for_5xx(status: int, retryable: bool) -> None:
    err = provider("qwen").upstream_error(status, b'{"error":{"message":"m","type":"t","code":"c"}}', {})
    assert (err.status, err.retryable) == (status, retryable)


def test_non_json_error_page_is_cut_short() -> None:
    err = provider("openai").upstream_error(502, b"<html>" + b"x" * 5000, {})
    assert err.status == 502 and len(err.message) < 600


def test_models_request_is_an_authenticated_get() -> None:
    req = provider("qwen").models_request("sk-q", "https://dashscope-intl.aliyuncs.com/compatible-mode/v1")
    assert req.method == "GET" and req.body is None
    assert req.url == "https://dashscope-intl.aliyuncs.com/compatible-mode/v1/models"
    assert req.headers["Authorization"] == "Bearer sk-q"
