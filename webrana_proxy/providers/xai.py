"""xAI (Grok): OpenAI-compatible, with its own usage arithmetic and error body.

What differs from OpenAI (docs/providers.md has the sources):

- ``completion_tokens`` leaves reasoning out: ``total_tokens = prompt + completion + reasoning`` with reasoning in
  ``completion_tokens_details.reasoning_tokens``. Reasoning is added to the output here (it is billed as output),
  so ``Usage`` keeps the OpenAI convention. Usage also carries ``cost_in_usd_ticks`` (1 USD = 10^10 ticks): the
  call's cost as xAI billed it, preferred to our price data.
- errors are ``{"code": "<gRPC-style text>", "error": "<message>"}``, and a wrong key is a 400
  ("Incorrect API key provided ..."), reported here as the 401 it is.
- no embeddings.
"""

from __future__ import annotations

from typing import Any

import orjson

from webrana_proxy.errors import UpstreamError
from webrana_proxy.providers import upstream_errors
from webrana_proxy.providers.base import JSON, Usage
from webrana_proxy.providers.keyformat import KeyFormat
from webrana_proxy.providers.openai_compat import MIN_KEY_LENGTH, OpenAICompatProvider
from webrana_proxy.providers.passthrough import chunk_usage
from webrana_proxy.providers.spec import Capabilities, ProviderSpec

TICKS_PER_NANO = 10  # 1 USD = 1e10 ticks = 1e9 nano-USD
BAD_KEY_MARKERS = ("Incorrect API key", "invalid API key", "No API key")


class XAIProvider(OpenAICompatProvider):
    def usage_of(self, answer: JSON) -> Usage | None:
        usage = chunk_usage(answer)
        if usage is None:
            return None
        reasoning = usage.reasoning_tokens
        if reasoning and usage.prompt_tokens + usage.completion_tokens + reasoning == usage.total_tokens:
            usage.completion_tokens += reasoning  # reported beside the output, not inside it
        ticks = answer["usage"].get("cost_in_usd_ticks")
        if isinstance(ticks, int) and not isinstance(ticks, bool) and ticks >= 0:
            usage.provider_cost_usd_nano = (ticks + TICKS_PER_NANO // 2) // TICKS_PER_NANO
        return usage

    def upstream_error(self, status: int, raw: bytes, headers: dict[str, str]) -> UpstreamError:
        try:
            parsed: Any = orjson.loads(raw)
        except orjson.JSONDecodeError:
            parsed = None
        if not isinstance(parsed, dict) or not isinstance(parsed.get("error"), str):
            return super().upstream_error(status, raw, headers)
        message: str = parsed["error"]
        code = parsed.get("code") if isinstance(parsed.get("code"), str) else None
        if status in (400, 403) and any(m in message for m in BAD_KEY_MARKERS):
            status, code = 401, "invalid_api_key"
        return upstream_errors.build(self.display_name, status, message, code=code, headers=headers)


SPEC = ProviderSpec(
    id="xai", display_name="xAI", base_url_env="XAI_BASE_URL", default_base_url="https://api.x.ai/v1",
    key_format=KeyFormat(("xai-",), MIN_KEY_LENGTH),  # "xai-" + 80 letters and digits
    make=XAIProvider, model_prefixes=("grok-",), aliases=("grok", "x-ai"),
    capabilities=Capabilities(reasoning_text=True, reports_cost=True),
    docs_url="https://docs.x.ai/docs/api-reference")
