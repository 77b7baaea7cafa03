"""The fake providers speak the real wire formats and do what their scripts say, over real loopback HTTP."""

from __future__ import annotations

import asyncio
import base64
import struct
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import openai
import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.fakes import FakeServer, scenario
from tests.fakes.scenario import ToolCall, split_pieces

REPO_ROOT = Path(__file__).resolve().parent.parent
GOOD = {"Authorization": "Bearer sk-good"}
ANTHROPIC = {"x-api-key": "sk-ant-good", "anthropic-version": "2023-06-01"}
GEMINI = {"x-goog-api-key": "AIza-good"}
CHAT = {
    "model": "gpt-4o-mini",
    "messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hello big world"}],
}
CLAUDE = {
    "model": "claude-sonnet-4-5",
    "max_tokens": 100,
    "system": "be brief",
    "messages": [{"role": "user", "content": "hello big world"}],
}
GEM = {
    "systemInstruction": {"parts": [{"text": "be brief"}]},
    "contents": [{"role": "user", "parts": [{"text": "hello big world"}]}],
}
GEM_URL = "/gemini/v1beta/models/gemini-2.5-flash"


@pytest.fixture
async def fake() -> AsyncIterator[FakeServer]:
    async with FakeServer() as server:
        yield server


@pytest.fixture
async def http(fake: FakeServer) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(base_url=fake.url) as session:
        yield session


def sse_events(raw: bytes) -> list[tuple[str | None, str]]:
    """(event name, data) for each event; accepts \\n and \\r\\n line ends."""
    text = raw.decode().replace("\r\n", "\n")
    out: list[tuple[str | None, str]] = []
    for block in text.split("\n\n"):
        if not block.strip():
            continue
        name = None
        data: list[str] = []
        for line in block.split("\n"):
            if line.startswith("event:"):
                name = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].lstrip())
        out.append((name, "\n".join(data)))
    return out


# ---- OpenAI ----


async def test_openai_non_stream_echoes_with_exact_usage_and_records_request(
    fake: FakeServer, http: aiohttp.ClientSession
) -> None:
    async with http.post("/openai/v1/chat/completions", json=CHAT, headers=GOOD) as r:
        assert r.status == 200
        assert r.headers["x-request-id"]
        body = await r.json()
    assert body["object"] == "chat.completion"
    assert body["choices"][0]["message"]["content"] == "echo: hello big world"
    assert body["choices"][0]["finish_reason"] == "stop"
    assert body["usage"]["prompt_tokens"] == 5  # "be brief" + "hello big world"
    assert body["usage"]["completion_tokens"] == 4
    assert body["usage"]["total_tokens"] == 9
    rec = fake.state.last
    assert (rec.provider, rec.method, rec.path, rec.key) == (
        "openai",
        "POST",
        "/openai/v1/chat/completions",
        "sk-good",
    )
    assert rec.body == CHAT
    assert rec.headers["authorization"] == "Bearer sk-good"
    assert rec.usage == scenario.Usage(5, 4)
    assert rec.outcome == "ok"
    assert rec.request_id == r.headers["x-request-id"]


async def test_openai_stream_has_usage_chunk_only_when_asked_and_ends_with_done(
    http: aiohttp.ClientSession,
) -> None:
    async with http.post("/openai/v1/chat/completions", json={**CHAT, "stream": True}, headers=GOOD) as r:
        assert r.headers["Content-Type"].startswith("text/event-stream")
        plain = sse_events(await r.read())
    assert plain[-1] == (None, "[DONE]")
    chunks = [orjson.loads(d) for _, d in plain[:-1]]
    assert all(c["choices"] for c in chunks)
    assert all("usage" not in c for c in chunks)
    assert len({(c["id"], c["created"]) for c in chunks}) == 1
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks) == "echo: hello big world"
    assert len(chunks) == 1 + 4 + 1  # role, one word each, finish
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"

    body = {**CHAT, "stream": True, "stream_options": {"include_usage": True}}
    async with http.post("/openai/v1/chat/completions", json=body, headers=GOOD) as r:
        events = sse_events(await r.read())
    assert events[-1] == (None, "[DONE]")
    usage_chunk = orjson.loads(events[-2][1])
    assert usage_chunk["choices"] == []
    assert usage_chunk["usage"]["total_tokens"] == 9
    assert all(orjson.loads(d)["usage"] is None for _, d in events[:-2])


async def test_openai_tool_call_stream_sends_id_and_name_first_then_argument_fragments(
    fake: FakeServer, http: aiohttp.ClientSession
) -> None:
    args = {"city": "Jakarta", "days": 3}
    fake.state.script(scenario.tool_calls(("get_weather", args), ToolCall("get_time", {}, id="call_fixed")))
    async with http.post("/openai/v1/chat/completions", json={**CHAT, "stream": True}, headers=GOOD) as r:
        chunks = [orjson.loads(d) for _, d in sse_events(await r.read())[:-1]]
    deltas = [tc for c in chunks for tc in c["choices"][0]["delta"].get("tool_calls") or ()]
    first = [d for d in deltas if "id" in d]
    assert [(d["index"], d["type"], d["function"]["name"]) for d in first] == [
        (0, "function", "get_weather"),
        (1, "function", "get_time"),
    ]
    assert first[1]["id"] == "call_fixed"
    joined = "".join(d["function"].get("arguments", "") for d in deltas if d["index"] == 0)
    assert orjson.loads(joined) == args
    assert sum(1 for d in deltas if d["index"] == 0) > 2  # really fragmented
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"


async def test_openai_refuses_missing_or_invalid_key_and_stream_options_without_stream(
    fake: FakeServer, http: aiohttp.ClientSession
) -> None:
    async with http.post("/openai/v1/chat/completions", json=CHAT) as r:
        assert r.status == 401
        assert (await r.json())["error"]["type"] == "invalid_request_error"
    bad = {"Authorization": "Bearer sk-invalid-123"}
    async with http.post("/openai/v1/chat/completions", json=CHAT, headers=bad) as r:
        assert r.status == 401
        assert (await r.json())["error"]["code"] == "invalid_api_key"
    body = {**CHAT, "stream_options": {"include_usage": True}}
    async with http.post("/openai/v1/chat/completions", json=body, headers=GOOD) as r:
        assert r.status == 400
        assert (await r.json())["error"]["param"] == "stream_options"
    assert [r.outcome for r in fake.state.requests] == ["error"] * 3


async def test_openai_refuses_reasoning_effort_on_models_without_reasoning(http: aiohttp.ClientSession) -> None:
    async with http.post("/openai/v1/chat/completions", json={**CHAT, "reasoning_effort": "low"},
                         headers=GOOD) as r:
        assert r.status == 400
        err = (await r.json())["error"]
        assert (err["param"], err["code"]) == ("reasoning_effort", "unsupported_parameter")
    reasoning = {**CHAT, "model": "o4-mini", "reasoning_effort": "low"}
    async with http.post("/openai/v1/chat/completions", json=reasoning, headers=GOOD) as r:
        assert r.status == 200


async def test_openai_scripted_429_carries_retry_after_and_the_sdk_raises_rate_limit(
    fake: FakeServer,
) -> None:
    fake.state.script(scenario.rate_limited("7"))
    client = openai.AsyncOpenAI(base_url=fake.base_url("openai"), api_key="sk-good", max_retries=0)
    with pytest.raises(openai.RateLimitError) as caught:
        await client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}])
    assert caught.value.response.headers["retry-after"] == "7"
    assert caught.value.code == "rate_limit_exceeded"
    answer = await client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}]
    )
    assert answer.choices[0].message.content == "echo: x"
    await client.close()


async def test_openai_sdk_streams_tools_embeddings_and_models(fake: FakeServer) -> None:
    client = openai.AsyncOpenAI(base_url=fake.base_url("openai"), api_key="sk-good", max_retries=0)
    fake.state.script(scenario.tool_calls(("lookup", {"q": "nasi goreng"})))
    stream = await client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "x"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    args, usage = "", None
    async for chunk in stream:
        for tc in (chunk.choices[0].delta.tool_calls or []) if chunk.choices else []:
            args += tc.function.arguments or "" if tc.function else ""
        usage = chunk.usage or usage
    assert orjson.loads(args) == {"q": "nasi goreng"}
    assert usage is not None
    assert usage.total_tokens == fake.state.last.usage.total_tokens  # type: ignore[union-attr]

    emb = await client.embeddings.create(model="text-embedding-3-small", input=["one two", "three"])
    assert len(emb.data) == 2
    assert len(emb.data[0].embedding) == scenario.EMBEDDING_DIMENSIONS
    assert emb.usage.prompt_tokens == 3
    assert fake.state.last.body["encoding_format"] == "base64"  # the SDK's default, decoded by the SDK
    models = await client.models.list()
    assert "gpt-4o-mini" in [m.id for m in models.data]
    await client.close()


async def test_openai_embeddings_float_vectors_are_deterministic(http: aiohttp.ClientSession) -> None:
    body = {"model": "text-embedding-3-small", "input": "same text", "dimensions": 4}
    async with http.post("/openai/v1/embeddings", json=body, headers=GOOD) as r:
        first = (await r.json())["data"][0]["embedding"]
    async with http.post(
        "/openai/v1/embeddings", json={**body, "encoding_format": "base64"}, headers=GOOD
    ) as r:
        packed = base64.b64decode((await r.json())["data"][0]["embedding"])
    assert len(first) == 4
    assert list(struct.unpack("<4f", packed)) == pytest.approx(first, rel=1e-6)


# ---- Qwen ----


async def test_qwen_stream_with_usage_through_the_sdk_and_stream_only_models(fake: FakeServer) -> None:
    client = openai.AsyncOpenAI(base_url=fake.base_url("qwen"), api_key="sk-qwen", max_retries=0)
    stream = await client.chat.completions.create(
        model="qwen-plus",
        messages=[{"role": "user", "content": "apa kabar"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    text, usage = "", None
    async for chunk in stream:
        if chunk.choices:
            text += chunk.choices[0].delta.content or ""
        usage = chunk.usage or usage
    assert text == "echo: apa kabar"
    assert usage is not None
    assert (usage.prompt_tokens, usage.completion_tokens) == (2, 3)
    assert fake.state.last.provider == "qwen"
    with pytest.raises(openai.BadRequestError):
        await client.chat.completions.create(model="qwq-plus", messages=[{"role": "user", "content": "x"}])
    await client.close()


async def test_qwen_tool_deltas_repeat_empty_id(fake: FakeServer, http: aiohttp.ClientSession) -> None:
    fake.state.script(scenario.tool_calls(("f", {"a": "b"})))
    body = {**CHAT, "model": "qwen-plus", "stream": True}
    async with http.post("/qwen/compatible-mode/v1/chat/completions", json=body, headers=GOOD) as r:
        chunks = [orjson.loads(d) for _, d in sse_events(await r.read())[:-1]]
    deltas = [tc for c in chunks for tc in c["choices"][0]["delta"].get("tool_calls") or ()]
    assert deltas[0]["id"].startswith("call_")
    assert all(d["id"] == "" for d in deltas[1:])


# ---- Anthropic ----


async def test_anthropic_non_stream_shape_and_usage(fake: FakeServer, http: aiohttp.ClientSession) -> None:
    fake.state.script(scenario.text("halo dunia", cached_tokens=10, cache_creation_tokens=2))
    async with http.post("/anthropic/v1/messages", json=CLAUDE, headers=ANTHROPIC) as r:
        assert r.status == 200
        assert r.headers["request-id"].startswith("req_")
        body = await r.json()
    assert body["type"] == "message"
    assert body["id"].startswith("msg_")
    assert body["content"] == [{"type": "text", "text": "halo dunia"}]
    assert body["stop_reason"] == "end_turn"
    assert body["usage"]["input_tokens"] == 5
    assert body["usage"]["cache_read_input_tokens"] == 10
    assert body["usage"]["cache_creation_input_tokens"] == 2
    assert body["usage"]["output_tokens"] == 2
    assert fake.state.last.usage == scenario.Usage(17, 2)
    assert fake.state.last.request_id == r.headers["request-id"]


async def test_anthropic_stream_events_come_in_the_real_order(http: aiohttp.ClientSession) -> None:
    async with http.post("/anthropic/v1/messages", json={**CLAUDE, "stream": True}, headers=ANTHROPIC) as r:
        events = sse_events(await r.read())
    names = [n for n, _ in events]
    assert names[:3] == ["message_start", "content_block_start", "ping"]
    assert names[-4:] == ["content_block_delta", "content_block_stop", "message_delta", "message_stop"]
    datas = [orjson.loads(d) for _, d in events]
    assert all(d["type"] == n for (n, _), d in zip(events, datas, strict=True))
    assert datas[0]["message"]["usage"]["input_tokens"] == 5
    text = "".join(d["delta"]["text"] for d in datas if d["type"] == "content_block_delta")
    assert text == "echo: hello big world"
    assert datas[-2]["delta"]["stop_reason"] == "end_turn"
    assert datas[-2]["usage"]["output_tokens"] == 4


async def test_anthropic_tool_use_streams_input_json_deltas(
    fake: FakeServer, http: aiohttp.ClientSession
) -> None:
    args = {"city": "Bandung", "units": ["c", "f"]}
    fake.state.script(scenario.tool_calls(("get_weather", args)))
    async with http.post("/anthropic/v1/messages", json={**CLAUDE, "stream": True}, headers=ANTHROPIC) as r:
        datas = [orjson.loads(d) for _, d in sse_events(await r.read())]
    start = next(d for d in datas if d["type"] == "content_block_start")
    assert start["content_block"]["type"] == "tool_use"
    assert start["content_block"]["name"] == "get_weather"
    assert start["content_block"]["id"].startswith("toolu_")
    partial = [d["delta"]["partial_json"] for d in datas if d["type"] == "content_block_delta"]
    assert all(d["delta"]["type"] == "input_json_delta" for d in datas if d["type"] == "content_block_delta")
    assert orjson.loads("".join(partial)) == args
    assert next(d for d in datas if d["type"] == "message_delta")["delta"]["stop_reason"] == "tool_use"


async def test_anthropic_errors_use_its_own_shape(fake: FakeServer, http: aiohttp.ClientSession) -> None:
    fake.state.script(scenario.http_error(529))
    async with http.post("/anthropic/v1/messages", json=CLAUDE, headers=ANTHROPIC) as r:
        assert r.status == 529
        body = await r.json()
    assert body["type"] == "error"
    assert body["error"]["type"] == "overloaded_error"
    no_version = {"x-api-key": "sk-ant-good"}
    async with http.post("/anthropic/v1/messages", json=CLAUDE, headers=no_version) as r:
        assert r.status == 400
    bad_key = {**ANTHROPIC, "x-api-key": "sk-ant-invalid"}
    async with http.post("/anthropic/v1/messages", json=CLAUDE, headers=bad_key) as r:
        assert r.status == 401
        assert (await r.json())["error"]["type"] == "authentication_error"
    no_max = {k: v for k, v in CLAUDE.items() if k != "max_tokens"}
    async with http.post("/anthropic/v1/messages", json=no_max, headers=ANTHROPIC) as r:
        assert r.status == 400
        assert "max_tokens" in (await r.json())["error"]["message"]


async def test_anthropic_inband_error_event_after_http_200(
    fake: FakeServer, http: aiohttp.ClientSession
) -> None:
    fake.state.script(scenario.inband_error(after_events=3))
    async with http.post("/anthropic/v1/messages", json={**CLAUDE, "stream": True}, headers=ANTHROPIC) as r:
        assert r.status == 200
        events = sse_events(await r.read())
    assert len(events) == 4
    assert events[-1][0] == "error"
    assert orjson.loads(events[-1][1])["error"]["type"] == "overloaded_error"
    assert fake.state.last.outcome == "inband_error"


async def test_anthropic_models_list(http: aiohttp.ClientSession) -> None:
    async with http.get("/anthropic/v1/models", headers=ANTHROPIC) as r:
        body = await r.json()
    assert body["has_more"] is False
    assert all(m["type"] == "model" and m["id"].startswith("claude-") for m in body["data"])


# ---- Gemini ----


async def test_gemini_generate_content_shape(fake: FakeServer, http: aiohttp.ClientSession) -> None:
    async with http.post(f"{GEM_URL}:generateContent", json=GEM, headers=GEMINI) as r:
        assert r.status == 200
        body = await r.json()
    cand = body["candidates"][0]
    assert cand["content"] == {"parts": [{"text": "echo: hello big world"}], "role": "model"}
    assert cand["finishReason"] == "STOP"
    usage = body["usageMetadata"]
    assert (usage["promptTokenCount"], usage["candidatesTokenCount"], usage["totalTokenCount"]) == (5, 4, 9)
    assert fake.state.last.provider == "gemini"


async def test_gemini_sse_uses_crlf_no_done_and_usage_on_last(
    fake: FakeServer, http: aiohttp.ClientSession
) -> None:
    fake.state.script(scenario.text("satu dua tiga", reasoning_tokens=5))
    url = f"{GEM_URL}:streamGenerateContent?alt=sse"
    async with http.post(url, json=GEM, headers=GEMINI) as r:
        assert r.headers["Content-Type"].startswith("text/event-stream")
        raw = await r.read()
    assert raw.count(b"\r\n\r\n") == 3
    assert b"[DONE]" not in raw
    objs = [orjson.loads(d) for _, d in sse_events(raw)]
    assert "".join(o["candidates"][0]["content"]["parts"][0]["text"] for o in objs) == "satu dua tiga"
    assert [("finishReason" in o["candidates"][0]) for o in objs] == [False, False, True]
    last = objs[-1]["usageMetadata"]
    assert (last["candidatesTokenCount"], last["thoughtsTokenCount"], last["totalTokenCount"]) == (3, 5, 13)
    assert "candidatesTokenCount" not in objs[0]["usageMetadata"]


async def test_gemini_function_call_arrives_whole_and_without_alt_sse_is_a_json_array(
    fake: FakeServer, http: aiohttp.ClientSession
) -> None:
    fake.state.script(scenario.tool_calls(("get_weather", {"city": "Medan"})), times=2)
    async with http.post(f"{GEM_URL}:streamGenerateContent?alt=sse", json=GEM, headers=GEMINI) as r:
        objs = [orjson.loads(d) for _, d in sse_events(await r.read())]
    assert len(objs) == 1
    assert objs[0]["candidates"][0]["content"]["parts"] == [
        {"functionCall": {"name": "get_weather", "args": {"city": "Medan"}}}
    ]
    assert objs[0]["candidates"][0]["finishReason"] == "STOP"
    async with http.post(f"{GEM_URL}:streamGenerateContent", json=GEM, headers=GEMINI) as r:
        assert r.headers["Content-Type"].startswith("application/json")
        array = await r.json()
    assert isinstance(array, list)
    assert array[0]["candidates"][0]["content"]["parts"][0]["functionCall"]["name"] == "get_weather"


async def test_gemini_errors_and_auth(fake: FakeServer, http: aiohttp.ClientSession) -> None:
    fake.state.script(scenario.rate_limited("13"))
    async with http.post(f"{GEM_URL}:generateContent", json=GEM, headers=GEMINI) as r:
        assert r.status == 429
        err = (await r.json())["error"]
    assert (err["code"], err["status"]) == (429, "RESOURCE_EXHAUSTED")
    assert any(d.get("retryDelay") == "13s" for d in err["details"])
    async with http.post(f"{GEM_URL}:generateContent", json=GEM) as r:
        assert r.status == 403
    async with http.post(f"{GEM_URL}:generateContent", json=GEM, headers={"x-goog-api-key": "invalid"}) as r:
        assert r.status == 400
        assert (await r.json())["error"]["details"][0]["reason"] == "API_KEY_INVALID"
    async with http.post(f"{GEM_URL}:generateContent?key=AIza-q", json=GEM) as r:
        assert r.status == 200
    assert fake.state.last.key == "AIza-q"


async def test_gemini_embeddings_and_models(http: aiohttp.ClientSession) -> None:
    body = {
        "requests": [
            {"model": "models/text-embedding-004", "content": {"parts": [{"text": "a b"}]}},
            {
                "model": "models/text-embedding-004",
                "content": {"parts": [{"text": "c"}]},
                "outputDimensionality": 3,
            },
        ]
    }
    url = "/gemini/v1beta/models/text-embedding-004:batchEmbedContents"
    async with http.post(url, json=body, headers=GEMINI) as r:
        out = await r.json()
    assert [len(e["values"]) for e in out["embeddings"]] == [scenario.EMBEDDING_DIMENSIONS, 3]
    async with http.get("/gemini/v1beta/models", headers=GEMINI) as r:
        names = [m["name"] for m in (await r.json())["models"]]
    assert "models/gemini-2.5-flash" in names


# ---- faults, timing, disconnects ----


@pytest.mark.parametrize(
    ("path", "headers", "body"),
    [
        ("/openai/v1/chat/completions", GOOD, {**CHAT, "stream": True}),
        ("/anthropic/v1/messages", ANTHROPIC, {**CLAUDE, "stream": True}),
        (f"{GEM_URL}:streamGenerateContent?alt=sse", GEMINI, GEM),
    ],
)
async def test_reset_mid_stream_drops_the_connection_after_k_events(
    fake: FakeServer, http: aiohttp.ClientSession, path: str, headers: dict[str, str], body: dict[str, Any]
) -> None:
    fake.state.script(scenario.reset_mid_stream(after_events=2))
    received = b""
    async with http.post(path, json=body, headers=headers) as r:
        assert r.status == 200
        with pytest.raises(aiohttp.ClientPayloadError):
            async for data in r.content.iter_any():
                received += data
    assert len(sse_events(received)) == 2
    assert b"[DONE]" not in received
    assert fake.state.last.outcome == "reset"
    assert fake.state.disconnects == []


async def test_stall_before_first_byte_and_the_client_leaving_is_noticed_within_100ms(
    fake: FakeServer, http: aiohttp.ClientSession
) -> None:
    fake.state.script(scenario.stall_first_byte(30))
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.3):
            await http.post("/openai/v1/chat/completions", json={**CHAT, "stream": True}, headers=GOOD)
    left = time.monotonic()
    gone = await fake.state.wait_for_disconnects(1, timeout=2)
    assert gone.at - left < 0.1
    assert gone.events_sent == 0
    assert fake.state.last.outcome == "disconnected"
    assert fake.state.active == 0


async def test_stall_mid_stream_then_client_closes(fake: FakeServer, http: aiohttp.ClientSession) -> None:
    fake.state.script(scenario.stall_mid_stream(after_events=2, seconds=30))
    async with http.post("/anthropic/v1/messages", json={**CLAUDE, "stream": True}, headers=ANTHROPIC) as r:
        got = b""
        while got.count(b"\n\n") < 2:
            got += await r.content.readany()
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.2):
                await r.content.readany()
        r.close()
        left = time.monotonic()
    gone = await fake.state.wait_for_disconnects(1, timeout=2)
    assert gone.at - left < 0.1
    assert gone.events_sent == 2


async def test_stall_after_the_last_event_holds_back_the_terminator(
    fake: FakeServer, http: aiohttp.ClientSession
) -> None:
    fake.state.script(scenario.stall_mid_stream(after_events=6, seconds=0.2))  # role + 4 words + finish
    started = time.monotonic()
    async with http.post("/openai/v1/chat/completions", json={**CHAT, "stream": True}, headers=GOOD) as r:
        events = sse_events(await r.read())
    assert time.monotonic() - started >= 0.2
    assert len(events) == 7
    assert events[-1] == (None, "[DONE]")


async def test_short_stall_mid_stream_resumes(fake: FakeServer, http: aiohttp.ClientSession) -> None:
    fake.state.script(scenario.stall_mid_stream(after_events=1, seconds=0.2))
    started = time.monotonic()
    async with http.post("/openai/v1/chat/completions", json={**CHAT, "stream": True}, headers=GOOD) as r:
        events = sse_events(await r.read())
    assert time.monotonic() - started >= 0.2
    assert events[-1] == (None, "[DONE]")


async def test_paced_stream_spaces_events(fake: FakeServer, http: aiohttp.ClientSession) -> None:
    fake.state.script(scenario.paced(0.05))
    arrivals: list[float] = []
    async with http.post(f"{GEM_URL}:streamGenerateContent?alt=sse", json=GEM, headers=GEMINI) as r:
        async for _ in r.content:  # line by line
            arrivals.append(time.monotonic())
    assert arrivals[-1] - arrivals[0] >= 0.05 * 3 * 0.9  # 4 events, 3 gaps


async def test_client_leaving_a_paced_stream_is_recorded(
    fake: FakeServer, http: aiohttp.ClientSession
) -> None:
    fake.state.script(scenario.paced(0.05, text=" ".join(["w"] * 100)))
    async with http.post(
        "/qwen/compatible-mode/v1/chat/completions",
        json={**CHAT, "model": "qwen-plus", "stream": True},
        headers=GOOD,
    ) as r:
        await r.content.readany()
        r.close()
        left = time.monotonic()
    gone = await fake.state.wait_for_disconnects(1, timeout=2)
    assert gone.at - left < 0.1
    assert gone.provider == "qwen"


async def test_malformed_sse_event(fake: FakeServer, http: aiohttp.ClientSession) -> None:
    fake.state.script(scenario.malformed_sse(after_events=1))
    async with http.post("/openai/v1/chat/completions", json={**CHAT, "stream": True}, headers=GOOD) as r:
        events = sse_events(await r.read())
    assert len(events) == 2
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(events[1][1])


async def test_large_answer_and_no_usage(fake: FakeServer, http: aiohttp.ClientSession) -> None:
    fake.state.script(scenario.large_answer(200_000, send_usage=False))
    body = {**CHAT, "stream": True, "stream_options": {"include_usage": True}}
    async with http.post("/openai/v1/chat/completions", json=body, headers=GOOD) as r:
        events = sse_events(await r.read())
    chunks = [orjson.loads(d) for _, d in events[:-1]]
    assert len("".join(c["choices"][0]["delta"].get("content") or "" for c in chunks)) == 200_000
    assert all(c["choices"] for c in chunks)  # no usage chunk
    assert fake.state.last.usage is None


async def test_queued_behaviours_match_provider_and_key(
    fake: FakeServer, http: aiohttp.ClientSession
) -> None:
    fake.state.script(scenario.http_error(500, provider="anthropic"))
    fake.state.rule_for_key("sk-dead", scenario.http_error(503))
    async with http.post("/openai/v1/chat/completions", json=CHAT, headers=GOOD) as r:
        assert r.status == 200
    async with http.post(
        "/openai/v1/chat/completions", json=CHAT, headers={"Authorization": "Bearer sk-dead-1"}
    ) as r:
        assert r.status == 503
    async with http.post("/anthropic/v1/messages", json=CLAUDE, headers=ANTHROPIC) as r:
        assert r.status == 500
        assert (await r.json())["error"]["type"] == "api_error"
    assert fake.state.pending == 0


async def test_env_points_every_provider_at_one_server(fake: FakeServer) -> None:
    env = fake.env()
    assert env["OPENAI_BASE_URL"] == f"{fake.url}/openai/v1"
    assert env["QWEN_BASE_URL"] == f"{fake.url}/qwen/compatible-mode/v1"
    assert env["ANTHROPIC_BASE_URL"] == f"{fake.url}/anthropic"
    assert env["GEMINI_BASE_URL"] == f"{fake.url}/gemini"


@given(st.text(alphabet=st.sampled_from("ab \n\t"), max_size=40), st.integers(1, 5))
def test_split_pieces_rejoins_exactly(answer: str, n: int) -> None:
    assert "".join(split_pieces(answer, n)) == answer


async def test_cli_serves_all_fakes_and_prints_base_urls() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.fakes", "--port", "0", stdout=asyncio.subprocess.PIPE, cwd=REPO_ROOT
    )
    try:
        assert proc.stdout is not None
        async with asyncio.timeout(20):
            lines = [(await proc.stdout.readline()).decode().strip() for _ in range(5)]
        env = dict(line.split("=", 1) for line in lines[1:])
        async with aiohttp.ClientSession() as http:
            async with http.get(env["ANTHROPIC_BASE_URL"] + "/v1/models", headers=ANTHROPIC) as r:
                assert r.status == 200
            async with http.post(env["OPENAI_BASE_URL"] + "/chat/completions", json=CHAT, headers=GOOD) as r:
                assert (await r.json())["choices"][0]["message"]["content"] == "echo: hello big world"
    finally:
        proc.terminate()
        assert await proc.wait() == 0


async def test_reset_forgets_scripts_and_ignores_late_disconnects(
    fake: FakeServer, http: aiohttp.ClientSession
) -> None:
    fake.state.script(scenario.stall_first_byte(30), scenario.http_error(500))
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.2):
            await http.post("/openai/v1/chat/completions", json=CHAT, headers=GOOD)
    fake.state.reset()
    await asyncio.sleep(0.05)
    assert fake.state.disconnects == []
    assert fake.state.pending == 0
    async with http.post("/openai/v1/chat/completions", json=CHAT, headers=GOOD) as r:
        assert r.status == 200
