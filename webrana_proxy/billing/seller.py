"""The seller on every invoice: the company that sells Webrana, from the settings (``WEBRANA_SELLER_NAME``,
``WEBRANA_SELLER_ADDRESS``, ``WEBRANA_SELLER_NPWP``, ``WEBRANA_SELLER_EMAIL``): the legal name, registered address and
NPWP (tax number) of the operating company as registered with the tax office (PKP). Set them before going live.
Each invoice keeps a copy of these details as they were when it was issued (``invoices.seller``).
"""

from __future__ import annotations

from webrana_proxy.settings import Settings


def seller_details(settings: Settings) -> dict[str, str]:
    """The seller block printed on an invoice."""
    return {"name": settings.seller_name, "address": settings.seller_address, "npwp": settings.seller_npwp,
            "email": settings.seller_email}
