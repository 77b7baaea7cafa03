"""Qwen on Alibaba Cloud Model Studio (DashScope), OpenAI-compatible mode.

DashScope's compatible embeddings return floats only, so a ``base64`` request is asked as floats and
encoded here.
"""

from __future__ import annotations

from webrana_proxy.providers.openai_compat import OpenAICompatProvider

MODEL_PREFIXES = ("qwen", "qwq-", "qvq-", "text-embedding-v")


class QwenProvider(OpenAICompatProvider):
    id = "qwen"
    display_name = "Qwen"
    upstream_base64_embeddings = False

    def owns_model(self, model: str) -> bool:
        return model.startswith(MODEL_PREFIXES)
