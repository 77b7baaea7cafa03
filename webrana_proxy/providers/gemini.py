"""Google Gemini through the Generative Language API (v1beta), translated both ways.

The key goes in the ``x-goog-api-key`` header, never in ``?key=`` (query strings end up in logs).
Embeddings use ``:batchEmbedContents`` and are answered in OpenAI's list shape; Gemini reports no token
usage for them, so it is estimated from the input (and marked so).
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote

import orjson

from webrana_proxy.errors import UpstreamError
from webrana_proxy.providers import messages as m
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
from webrana_proxy.providers.gemini_request import to_gemini
from webrana_proxy.providers.gemini_response import STATUS_CODES, GeminiStream, chat_response
from webrana_proxy.providers.keyformat import KeyFormat
from webrana_proxy.providers.openai_compat import floats_to_base64, wants_base64
from webrana_proxy.providers.spec import Capabilities, ProviderSpec

API_VERSION = "v1beta"  # function calling with JSON schema and responseJsonSchema live here
KEY_LENGTH = 39  # "AIza" + 35 characters


def _model_path(model: str) -> str:
    return quote(model.removeprefix("models/"), safe="-._")


class GeminiTokens:
    """``TokenCounter`` through ``:countTokens`` (the whole request: system instruction and tools count too)."""

    __slots__ = ()

    def count_tokens_request(self, body: JSON, model: str, api_key: str, base_url: str) -> UpstreamRequest:
        request = to_gemini({k: v for k, v in body.items() if k != "stream"})
        request["model"] = f"models/{model.removeprefix('models/')}"
        url = f"{base_url.rstrip('/')}/{API_VERSION}/models/{_model_path(model)}:countTokens"
        return UpstreamRequest("POST", url, {"x-goog-api-key": api_key, "Content-Type": "application/json"},
                               orjson.dumps({"generateContentRequest": request}))

    def count_tokens_response(self, raw: bytes) -> int:
        try:
            answer: Any = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise upstream_errors.malformed("Google Gemini") from None
        total = answer.get("totalTokens") if isinstance(answer, dict) else None
        if not isinstance(total, int) or isinstance(total, bool):
            raise upstream_errors.malformed("Google Gemini")
        return total


class GeminiProvider:
    chat_native = False  # /v1/chat/completions is translated to generateContent
    messages_native: MessagesNative | None = None  # /v1/messages is translated to the chat form
    responses_native: ResponsesNative | None = None  # /v1/responses is translated to the chat form
    token_counter: TokenCounter | None = GeminiTokens()

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
        return {"x-goog-api-key": api_key, "Content-Type": "application/json"}

    def _url(self, base_url: str, model: str, method: str) -> str:
        return f"{base_url.rstrip('/')}/{API_VERSION}/models/{_model_path(model)}:{method}"

    def chat_request(self, body: JSON, model: str, api_key: str, base_url: str) -> UpstreamRequest:
        method = "streamGenerateContent?alt=sse" if body.get("stream") is True else "generateContent"
        return UpstreamRequest("POST", self._url(base_url, model, method), self._headers(api_key),
                               orjson.dumps(to_gemini(body)))

    def chat_response(self, raw: bytes, model: str) -> ChatResult:
        return chat_response(raw, model)

    def stream_translator(self, model: str, include_usage: bool) -> GeminiStream:
        return GeminiStream(model, include_usage)

    def embeddings_request(self, body: JSON, model: str, api_key: str, base_url: str) -> UpstreamRequest:
        texts = m.embedding_texts(body, self.display_name)
        dimensions = m.int_of(body, "dimensions")
        name = f"models/{model.removeprefix('models/')}"
        requests = []
        for text in texts:
            item: JSON = {"model": name, "content": {"parts": [{"text": text}]}}
            if dimensions is not None:
                item["outputDimensionality"] = dimensions
            requests.append(item)
        return UpstreamRequest("POST", self._url(base_url, model, "batchEmbedContents"),
                               self._headers(api_key), orjson.dumps({"requests": requests}))

    def embeddings_response(self, raw: bytes, model: str, request: JSON | None = None) -> ChatResult:
        try:
            answer: Any = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise upstream_errors.malformed(self.display_name) from None
        embeddings = answer.get("embeddings") if isinstance(answer, dict) else None
        if not isinstance(embeddings, list):
            raise upstream_errors.malformed(self.display_name)
        as_base64 = wants_base64(request)
        data = []
        for i, item in enumerate(embeddings):
            values = item.get("values") if isinstance(item, dict) else None
            if not isinstance(values, list):
                raise upstream_errors.malformed(self.display_name)
            data.append({"object": "embedding", "index": i,
                         "embedding": floats_to_base64(values) if as_base64 else values})
        tokens = estimate_prompt_tokens(request) if request is not None else 0
        usage = Usage(prompt_tokens=tokens, total_tokens=tokens)
        body = orjson.dumps({"object": "list", "data": data, "model": model,
                             "usage": {"prompt_tokens": tokens, "total_tokens": tokens}})
        return ChatResult(body=body, usage=usage if request is not None else None,
                          usage_estimated=request is not None)

    def models_request(self, api_key: str, base_url: str) -> UpstreamRequest:
        return UpstreamRequest("GET", f"{base_url.rstrip('/')}/{API_VERSION}/models?pageSize=1",
                               self._headers(api_key))

    def upstream_error(self, status: int, raw: bytes, headers: dict[str, str]) -> UpstreamError:
        message = upstream_errors.text_of(raw)
        code: str | None = None
        try:
            parsed: Any = orjson.loads(raw)
        except orjson.JSONDecodeError:
            parsed = None
        if isinstance(parsed, list) and parsed:
            parsed = parsed[0]
        err = parsed.get("error") if isinstance(parsed, dict) else None
        mapped = status
        if isinstance(err, dict):
            if isinstance(err.get("message"), str):
                message = err["message"]
            rpc_status = err.get("status")
            if isinstance(rpc_status, str):
                code = rpc_status
                if rpc_status == "RESOURCE_EXHAUSTED":
                    mapped = 429
                elif status < 400 or status == 500:
                    mapped = STATUS_CODES.get(rpc_status, status)
        if b"API_KEY_INVALID" in raw:  # Gemini says 400 for a bad key; the SDK should see 401
            mapped, code = 401, "API_KEY_INVALID"
        return upstream_errors.build(self.display_name, mapped, message, code=code, headers=headers)


SPEC = ProviderSpec(
    id="google", display_name="Google Gemini", base_url_env="GEMINI_BASE_URL",
    default_base_url="https://generativelanguage.googleapis.com",
    key_format=KeyFormat(("AIza",), KEY_LENGTH, KEY_LENGTH, pattern=re.compile(r"AIza[0-9A-Za-z_-]+")),
    make=GeminiProvider, model_prefixes=("gemini-", "gemini-embedding-", "text-embedding-004", "gemma-"),
    aliases=("gemini",), capabilities=Capabilities(embeddings=True),
    docs_url="https://ai.google.dev/api/generate-content")
