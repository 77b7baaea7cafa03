"""The internal chat form's answers -> OpenAI Responses answers, events and errors. Pure.

* ``envelope``: the response object's fields that echo the request (model, instructions, tools, tool_choice...).
* ``response_of``: a ``chat.completion`` -> a ``response`` (a ``message`` item with one ``output_text`` part,
  ``function_call`` items with ``call_id`` and JSON ``arguments`` (namespaced names mapped back), ``status``
  (``incomplete`` when the answer was cut by the token limit or a filter), ``usage`` in Responses' fields);
  calls of custom (freeform) tools as ``custom_tool_call`` items with their text as ``input``.
* ``ResponsesStream``: wraps a provider's ``StreamTranslator`` (which yields chat chunks) and yields the
  Responses event stream: ``response.created``, ``.in_progress``, per item ``.output_item.added`` /
  ``.content_part.added`` / ``.output_text.delta`` / ``.output_text.done`` / ``.content_part.done`` /
  ``.function_call_arguments.delta`` / ``.done`` (``.custom_tool_call_input.delta`` / ``.done`` for a custom
  tool, sent when its call is whole) / ``.output_item.done``, each with a rising
  ``sequence_number``; no ``[DONE]``. The final ``response.completed`` is held back until the gateway calls
  ``completed_event()`` (after storing the response), so a stored response is readable before the last byte.
* ``error_events``: an in-band error as an ``error`` event followed by ``response.failed``.

Reasoning text (``reasoning_content``) is not turned into reasoning items (they would need OpenAI's encryption
to be sent back); its tokens are counted in ``output_tokens_details.reasoning_tokens`` where the provider says.
"""

from __future__ import annotations

import time
from collections.abc import Collection
from typing import Any

import orjson

from webrana_proxy.dialects.chat_chunks import read_chunk
from webrana_proxy.dialects.responses_request import CUSTOM_INPUT
from webrana_proxy.providers.base import JSON, StreamTranslator, Usage
from webrana_proxy.providers.upstream_errors import malformed
from webrana_proxy.sse import SSEParser

INCOMPLETE = {"length": "max_output_tokens", "content_filter": "content_filter"}
ECHOED = ("instructions", "max_output_tokens", "parallel_tool_calls", "previous_response_id", "reasoning",
          "temperature", "text", "tool_choice", "tools", "top_p", "truncation", "user", "metadata",
          "safety_identifier", "prompt_cache_key", "service_tier")
DEFAULTS: JSON = {"instructions": None, "max_output_tokens": None, "parallel_tool_calls": True,
                  "previous_response_id": None, "reasoning": {"effort": None, "summary": None},
                  "temperature": 1.0, "text": {"format": {"type": "text"}}, "tool_choice": "auto", "tools": [],
                  "top_p": 1.0, "truncation": "disabled", "user": None, "metadata": {}}


def envelope(body: JSON, response_id: str, model: str, store: bool, created_at: int | None = None) -> JSON:
    """The response object around its output: the request's settings echoed, as OpenAI does."""
    out: JSON = {"id": response_id, "object": "response", "created_at": created_at or int(time.time()),
                 "status": "in_progress", "background": False, "error": None, "incomplete_details": None}
    for name in ECHOED:
        value = body.get(name, DEFAULTS.get(name))
        if name in body or name in DEFAULTS:
            out[name] = value
    out["model"] = model
    out["store"] = store
    out["output"] = []
    out["usage"] = None
    return out


def usage_json(usage: Usage | None, reasoning_tokens: int = 0) -> JSON:
    usage = usage or Usage()
    return {"input_tokens": usage.prompt_tokens, "input_tokens_details": {"cached_tokens": usage.cached_tokens},
            "output_tokens": usage.completion_tokens,
            "output_tokens_details": {"reasoning_tokens": usage.reasoning_tokens or reasoning_tokens},
            "total_tokens": usage.total_tokens or usage.prompt_tokens + usage.completion_tokens}


def reasoning_tokens_of(usage: Any) -> int:
    details = usage.get("completion_tokens_details") if isinstance(usage, dict) else None
    value = details.get("reasoning_tokens") if isinstance(details, dict) else None
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _suffix(response_id: str) -> str:
    return response_id.removeprefix("resp_")


def message_item(response_id: str, index: int, text: str, status: str = "completed") -> JSON:
    return {"id": f"msg_{_suffix(response_id)}_{index}", "type": "message", "status": status, "role": "assistant",
            "content": [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}]}


def custom_input(arguments: str) -> str:
    """A custom tool's text from the arguments of the function it was sent as (``{"input": "..."}``); the
    arguments themselves when a model answered with something else."""
    try:
        value: Any = orjson.loads(arguments)
    except orjson.JSONDecodeError:
        return arguments
    text = value.get(CUSTOM_INPUT) if isinstance(value, dict) else None
    return text if isinstance(text, str) else arguments


def call_item(response_id: str, index: int, call_id: str, name: str, arguments: str,
              namespaces: dict[str, tuple[str, str]], status: str = "completed",
              custom: Collection[str] = ()) -> JSON:
    """A ``function_call`` item, or a ``custom_tool_call`` (its ``input`` the text) for a custom tool."""
    if name in custom:
        return {"id": f"ctc_{_suffix(response_id)}_{index}", "type": "custom_tool_call", "status": status,
                "call_id": call_id, "name": name, "input": custom_input(arguments) if arguments else ""}
    item: JSON = {"id": f"fc_{_suffix(response_id)}_{index}", "type": "function_call", "status": status,
                  "arguments": arguments, "call_id": call_id, "name": name}
    if name in namespaces:
        item["namespace"], item["name"] = namespaces[name]
    return item


def finished(env: JSON, output: list[JSON], finish: Any, usage: Usage | None, reasoning: int) -> JSON:
    """``env`` completed: its output, status and usage."""
    out = dict(env)
    reason = INCOMPLETE.get(str(finish))
    out["status"] = "incomplete" if reason else "completed"
    out["incomplete_details"] = {"reason": reason} if reason else None
    out["output"] = output
    out["usage"] = usage_json(usage, reasoning)
    return out


def response_of(completion: bytes, env: JSON, namespaces: dict[str, tuple[str, str]],
                usage: Usage | None, custom: Collection[str] = ()) -> JSON:
    """A ``chat.completion`` (bytes from a provider translator) as a Responses ``response`` object."""
    try:
        chat: Any = orjson.loads(completion)
    except orjson.JSONDecodeError:
        raise malformed("the provider") from None
    choices = chat.get("choices") if isinstance(chat, dict) else None
    choice: JSON = choices[0] if isinstance(choices, list) and choices and isinstance(choices[0], dict) else {}
    message: JSON = choice["message"] if isinstance(choice.get("message"), dict) else {}
    response_id = str(env["id"])
    output: list[JSON] = []
    text = message.get("content")
    if isinstance(text, str) and text:
        output.append(message_item(response_id, 0, text))
    calls = message.get("tool_calls")
    for i, call in enumerate(calls if isinstance(calls, list) else ()):
        fn = call.get("function") if isinstance(call, dict) else None
        if isinstance(fn, dict):
            args = fn.get("arguments")
            output.append(call_item(response_id, len(output), str(call.get("id") or f"call_{i}"),
                                    str(fn.get("name") or ""), args if isinstance(args, str) else "{}",
                                    namespaces, custom=custom))
    raw_usage = chat.get("usage") if isinstance(chat, dict) else None
    return finished(env, output, choice.get("finish_reason"), usage, reasoning_tokens_of(raw_usage))


def event(payload: JSON) -> bytes:
    return b"event: " + str(payload["type"]).encode() + b"\ndata: " + orjson.dumps(payload) + b"\n\n"


def error_events(chat_error: JSON, sequence: int, env: JSON | None) -> list[bytes]:
    """A chat in-band error (``{"error": {message, type, code}}``) as an ``error`` event (the error nested, as
    OpenAI sends it, and its fields at the top level, as the schema has them) and, when the response had
    started, ``response.failed``."""
    err: JSON = chat_error["error"] if isinstance(chat_error.get("error"), dict) else {}
    message = str(err.get("message") or "stream error")
    code = str(err.get("code") or err.get("type") or "server_error")
    out = [event({"type": "error", "sequence_number": sequence,
                  "error": {"type": str(err.get("type") or "server_error"), "code": code, "message": message,
                            "param": None},
                  "code": code, "message": message, "param": None})]
    if env is not None:
        failed = {**env, "status": "failed", "error": {"code": "server_error", "message": message}}
        out.append(event({"type": "response.failed", "sequence_number": sequence + 1, "response": failed}))
    return out


class ResponsesStream:
    """``StreamTranslator`` for the translated lane: a provider's chat-chunk stream -> Responses events.

    ``usage``, ``completion_chars``, ``error`` and ``upstream_id`` are copied from the inner translator after each
    read; ``done`` once the chat stream ended normally; ``response`` then holds the finished response object,
    and ``completed_event()`` gives the ``response.completed`` event (sent last).
    """

    def __init__(self, inner: StreamTranslator, env: JSON, namespaces: dict[str, tuple[str, str]],
                 custom: Collection[str] = ()) -> None:
        self._inner = inner
        self._env = env
        self._namespaces = namespaces
        self._custom = custom
        self._id = str(env["id"])
        self._parser = SSEParser()
        self._seq = 0
        self._started = False
        self._output: list[JSON] = []  # finished items
        self._open: JSON | None = None  # the item being streamed
        self._text = ""  # the open message's text, or the open call's arguments
        self._tools: dict[int, int] = {}  # chat tool index -> output index
        self._finish: Any = None
        self._reasoning = 0
        self.response: JSON | None = None
        self.done = False
        self.usage: Usage | None = None
        self.completion_chars = 0
        self.error: JSON | None = None
        self.upstream_id: str | None = None

    def _sync(self) -> None:
        inner = self._inner
        self.usage, self.completion_chars = inner.usage, inner.completion_chars
        self.error, self.upstream_id = inner.error, inner.upstream_id

    def _event(self, payload: JSON) -> bytes:
        payload["sequence_number"] = self._seq
        self._seq += 1
        return event(payload)

    def feed(self, data: bytes) -> list[bytes]:
        out = self._convert(self._inner.feed(data))
        self._sync()
        return out

    def finish(self) -> list[bytes]:
        out = self._convert(self._inner.finish())
        self._sync()
        for ev in self._parser.close():
            out.extend(self._chunk(ev.data))
        if not self.done and self.error is None:
            self.error = {"error": {"message": "the provider's stream ended before it finished",
                                    "type": "api_error", "code": "upstream_stream_truncated"}}
            out.extend(self.inband(self.error))
        return out

    def inband(self, chat_error: JSON) -> list[bytes]:
        """An error after the first byte: ``error`` then ``response.failed`` (the relay's own errors too)."""
        events = error_events(chat_error, self._seq, self._env if self._started else None)
        self._seq += len(events)
        return events

    def inband_error(self, chat_error: JSON) -> bytes:
        return b"".join(self.inband(chat_error))

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
            return self.inband(read.error)
        out = self._start()
        if isinstance(read.chunk.get("usage"), dict):
            self._reasoning = reasoning_tokens_of(read.chunk["usage"])
        for piece in read.pieces:
            out.extend(self._delta_text(piece) if isinstance(piece, str) else self._tool(piece))
        if read.finish is not None:
            self._finish = read.finish
        return out

    def _start(self) -> list[bytes]:
        if self._started:
            return []
        self._started = True
        return [self._event({"type": "response.created", "response": self._env}),
                self._event({"type": "response.in_progress", "response": self._env})]

    def _add(self, item: JSON) -> list[bytes]:
        out = self._close()
        self._open = item
        self._text = ""
        return [*out, self._event({"type": "response.output_item.added", "output_index": len(self._output),
                                   "item": item})]

    def _close(self) -> list[bytes]:
        item, self._open = self._open, None
        if item is None:
            return []
        index = len(self._output)
        out: list[bytes] = []
        if item["type"] == "message":
            done = message_item(self._id, index, self._text)
            part = done["content"][0]
            out.append(self._event({"type": "response.output_text.done", "item_id": item["id"],
                                    "output_index": index, "content_index": 0, "text": self._text,
                                    "logprobs": []}))
            out.append(self._event({"type": "response.content_part.done", "item_id": item["id"],
                                    "output_index": index, "content_index": 0, "part": part}))
        elif item["type"] == "custom_tool_call":  # its text is known once the arguments' JSON is whole
            text = custom_input(self._text) if self._text else ""
            done = {**item, "input": text, "status": "completed"}
            if text:
                out.append(self._event({"type": "response.custom_tool_call_input.delta", "item_id": item["id"],
                                        "output_index": index, "delta": text}))
            out.append(self._event({"type": "response.custom_tool_call_input.done", "item_id": item["id"],
                                    "output_index": index, "input": text}))
        else:
            done = {**item, "arguments": self._text, "status": "completed"}
            out.append(self._event({"type": "response.function_call_arguments.done", "item_id": item["id"],
                                    "output_index": index, "name": item["name"], "arguments": self._text}))
        self._output.append(done)
        out.append(self._event({"type": "response.output_item.done", "output_index": index, "item": done}))
        return out

    def _delta_text(self, text: str) -> list[bytes]:
        out: list[bytes] = []
        if self._open is None or self._open["type"] != "message":
            index = len(self._output) + (1 if self._open is not None else 0)
            item = message_item(self._id, index, "", "in_progress")
            item["content"] = []
            out = self._add(item)
            out.append(self._event({"type": "response.content_part.added", "item_id": item["id"],
                                    "output_index": index, "content_index": 0,
                                    "part": {"type": "output_text", "text": "", "annotations": [],
                                             "logprobs": []}}))
        assert self._open is not None
        self._text += text
        out.append(self._event({"type": "response.output_text.delta", "item_id": self._open["id"],
                                "output_index": len(self._output), "content_index": 0, "delta": text,
                                "logprobs": []}))
        return out

    def _tool(self, call: JSON) -> list[bytes]:
        index = call.get("index", 0)
        index = index if isinstance(index, int) else 0
        fn: JSON = call["function"] if isinstance(call.get("function"), dict) else {}
        out: list[bytes] = []
        if index not in self._tools:
            position = len(self._output) + (1 if self._open is not None else 0)
            item = call_item(self._id, position, str(call.get("id") or f"call_{self._id}_{index}"),
                             str(fn.get("name") or ""), "", self._namespaces, "in_progress", self._custom)
            out = self._add(item)
            self._tools[index] = position
        args = fn.get("arguments")
        if isinstance(args, str) and args and self._open is not None and self._tools[index] == len(self._output):
            self._text += args  # chat streams one call after another
            if self._open["type"] == "custom_tool_call":
                return out  # its text goes out when the call is whole
            out.append(self._event({"type": "response.function_call_arguments.delta",
                                    "item_id": self._open["id"], "output_index": len(self._output),
                                    "delta": args}))
        return out

    def _end(self) -> list[bytes]:
        out = [*self._start(), *self._close()]
        self.response = finished(self._env, self._output, self._finish, self._inner.usage, self._reasoning)
        self.done = True
        return out

    def completed_event(self) -> bytes:
        """``response.completed`` (or ``.incomplete``) with the whole response and its usage: the last event."""
        assert self.response is not None
        kind = "response.completed" if self.response["status"] == "completed" else "response.incomplete"
        return self._event({"type": kind, "response": self.response})
