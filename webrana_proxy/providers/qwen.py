"""Qwen on Alibaba Cloud Model Studio (DashScope), OpenAI-compatible mode.

DashScope's compatible embeddings return floats only, so a ``base64`` request is asked as floats and
encoded here.
"""

from __future__ import annotations

from webrana_proxy.providers.openai_compat import SK_KEYS, OpenAICompatProvider
from webrana_proxy.providers.spec import Capabilities, ProviderSpec


class QwenProvider(OpenAICompatProvider):
    upstream_base64_embeddings = False


SPEC = ProviderSpec(
    id="qwen", display_name="Qwen", base_url_env="QWEN_BASE_URL",
    # Singapore: the right default for Indonesia (keys are region-bound)
    default_base_url="https://dashscope-intl.aliyuncs.com/compatible-mode/v1", key_format=SK_KEYS,
    make=QwenProvider, model_prefixes=("qwen", "qwq-", "qvq-", "text-embedding-v"), aliases=("dashscope",),
    capabilities=Capabilities(embeddings=True, reasoning_text=True),
    docs_url="https://www.alibabacloud.com/help/en/model-studio/compatibility-of-openai-with-dashscope")
