"""Anthropic Messages answers and streams -> OpenAI chat completions and chunks. Pure functions.

A call of ``ANSWER_TOOL`` (the forced tool a ``response_format`` of JSON was asked through) is the answer itself:
its input comes back as the message's JSON text, and the finish reason is ``stop`` unless a client tool was
called too."""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

import orjson

from webrana_proxy.providers.anthropic_request import ANSWER_TOOL
from webrana_proxy.providers.base import JSON, ChatResult, Usage
from webrana_proxy.providers.chunks import DONE, ChunkWriter, completion, error_json, sse
from webrana_proxy.providers.upstream_errors import malformed
from webrana_proxy.sse import SSEParser

FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}

# Anthropic error type -> (OpenAI error type, status), for errors met inside a stream.
STREAM_ERROR_TYPES = {
    "invalid_request_error": "invalid_request_error",
    "authentication_error": "authentication_error",
    "permission_error": "permission_error",
    "not_found_error": "not_found_error",
    "request_too_large": "invalid_request_error",
    "rate_limit_error": "rate_limit_error",
    "api_error": "api_error",
    "overloaded_error": "api_error",
}


def finish_reason(stop_reason: Any) -> str | None:
    if stop_reason is None:
        return None
    return FINISH_REASONS.get(str(stop_reason), "stop")


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def thinking_of(raw: JSON) -> int:
    """``output_tokens_details.thinking_tokens``: the part of ``output_tokens`` spent thinking (billed as output)."""
    details = raw.get("output_tokens_details")
    return _int(details.get("thinking_tokens")) if isinstance(details, dict) else 0


def usage_of(raw: Any) -> Usage | None:
    if not isinstance(raw, dict):
        return None
    cache_read = _int(raw.get("cache_read_input_tokens"))
    written = _int(raw.get("cache_creation_input_tokens"))
    split = raw.get("cache_creation")
    written_1h = _int(split.get("ephemeral_1h_input_tokens")) if isinstance(split, dict) else 0
    prompt = _int(raw.get("input_tokens")) + written + cache_read
    output = _int(raw.get("output_tokens"))
    tier = raw.get("service_tier")
    return Usage(prompt_tokens=prompt, completion_tokens=output, total_tokens=prompt + output,
                 cached_tokens=cache_read, cache_write_tokens=written, cache_write_1h_tokens=written_1h,
                 reasoning_tokens=min(thinking_of(raw), output),
                 service_tier=tier if isinstance(tier, str) else None)


def with_output(input_usage: Usage | None, output_tokens: int, thinking_tokens: int = 0) -> Usage:
    """The input side of ``message_start`` (tokens, cache reads and writes) with the output count so far (and
    how much of it was thinking, when ``message_delta`` says)."""
    reasoning = min(thinking_tokens, output_tokens)
    if input_usage is None:
        return Usage(completion_tokens=output_tokens, total_tokens=output_tokens, reasoning_tokens=reasoning)
    return replace(input_usage, completion_tokens=output_tokens, reasoning_tokens=reasoning,
                   total_tokens=input_usage.prompt_tokens + output_tokens)


def chat_response(raw: bytes, model: str) -> ChatResult:
    try:
        msg: Any = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise malformed("Anthropic") from None
    if not isinstance(msg, dict):
        raise malformed("Anthropic")
    texts: list[str] = []
    thinking: list[str] = []
    answered = False  # the JSON answer came as a call of ANSWER_TOOL
    calls: list[JSON] = []
    for block in msg.get("content") or []:
        if not isinstance(block, dict):
            continue
        kind = block.get("type")
        if kind == "text" and isinstance(block.get("text"), str):
            texts.append(block["text"])
        elif kind == "thinking" and isinstance(block.get("thinking"), str):
            thinking.append(block["thinking"])
        elif kind == "tool_use" and block.get("name") == ANSWER_TOOL:
            texts.append(orjson.dumps(block.get("input") or {}).decode())
            answered = True
        elif kind == "tool_use":
            calls.append({
                "id": block.get("id"),
                "type": "function",
                "function": {"name": block.get("name"),
                             "arguments": orjson.dumps(block.get("input") or {}).decode()},
            })
    message: JSON = {"role": "assistant", "content": "".join(texts) if texts else None}
    if calls:
        message["tool_calls"] = calls
    if thinking:
        message["reasoning_content"] = "".join(thinking)
    upstream_id = msg.get("id") if isinstance(msg.get("id"), str) else None
    usage = usage_of(msg.get("usage"))
    reason = finish_reason(msg.get("stop_reason")) or "stop"
    if reason == "tool_calls" and answered and not calls:
        reason = "stop"  # only the JSON answer was "called"
    body = completion(
        upstream_id or "msg_unknown",
        int(time.time()),
        str(msg["model"]) if isinstance(msg.get("model"), str) else model,
        [{"index": 0, "message": message, "logprobs": None,
          "finish_reason": reason}],
        usage,
        usage.reasoning_tokens if usage is not None and usage.reasoning_tokens else None,
    )
    return ChatResult(body=body, usage=usage, upstream_id=upstream_id)


class AnthropicStream:
    """``StreamTranslator``: Anthropic stream events in, OpenAI ``chat.completion.chunk`` events out.

    ``usage`` is set at ``message_delta`` (which carries the final output count), not before.
    """

    def __init__(self, model: str, include_usage: bool, created: int | None = None) -> None:
        self._parser = SSEParser()
        self._writer = ChunkWriter("msg_unknown", created if created is not None else int(time.time()), model)
        self._include_usage = include_usage
        self._tool_index = -1
        self._blocks: dict[int, int] = {}  # Anthropic block index -> OpenAI tool index
        self._answers: set[int] = set()  # Anthropic block indexes of ANSWER_TOOL calls: their input is text
        self._input: Usage | None = None
        self._output_tokens = 0
        self._thinking_tokens = 0
        self._finished = False  # trailing events already sent
        self.usage: Usage | None = None
        self.completion_chars = 0
        self.error: JSON | None = None
        self.upstream_id: str | None = None
        self.done = False

    def feed(self, data: bytes) -> list[bytes]:
        out: list[bytes] = []
        for event in self._parser.feed(data):
            if self.error is not None or self._finished:
                break
            out.extend(self._event(event.event, event.data))
        return out

    def finish(self) -> list[bytes]:
        out: list[bytes] = []
        for event in self._parser.close():
            if self.error is None and not self._finished:
                out.extend(self._event(event.event, event.data))
        if self.error is None and not self._finished:
            self.error = error_json("the Anthropic stream ended before message_stop", "api_error",
                                    "upstream_stream_truncated")
            out.append(sse(self.error))
        return out

    def _event(self, name: str, data: str) -> list[bytes]:
        if name == "ping":
            return []
        try:
            payload: Any = orjson.loads(data)
        except orjson.JSONDecodeError:
            payload = None
        if not isinstance(payload, dict):
            self.error = error_json("Anthropic sent a malformed stream event", "api_error", "upstream_malformed")
            return [sse(self.error)]
        kind = payload.get("type") if isinstance(payload.get("type"), str) else name
        if kind == "message_start":
            return self._message_start(payload.get("message"))
        if kind == "content_block_start":
            return self._block_start(payload)
        if kind == "content_block_delta":
            return self._block_delta(payload)
        if kind == "message_delta":
            return self._message_delta(payload)
        if kind == "message_stop":
            return self._message_stop()
        if kind == "error":
            raw_err = payload.get("error")
            err: JSON = raw_err if isinstance(raw_err, dict) else {}
            err_type = str(err.get("type") or "api_error")
            self.error = error_json(str(err.get("message") or "Anthropic stream error"),
                                    STREAM_ERROR_TYPES.get(err_type, "api_error"), err_type)
            return [sse(self.error)]
        return []  # ping, content_block_stop, and event types added after this was written

    def _message_start(self, message: Any) -> list[bytes]:
        if isinstance(message, dict):
            if isinstance(message.get("id"), str):
                self.upstream_id = self._writer.id = message["id"]
            if isinstance(message.get("model"), str):
                self._writer.model = message["model"]
            # Input usage is exact from here on, but output is only known at message_delta: until then
            # ``usage`` stays None, so a cut-off stream is billed as an estimate and marked so.
            self._input = usage_of(message.get("usage"))
        return [self._writer.chunk({"role": "assistant", "content": ""})]

    def _block_start(self, payload: JSON) -> list[bytes]:
        block = payload.get("content_block")
        if not isinstance(block, dict):
            return []
        if block.get("type") == "tool_use" and block.get("name") == ANSWER_TOOL:
            self._answers.add(_int(payload.get("index")))
            return []
        if block.get("type") == "tool_use":
            self._tool_index += 1
            self._blocks[_int(payload.get("index"))] = self._tool_index
            name = str(block.get("name") or "")
            self.completion_chars += len(name)
            return [self._writer.chunk({"tool_calls": [{
                "index": self._tool_index, "id": block.get("id"), "type": "function",
                "function": {"name": name, "arguments": ""}}]})]
        if block.get("type") == "text" and isinstance(block.get("text"), str) and block["text"]:
            self.completion_chars += len(block["text"])
            return [self._writer.chunk({"content": block["text"]})]
        return []

    def _block_delta(self, payload: JSON) -> list[bytes]:
        delta = payload.get("delta")
        if not isinstance(delta, dict):
            return []
        kind = delta.get("type")
        if kind == "text_delta" and isinstance(delta.get("text"), str):
            self.completion_chars += len(delta["text"])
            return [self._writer.chunk({"content": delta["text"]})]
        if kind == "input_json_delta" and isinstance(delta.get("partial_json"), str):
            if _int(payload.get("index")) in self._answers:
                self.completion_chars += len(delta["partial_json"])
                return [self._writer.chunk({"content": delta["partial_json"]})] if delta["partial_json"] else []
            index = self._blocks.get(_int(payload.get("index")))
            if index is None or not delta["partial_json"]:
                return []
            self.completion_chars += len(delta["partial_json"])
            return [self._writer.chunk({"tool_calls": [
                {"index": index, "function": {"arguments": delta["partial_json"]}}]})]
        if kind == "thinking_delta" and isinstance(delta.get("thinking"), str):
            self.completion_chars += len(delta["thinking"])
            return [self._writer.chunk({"reasoning_content": delta["thinking"]})]
        return []  # signature_delta, citations_delta, ...

    def _message_delta(self, payload: JSON) -> list[bytes]:
        usage = payload.get("usage")
        if isinstance(usage, dict):
            if isinstance(usage.get("output_tokens"), int):
                self._output_tokens = usage["output_tokens"]
            self._thinking_tokens = thinking_of(usage) or self._thinking_tokens
            if "input_tokens" in usage or "cache_read_input_tokens" in usage:
                fresh = usage_of(usage)
                if fresh is not None and fresh.prompt_tokens:
                    self._input = fresh
        self._update_usage()
        delta = payload.get("delta")
        reason = finish_reason(delta.get("stop_reason")) if isinstance(delta, dict) else None
        if reason == "tool_calls" and self._answers and self._tool_index < 0:
            reason = "stop"  # only the JSON answer was "called"
        return [self._writer.chunk({}, reason or "stop")]

    def _message_stop(self) -> list[bytes]:
        self.done = True
        self._finished = True
        out: list[bytes] = []
        if self._include_usage and self.usage is not None:
            out.append(self._writer.usage_chunk(self.usage, self.usage.reasoning_tokens or None))
        out.append(DONE)
        return out

    def _update_usage(self) -> None:
        self.usage = with_output(self._input, self._output_tokens, self._thinking_tokens)
