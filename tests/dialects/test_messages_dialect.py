"""The Messages dialect adapter, offline: Messages requests -> the chat form, chat answers and streams -> Messages
answers and events, errors in Anthropic's shape; and the native relay's usage reading."""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.fakes.anthropic import Answer, stream_events
from tests.fakes.scenario import Behaviour, ToolCall
from webrana_proxy.dialects.messages_request import to_chat, to_count_chat
from webrana_proxy.dialects.messages_response import MessagesStream, error_body, error_event, message_of
from webrana_proxy.errors import BadRequest, RateLimited, Unauthorized, UpstreamError
from webrana_proxy.providers.anthropic_native import NativeMessagesStream
from webrana_proxy.providers.base import Usage
from webrana_proxy.providers.gemini_request import to_gemini
from webrana_proxy.providers.passthrough import PassthroughStream
from webrana_proxy.sse import SSEParser

PNG = "iVBORw0KGgo="


def test_a_full_request_becomes_the_chat_form() -> None:
    body = {
        "model": "gpt-4o", "max_tokens": 1024, "temperature": 0.2, "top_p": 0.9, "top_k": 5, "stream": True,
        "stop_sequences": ["END"], "metadata": {"user_id": "u1"}, "context_management": {"edits": []},
        "system": [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}},
                   {"type": "text", "text": "Answer in Indonesian."}],
        "thinking": {"type": "enabled", "budget_tokens": 8000},
        "tools": [{"name": "get_weather", "description": "Weather", "input_schema": {"type": "object"},
                   "cache_control": {"type": "ephemeral"}},
                  {"type": "web_search_20250305", "name": "web_search", "max_uses": 3}],
        "tool_choice": {"type": "any", "disable_parallel_tool_use": True},
        "messages": [
            {"role": "user", "content": [
                {"type": "text", "text": "Lihat gambar"},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
                {"type": "image", "source": {"type": "url", "url": "https://example.com/a.jpg"}}]},
            {"role": "assistant", "content": [
                {"type": "thinking", "thinking": "hmm", "signature": "sig"},
                {"type": "text", "text": "Sebentar."},
                {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Jakarta"}}]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": [{"type": "text", "text": "31 C"}]},
                {"type": "text", "text": "Terima kasih", "cache_control": {"type": "ephemeral"}}]},
        ],
    }
    assert to_chat(body, "gpt-4o") == {
        "model": "gpt-4o",
        "messages": [
            {"role": "system", "content": [
                {"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}},
                {"type": "text", "text": "\n\nAnswer in Indonesian."}]},
            {"role": "user", "content": [
                {"type": "text", "text": "Lihat gambar"},
                {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
                {"type": "image_url", "image_url": {"url": "https://example.com/a.jpg"}}]},
            {"role": "assistant", "content": "Sebentar.", "tool_calls": [
                {"id": "toolu_1", "type": "function",
                 "function": {"name": "get_weather", "arguments": '{"city":"Jakarta"}'}}]},
            {"role": "tool", "tool_call_id": "toolu_1", "content": "31 C"},
            {"role": "user", "content": [
                {"type": "text", "text": "Terima kasih", "cache_control": {"type": "ephemeral"}}]},
        ],
        "max_completion_tokens": 1024, "temperature": 0.2, "top_p": 0.9, "stop": ["END"], "user": "u1",
        "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"},
                                                    "description": "Weather"}}],
        "tool_choice": "required", "parallel_tool_calls": False, "reasoning_effort": "medium",
        "stream": True, "stream_options": {"include_usage": True},
    }


def test_tool_result_images_follow_as_a_user_message_and_errors_are_marked() -> None:
    body = {"max_tokens": 10, "messages": [
        {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "read", "input": {}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "is_error": True, "content": [
            {"type": "text", "text": "not found"},
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}}]}]}]}
    messages = to_chat(body, "m")["messages"]
    assert messages[1] == {"role": "tool", "tool_call_id": "t1", "content": "Error: not found"}
    assert messages[2] == {"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}}]}


@pytest.mark.parametrize(("change", "field"), [
    ({"max_tokens": None}, "max_tokens"),
    ({"messages": []}, "messages"),
    ({"messages": [{"role": "tool", "content": "x"}]}, "messages[0]"),
    ({"messages": [{"role": "system", "content": [{"type": "image"}]}]}, "messages[0].content[0]"),
    ({"messages": [{"role": "user", "content": [{"type": "document", "source": {}}]}]},
     "messages[0].content[0].type"),
    ({"messages": [{"role": "user", "content": [{"type": "image", "source": {"type": "file", "file_id": "f"}}]}]},
     "messages[0].content[0].source.type"),
    ({"tools": [{"name": "t", "input_schema": {}}], "tool_choice": {"type": "sometimes"}}, "tool_choice"),
    ({"thinking": {"type": "enabled", "budget_tokens": "lots"}}, "thinking.budget_tokens"),
    ({"stop_sequences": "END"}, "stop_sequences"),
    ({"temperature": "warm"}, "temperature"),
])
def test_what_cannot_be_honoured_is_a_400_naming_the_field(change: dict[str, Any], field: str) -> None:
    body = {"max_tokens": 10, "messages": [{"role": "user", "content": "hi"}], **change}
    with pytest.raises(BadRequest) as caught:
        to_chat(body, "m")
    assert caught.value.param == field and caught.value.status == 400


def test_thinking_becomes_gemini_thinking_config_through_the_chat_form() -> None:
    body = {"max_tokens": 100, "thinking": {"type": "enabled", "budget_tokens": 2000},
            "messages": [{"role": "user", "content": "hi"}]}
    assert to_gemini(to_chat(body, "gemini-2.5-flash"))["generationConfig"]["thinkingConfig"] == \
        {"thinkingBudget": 1024}


def test_count_tokens_needs_no_max_tokens() -> None:
    chat = to_count_chat({"system": "s", "messages": [{"role": "user", "content": "a b"}],
                          "tools": [{"name": "t", "input_schema": {"type": "object"}}]}, "m")
    assert chat["messages"][0] == {"role": "system", "content": "s"} and len(chat["tools"]) == 1


def test_a_chat_completion_becomes_a_message() -> None:
    completion = orjson.dumps({"id": "chatcmpl-1", "object": "chat.completion", "model": "gpt-4o", "choices": [
        {"index": 0, "finish_reason": "tool_calls", "message": {"role": "assistant", "content": "Sebentar.",
                                                                "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": '{"a": [1, 2]}'}}]}}]})
    msg = orjson.loads(message_of(completion, "gpt-4o", Usage(100, 20, 120, cached_tokens=30)))
    assert msg == {"id": "msg_chatcmpl-1", "type": "message", "role": "assistant", "model": "gpt-4o",
                   "content": [{"type": "text", "text": "Sebentar."},
                               {"type": "tool_use", "id": "call_1", "name": "f", "input": {"a": [1, 2]}}],
                   "stop_reason": "tool_use", "stop_sequence": None,
                   "usage": {"input_tokens": 70, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 30,
                             "output_tokens": 20}}


@pytest.mark.parametrize(("finish", "reason"), [("stop", "end_turn"), ("length", "max_tokens"),
                                                ("content_filter", "refusal"), (None, "end_turn")])
def test_stop_reasons(finish: str | None, reason: str) -> None:
    completion = orjson.dumps({"id": "x", "choices": [{"finish_reason": finish,
                                                      "message": {"role": "assistant", "content": "a"}}]})
    assert orjson.loads(message_of(completion, "m", None))["stop_reason"] == reason


@pytest.mark.parametrize(("err", "status", "kind"), [
    (BadRequest("bad"), 400, "invalid_request_error"),
    (Unauthorized("who"), 401, "authentication_error"),
    (RateLimited("slow", retry_after=3), 429, "rate_limit_error"),
    (UpstreamError("Anthropic: Overloaded", status=503, code="overloaded_error"), 529, "overloaded_error"),
    (UpstreamError("OpenAI: busy", status=503), 503, "api_error"),
    (UpstreamError("x", status=413), 413, "request_too_large"),
])
def test_errors_in_anthropic_shape(err: Any, status: int, kind: str) -> None:
    got_status, body = error_body(err, "req_1")
    assert got_status == status
    assert orjson.loads(body) == {"type": "error", "error": {"type": kind, "message": err.message},
                                  "request_id": "req_1"}


def test_in_band_errors_are_error_events() -> None:
    raw = error_event({"error": {"message": "gone", "type": "api_error", "code": "upstream_reset"}})
    assert raw == b'event: error\ndata: {"type":"error","error":{"type":"api_error","message":"gone"}}\n\n'


# ---- streams ----


def _chat_stream(pieces: list[str], calls: list[tuple[str, str, list[str]]], finish: str, usage: Usage) -> bytes:
    """An OpenAI-shaped chat stream as the fake OpenAI sends it (one id; usage chunk; [DONE])."""
    def chunk(delta: dict[str, Any], reason: str | None = None) -> bytes:
        return b"data: " + orjson.dumps({"id": "chatcmpl-9", "object": "chat.completion.chunk", "created": 1,
                                         "model": "gpt-4o", "choices": [{"index": 0, "delta": delta,
                                                                        "finish_reason": reason}],
                                         "usage": None}) + b"\n\n"
    out = [chunk({"role": "assistant", "content": ""})]
    out.extend(chunk({"content": p}) for p in pieces)
    for i, (call_id, name, frags) in enumerate(calls):
        out.append(chunk({"tool_calls": [{"index": i, "id": call_id, "type": "function",
                                          "function": {"name": name, "arguments": ""}}]}))
        out.extend(chunk({"tool_calls": [{"index": i, "function": {"arguments": f}}]}) for f in frags)
    out.append(chunk({}, finish))
    out.append(b"data: " + orjson.dumps({"id": "chatcmpl-9", "object": "chat.completion.chunk", "created": 1,
                                         "model": "gpt-4o", "choices": [], "usage": {
                                             "prompt_tokens": usage.prompt_tokens,
                                             "completion_tokens": usage.completion_tokens,
                                             "total_tokens": usage.total_tokens,
                                             "prompt_tokens_details": {"cached_tokens": usage.cached_tokens}}})
               + b"\n\n")
    out.append(b"data: [DONE]\n\n")
    return b"".join(out)


def _split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]


def _reassemble(events: bytes) -> tuple[list[str], dict[str, Any]]:
    """(event names, the message the anthropic SDK would accumulate from them)."""
    parser = SSEParser()
    names: list[str] = []
    message: dict[str, Any] = {}
    partial: dict[int, str] = {}
    for ev in parser.feed(events) + parser.close():
        names.append(ev.event)
        data = json.loads(ev.data)
        assert data["type"] == ev.event
        if ev.event == "message_start":
            message = data["message"]
        elif ev.event == "content_block_start":
            assert data["index"] == len(message["content"])
            message["content"].append(data["content_block"])
        elif ev.event == "content_block_delta":
            block = message["content"][data["index"]]
            if data["delta"]["type"] == "text_delta":
                block["text"] += data["delta"]["text"]
            else:
                partial[data["index"]] = partial.get(data["index"], "") + data["delta"]["partial_json"]
        elif ev.event == "content_block_stop" and data["index"] in partial:
            message["content"][data["index"]]["input"] = json.loads(partial[data["index"]])
        elif ev.event == "message_delta":
            message.update(data["delta"])
            message["usage"] = data["usage"]
    return names, message


words = st.text(alphabet=st.sampled_from("ab cé🙂\n\""), min_size=1, max_size=6)
values = st.one_of(st.integers(-(2**53), 2**53), st.text(max_size=5), st.lists(st.booleans(), max_size=3))
args = st.dictionaries(st.text(alphabet="xyz", min_size=1, max_size=3), values, max_size=3)


@settings(max_examples=150, deadline=None)
@given(pieces=st.lists(words, max_size=6), arguments=st.lists(args, max_size=3),
       cuts=st.lists(st.integers(min_value=0, max_value=10_000), max_size=8),
       frag=st.integers(min_value=1, max_value=9), prompt=st.integers(0, 500), cached=st.integers(0, 500))
def test_a_translated_stream_reassembles_to_the_non_streamed_answer(
        pieces: list[str], arguments: list[dict[str, Any]], cuts: list[int], frag: int, prompt: int,
        cached: int) -> None:
    usage = Usage(prompt + cached, 7, prompt + cached + 7, cached_tokens=cached)
    calls = []
    for i, a in enumerate(arguments):
        text = json.dumps(a)
        calls.append((f"call_{i}", f"tool{i}", [text[j:j + frag] for j in range(0, len(text), frag)]))
    finish = "tool_calls" if calls else "stop"
    translator = MessagesStream(PassthroughStream(True), "gpt-4o")
    out = b""
    for part in _split(_chat_stream(pieces, calls, finish, usage), cuts):
        out += b"".join(translator.feed(part))
    out += b"".join(translator.finish())
    assert translator.done and translator.error is None and translator.usage == usage
    names, streamed = _reassemble(out)
    assert names[0] == "message_start" and names[-2:] == ["message_delta", "message_stop"]
    completion = orjson.dumps({"id": "chatcmpl-9", "choices": [{"index": 0, "finish_reason": finish, "message": {
        "role": "assistant", "content": "".join(pieces) or None,
        "tool_calls": [{"id": c, "type": "function", "function": {"name": n, "arguments": json.dumps(a)}}
                       for (c, n, _), a in zip(calls, arguments, strict=True)] or None}}]})
    whole = orjson.loads(message_of(completion, "gpt-4o", usage))
    assert streamed["content"] == whole["content"]
    assert (streamed["stop_reason"], streamed["usage"], streamed["id"]) == \
        (whole["stop_reason"], whole["usage"], whole["id"])


def _anthropic_stream(text: str, calls: tuple[ToolCall, ...]) -> tuple[bytes, Answer]:
    args = tuple(orjson.dumps(dict(c.arguments)).decode() for c in calls)
    a = Answer(id="msg_01", model="claude-sonnet-4-5", text=text, calls=calls,
               call_ids=tuple(f"toolu_{i}" for i in range(len(calls))), args_json=args,
               stop_reason="tool_use" if calls else "end_turn", input_tokens=11, output_tokens=5,
               cache_creation=2, cache_read=3)
    return b"".join(stream_events(a, Behaviour())), a


@settings(max_examples=150, deadline=None)
@given(text=st.text(max_size=40), arguments=st.lists(args, max_size=2),
       cuts=st.lists(st.integers(min_value=0, max_value=10_000), max_size=10))
def test_the_native_relay_passes_every_byte_and_reads_usage(text: str, arguments: list[dict[str, Any]],
                                                            cuts: list[int]) -> None:
    raw, _ = _anthropic_stream(text, tuple(ToolCall(f"t{i}", x) for i, x in enumerate(arguments)))
    relay = NativeMessagesStream()
    out = b"".join(b"".join(relay.feed(part)) for part in _split(raw, cuts)) + b"".join(relay.finish())
    assert out == raw
    assert relay.done and relay.error is None and relay.upstream_id == "msg_01"
    assert relay.usage == Usage(prompt_tokens=16, completion_tokens=5, total_tokens=21, cached_tokens=3,
                               cache_write_tokens=2, service_tier="standard")


def test_a_cut_native_stream_ends_with_an_error_event_and_no_usage() -> None:
    raw, _ = _anthropic_stream("satu dua tiga", ())
    cut = raw[:raw.index(b"event: message_delta")]
    relay = NativeMessagesStream()
    out = b"".join(relay.feed(cut)) + b"".join(relay.finish())
    assert out.startswith(cut) and out[len(cut):].startswith(b"event: error\ndata: ")
    assert relay.usage is None and not relay.done and relay.error is not None
    assert relay.completion_chars > 0  # for the estimate


def test_an_error_event_in_a_native_stream_is_noted_and_forwarded() -> None:
    raw, _ = _anthropic_stream("satu", ())
    head = raw[:raw.index(b"event: content_block_start")]
    error = b'event: error\ndata: {"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}\n\n'
    relay = NativeMessagesStream()
    assert b"".join(relay.feed(head + error)) == head + error
    assert relay.error is not None and relay.error["error"]["code"] == "overloaded_error"
