"""Qwen on Alibaba Cloud Model Studio (DashScope), OpenAI-compatible mode.

What differs from OpenAI (protocols.md section 4; docs/parameters.md has the whole table):

- thinking is DashScope's ``enable_thinking`` (+ ``thinking_budget``), not ``reasoning_effort``: an effort becomes
  those two (``none``: ``enable_thinking: false``, which turns off the thinking hybrid models do by default).
- explicit prompt caching reads ``cache_control: {"type": "ephemeral"}`` on content parts: sent on as it is; the
  cache reads and writes come back in ``prompt_tokens_details`` (``cached_tokens``, ``cache_creation_input_tokens``).
- the compatible embeddings return floats only, so a ``base64`` request is asked as floats and encoded here.
"""

from __future__ import annotations

from webrana_proxy.providers.base import JSON
from webrana_proxy.providers.openai_compat import SK_KEYS, OpenAICompatProvider
from webrana_proxy.providers.reasoning import effort_of
from webrana_proxy.providers.spec import Capabilities, ProviderSpec

# reasoning_effort -> thinking_budget (tokens); Qwen3's models take up to 38,912 or more.
THINKING_BUDGETS = {"minimal": 1_024, "low": 2_048, "medium": 8_192, "high": 16_384, "xhigh": 32_768}


class QwenProvider(OpenAICompatProvider):
    upstream_base64_embeddings = False
    takes_cache_markers = True

    def prepare(self, body: JSON) -> JSON:
        effort = effort_of(body)
        if effort is None:
            return body
        out = {k: v for k, v in body.items() if k != "reasoning_effort"}
        if effort == "none":
            out.setdefault("enable_thinking", False)
        elif "enable_thinking" not in body:
            out["enable_thinking"] = True
            out.setdefault("thinking_budget", THINKING_BUDGETS[effort])
        return out


SPEC = ProviderSpec(
    id="qwen", display_name="Qwen", base_url_env="QWEN_BASE_URL",
    # Singapore: the right default for Indonesia (keys are region-bound)
    default_base_url="https://dashscope-intl.aliyuncs.com/compatible-mode/v1", key_format=SK_KEYS,
    make=QwenProvider, model_prefixes=("qwen", "qwq-", "qvq-", "text-embedding-v"), aliases=("dashscope",),
    capabilities=Capabilities(embeddings=True, reasoning_text=True),
    docs_url="https://www.alibabacloud.com/help/en/model-studio/compatibility-of-openai-with-dashscope")
