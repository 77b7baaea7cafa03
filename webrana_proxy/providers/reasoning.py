"""The chat form's ``reasoning_effort``, read once and checked, for the translators that map it to a provider's own
reasoning control (Anthropic ``thinking``, Gemini ``thinkingConfig``, Qwen ``enable_thinking``, DeepSeek
``thinking``, OpenRouter ``reasoning``, Mistral's two levels). The table of what each provider gets is
``conformance.py`` (rendered into docs/parameters.md)."""

from __future__ import annotations

from webrana_proxy.errors import BadRequest
from webrana_proxy.providers.base import JSON

# OpenAI's values, weakest first: "none" turns thinking off where a model can; "xhigh" is OpenAI's newest level
# (providers without it get their "high").
EFFORTS = ("none", "minimal", "low", "medium", "high", "xhigh")


def effort_of(body: JSON) -> str | None:
    """``reasoning_effort`` if the request has one (None when absent); a 400 naming it when it is not one of
    ``EFFORTS``."""
    effort = body.get("reasoning_effort")
    if effort is None:
        return None
    if effort not in EFFORTS:
        raise BadRequest(f"'reasoning_effort' must be one of {', '.join(EFFORTS)}", param="reasoning_effort")
    return str(effort)
