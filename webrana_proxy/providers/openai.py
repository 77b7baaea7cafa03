"""OpenAI: the gateway's own wire format, relayed as it is."""

from __future__ import annotations

from webrana_proxy.providers.base import ResponsesNative
from webrana_proxy.providers.openai_compat import SK_KEYS, OpenAICompatProvider
from webrana_proxy.providers.openai_responses import OpenAIResponsesNative
from webrana_proxy.providers.spec import Capabilities, ProviderSpec


class OpenAIProvider(OpenAICompatProvider):
    # "sk-proj-", "sk-svcacct-" and legacy "sk-" keys: the shared "sk-" format
    responses_native: ResponsesNative | None = OpenAIResponsesNative()  # /v1/responses goes to OpenAI as it came


SPEC = ProviderSpec(
    id="openai", display_name="OpenAI", base_url_env="OPENAI_BASE_URL",
    default_base_url="https://api.openai.com/v1", key_format=SK_KEYS, make=OpenAIProvider,
    model_prefixes=("gpt-", "chatgpt-", "o1", "o3", "o4", "text-embedding-", "ft:", "davinci-", "babbage-",
                    "omni-moderation"),
    excluded_prefixes=("text-embedding-004", "text-embedding-v"),  # Gemini's and Qwen's embedding models
    capabilities=Capabilities(embeddings=True),
    docs_url="https://platform.openai.com/docs/api-reference/chat")
