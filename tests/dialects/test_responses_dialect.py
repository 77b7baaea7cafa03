"""The Responses dialect adapter, offline: Responses requests -> the chat form, chat answers and streams ->
Responses objects and events; and the native relay's usage reading (bytes through, usage located)."""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.fakes.openai_like import responses_answer
from tests.fakes.scenario import Behaviour, FakeState, ToolCall
from webrana_proxy.dialects.responses_request import input_items, to_chat
from webrana_proxy.dialects.responses_response import ResponsesStream, envelope, response_of
from webrana_proxy.errors import BadRequest
from webrana_proxy.providers.base import Usage
from webrana_proxy.providers.gemini_request import to_gemini
from webrana_proxy.providers.openai_responses import NativeResponsesStream, locate_usage
from webrana_proxy.providers.passthrough import PassthroughStream
from webrana_proxy.sse import SSEParser

PNG = "data:image/png;base64,iVBORw0KGgo="


def test_a_full_request_becomes_the_chat_form() -> None:
    body = {
        "model": "claude-sonnet-4-5", "instructions": "Be brief.", "max_output_tokens": 500, "temperature": 0.3,
        "top_p": 0.9, "stream": True, "store": False, "include": ["reasoning.encrypted_content"],
        "prompt_cache_key": "k", "parallel_tool_calls": False, "reasoning": {"effort": "high", "summary": "auto"},
        "text": {"format": {"type": "json_schema", "name": "w", "schema": {"type": "object"}, "strict": True}},
        "safety_identifier": "u1",
        "tools": [{"type": "function", "name": "exec", "description": "Run", "parameters": {"type": "object"},
                   "strict": False},
                  {"type": "web_search"},
                  {"type": "namespace", "name": "mcp", "description": "M", "tools": [
                      {"type": "function", "name": "read", "parameters": {"type": "object"}}]}],
        "tool_choice": {"type": "function", "name": "exec"},
        "input": [
            {"type": "message", "role": "developer", "content": [{"type": "input_text", "text": "Sandbox."}]},
            {"role": "user", "content": [{"type": "input_text", "text": "Lihat"},
                                         {"type": "input_image", "image_url": PNG, "detail": "auto"}]},
            {"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": "gAAA"},
            {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Sebentar."}]},
            {"type": "function_call", "call_id": "call_1", "name": "exec", "arguments": '{"cmd":"ls"}'},
            {"type": "function_call", "call_id": "call_2", "name": "read", "namespace": "mcp", "arguments": "{}"},
            {"type": "function_call_output", "call_id": "call_1", "output": "a.txt"},
            {"type": "function_call_output", "call_id": "call_2",
             "output": [{"type": "input_text", "text": "isi"}]},
            {"role": "user", "content": "Terima kasih"},
        ],
    }
    plan = to_chat(body, "claude-sonnet-4-5")
    assert plan.dropped_tools == ["web_search"] and plan.namespaces == {"mcp__read": ("mcp", "read")}
    assert plan.chat == {
        "model": "claude-sonnet-4-5",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "system", "content": "Sandbox."},
            {"role": "user", "content": [{"type": "text", "text": "Lihat"},
                                         {"type": "image_url", "image_url": {"url": PNG}}]},
            {"role": "assistant", "content": "Sebentar.", "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "exec", "arguments": '{"cmd":"ls"}'}},
                {"id": "call_2", "type": "function", "function": {"name": "mcp__read", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": "a.txt"},
            {"role": "tool", "tool_call_id": "call_2", "content": "isi"},
            {"role": "user", "content": "Terima kasih"},
        ],
        "max_completion_tokens": 500, "temperature": 0.3, "top_p": 0.9,
        "tools": [{"type": "function", "function": {"name": "exec", "parameters": {"type": "object"},
                                                    "description": "Run"}},
                  {"type": "function", "function": {"name": "mcp__read", "parameters": {"type": "object"}}}],
        "tool_choice": {"type": "function", "function": {"name": "exec"}}, "parallel_tool_calls": False,
        "reasoning_effort": "high",
        "response_format": {"type": "json_schema", "json_schema": {"name": "w", "schema": {"type": "object"},
                                                                    "strict": True}},
        "user": "u1", "stream": True, "stream_options": {"include_usage": True},
    }


def test_a_string_input_is_one_user_message_and_history_comes_first() -> None:
    history = [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": "satu"}]},
               {"id": "msg_1", "type": "message", "role": "assistant", "status": "completed",
                "content": [{"type": "output_text", "text": "dua", "annotations": []}]}]
    plan = to_chat({"input": "tiga"}, "qwen-plus", history)
    assert plan.chat["messages"] == [{"role": "user", "content": "satu"}, {"role": "assistant", "content": "dua"},
                                     {"role": "user", "content": "tiga"}]
    assert input_items({"input": "tiga"}) == [
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "tiga"}]}]


def test_json_schema_reaches_gemini_structured_output_and_effort_its_thinking() -> None:
    plan = to_chat({"input": "x", "reasoning": {"effort": "low"},
                    "text": {"format": {"type": "json_schema", "name": "w", "schema": {"type": "object"}}}},
                   "gemini-2.5-flash")
    config = to_gemini(plan.chat)["generationConfig"]
    assert config["responseMimeType"] == "application/json" and "thinkingConfig" in config


@pytest.mark.parametrize(("change", "field"), [
    ({"background": True}, "background"),
    ({"conversation": "conv_1"}, "conversation"),
    ({"input": [{"type": "item_reference", "id": "msg_1"}]}, "input[0].type"),
    ({"input": [{"role": "user", "content": [{"type": "input_image", "file_id": "file_1"}]}]},
     "input[0].content[0].image_url"),
    ({"input": [{"type": "function_call_output", "call_id": "nope", "output": "x"}]}, "input[0].call_id"),
    ({"input": [{"role": "robot", "content": "x"}]}, "input[0].role"),
    ({"max_output_tokens": 0}, "max_output_tokens"),
    ({"tools": [{"type": "function"}]}, "tools[0].name"),
    ({"stream": "yes"}, "stream"),
])
def test_what_cannot_be_honoured_is_a_400_naming_the_field(change: dict[str, Any], field: str) -> None:
    with pytest.raises(BadRequest) as caught:
        to_chat({"input": "halo", **change}, "claude-sonnet-4-5")
    assert caught.value.param == field and field in caught.value.message


def test_a_chat_completion_becomes_a_response() -> None:
    env = envelope({"model": "qwen-plus", "instructions": "Be brief.", "tools": []}, "resp_wbr_1", "qwen-plus",
                   True, created_at=5)
    completion = orjson.dumps({"id": "chatcmpl-1", "choices": [{"index": 0, "finish_reason": "tool_calls",
                                                                 "message": {"role": "assistant", "content": "Ok.",
                                                                             "tool_calls": [
        {"id": "call_9", "type": "function", "function": {"name": "mcp__read", "arguments": '{"p":1}'}}]}}],
        "usage": {"completion_tokens_details": {"reasoning_tokens": 2}}})
    usage = Usage(10, 5, 15, cached_tokens=4)
    response = response_of(completion, env, {"mcp__read": ("mcp", "read")}, usage)
    assert response["status"] == "completed" and response["instructions"] == "Be brief."
    assert response["output"] == [
        {"id": "msg_wbr_1_0", "type": "message", "status": "completed", "role": "assistant",
         "content": [{"type": "output_text", "text": "Ok.", "annotations": [], "logprobs": []}]},
        {"id": "fc_wbr_1_1", "type": "function_call", "status": "completed", "arguments": '{"p":1}',
         "call_id": "call_9", "name": "read", "namespace": "mcp"}]
    assert response["usage"] == {"input_tokens": 10, "input_tokens_details": {"cached_tokens": 4},
                                 "output_tokens": 5, "output_tokens_details": {"reasoning_tokens": 2},
                                 "total_tokens": 15}
    cut = orjson.dumps({"choices": [{"finish_reason": "length", "message": {"content": "pot"}}]})
    incomplete = response_of(cut, env, {}, usage)
    assert incomplete["status"] == "incomplete"
    assert incomplete["incomplete_details"] == {"reason": "max_output_tokens"}


# ---- streams ----


def _chat_stream(pieces: list[str], calls: list[tuple[str, str, list[str]]], finish: str, usage: Usage) -> bytes:
    """An OpenAI-shaped chat stream as the fake OpenAI sends it (one id; usage chunk; [DONE])."""
    def chunk(delta: dict[str, Any], reason: str | None = None) -> bytes:
        return b"data: " + orjson.dumps({"id": "chatcmpl-9", "object": "chat.completion.chunk", "created": 1,
                                         "model": "qwen-plus", "choices": [{"index": 0, "delta": delta,
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
                                         "model": "qwen-plus", "choices": [], "usage": {
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
    """(event names, the response the openai SDK would accumulate from the events, checked on the way)."""
    parser = SSEParser()
    names: list[str] = []
    response: dict[str, Any] = {}
    output: list[dict[str, Any]] = []
    for n, ev in enumerate(parser.feed(events) + parser.close()):
        names.append(ev.event)
        data = json.loads(ev.data)
        assert data["type"] == ev.event and data["sequence_number"] == n
        kind = ev.event
        if kind == "response.created":
            response = data["response"]
        elif kind == "response.output_item.added":
            assert data["output_index"] == len(output)
            output.append(data["item"])
        elif kind == "response.content_part.added":
            output[data["output_index"]]["content"].append(data["part"])
        elif kind == "response.output_text.delta":
            output[data["output_index"]]["content"][0]["text"] += data["delta"]
        elif kind == "response.function_call_arguments.delta":
            output[data["output_index"]]["arguments"] += data["delta"]
        elif kind == "response.custom_tool_call_input.delta":
            output[data["output_index"]]["input"] += data["delta"]
        elif kind == "response.custom_tool_call_input.done":
            assert output[data["output_index"]]["input"] == data["input"]
        elif kind == "response.output_text.done":
            assert output[data["output_index"]]["content"][0]["text"] == data["text"]
        elif kind == "response.function_call_arguments.done":
            assert output[data["output_index"]]["arguments"] == data["arguments"]
        elif kind == "response.output_item.done":
            done = data["item"]
            assert {k: v for k, v in done.items() if k != "status"} == \
                {k: v for k, v in output[data["output_index"]].items() if k != "status"}
            output[data["output_index"]] = done
        elif kind in ("response.completed", "response.incomplete"):
            assert data["response"]["output"] == output
            response = data["response"]
    return names, response


words = st.text(alphabet=st.sampled_from("ab cé🙂\n\""), min_size=1, max_size=6)
values = st.one_of(st.integers(-(2**53), 2**53), st.text(max_size=5), st.lists(st.booleans(), max_size=3))
args = st.dictionaries(st.text(alphabet="xyz", min_size=1, max_size=3), values, max_size=3)


@settings(max_examples=150, deadline=None)
@given(pieces=st.lists(words, max_size=6), arguments=st.lists(args, max_size=3),
       cuts=st.lists(st.integers(min_value=0, max_value=10_000), max_size=8),
       frag=st.integers(min_value=1, max_value=9), prompt=st.integers(0, 500), cached=st.integers(0, 500),
       finish=st.sampled_from(["stop", "length"]))
def test_a_translated_stream_reassembles_to_the_non_streamed_answer(
        pieces: list[str], arguments: list[dict[str, Any]], cuts: list[int], frag: int, prompt: int,
        cached: int, finish: str) -> None:
    usage = Usage(prompt + cached, 7, prompt + cached + 7, cached_tokens=cached)
    calls = []
    for i, a in enumerate(arguments):
        text = json.dumps(a)
        calls.append((f"call_{i}", f"ns__tool{i}" if i % 2 else f"tool{i}",
                      [text[j:j + frag] for j in range(0, len(text), frag)]))
    finish = "tool_calls" if calls and finish == "stop" else finish
    namespaces = {"ns__tool1": ("ns", "tool1")}
    env = envelope({"model": "qwen-plus"}, "resp_wbr_7", "qwen-plus", True, created_at=1)
    translator = ResponsesStream(PassthroughStream(True), env, namespaces)
    out = b""
    for part in _split(_chat_stream(pieces, calls, finish, usage), cuts):
        out += b"".join(translator.feed(part))
    out += b"".join(translator.finish())
    assert translator.done and translator.error is None and translator.usage == usage
    out += translator.completed_event()
    names, streamed = _reassemble(out)
    assert names[:2] == ["response.created", "response.in_progress"]
    assert names[-1] == ("response.incomplete" if finish == "length" else "response.completed")
    completion = orjson.dumps({"id": "chatcmpl-9", "choices": [{"index": 0, "finish_reason": finish, "message": {
        "role": "assistant", "content": "".join(pieces) or None,
        "tool_calls": [{"id": c, "type": "function", "function": {"name": n, "arguments": json.dumps(a)}}
                       for (c, n, _), a in zip(calls, arguments, strict=True)] or None}}]})
    whole = response_of(completion, env, namespaces, usage)
    assert streamed == whole


def test_an_in_band_error_ends_with_error_and_response_failed() -> None:
    translator = ResponsesStream(PassthroughStream(True), envelope({}, "resp_wbr_2", "qwen-plus", True), {})
    head = _chat_stream(["satu ", "dua"], [], "stop", Usage(1, 2, 3))
    cut = head[:head.index(b"data: ", 10)]
    out = b"".join(translator.feed(cut + b'data: {"error":{"message":"Overloaded","type":"server_error"}}\n\n'))
    names, _ = _reassemble(out)
    assert names[-2:] == ["error", "response.failed"] and translator.error is not None


def _native_stream(text: str, calls: tuple[ToolCall, ...], size: int | None = None) -> tuple[bytes, Usage]:
    b = Behaviour(text=text, tool_calls=calls, answer_size=size, words_per_chunk=3)
    _, usage, events = responses_answer(FakeState(), {"model": "gpt-4o", "input": "satu dua"}, b)
    return b"".join(events), Usage(usage.prompt_tokens, usage.completion_tokens, usage.total_tokens)


@settings(max_examples=150, deadline=None)
@given(text=st.text(max_size=40), arguments=st.lists(args, max_size=2),
       cuts=st.lists(st.integers(min_value=0, max_value=10_000), max_size=10))
def test_the_native_relay_passes_every_byte_and_reads_usage(text: str, arguments: list[dict[str, Any]],
                                                            cuts: list[int]) -> None:
    raw, usage = _native_stream(text, tuple(ToolCall(f"t{i}", x) for i, x in enumerate(arguments)))
    relay = NativeResponsesStream()
    seen: list[str] = []
    relay.on_id = seen.append
    out = b"".join(b"".join(relay.feed(part)) for part in _split(raw, cuts)) + b"".join(relay.finish())
    assert out == raw
    assert relay.done and relay.error is None and relay.usage == usage
    assert seen == [relay.upstream_id] and seen[0].startswith("resp_")


def test_usage_is_located_without_reading_the_output() -> None:
    raw, usage = _native_stream("", (), size=200_000)
    final = raw[raw.index(b"event: response.completed"):]
    assert locate_usage(final) == usage
    decoy = b'{"output":[{"text":"\\"usage\\":{\\"input_tokens\\":99}"}],"usage":{"input_tokens":3,' \
            b'"input_tokens_details":{"cached_tokens":1},"output_tokens":4,"total_tokens":7},"user":null}'
    assert locate_usage(decoy) == Usage(3, 4, 7, cached_tokens=1)
    assert locate_usage(b'{"usage":null}') is None


def test_a_cut_native_stream_ends_with_an_error_event() -> None:
    raw, _ = _native_stream("satu dua tiga", ())
    cut = raw[:raw.index(b"event: response.completed")]
    relay = NativeResponsesStream()
    out = b"".join(relay.feed(cut)) + b"".join(relay.finish())
    assert out.startswith(cut)
    tail = orjson.loads(out[len(cut):].split(b"data: ", 1)[1])
    last_sequence = orjson.loads(cut.rstrip().rsplit(b"data: ", 1)[1])["sequence_number"]
    assert tail["type"] == "error" and tail["sequence_number"] == last_sequence + 1
    assert relay.usage is None and not relay.done and relay.error is not None and relay.completion_chars > 0


# ---- custom (freeform) tools: Codex's apply_patch, the Agents SDK's custom tools ----

PATCH_GRAMMAR = 'start: begin_patch hunk+ end_patch\nbegin_patch: "*** Begin Patch" LF\n'
PATCH = "*** Begin Patch\n*** Add File: a.txt\n+satu \"dua\"\n*** End Patch\n"


def test_custom_tools_become_functions_of_one_string() -> None:
    body = {"model": "claude-sonnet-4-5",
            "tools": [{"type": "custom", "name": "apply_patch", "description": "Edit files.",
                       "format": {"type": "grammar", "syntax": "lark", "definition": PATCH_GRAMMAR}},
                      {"type": "custom", "name": "note"}],
            "tool_choice": {"type": "custom", "name": "apply_patch"},
            "input": [{"role": "user", "content": "Tambah a.txt"},
                      {"type": "custom_tool_call", "call_id": "call_p", "name": "apply_patch", "input": PATCH},
                      {"type": "custom_tool_call_output", "call_id": "call_p", "output": "Done!"}]}
    plan = to_chat(body, "claude-sonnet-4-5")
    assert plan.custom == {"apply_patch", "note"} and plan.dropped_tools == []
    patch, note = plan.chat["tools"]
    assert patch["function"]["name"] == "apply_patch" and patch["function"]["description"] == "Edit files."
    params = patch["function"]["parameters"]
    assert params["required"] == ["input"] and list(params["properties"]) == ["input"]
    assert params["properties"]["input"]["type"] == "string"
    assert PATCH_GRAMMAR in params["properties"]["input"]["description"]  # the format reaches the model
    assert note["function"]["parameters"]["properties"]["input"]["type"] == "string"
    assert plan.chat["tool_choice"] == {"type": "function", "function": {"name": "apply_patch"}}
    call, result = plan.chat["messages"][1:]
    assert orjson.loads(call["tool_calls"][0]["function"]["arguments"]) == {"input": PATCH}
    assert result == {"role": "tool", "tool_call_id": "call_p", "content": "Done!"}


def test_custom_tool_calls_come_back_as_custom_tool_call_items() -> None:
    env = envelope({"model": "gemini-2.5-flash"}, "resp_wbr_5", "gemini-2.5-flash", False, created_at=1)
    args = json.dumps({"input": PATCH})
    completion = orjson.dumps({"id": "c", "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
        "role": "assistant", "content": None, "tool_calls": [
            {"id": "call_p", "type": "function", "function": {"name": "apply_patch", "arguments": args}},
            {"id": "call_x", "type": "function", "function": {"name": "exec", "arguments": "{}"}}]}}]})
    whole = response_of(completion, env, {}, Usage(3, 4, 7), {"apply_patch"})
    assert whole["output"][0] == {"id": "ctc_wbr_5_0", "type": "custom_tool_call", "status": "completed",
                                  "call_id": "call_p", "name": "apply_patch", "input": PATCH}
    assert whole["output"][1]["type"] == "function_call" and whole["output"][1]["arguments"] == "{}"
    # The stream gives the same items; the custom call's text goes out once its arguments are whole.
    calls = [("call_p", "apply_patch", [args[i:i + 5] for i in range(0, len(args), 5)]), ("call_x", "exec", ["{}"])]
    translator = ResponsesStream(PassthroughStream(True), env, {}, {"apply_patch"})
    out = b"".join(translator.feed(_chat_stream([], calls, "tool_calls", Usage(3, 4, 7))))
    out += b"".join(translator.finish()) + translator.completed_event()
    names, streamed = _reassemble(out)
    assert streamed == whole
    assert names.count("response.custom_tool_call_input.delta") == 1
    assert "response.custom_tool_call_input.done" in names
    assert names.count("response.function_call_arguments.delta") == 1  # only exec's


def test_a_custom_call_whose_arguments_are_not_the_wrapper_keeps_them_as_its_text() -> None:
    env = envelope({}, "resp_wbr_6", "qwen-plus", False, created_at=1)
    completion = orjson.dumps({"id": "c", "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
        "role": "assistant", "content": None, "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "note", "arguments": "not json"}}]}}]})
    assert response_of(completion, env, {}, None, {"note"})["output"][0]["input"] == "not json"
