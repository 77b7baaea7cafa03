"""The conformance table (``providers/conformance.py``), checked cell by cell against the real translators, offline:
every parameter x every provider x every ingress dialect, through the same steps the gateway takes (dialect adapter,
model capabilities, provider translator; or the provider's native lane). Then what the table cannot say in one cell:
the JSON answer Anthropic gives through the forced tool, when thinking must stay off, cache markers on tools and
tool results, Gemini Files URIs. The docs page is rendered from the table and must be up to date."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.providers.provider_testkit import reassemble
from webrana_proxy.dialects.messages_request import to_chat as messages_to_chat
from webrana_proxy.dialects.responses_request import to_chat as responses_to_chat
from webrana_proxy.errors import BadRequest
from webrana_proxy.providers import build_registry
from webrana_proxy.providers.anthropic_request import ANSWER_TOOL, to_anthropic
from webrana_proxy.providers.anthropic_response import AnthropicStream, chat_response
from webrana_proxy.providers.catalogue import load_catalogue
from webrana_proxy.providers.conformance import (
    BASE,
    DIALECTS,
    MODELS,
    NATIVE,
    PROVIDERS,
    SCHEMA,
    TABLE,
    Row,
    render,
)
from webrana_proxy.providers.gemini_request import to_gemini
from webrana_proxy.providers.registry import provider_ids

REGISTRY = build_registry()
CATALOGUE = load_catalogue()
DOCS = Path(__file__).resolve().parents[2] / "docs" / "parameters.md"
REGENERATE = "python -m webrana_proxy.providers.conformance > docs/parameters.md"
KEY, BASE_URL = "k", "https://up.example/v1"
EPHEMERAL = {"type": "ephemeral"}


def upstream_body(dialect: str, provider_id: str, sample: Any, model: str | None = None) -> dict[str, Any]:
    """What ``provider_id`` would be sent for a ``dialect`` request holding ``sample``, as the gateway builds it."""
    provider = REGISTRY.get(provider_id)
    model = model or MODELS[provider_id]
    body = {**BASE[dialect], **sample, "model": model}
    raw = orjson.dumps(body)
    if dialect == "chat":
        if not provider.chat_native:
            CATALOGUE.capabilities_of(provider_id, model).fit(body)
        request = provider.chat_request(body, model, KEY, BASE_URL)
    elif dialect == "messages" and provider.messages_native is not None:
        request = provider.messages_native.messages_request(raw, body, model, KEY, BASE_URL, {})
    elif dialect == "responses" and provider.responses_native is not None:
        request = provider.responses_native.responses_request(raw, body, model, KEY, BASE_URL)
    else:
        chat = messages_to_chat(body, model) if dialect == "messages" else responses_to_chat(body, model).chat
        CATALOGUE.capabilities_of(provider_id, model).fit(chat)
        request = provider.chat_request(chat, model, KEY, BASE_URL)
    assert request.body is not None
    parsed: dict[str, Any] = orjson.loads(request.body)
    return parsed


def at(body: Any, path: str) -> Any:
    """The value at a dotted path (list indexes as numbers); a KeyError naming the path when it is missing."""
    node = body
    for step in path.split("."):
        if isinstance(node, list) and step.isdigit() and int(step) < len(node):
            node = node[int(step)]
        elif isinstance(node, dict) and step in node:
            node = node[step]
        else:
            raise KeyError(f"{path}: no '{step}' in {str(node)[:200]}")
    return node


def keys_anywhere(node: Any) -> set[str]:
    if isinstance(node, dict):
        return set(node).union(*(keys_anywhere(v) for v in node.values()))
    if isinstance(node, list):
        return set().union(*(keys_anywhere(v) for v in node))
    return set()


CASES = [pytest.param(r, p, id=f"{r.dialect}:{r.parameter}:{p}")
         for r in TABLE if r.sample is not None for p in PROVIDERS]


@pytest.mark.parametrize(("row", "provider"), CASES)
def test_each_cell_is_what_the_upstream_gets(row: Row, provider: str) -> None:
    cell = row.cells[provider]
    assert row.sample is not None
    if cell.kind == "refused":
        with pytest.raises(BadRequest) as refusal:
            upstream_body(row.dialect, provider, row.sample)
        assert refusal.value.param == cell.param, refusal.value.message
        return
    assert cell.kind in ("passed", "mapped", "dropped"), cell
    body = upstream_body(row.dialect, provider, row.sample)
    for path, value in cell.sent.items():
        assert at(body, path) == value, f"{path} in {body}"
    present = keys_anywhere(body)
    for key in cell.absent:
        assert key not in present, f"'{key}' should have been left out: {body}"


def test_every_provider_dialect_and_cell_is_stated() -> None:
    assert provider_ids() == PROVIDERS
    for dialect, provider_id in NATIVE.items():
        provider = REGISTRY.get(provider_id)
        native = provider.messages_native if dialect == "messages" else provider.responses_native
        assert native is not None
    for provider in REGISTRY.all():  # no other provider has a native lane the table does not know
        assert (provider.messages_native is not None) == (NATIVE["messages"] == provider.id)
        assert (provider.responses_native is not None) == (NATIVE["responses"] == provider.id)
    asked = ("response_format", "reasoning", "cache", "image", "seed", "stop", "top_p", "n", "logprobs",
             "parallel", "user")
    for dialect in DIALECTS:
        rows = [r for r in TABLE if r.dialect == dialect]
        assert len({r.parameter for r in rows}) == len(rows)
        chat_rows = [r for r in TABLE if r.dialect == "chat"]
        assert len(rows) >= len(chat_rows) - 1, dialect  # each chat parameter has its counterpart (or n/a)
        for r in rows:
            assert set(r.cells) == set(PROVIDERS)
            for cell in r.cells.values():
                assert (cell.kind == "n/a") == (r.sample is None)
                assert cell.kind != "dropped" or (cell.absent and cell.note), (r.parameter, cell)
                assert cell.kind != "refused" or (cell.param and cell.note), (r.parameter, cell)
                assert cell.kind not in ("passed", "mapped") or cell.sent, (r.parameter, cell)
    chat = " ".join(r.parameter for r in TABLE if r.dialect == "chat")
    assert all(word in chat for word in asked)


def test_the_docs_page_is_rendered_from_the_table() -> None:
    assert DOCS.read_text() == render(), f"docs/parameters.md is out of date: run `{REGENERATE}`"


# ---- Anthropic: the JSON answer through the forced tool ----

ANSWER_INPUT = {"kota": "Bandung", "suhu": 22.5}


def test_the_forced_answer_comes_back_as_json_text() -> None:
    raw = orjson.dumps({"id": "msg_1", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
                        "content": [{"type": "tool_use", "id": "toolu_1", "name": ANSWER_TOOL,
                                     "input": ANSWER_INPUT}],
                        "stop_reason": "tool_use", "usage": {"input_tokens": 10, "output_tokens": 5}})
    choice = orjson.loads(chat_response(raw, "claude-sonnet-4-5").body)["choices"][0]
    assert choice["finish_reason"] == "stop" and "tool_calls" not in choice["message"]
    assert orjson.loads(choice["message"]["content"]) == ANSWER_INPUT


def _sse(name: str, data: dict[str, Any]) -> bytes:
    return f"event: {name}\ndata: ".encode() + orjson.dumps({"type": name, **data}) + b"\n\n"


def test_the_forced_answer_streams_as_content() -> None:
    stream = b"".join([
        _sse("message_start", {"message": {"id": "msg_1", "model": "claude-sonnet-4-5",
                                           "usage": {"input_tokens": 10, "output_tokens": 1}}}),
        _sse("content_block_start", {"index": 0, "content_block": {"type": "tool_use", "id": "toolu_1",
                                                                   "name": ANSWER_TOOL, "input": {}}}),
        _sse("content_block_delta", {"index": 0, "delta": {"type": "input_json_delta",
                                                           "partial_json": '{"kota": "Bandung", '}}),
        _sse("content_block_delta", {"index": 0, "delta": {"type": "input_json_delta",
                                                           "partial_json": '"suhu": 22.5}'}}),
        _sse("content_block_stop", {"index": 0}),
        _sse("message_delta", {"delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 9}}),
        _sse("message_stop", {}),
    ])
    translator = AnthropicStream("claude-sonnet-4-5", include_usage=True)
    out = b"".join(translator.feed(stream) + translator.finish())
    got = reassemble(out)
    assert orjson.loads(got.content) == ANSWER_INPUT
    assert got.tool_calls == [] and got.finish_reason == "stop" and got.done


def test_with_client_tools_the_model_calls_one_or_answers() -> None:
    tool = {"type": "function", "function": {"name": "cuaca", "parameters": {"type": "object"}}}
    body = {"messages": [{"role": "user", "content": "hai"}], "tools": [tool],
            "response_format": {"type": "json_object"}}
    out = to_anthropic(body, "claude-sonnet-4-5")
    assert [t["name"] for t in out["tools"]] == ["cuaca", ANSWER_TOOL]
    assert out["tool_choice"] == {"type": "any"}
    named = to_anthropic({**body, "tool_choice": {"type": "function", "function": {"name": "cuaca"}}},
                         "claude-sonnet-4-5")
    assert named["tool_choice"] == {"type": "tool", "name": "cuaca"}
    with pytest.raises(BadRequest) as refusal:
        to_anthropic({**body, "response_format": {"type": "json_schema", "json_schema": {
            "name": "list", "schema": {"type": "array"}}}}, "claude-sonnet-4-5")
    assert refusal.value.param == "response_format.json_schema.schema"


def test_a_client_tool_may_not_take_the_answer_tools_name() -> None:
    tool = {"type": "function", "function": {"name": ANSWER_TOOL}}
    with pytest.raises(BadRequest) as refusal:
        to_anthropic({"messages": [{"role": "user", "content": "hai"}], "tools": [tool],
                      "response_format": {"type": "json_object"}}, "claude-sonnet-4-5")
    assert refusal.value.param == "tools"


# ---- Anthropic: when reasoning_effort cannot become thinking ----

TOOL_TURNS = [{"role": "user", "content": "cuaca Bandung?"},
              {"role": "assistant", "content": None, "tool_calls": [
                  {"id": "toolu_1", "type": "function", "function": {"name": "cuaca", "arguments": "{}"}}]},
              {"role": "tool", "tool_call_id": "toolu_1", "content": "22 C"}]


def test_thinking_stays_off_where_anthropic_would_refuse_it() -> None:
    base = {"messages": [{"role": "user", "content": "hai"}], "reasoning_effort": "medium"}
    # a turn that answers a tool call: the call's signed thinking blocks are not in the chat form
    assert "thinking" not in to_anthropic({**base, "messages": TOOL_TURNS}, "claude-sonnet-4-5")
    # a forced tool
    tool = {"type": "function", "function": {"name": "cuaca"}}
    assert "thinking" not in to_anthropic({**base, "tools": [tool], "tool_choice": "required"},
                                          "claude-sonnet-4-5")
    # no room: the budget must stay below max_tokens and at least 1,024
    assert "thinking" not in to_anthropic({**base, "max_tokens": 1000}, "claude-sonnet-4-5")
    small = to_anthropic({**base, "max_completion_tokens": 4000}, "claude-sonnet-4-5")
    assert small["thinking"] == {"type": "enabled", "budget_tokens": 3999} and small["max_tokens"] == 4000


def test_thinking_leaves_out_the_sampling_anthropic_refuses_with_it() -> None:
    out = to_anthropic({"messages": [{"role": "user", "content": "hai"}], "reasoning_effort": "low",
                        "temperature": 0.3, "top_p": 0.5, "top_k": 5}, "claude-sonnet-4-5")
    assert out["thinking"] == {"type": "enabled", "budget_tokens": 2048}
    assert not {"temperature", "top_p", "top_k"} & set(out)
    kept = to_anthropic({"messages": [{"role": "user", "content": "hai"}], "reasoning_effort": "low",
                         "top_p": 0.97}, "claude-sonnet-4-5")
    assert kept["top_p"] == 0.97
    explicit = {"type": "enabled", "budget_tokens": 5000}
    assert to_anthropic({"messages": [{"role": "user", "content": "hai"}], "reasoning_effort": "high",
                         "thinking": explicit}, "claude-sonnet-4-5")["thinking"] == explicit


def test_an_unknown_effort_is_a_400_naming_it() -> None:
    for provider in ("anthropic", "google", "qwen", "deepseek", "openrouter", "mistral"):
        with pytest.raises(BadRequest) as refusal:
            upstream_body("chat", provider, {"reasoning_effort": "maximal"})
        assert refusal.value.param == "reasoning_effort"


def test_capabilities_keep_reasoning_from_models_without_it() -> None:
    thinking = {"thinking": {"type": "enabled", "budget_tokens": 20000}}
    assert "thinkingConfig" not in upstream_body("messages", "google", thinking, "gemini-2.0-flash").get(
        "generationConfig", {})
    assert "thinking" not in upstream_body("responses", "anthropic", {"reasoning": {"effort": "high"}},
                                           "claude-3-5-haiku-latest")


# ---- cache markers on tools and tool results; Messages tool results ----

def test_cache_markers_on_tools_and_tool_results_reach_anthropic() -> None:
    marked_tool = {"type": "function", "function": {"name": "cuaca"}, "cache_control": EPHEMERAL}
    messages = [*TOOL_TURNS[:2], {"role": "tool", "tool_call_id": "toolu_1",
                                  "content": [{"type": "text", "text": "22 C", "cache_control": EPHEMERAL}]}]
    out = to_anthropic({"messages": messages, "tools": [marked_tool]}, "claude-sonnet-4-5")
    assert out["tools"][0]["cache_control"] == EPHEMERAL
    assert out["messages"][2]["content"][0] == {"type": "tool_result", "tool_use_id": "toolu_1",
                                                "content": "22 C", "cache_control": EPHEMERAL}
    with pytest.raises(BadRequest) as refusal:
        to_anthropic({"messages": [{"role": "user", "content": [
            {"type": "text", "text": "hai", "cache_control": "ephemeral"}]}]}, "claude-sonnet-4-5")
    assert refusal.value.param == "messages[0].content[0].cache_control"


def test_messages_tool_result_markers_reach_qwen_and_leave_mistral_clean() -> None:
    sample = {"messages": [
        {"role": "user", "content": "cuaca?"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "cuaca", "input": {}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "22 C",
                                      "cache_control": EPHEMERAL}]}],
        "tools": [{"name": "cuaca", "input_schema": {"type": "object"}}]}
    qwen = upstream_body("messages", "qwen", sample)
    assert qwen["messages"][2]["content"] == [{"type": "text", "text": "22 C", "cache_control": EPHEMERAL}]
    assert "cache_control" not in keys_anywhere(upstream_body("messages", "mistral", sample))


# ---- the rest of the Messages and Responses spellings ----

def test_messages_output_config_effort_is_the_effort_without_thinking() -> None:
    sample = {"output_config": {"effort": "low"}}
    assert upstream_body("messages", "qwen", sample)["thinking_budget"] == 2048
    with pytest.raises(BadRequest) as refusal:
        upstream_body("messages", "google", {"output_format": {"type": "json_object"}})
    assert refusal.value.param == "output_format"


def test_gemini_reads_its_own_files_by_uri() -> None:
    uri = "https://generativelanguage.googleapis.com/v1beta/files/abc-123"
    out = to_gemini({"messages": [{"role": "user", "content": [
        {"type": "text", "text": "apa ini?"}, {"type": "image_url", "image_url": {"url": uri}}]}]})
    assert out["contents"][0]["parts"][1] == {"fileData": {"fileUri": uri}}


def test_deepseek_schema_instruction_names_the_schema() -> None:
    body = upstream_body("chat", "deepseek", {"response_format": {"type": "json_schema", "json_schema": {
        "name": "cuaca", "schema": SCHEMA}}})
    instruction = body["messages"][0]["content"]
    assert "JSON" in instruction and orjson.loads(instruction.split("\n", 1)[1]) == SCHEMA
    assert body["messages"][1] == {"role": "user", "content": "hai"}
