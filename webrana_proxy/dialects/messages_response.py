"""The internal chat form's answers -> Anthropic Messages answers, events and errors. Pure.

* ``message_of``: a ``chat.completion`` -> a ``message`` (text block, ``tool_use`` blocks with parsed ``input``,
  ``stop_reason``, usage in Anthropic's fields: ``input_tokens`` excludes the cache reads).
* ``MessagesStream``: wraps a provider's ``StreamTranslator`` (which yields chat chunks) and yields the Messages
  event stream: ``message_start``, per block ``content_block_start`` / ``content_block_delta`` (``text_delta``,
  ``input_json_delta``) / ``content_block_stop``, ``message_delta`` (stop_reason, usage), ``message_stop``.
* ``error_body`` / ``error_event``: Webrana's errors in Anthropic's shape, before and after the first byte.

Reasoning text (``reasoning_content``) is not turned into ``thinking`` blocks: those need Anthropic's signature.
"""

from __future__ import annotations

from typing import Any

import orjson

from webrana_proxy.dialects.chat_chunks import read_chunk
from webrana_proxy.errors import WebranaError
from webrana_proxy.providers.base import JSON, StreamTranslator, Usage
from webrana_proxy.providers.upstream_errors import malformed
from webrana_proxy.sse import SSEParser

STOP_REASONS = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use",
                "function_call": "tool_use", "content_filter": "refusal"}
# HTTP status -> Anthropic error type (what the anthropic SDK and Claude Code expect for each status).
ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
               404: "not_found_error", 413: "request_too_large", 429: "rate_limit_error", 529: "overloaded_error"}
OVERLOADED = 529  # Anthropic's "overloaded": kept as it is on this dialect (the chat dialect says 503)
# OpenAI error type (in-band, from a chat stream) -> Anthropic error type.
STREAM_ERROR_TYPES = {"invalid_request_error": "invalid_request_error", "authentication_error":
                      "authentication_error", "permission_error": "permission_error", "not_found_error":
                      "not_found_error", "rate_limit_error": "rate_limit_error", "overloaded_error":
                      "overloaded_error"}


def message_id(upstream_id: Any) -> str:
    return upstream_id if isinstance(upstream_id, str) and upstream_id.startswith("msg_") \
        else f"msg_{upstream_id if isinstance(upstream_id, str) and upstream_id else 'webrana'}"


def stop_reason(finish: Any, has_calls: bool) -> str:
    if has_calls and finish in (None, "stop", "tool_calls"):
        return "tool_use"
    return STOP_REASONS.get(str(finish), "end_turn")


def usage_json(usage: Usage | None) -> JSON:
    usage = usage or Usage()
    return {"input_tokens": max(0, usage.prompt_tokens - usage.cached_tokens),
            "cache_creation_input_tokens": 0, "cache_read_input_tokens": usage.cached_tokens,
            "output_tokens": usage.completion_tokens}


def tool_input(arguments: Any) -> JSON:
    """A chat tool call's ``arguments`` string as the ``input`` object ({} when it is not a JSON object)."""
    if isinstance(arguments, dict):
        return arguments
    try:
        value = orjson.loads(arguments) if isinstance(arguments, str) and arguments.strip() else {}
    except orjson.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


def message_of(completion: bytes, model: str, usage: Usage | None) -> bytes:
    """A ``chat.completion`` (bytes from a provider translator) as an Anthropic ``message``."""
    try:
        chat: Any = orjson.loads(completion)
    except orjson.JSONDecodeError:
        raise malformed("the provider") from None
    choices = chat.get("choices") if isinstance(chat, dict) else None
    choice: JSON = choices[0] if isinstance(choices, list) and choices and isinstance(choices[0], dict) else {}
    message: JSON = choice["message"] if isinstance(choice.get("message"), dict) else {}
    content: list[JSON] = []
    text = message.get("content")
    if isinstance(text, str) and text:
        content.append({"type": "text", "text": text})
    calls = message.get("tool_calls")
    for call in calls if isinstance(calls, list) else ():
        fn = call.get("function") if isinstance(call, dict) else None
        if isinstance(fn, dict):
            content.append({"type": "tool_use", "id": str(call.get("id") or ""), "name": str(fn.get("name") or ""),
                            "input": tool_input(fn.get("arguments"))})
    has_calls = any(block["type"] == "tool_use" for block in content)
    return orjson.dumps({
        "id": message_id(chat.get("id")), "type": "message", "role": "assistant", "model": model,
        "content": content, "stop_reason": stop_reason(choice.get("finish_reason"), has_calls),
        "stop_sequence": None, "usage": usage_json(usage)})


def event(name: str, payload: JSON) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(payload) + b"\n\n"


def anthropic_error(status: int, code: str | None, message: str) -> tuple[int, JSON]:
    """(status, error object) in Anthropic's terms; an upstream's 529 "overloaded" stays 529."""
    if code == "overloaded_error" and status in (503, OVERLOADED):
        status = OVERLOADED
    kind = ERROR_TYPES.get(status) or ("api_error" if status >= 500 else "invalid_request_error")
    return status, {"type": kind, "message": message}


def error_body(err: WebranaError, request_id: str) -> tuple[int, bytes]:
    status, error = anthropic_error(err.status, err.code, err.message)
    return status, orjson.dumps({"type": "error", "error": error, "request_id": request_id})


def error_event(chat_error: JSON) -> bytes:
    """A chat in-band error (``{"error": {message, type, code}}``) as a Messages ``event: error``."""
    err: JSON = chat_error["error"] if isinstance(chat_error.get("error"), dict) else {}
    kind = STREAM_ERROR_TYPES.get(str(err.get("code")), STREAM_ERROR_TYPES.get(str(err.get("type")), "api_error"))
    return event("error", {"type": "error", "error": {"type": kind,
                                                      "message": str(err.get("message") or "stream error")}})


class MessagesStream:
    """``StreamTranslator`` for the translated lane: a provider's chat-chunk stream -> Messages events.

    ``usage``, ``completion_chars``, ``error`` and ``upstream_id`` are copied from the inner translator after each
    read (the error in chat shape, for the usage row); ``done`` once ``message_stop`` was sent.
    """

    def __init__(self, inner: StreamTranslator, model: str) -> None:
        self._inner = inner
        self._model = model
        self._parser = SSEParser()
        self._started = False
        self._block = -1  # index of the open block, -1 when none is open
        self._next_block = 0
        self._block_kind = ""  # "text" | "tool_use"
        self._tools: dict[int, int] = {}  # chat tool index -> block index
        self._finish: Any = None
        self._has_calls = False
        self._id = "msg_webrana"
        self.done = False
        self.usage: Usage | None = None
        self.completion_chars = 0
        self.error: JSON | None = None
        self.upstream_id: str | None = None

    def _sync(self) -> None:
        inner = self._inner
        self.usage, self.completion_chars = inner.usage, inner.completion_chars
        self.error, self.upstream_id = inner.error, inner.upstream_id

    def feed(self, data: bytes) -> list[bytes]:
        out = self._convert(self._inner.feed(data))
        self._sync()
        return out

    def finish(self) -> list[bytes]:
        out = self._convert(self._inner.finish())
        self._sync()
        for ev in self._parser.close():
            out.extend(self._chunk(ev.data))
        if not self.done and self._inner.error is None:
            out.append(event("error", {"type": "error", "error": {
                "type": "api_error", "message": "the provider's stream ended before it finished"}}))
        return out

    def _convert(self, pieces: list[bytes]) -> list[bytes]:
        out: list[bytes] = []
        for piece in pieces:
            for ev in self._parser.feed(piece):
                if self.done:
                    return out
                out.extend(self._chunk(ev.data))
        return out

    def _chunk(self, data: str) -> list[bytes]:
        read = read_chunk(data)
        if read is None:
            return []
        if read.end:
            return self._end()
        if read.error is not None:
            return [error_event(read.error)]
        out = self._start(read.chunk.get("id"))
        for piece in read.pieces:
            out.extend(self._text(piece) if isinstance(piece, str) else self._tool(piece))
        if read.finish is not None:
            self._finish = read.finish
        return out

    def _start(self, upstream_id: Any = None) -> list[bytes]:
        if self._started:
            return []
        self._started = True
        self._id = message_id(upstream_id)
        return [event("message_start", {"type": "message_start", "message": {
            "id": self._id, "type": "message", "role": "assistant", "model": self._model, "content": [],
            "stop_reason": None, "stop_sequence": None, "usage": usage_json(None)}})]

    def _open(self, kind: str, block: JSON) -> list[bytes]:
        out = self._close()
        self._block = self._next_block
        self._next_block += 1
        self._block_kind = kind
        out.append(event("content_block_start", {"type": "content_block_start", "index": self._block,
                                                 "content_block": block}))
        return out

    def _close(self) -> list[bytes]:
        if self._block < 0:
            return []
        index, self._block = self._block, -1
        return [event("content_block_stop", {"type": "content_block_stop", "index": index})]

    def _text(self, text: str) -> list[bytes]:
        out = [] if self._block >= 0 and self._block_kind == "text" else self._open("text", {"type": "text",
                                                                                            "text": ""})
        out.append(event("content_block_delta", {"type": "content_block_delta", "index": self._block,
                                                 "delta": {"type": "text_delta", "text": text}}))
        return out

    def _tool(self, call: JSON) -> list[bytes]:
        index = call.get("index", 0)
        index = index if isinstance(index, int) else 0
        fn: JSON = call["function"] if isinstance(call.get("function"), dict) else {}
        out: list[bytes] = []
        block = self._tools.get(index)
        if block is None:
            self._has_calls = True
            out = self._open("tool_use", {"type": "tool_use", "id": str(call.get("id") or f"toolu_{index}"),
                                          "name": str(fn.get("name") or ""), "input": {}})
            block = self._tools[index] = self._block
        args = fn.get("arguments")
        if isinstance(args, str) and args and block == self._block:  # chat streams one call after another
            out.append(event("content_block_delta", {"type": "content_block_delta", "index": block,
                                                     "delta": {"type": "input_json_delta", "partial_json": args}}))
        return out

    def _end(self) -> list[bytes]:
        out = [*self._start(), *self._close()]
        out.append(event("message_delta", {
            "type": "message_delta",
            "delta": {"stop_reason": stop_reason(self._finish, self._has_calls), "stop_sequence": None},
            "usage": usage_json(self._inner.usage)}))
        out.append(event("message_stop", {"type": "message_stop"}))
        self.done = True
        return out
