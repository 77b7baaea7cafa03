"""Providers that already speak OpenAI's wire format (OpenAI itself, Qwen, DeepSeek, OpenRouter, Mistral, Groq,
xAI).

The client's body goes upstream untouched except for the model name, on streams
``stream_options.include_usage`` (so usage is always counted), and ``cache_control`` markers on content parts,
which only providers that read them are sent (``takes_cache_markers``: the others cache on their own and refuse
unknown fields in a part). A provider that cannot see images (``Capabilities.vision`` False) refuses image parts
with a 400 naming the part. Answers come back byte for byte. A provider whose wire differs overrides only that:
``usage_of`` (its usage fields), ``prepare`` (fields it refuses or spells otherwise), ``upstream_error`` (its error
body), ``models_request`` (its cheap authenticated call). What each parameter becomes per provider is the
conformance table (``conformance.py``, rendered into docs/parameters.md).
"""

from __future__ import annotations

import base64
import struct
from typing import Any

import orjson

from webrana_proxy.errors import BadRequest, UpstreamError
from webrana_proxy.providers import upstream_errors
from webrana_proxy.providers.base import (
    JSON,
    ChatResult,
    MessagesNative,
    ResponsesNative,
    TokenCounter,
    UpstreamRequest,
    Usage,
)
from webrana_proxy.providers.estimate import estimate_prompt_tokens
from webrana_proxy.providers.keyformat import KeyFormat
from webrana_proxy.providers.passthrough import PassthroughStream, usage_from
from webrana_proxy.providers.prompt_cache import without_markers
from webrana_proxy.providers.spec import ProviderSpec

MIN_KEY_LENGTH = 20  # real keys are far longer; this only catches a pasted fragment
# "sk-" keys (OpenAI, Qwen, DeepSeek); "sk-ant-": an Anthropic key pasted in the wrong place
SK_KEYS = KeyFormat(("sk-",), MIN_KEY_LENGTH, rejected_prefixes=("sk-ant-", "sk-or-"))


def floats_to_base64(values: list[float]) -> str:
    """OpenAI's ``encoding_format: base64``: little-endian float32, base64-encoded."""
    return base64.b64encode(struct.pack(f"<{len(values)}f", *values)).decode("ascii")


def with_usage_estimate(body: JSON, request: JSON | None) -> bool:
    """Fill ``body["usage"]`` from the request when the upstream sent none; True if it did so."""
    if isinstance(body.get("usage"), dict) or request is None:
        return False
    tokens = estimate_prompt_tokens(request)
    body["usage"] = {"prompt_tokens": tokens, "total_tokens": tokens}
    return True


def wants_base64(request: JSON | None) -> bool:
    return request is not None and request.get("encoding_format") == "base64"


def refuse_images(body: JSON, display_name: str) -> None:
    """A 400 naming the first image part of ``body`` (for a provider whose models cannot see images)."""
    messages = body.get("messages")
    for i, message in enumerate(messages if isinstance(messages, list) else ()):
        content = message.get("content") if isinstance(message, dict) else None
        for j, part in enumerate(content if isinstance(content, list) else ()):
            if isinstance(part, dict) and part.get("type") in ("image_url", "input_image", "image"):
                field = f"messages[{i}].content[{j}]"
                raise BadRequest(f"{field}: {display_name} models take no images", param=field)


class OpenAICompatProvider:
    """An OpenAI-shaped provider, built from its ``ProviderSpec``. Subclasses override only what differs."""

    upstream_base64_embeddings: bool = True  # False: ask for floats, encode base64 ourselves
    adds_stream_usage: bool = True  # False: the provider refuses ``stream_options`` (it reports usage anyway)
    chat_native = True  # /v1/chat/completions goes as it came (the hot path: nothing fitted to the model)
    messages_native: MessagesNative | None = None  # /v1/messages is translated to the chat form
    responses_native: ResponsesNative | None = None  # /v1/responses is translated to the chat form
    token_counter: TokenCounter | None = None  # no counting endpoint: Webrana estimates
    takes_cache_markers: bool = False  # True: ``cache_control`` on content parts is sent on (Qwen, OpenRouter)

    def __init__(self, spec: ProviderSpec) -> None:
        self.spec = spec
        self.id = spec.id
        self.display_name = spec.display_name
        self.key_format = spec.key_format
        self.key_prefixes = spec.key_format.prefixes
        self.supports_embeddings = spec.capabilities.embeddings

    def owns_model(self, model: str) -> bool:
        return self.spec.owns_model(model)

    def accepts_key(self, key: str) -> bool:
        return self.key_format.accepts(key)

    def usage_of(self, answer: JSON) -> Usage | None:
        """The usage an answer or stream chunk carries (None when it has none)."""
        return usage_from(answer.get("usage"), answer.get("service_tier"))

    def prepare(self, body: JSON) -> JSON:
        """The chat body as this provider takes it (``body`` itself when nothing differs; never mutated)."""
        return body

    def _headers(self, api_key: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"}

    def chat_request(self, body: JSON, model: str, api_key: str, base_url: str) -> UpstreamRequest:
        out = body if body.get("model") == model else {**body, "model": model}
        if not self.spec.capabilities.vision:
            refuse_images(out, self.display_name)
        if not self.takes_cache_markers:
            out = without_markers(out)
        out = self.prepare(out)
        if body.get("stream") is True and self.adds_stream_usage:
            options = body.get("stream_options")
            if not (isinstance(options, dict) and options.get("include_usage") is True):
                merged = dict(options) if isinstance(options, dict) else {}
                merged["include_usage"] = True
                out = {**out, "stream_options": merged}
        return UpstreamRequest("POST", f"{base_url.rstrip('/')}/chat/completions", self._headers(api_key),
                               orjson.dumps(out))

    def chat_response(self, raw: bytes, model: str) -> ChatResult:
        try:
            parsed: Any = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return ChatResult(body=raw, usage=None)
        if not isinstance(parsed, dict):
            return ChatResult(body=raw, usage=None)
        upstream_id = parsed.get("id")
        return ChatResult(body=raw, usage=self.usage_of(parsed),
                          upstream_id=upstream_id if isinstance(upstream_id, str) else None)

    def stream_translator(self, model: str, include_usage: bool) -> PassthroughStream:
        return PassthroughStream(include_usage, self.usage_of)

    def embeddings_request(self, body: JSON, model: str, api_key: str, base_url: str) -> UpstreamRequest:
        out = body if body.get("model") == model else {**body, "model": model}
        if not self.upstream_base64_embeddings and out.get("encoding_format") == "base64":
            out = {**out, "encoding_format": "float"}
        return UpstreamRequest("POST", f"{base_url.rstrip('/')}/embeddings", self._headers(api_key),
                               orjson.dumps(out))

    def embeddings_response(self, raw: bytes, model: str, request: JSON | None = None) -> ChatResult:
        try:
            parsed: Any = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return ChatResult(body=raw, usage=None)
        if not isinstance(parsed, dict):
            return ChatResult(body=raw, usage=None)
        changed = estimated = with_usage_estimate(parsed, request)
        if wants_base64(request) and isinstance(parsed.get("data"), list):
            for item in parsed["data"]:
                if isinstance(item, dict) and isinstance(item.get("embedding"), list):
                    item["embedding"] = floats_to_base64(item["embedding"])
                    changed = True
        usage = usage_from(parsed.get("usage"))
        if usage is not None and not usage.completion_tokens:
            usage.total_tokens = usage.total_tokens or usage.prompt_tokens
        return ChatResult(body=orjson.dumps(parsed) if changed else raw, usage=usage,
                          usage_estimated=estimated)

    def models_request(self, api_key: str, base_url: str) -> UpstreamRequest:
        return UpstreamRequest("GET", f"{base_url.rstrip('/')}/models", self._headers(api_key))

    def upstream_error(self, status: int, raw: bytes, headers: dict[str, str]) -> UpstreamError:
        message = upstream_errors.text_of(raw)
        code: str | None = None
        error_type: str | None = None
        try:
            parsed: Any = orjson.loads(raw)
        except orjson.JSONDecodeError:
            parsed = None
        err = parsed.get("error") if isinstance(parsed, dict) else None
        source = err if isinstance(err, dict) else parsed if isinstance(parsed, dict) else {}
        if isinstance(source.get("message"), str):
            message = source["message"]
        if isinstance(source.get("code"), str | int) and not isinstance(source.get("code"), bool):
            code = str(source["code"])
        if isinstance(err, dict) and isinstance(err.get("type"), str) and err["type"]:
            error_type = err["type"]
        return upstream_errors.build(self.display_name, status, message, code=code, headers=headers,
                                     error_type=error_type)
