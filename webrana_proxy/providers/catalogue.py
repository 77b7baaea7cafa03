"""The model catalogue: every model Webrana lists, with its price, in this one place.

Prices are list prices in USD per million tokens (input, output) as published by each provider for
standard (non-batch, non-cached) use. ``DEFAULT_MODEL`` names the model whose price is charged for a model
we do not know: the provider's most used general model, so an unlisted snapshot is never billed as free.
Dated snapshots (``gpt-4o-2024-08-06``) are priced as their family (``gpt-4o``) by longest prefix.
"""

from __future__ import annotations

from webrana_proxy.providers.base import ModelInfo

OPENAI_MODELS: tuple[ModelInfo, ...] = (
    ModelInfo("gpt-5", 1754352000, 1.25, 10.00),
    ModelInfo("gpt-5-mini", 1754352000, 0.25, 2.00),
    ModelInfo("gpt-5-nano", 1754352000, 0.05, 0.40),
    ModelInfo("gpt-4.1", 1744329600, 2.00, 8.00),
    ModelInfo("gpt-4.1-mini", 1744329600, 0.40, 1.60),
    ModelInfo("gpt-4.1-nano", 1744329600, 0.10, 0.40),
    ModelInfo("gpt-4o", 1715558400, 2.50, 10.00),
    ModelInfo("gpt-4o-mini", 1721174400, 0.15, 0.60),
    ModelInfo("o1", 1734393600, 15.00, 60.00),
    ModelInfo("o3", 1744761600, 2.00, 8.00),
    ModelInfo("o3-mini", 1738281600, 1.10, 4.40),
    ModelInfo("o4-mini", 1744761600, 1.10, 4.40),
    ModelInfo("text-embedding-3-small", 1705881600, 0.02, 0.0, kind="embedding"),
    ModelInfo("text-embedding-3-large", 1705881600, 0.13, 0.0, kind="embedding"),
    ModelInfo("text-embedding-ada-002", 1671148800, 0.10, 0.0, kind="embedding"),
)

ANTHROPIC_MODELS: tuple[ModelInfo, ...] = (
    ModelInfo("claude-opus-4-1", 1754352000, 15.00, 75.00),
    ModelInfo("claude-opus-4-0", 1747699200, 15.00, 75.00),
    ModelInfo("claude-opus-4-20250514", 1747699200, 15.00, 75.00),
    ModelInfo("claude-sonnet-4-5", 1759104000, 3.00, 15.00),
    ModelInfo("claude-sonnet-4-0", 1747699200, 3.00, 15.00),
    ModelInfo("claude-sonnet-4-20250514", 1747699200, 3.00, 15.00),
    ModelInfo("claude-haiku-4-5", 1760572800, 1.00, 5.00),
    ModelInfo("claude-3-7-sonnet-latest", 1740355200, 3.00, 15.00),
    ModelInfo("claude-3-5-haiku-latest", 1729555200, 0.80, 4.00),
    ModelInfo("claude-3-haiku-20240307", 1709769600, 0.25, 1.25),
)

GOOGLE_MODELS: tuple[ModelInfo, ...] = (
    ModelInfo("gemini-2.5-pro", 1750118400, 1.25, 10.00),
    ModelInfo("gemini-2.5-flash", 1750118400, 0.30, 2.50),
    ModelInfo("gemini-2.5-flash-lite", 1753142400, 0.10, 0.40),
    ModelInfo("gemini-2.0-flash", 1738713600, 0.10, 0.40),
    ModelInfo("gemini-2.0-flash-lite", 1740528000, 0.075, 0.30),
    ModelInfo("gemini-embedding-001", 1752537600, 0.15, 0.0, kind="embedding"),
    ModelInfo("text-embedding-004", 1715731200, 0.0, 0.0, kind="embedding"),
)

QWEN_MODELS: tuple[ModelInfo, ...] = (
    ModelInfo("qwen3-max", 1758153600, 1.20, 6.00),
    ModelInfo("qwen-max", 1737676800, 1.60, 6.40),
    ModelInfo("qwen-plus", 1737676800, 0.40, 1.20),
    ModelInfo("qwen-flash", 1753142400, 0.05, 0.40),
    ModelInfo("qwen-turbo", 1737676800, 0.05, 0.20),
    ModelInfo("qwen3-coder-plus", 1753228800, 1.00, 5.00),
    ModelInfo("text-embedding-v4", 1747699200, 0.07, 0.0, kind="embedding"),
    ModelInfo("text-embedding-v3", 1726012800, 0.07, 0.0, kind="embedding"),
)

CATALOGUE: dict[str, tuple[ModelInfo, ...]] = {
    "openai": OPENAI_MODELS,
    "anthropic": ANTHROPIC_MODELS,
    "google": GOOGLE_MODELS,
    "qwen": QWEN_MODELS,
}

# The price charged for a model not in the list (after the prefix match): the most used general model.
DEFAULT_MODEL: dict[str, str] = {
    "openai": "gpt-4o",
    "anthropic": "claude-sonnet-4-5",
    "google": "gemini-2.5-flash",
    "qwen": "qwen-plus",
}


def models_for(provider_id: str) -> tuple[ModelInfo, ...]:
    return CATALOGUE.get(provider_id, ())


def price_of(provider_id: str, model: str) -> ModelInfo | None:
    """The catalogue entry that prices ``model``: exact id, else the longest id that ``model`` extends
    (``gpt-4o-mini-2024-07-18`` -> ``gpt-4o-mini``), else the provider's default model. None for an
    unknown provider."""
    models = CATALOGUE.get(provider_id)
    if not models:
        return None
    best: ModelInfo | None = None
    for info in models:
        if info.id == model:
            return info
        if model.startswith(info.id) and model[len(info.id):len(info.id) + 1] in ("-", "@", ":") and (
            best is None or len(info.id) > len(best.id)
        ):
            best = info
    if best is not None:
        return best
    default = DEFAULT_MODEL.get(provider_id)
    for info in models:
        if info.id == default:
            return info
    return models[0]
