"""Gemini answers and streams -> OpenAI chat completions and chunks. Pure apart from ids and ``created``.

Gemini has no tool-call ids: each function call gets a synthetic ``call_...`` id. Gemini streams send each
function call whole, so its arguments arrive in one delta. Gemini streams have no end marker: ``[DONE]``
(and the usage chunk, if the client asked) are synthesised when the upstream closes after a finishReason.
"""

from __future__ import annotations

import secrets
import time
from typing import Any

import orjson

from webrana_proxy.providers.base import JSON, ChatResult, Usage
from webrana_proxy.providers.chunks import DONE, ChunkWriter, completion, error_json, sse
from webrana_proxy.providers.upstream_errors import malformed
from webrana_proxy.sse import SSEParser

FINISH_REASONS = {
    "STOP": "stop",
    "MAX_TOKENS": "length",
    "SAFETY": "content_filter",
    "RECITATION": "content_filter",
    "BLOCKLIST": "content_filter",
    "PROHIBITED_CONTENT": "content_filter",
    "SPII": "content_filter",
    "IMAGE_SAFETY": "content_filter",
    "LANGUAGE": "content_filter",
}

# Gemini's google.rpc status -> HTTP status the OpenAI SDK understands.
STATUS_CODES = {
    "INVALID_ARGUMENT": 400,
    "FAILED_PRECONDITION": 400,
    "OUT_OF_RANGE": 400,
    "UNAUTHENTICATED": 401,
    "PERMISSION_DENIED": 403,
    "NOT_FOUND": 404,
    "RESOURCE_EXHAUSTED": 429,
    "CANCELLED": 499,
    "INTERNAL": 500,
    "UNKNOWN": 500,
    "UNAVAILABLE": 503,
    "DEADLINE_EXCEEDED": 504,
}


def new_call_id() -> str:
    return "call_" + secrets.token_hex(12)


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def usage_of(meta: Any) -> tuple[Usage, int] | None:
    """(usage, reasoning tokens) from ``usageMetadata``."""
    if not isinstance(meta, dict):
        return None
    # Tool-use prompt tokens (search grounding, code execution) are billed as input but not in promptTokenCount.
    prompt = _int(meta.get("promptTokenCount")) + _int(meta.get("toolUsePromptTokenCount"))
    thoughts = _int(meta.get("thoughtsTokenCount"))
    completion_tokens = _int(meta.get("candidatesTokenCount")) + thoughts
    total = _int(meta.get("totalTokenCount")) or prompt + completion_tokens
    return Usage(prompt_tokens=prompt, completion_tokens=completion_tokens, total_tokens=total,
                 cached_tokens=_int(meta.get("cachedContentTokenCount")), reasoning_tokens=thoughts), thoughts


def finish_reason(reason: Any, called: bool) -> str | None:
    if reason is None:
        return None
    if called:
        return "tool_calls"
    return FINISH_REASONS.get(str(reason), "stop")


def _parts(candidate: JSON) -> list[JSON]:
    content = candidate.get("content")
    parts = content.get("parts") if isinstance(content, dict) else None
    return [p for p in parts if isinstance(p, dict)] if isinstance(parts, list) else []


def _split_parts(parts: list[JSON]) -> tuple[str, str, list[JSON]]:
    """(answer text, thought text, OpenAI tool calls) of a candidate's parts."""
    texts: list[str] = []
    thoughts: list[str] = []
    calls: list[JSON] = []
    for part in parts:
        text = part.get("text")
        if isinstance(text, str):
            (thoughts if part.get("thought") is True else texts).append(text)
        call = part.get("functionCall")
        if isinstance(call, dict):
            calls.append({"id": new_call_id(), "type": "function", "function": {
                "name": str(call.get("name") or ""),
                "arguments": orjson.dumps(call.get("args") or {}).decode()}})
    return "".join(texts), "".join(thoughts), calls


def _blocked(answer: JSON) -> bool:
    feedback = answer.get("promptFeedback")
    return isinstance(feedback, dict) and feedback.get("blockReason") is not None


def chat_response(raw: bytes, model: str) -> ChatResult:
    try:
        answer: Any = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise malformed("Gemini") from None
    if not isinstance(answer, dict):
        raise malformed("Gemini")
    choices: list[JSON] = []
    candidates = answer.get("candidates")
    for position, candidate in enumerate(candidates if isinstance(candidates, list) else []):
        if not isinstance(candidate, dict):
            continue
        text, thought, calls = _split_parts(_parts(candidate))
        message: JSON = {"role": "assistant", "content": text or None}
        if calls:
            message["tool_calls"] = calls
        if thought:
            message["reasoning_content"] = thought
        choices.append({"index": _int(candidate.get("index")) or position, "message": message,
                        "logprobs": None,
                        "finish_reason": finish_reason(candidate.get("finishReason") or "STOP", bool(calls))})
    if not choices:
        reason = "content_filter" if _blocked(answer) else "stop"
        choices.append({"index": 0, "message": {"role": "assistant", "content": None}, "logprobs": None,
                        "finish_reason": reason})
    got = usage_of(answer.get("usageMetadata"))
    usage, thoughts = got if got is not None else (None, None)
    upstream_id = answer.get("responseId") if isinstance(answer.get("responseId"), str) else None
    version = answer.get("modelVersion")
    model_name = version if isinstance(version, str) else model
    body = completion(f"chatcmpl-{upstream_id or secrets.token_hex(12)}", int(time.time()), model_name,
                      choices, usage, thoughts)
    return ChatResult(body=body, usage=usage, upstream_id=upstream_id)


class GeminiStream:
    """``StreamTranslator``: Gemini SSE (``alt=sse``) in, OpenAI chunks out, one chunk per event."""

    def __init__(self, model: str, include_usage: bool, created: int | None = None) -> None:
        self._parser = SSEParser()
        self._writer = ChunkWriter(f"chatcmpl-{secrets.token_hex(12)}",
                                   created if created is not None else int(time.time()), model)
        self._include_usage = include_usage
        self._started: set[int] = set()  # candidates whose first chunk (with the role) went out
        self._tools: dict[int, int] = {}  # candidate -> tool calls sent so far
        self._reasoning: int | None = None
        self.usage: Usage | None = None
        self.completion_chars = 0
        self.error: JSON | None = None
        self.upstream_id: str | None = None
        self.done = False

    def feed(self, data: bytes) -> list[bytes]:
        out: list[bytes] = []
        for event in self._parser.feed(data):
            if self.error is not None:
                break
            out.extend(self._event(event.data))
        return out

    def finish(self) -> list[bytes]:
        out: list[bytes] = []
        for event in self._parser.close():
            if self.error is None:
                out.extend(self._event(event.data))
        if self.error is not None:
            return out
        if not self.done:
            self.error = error_json("the Gemini stream ended before a finishReason", "api_error",
                                    "upstream_stream_truncated")
            out.append(sse(self.error))
            return out
        if self._include_usage and self.usage is not None:
            out.append(self._writer.usage_chunk(self.usage, self._reasoning))
        out.append(DONE)
        return out

    def _event(self, data: str) -> list[bytes]:
        try:
            answer: Any = orjson.loads(data)
        except orjson.JSONDecodeError:
            answer = None
        if isinstance(answer, list) and answer:
            answer = answer[0]
        if not isinstance(answer, dict):
            self.error = error_json("Gemini sent a malformed stream event", "api_error", "upstream_malformed")
            return [sse(self.error)]
        err = answer.get("error")
        if isinstance(err, dict):
            status = str(err.get("status") or "")
            code = STATUS_CODES.get(status, 500)
            self.error = error_json(str(err.get("message") or "Gemini stream error"),
                                    "rate_limit_error" if code == 429 else "api_error", status or None)
            return [sse(self.error)]
        if self.upstream_id is None and isinstance(answer.get("responseId"), str):
            self.upstream_id = answer["responseId"]
        if isinstance(answer.get("modelVersion"), str):
            self._writer.model = answer["modelVersion"]
        meta = answer.get("usageMetadata")
        # Early events carry only the prompt count; usage counts once output tokens are in it.
        if isinstance(meta, dict) and ("candidatesTokenCount" in meta or "thoughtsTokenCount" in meta):
            got = usage_of(meta)
            if got is not None:
                self.usage, self._reasoning = got
        out: list[bytes] = []
        candidates = answer.get("candidates")
        for position, candidate in enumerate(candidates if isinstance(candidates, list) else []):
            if isinstance(candidate, dict):
                out.extend(self._candidate(candidate, _int(candidate.get("index")) or position))
        if not isinstance(candidates, list) and _blocked(answer):
            self.done = True
            out.append(self._writer.chunk({"role": "assistant", "content": ""}, "content_filter"))
        return out

    def _candidate(self, candidate: JSON, index: int) -> list[bytes]:
        text, thought, calls = _split_parts(_parts(candidate))
        delta: JSON = {}
        if index not in self._started:
            self._started.add(index)
            delta["role"] = "assistant"
            delta["content"] = ""
        if text:
            delta["content"] = text
        if thought:
            delta["reasoning_content"] = thought
        if calls:
            sent = self._tools.get(index, 0)
            for n, call in enumerate(calls):
                call["index"] = sent + n
            self._tools[index] = sent + len(calls)
            delta["tool_calls"] = calls
        self.completion_chars += len(text) + len(thought) + sum(
            len(c["function"]["name"]) + len(c["function"]["arguments"]) for c in calls)
        reason = finish_reason(candidate.get("finishReason"), index in self._tools)
        if reason is not None:
            self.done = True
        if not delta and reason is None:
            return []
        return [self._writer.chunk(delta, reason, index)]
