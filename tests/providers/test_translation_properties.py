"""Hypothesis properties of the Anthropic and Gemini translations.

* Translating a request keeps every message, tool call, tool result and tool.
* A translated stream, however its bytes are split, reassembles to the same content and tool calls as the
  translated non-streamed answer.
"""

from __future__ import annotations

from itertools import pairwise
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.providers.provider_testkit import reassemble, split_at
from webrana_proxy.providers import build_registry
from webrana_proxy.providers.anthropic_request import to_anthropic
from webrana_proxy.providers.gemini_request import to_gemini

text = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=30)
name = st.from_regex(r"[a-z][a-z0-9_]{0,10}", fullmatch=True)
json_value = st.recursive(
    st.none() | st.booleans() | st.integers(-1000, 1000) | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)
arguments = st.dictionaries(st.text(min_size=1, max_size=6), json_value, max_size=3)


@st.composite
def conversations(draw: st.DrawFn) -> dict[str, Any]:
    messages: list[dict[str, Any]] = []
    counter = 0
    for _ in range(draw(st.integers(1, 6))):
        kind = draw(st.sampled_from(["system", "user", "user", "assistant", "tools"]))
        if kind == "system":
            messages.append({"role": draw(st.sampled_from(["system", "developer"])), "content": draw(text)})
        elif kind == "user":
            messages.append({"role": "user", "content": draw(text)})
        elif kind == "assistant":
            messages.append({"role": "assistant", "content": draw(text)})
        else:
            calls = []
            for _ in range(draw(st.integers(1, 3))):
                counter += 1
                calls.append(
                    {
                        "id": f"call_{counter}",
                        "type": "function",
                        "function": {"name": draw(name), "arguments": orjson.dumps(draw(arguments)).decode()},
                    }
                )
            content = draw(st.none() | text)
            messages.append({"role": "assistant", "content": content, "tool_calls": calls})
            for call in draw(st.permutations(calls)):
                messages.append({"role": "tool", "tool_call_id": call["id"], "content": draw(text)})
    if not any(m["role"] in ("user", "assistant") for m in messages):
        messages.append({"role": "user", "content": draw(text)})
    tools = [
        {"type": "function", "function": {"name": n, "description": "d"}}
        for n in draw(st.lists(name, max_size=3, unique=True))
    ]
    body: dict[str, Any] = {"model": "m", "messages": messages}
    if tools:
        body["tools"] = tools
    return body


def expected(body: dict[str, Any]) -> dict[str, Any]:
    msgs = body["messages"]
    return {
        "system": [m["content"] for m in msgs if m["role"] in ("system", "developer")],
        "texts": [m["content"] for m in msgs if m["role"] in ("user", "assistant") and m["content"]],
        "calls": [
            (c["id"], c["function"]["name"], orjson.loads(c["function"]["arguments"]))
            for m in msgs
            for c in m.get("tool_calls", [])
        ],
        "results": [(m["tool_call_id"], m["content"]) for m in msgs if m["role"] == "tool"],
        "tools": [t["function"]["name"] for t in body.get("tools", [])],
    }


@given(conversations())
def test_anthropic_request_keeps_every_message_tool_call_result_and_tool(body: dict[str, Any]) -> None:
    out = to_anthropic(body, "claude-sonnet-4-5")
    want = expected(body)
    blocks = []
    roles = [turn["role"] for turn in out["messages"]]
    assert all(a != b for a, b in pairwise(roles))  # same-role turns merged
    for turn in out["messages"]:
        content = turn["content"]
        blocks.extend([{"type": "text", "text": content}] if isinstance(content, str) else content)
    assert out.get("system", "") == "\n\n".join(want["system"])
    assert [b["text"] for b in blocks if b["type"] == "text"] == want["texts"]
    assert [(b["id"], b["name"], b["input"]) for b in blocks if b["type"] == "tool_use"] == want["calls"]
    assert [(b["tool_use_id"], b["content"]) for b in blocks if b["type"] == "tool_result"] == want["results"]
    assert [t["name"] for t in out.get("tools", [])] == want["tools"]


@given(conversations())
def test_gemini_request_keeps_every_message_tool_call_result_and_tool(body: dict[str, Any]) -> None:
    out = to_gemini(body)
    want = expected(body)
    roles = [c["role"] for c in out["contents"]]
    assert set(roles) <= {"user", "model"}
    assert all(a != b for a, b in pairwise(roles))
    parts = [p for c in out["contents"] for p in c["parts"]]
    system = [p["text"] for p in out.get("systemInstruction", {}).get("parts", [])]
    assert system == want["system"]
    assert [p["text"] for p in parts if "text" in p] == want["texts"]
    assert [(p["functionCall"]["name"], p["functionCall"]["args"]) for p in parts if "functionCall" in p] == [
        (n, a) for _, n, a in want["calls"]
    ]
    names = {i: n for i, n, _ in want["calls"]}
    assert [
        (p["functionResponse"]["name"], p["functionResponse"]["response"]["result"])
        for p in parts
        if "functionResponse" in p
    ] == [(names[i], r) for i, r in want["results"]]
    declared = [d["name"] for t in out.get("tools", []) for d in t["functionDeclarations"]]
    assert declared == want["tools"]


# --- streams ------------------------------------------------------------------------------------------------


def pieces(draw: st.DrawFn, value: str) -> list[str]:
    cuts = sorted(set(draw(st.lists(st.integers(0, len(value)), max_size=4))))
    out, last = [], 0
    for c in cuts:
        out.append(value[last:c])
        last = c
    out.append(value[last:])
    return out


@st.composite
def anthropic_answers(draw: st.DrawFn) -> tuple[bytes, bytes, list[int]]:
    blocks: list[dict[str, Any]] = []
    for i in range(draw(st.integers(0, 4))):
        if draw(st.booleans()):
            blocks.append({"type": "text", "text": draw(text)})
        else:
            blocks.append({"type": "tool_use", "id": f"toolu_{i}", "name": draw(name), "input": draw(arguments)})
    stop = (
        "tool_use"
        if any(b["type"] == "tool_use" for b in blocks)
        else draw(st.sampled_from(["end_turn", "max_tokens", "stop_sequence"]))
    )
    usage = {"input_tokens": draw(st.integers(0, 999)), "output_tokens": draw(st.integers(0, 999))}
    message = {
        "id": "msg_x",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4-5",
        "content": blocks,
        "stop_reason": stop,
        "stop_sequence": None,
        "usage": usage,
    }
    events: list[tuple[str, dict[str, Any]]] = [
        (
            "message_start",
            {
                "type": "message_start",
                "message": {
                    **message,
                    "content": [],
                    "stop_reason": None,
                    "usage": {**usage, "output_tokens": 1},
                },
            },
        )
    ]
    for index, block in enumerate(blocks):
        if block["type"] == "text":
            events.append(
                (
                    "content_block_start",
                    {
                        "type": "content_block_start",
                        "index": index,
                        "content_block": {"type": "text", "text": ""},
                    },
                )
            )
            for piece in pieces(draw, block["text"]):
                events.append(
                    (
                        "content_block_delta",
                        {
                            "type": "content_block_delta",
                            "index": index,
                            "delta": {"type": "text_delta", "text": piece},
                        },
                    )
                )
        else:
            events.append(
                (
                    "content_block_start",
                    {
                        "type": "content_block_start",
                        "index": index,
                        "content_block": {
                            "type": "tool_use",
                            "id": block["id"],
                            "name": block["name"],
                            "input": {},
                        },
                    },
                )
            )
            for piece in pieces(draw, orjson.dumps(block["input"]).decode()):
                events.append(
                    (
                        "content_block_delta",
                        {
                            "type": "content_block_delta",
                            "index": index,
                            "delta": {"type": "input_json_delta", "partial_json": piece},
                        },
                    )
                )
        if draw(st.booleans()):
            events.append(("ping", {"type": "ping"}))
        events.append(("content_block_stop", {"type": "content_block_stop", "index": index}))
    events.append(
        (
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": stop},
                "usage": {"output_tokens": usage["output_tokens"]},
            },
        )
    )
    events.append(("message_stop", {"type": "message_stop"}))
    end = draw(st.sampled_from(["\n", "\r\n"]))
    stream = "".join(f"event: {n}{end}data: {orjson.dumps(d).decode()}{end}{end}" for n, d in events).encode()
    return orjson.dumps(message), stream, draw(st.lists(st.integers(0, len(stream)), max_size=10))


@st.composite
def gemini_answers(draw: st.DrawFn) -> tuple[bytes, bytes, list[int]]:
    parts: list[dict[str, Any]] = []
    for _ in range(draw(st.integers(0, 4))):
        if draw(st.booleans()):
            parts.append({"text": draw(text)})
        else:
            parts.append({"functionCall": {"name": draw(name), "args": draw(arguments)}})
    meta = {
        "promptTokenCount": draw(st.integers(0, 99)),
        "candidatesTokenCount": draw(st.integers(0, 99)),
        "totalTokenCount": 500,
    }
    reason = draw(st.sampled_from(["STOP", "MAX_TOKENS", "SAFETY"]))
    answer = {
        "candidates": [{"content": {"role": "model", "parts": parts}, "finishReason": reason, "index": 0}],
        "usageMetadata": meta,
        "modelVersion": "gemini-2.5-flash",
        "responseId": "r1",
    }
    # Stream: text split into pieces across events, function calls whole, finish + usage on the last event.
    stream_parts: list[dict[str, Any]] = []
    for part in parts:
        if "text" in part:
            stream_parts.extend({"text": p} for p in pieces(draw, part["text"]) if p)
        else:
            stream_parts.append(part)
    events = [
        {
            "candidates": [{"content": {"role": "model", "parts": [p]}, "index": 0}],
            "usageMetadata": {"promptTokenCount": meta["promptTokenCount"]},
        }
        for p in stream_parts
    ]
    last = {
        "candidates": [{"content": {"role": "model", "parts": []}, "finishReason": reason, "index": 0}],
        "usageMetadata": meta,
    }
    events.append(last)
    end = draw(st.sampled_from(["\n", "\r\n"]))
    stream = "".join(f"data: {orjson.dumps(e).decode()}{end}{end}" for e in events).encode()
    return orjson.dumps(answer), stream, draw(st.lists(st.integers(0, len(stream)), max_size=10))


def compare(provider_id: str, answer: bytes, stream_bytes: bytes, cuts: list[int]) -> None:
    provider = build_registry().get(provider_id)
    whole = orjson.loads(provider.chat_response(answer, "m").body)["choices"][0]
    translator = provider.stream_translator("m", include_usage=True)
    out = b""
    for piece in split_at(stream_bytes, cuts):
        out += b"".join(translator.feed(piece))
    out += b"".join(translator.finish())
    got = reassemble(out)
    assert got.done and got.error is None and translator.done
    assert got.content == (whole["message"]["content"] or "")
    calls = whole["message"].get("tool_calls", [])
    assert [(c["name"], orjson.loads(c["arguments"])) for c in got.tool_calls] == [
        (c["function"]["name"], orjson.loads(c["function"]["arguments"])) for c in calls
    ]
    assert all(c["id"] for c in got.tool_calls)
    assert got.finish_reason == whole["finish_reason"]
    assert got.usage is not None and translator.usage is not None
    assert got.usage["prompt_tokens"] == translator.usage.prompt_tokens
    assert got.usage["completion_tokens"] == translator.usage.completion_tokens


@settings(max_examples=150)
@given(anthropic_answers())
def test_anthropic_stream_reassembles_to_the_non_streamed_answer(
    case: tuple[bytes, bytes, list[int]],
) -> None:
    compare("anthropic", *case)


@settings(max_examples=150)
@given(gemini_answers())
def test_gemini_stream_reassembles_to_the_non_streamed_answer(case: tuple[bytes, bytes, list[int]]) -> None:
    compare("google", *case)
