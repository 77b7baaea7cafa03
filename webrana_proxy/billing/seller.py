"""The seller on every invoice: the company that sells Webrana. The one place these details live.

These are PLACEHOLDERS to be configured before going live: the legal name, registered address and NPWP
(tax number, 16 digits since 2024) of the operating company, as registered with the tax office (PKP).
Each invoice keeps a copy of these details as they were when it was issued (``invoices.seller``).
"""

from __future__ import annotations

from typing import Final

SELLER_NAME: Final = "PT Webrana Teknologi Indonesia"  # placeholder: the registered company name
SELLER_ADDRESS: Final = "Jl. Contoh No. 1, Jakarta 10110, Indonesia"  # placeholder: the registered address
SELLER_NPWP: Final = "0000000000000000"  # placeholder: the company's 16-digit NPWP
SELLER_EMAIL: Final = "billing@webrana.id"  # placeholder: where buyers send invoice questions


def seller_details() -> dict[str, str]:
    """The seller block printed on an invoice."""
    return {"name": SELLER_NAME, "address": SELLER_ADDRESS, "npwp": SELLER_NPWP, "email": SELLER_EMAIL}
