"""OpenAI: the gateway's own wire format, relayed as it is."""

from __future__ import annotations

from webrana_proxy.providers.base import ResponsesNative
from webrana_proxy.providers.openai_compat import OpenAICompatProvider
from webrana_proxy.providers.openai_responses import OpenAIResponsesNative

MODEL_PREFIXES = ("gpt-", "chatgpt-", "o1", "o3", "o4", "text-embedding-", "ft:", "davinci-", "babbage-",
                  "omni-moderation")
NOT_OURS = ("text-embedding-004", "text-embedding-v")  # Gemini's and Qwen's embedding models


class OpenAIProvider(OpenAICompatProvider):
    id = "openai"
    display_name = "OpenAI"
    # "sk-proj-", "sk-svcacct-" and legacy "sk-" keys: the base class's format
    responses_native: ResponsesNative | None = OpenAIResponsesNative()  # /v1/responses goes to OpenAI as it came

    def owns_model(self, model: str) -> bool:
        return model.startswith(MODEL_PREFIXES) and not model.startswith(NOT_OURS)
