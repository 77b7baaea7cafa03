"""Anthropic (Claude) through the Messages API, translated both ways.

Embeddings: Anthropic has none (``supports_embeddings`` is False; the gateway answers 400).
"""

from __future__ import annotations

from typing import Any

import orjson

from webrana_proxy.errors import BadRequest, UpstreamError
from webrana_proxy.providers import upstream_errors
from webrana_proxy.providers.anthropic_native import AnthropicMessages
from webrana_proxy.providers.anthropic_request import to_anthropic
from webrana_proxy.providers.anthropic_response import AnthropicStream, chat_response
from webrana_proxy.providers.base import (
    JSON,
    ChatResult,
    MessagesNative,
    ResponsesNative,
    TokenCounter,
    UpstreamRequest,
)
from webrana_proxy.providers.keyformat import KeyFormat
from webrana_proxy.providers.spec import ProviderSpec

API_VERSION = "2023-06-01"  # the only stable Messages API version
OVERLOADED = 529  # Anthropic's "overloaded", which the OpenAI SDK does not know: sent on as 503
MIN_KEY_LENGTH = 20


class AnthropicProvider:
    chat_native = False  # /v1/chat/completions is translated to Messages
    messages_native: MessagesNative | None = AnthropicMessages()  # /v1/messages goes to Anthropic as it came
    responses_native: ResponsesNative | None = None  # /v1/responses is translated to the chat form
    token_counter: TokenCounter | None = None  # counting goes through the native lane

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

    def _headers(self, api_key: str) -> dict[str, str]:
        return {"x-api-key": api_key, "anthropic-version": API_VERSION, "Content-Type": "application/json"}

    def chat_request(self, body: JSON, model: str, api_key: str, base_url: str) -> UpstreamRequest:
        return UpstreamRequest("POST", f"{base_url.rstrip('/')}/v1/messages", self._headers(api_key),
                               orjson.dumps(to_anthropic(body, model)))

    def chat_response(self, raw: bytes, model: str) -> ChatResult:
        return chat_response(raw, model)

    def stream_translator(self, model: str, include_usage: bool) -> AnthropicStream:
        return AnthropicStream(model, include_usage)

    def embeddings_request(self, body: JSON, model: str, api_key: str, base_url: str) -> UpstreamRequest:
        raise BadRequest("Anthropic has no embeddings API; use an OpenAI, Gemini or Qwen embedding model",
                         param="model")

    def embeddings_response(self, raw: bytes, model: str, request: JSON | None = None) -> ChatResult:
        raise BadRequest("Anthropic has no embeddings API", param="model")

    def models_request(self, api_key: str, base_url: str) -> UpstreamRequest:
        return UpstreamRequest("GET", f"{base_url.rstrip('/')}/v1/models?limit=1", self._headers(api_key))

    def upstream_error(self, status: int, raw: bytes, headers: dict[str, str]) -> UpstreamError:
        message = upstream_errors.text_of(raw)
        code: str | None = None
        try:
            parsed: Any = orjson.loads(raw)
        except orjson.JSONDecodeError:
            parsed = None
        err = parsed.get("error") if isinstance(parsed, dict) else None
        if isinstance(err, dict):
            if isinstance(err.get("message"), str):
                message = err["message"]
            if isinstance(err.get("type"), str):
                code = err["type"]
        mapped = 503 if status == OVERLOADED else status
        return upstream_errors.build(self.display_name, mapped, message, code=code, headers=headers)


SPEC = ProviderSpec(
    id="anthropic", display_name="Anthropic", base_url_env="ANTHROPIC_BASE_URL",
    default_base_url="https://api.anthropic.com", key_format=KeyFormat(("sk-ant-",), MIN_KEY_LENGTH),
    make=AnthropicProvider, model_prefixes=("claude-",), aliases=("claude",),
    docs_url="https://docs.anthropic.com/en/api/messages")
