"""OpenRouter: one key for many vendors' models, OpenAI-compatible, reporting each call's cost.

Models are named ``openrouter/<vendor>/<model>`` (the upstream model id is ``<vendor>/<model>``). What differs:

- usage carries ``cost`` (USD, OpenRouter calls it credits) and ``cost_details.upstream_inference_cost``; with
  ``is_byok`` (the user's own vendor key behind OpenRouter) ``cost`` is only OpenRouter's fee and the vendor's
  charge is the upstream cost, so the two are added. The sum becomes ``Usage.provider_cost_usd_nano``, which the
  price book prefers to our price data.
- reasoning is asked as ``reasoning: {effort}`` (OpenRouter maps it to each vendor's control), so a
  ``reasoning_effort`` is sent that way; ``cache_control`` markers on content parts go on to the vendors that read
  them.
- ``GET /models`` needs no key, so a stored key is tested with ``GET /key`` (the key's own limits and usage).
- errors are ``{"error": {"code": <HTTP status as a number>, "message", "metadata"?}}``; ``metadata.raw`` holds
  the vendor's own error text when the vendor failed.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from webrana_proxy.providers.base import JSON, UpstreamRequest, Usage
from webrana_proxy.providers.keyformat import KeyFormat
from webrana_proxy.providers.openai_compat import MIN_KEY_LENGTH, OpenAICompatProvider
from webrana_proxy.providers.passthrough import chunk_usage
from webrana_proxy.providers.reasoning import effort_of
from webrana_proxy.providers.spec import Capabilities, ProviderSpec

NANO_PER_USD = Decimal(1_000_000_000)


def usd_nano(value: Any) -> int | None:
    """A USD amount as sent in JSON (a float such as 0.000142) in nano-USD, rounded half up; None if absent."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        nano = (Decimal(repr(value)) * NANO_PER_USD).to_integral_value(rounding="ROUND_HALF_UP")
    except InvalidOperation:
        return None
    return int(nano) if nano >= 0 else None


class OpenRouterProvider(OpenAICompatProvider):
    takes_cache_markers = True  # sent on to the vendors that read them (Anthropic, Gemini, Qwen...)

    def prepare(self, body: JSON) -> JSON:
        """``reasoning_effort`` as OpenRouter's own ``reasoning: {effort}``, which it maps for every vendor."""
        effort = effort_of(body)
        if effort is None:
            return body
        out = {k: v for k, v in body.items() if k != "reasoning_effort"}
        if not isinstance(out.get("reasoning"), dict):
            out["reasoning"] = {"effort": effort}
        return out

    def usage_of(self, answer: JSON) -> Usage | None:
        usage = chunk_usage(answer)
        if usage is None:
            return None
        raw = answer["usage"]
        cost = usd_nano(raw.get("cost"))
        if cost is not None:
            details = raw.get("cost_details")
            upstream = usd_nano(details.get("upstream_inference_cost")) if isinstance(details, dict) else None
            if raw.get("is_byok") is True and upstream is not None:
                cost += upstream
            usage.provider_cost_usd_nano = cost
        return usage

    def models_request(self, api_key: str, base_url: str) -> UpstreamRequest:
        return UpstreamRequest("GET", f"{base_url.rstrip('/')}/key", self._headers(api_key))


SPEC = ProviderSpec(
    id="openrouter", display_name="OpenRouter", base_url_env="OPENROUTER_BASE_URL",
    default_base_url="https://openrouter.ai/api/v1",
    key_format=KeyFormat(("sk-or-",), MIN_KEY_LENGTH),  # "sk-or-v1-" + 64 hex characters
    make=OpenRouterProvider, explicit_form="openrouter/<vendor>/<model>",
    capabilities=Capabilities(reasoning_text=True, reports_cost=True),
    docs_url="https://openrouter.ai/docs/api-reference/overview")
