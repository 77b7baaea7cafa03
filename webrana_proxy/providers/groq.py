"""Groq: OpenAI-compatible (under ``/openai/v1``), fast open-weight models, named ``groq/<model>``.

What differs: a stream's final content chunk carries Groq's own ``x_groq: {id, usage}`` (with ``queue_time``,
``prompt_time``... in seconds); with ``stream_options.include_usage`` the OpenAI usage chunk follows as well.
Either is read. Model ids may hold a slash themselves (``groq/openai/gpt-oss-120b``). No embeddings.
"""

from __future__ import annotations

from webrana_proxy.providers.base import JSON, Usage
from webrana_proxy.providers.keyformat import KeyFormat
from webrana_proxy.providers.openai_compat import MIN_KEY_LENGTH, OpenAICompatProvider
from webrana_proxy.providers.passthrough import chunk_usage, usage_from
from webrana_proxy.providers.spec import Capabilities, ProviderSpec


class GroqProvider(OpenAICompatProvider):
    def usage_of(self, answer: JSON) -> Usage | None:
        usage = chunk_usage(answer)
        if usage is None:
            extra = answer.get("x_groq")
            if isinstance(extra, dict):
                usage = usage_from(extra.get("usage"))
        return usage


SPEC = ProviderSpec(
    id="groq", display_name="Groq", base_url_env="GROQ_BASE_URL",
    default_base_url="https://api.groq.com/openai/v1",
    key_format=KeyFormat(("gsk_",), MIN_KEY_LENGTH),  # "gsk_" + 52 letters and digits
    make=GroqProvider, capabilities=Capabilities(reasoning_text=True),
    docs_url="https://console.groq.com/docs/api-reference")
