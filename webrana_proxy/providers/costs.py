"""What a call cost, in whole rupiah, from the catalogue's USD prices. Integers only: no float money."""

from __future__ import annotations

import functools
from decimal import Decimal

from webrana_proxy.providers.base import Usage
from webrana_proxy.providers.catalogue import price_of

_MICRO = 1_000_000  # prices are held as micro-USD per million tokens
_SCALE = 1_000_000 * _MICRO  # tokens per price unit x micro-USD per USD


@functools.lru_cache(maxsize=256)  # a handful of catalogue prices; Decimal per call would cost more than the call
def _micro_usd(price: float) -> int:
    # Through str(): 0.15 becomes exactly 150000, not 149999.99...
    return int((Decimal(str(price)) * _MICRO).to_integral_value())


def cost_idr(provider_id: str, model: str, usage: Usage, usd_to_idr: int) -> int:
    """Rupiah charged for ``usage`` on ``model``, rounded half up. Unknown models are priced as the
    provider's default model (see ``catalogue.DEFAULT_MODEL``); an unknown provider costs 0."""
    info = price_of(provider_id, model)
    if info is None:
        return 0
    prompt = max(0, usage.prompt_tokens)
    completion = max(0, usage.completion_tokens)
    numerator = (prompt * _micro_usd(info.input_usd_per_mtok)
                 + completion * _micro_usd(info.output_usd_per_mtok)) * usd_to_idr
    return (2 * numerator + _SCALE) // (2 * _SCALE)
