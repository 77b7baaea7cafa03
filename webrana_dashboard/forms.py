"""Reading submitted forms: text fields, bounded, never files."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

MAX_FIELD_CHARS = 1024  # every console field is short; a longer value is cut, then rejected by the API


def form_text(form: Mapping[str, Any], name: str, limit: int = MAX_FIELD_CHARS) -> str:
    value = form.get(name, "")
    return value[:limit] if isinstance(value, str) else ""


def form_int(value: str | None, default: int, minimum: int = 1, maximum: int = 1_000_000) -> int:
    if value is None or not value.isdigit():
        return default
    return max(minimum, min(maximum, int(value)))


class NotAWholeNumber(ValueError):
    """A field meant for a whole number (rupiah, a count) held something else."""


def form_amount(form: Mapping[str, Any], name: str) -> int | None:
    """A whole number typed as people type it (``10.000``, ``10,000``, ``10 000``, ``Rp 10.000``); None when blank."""
    text = form_text(form, name).strip()
    for mark in ("Rp", "rp", ".", ",", " ", "\u00a0"):
        text = text.replace(mark, "")
    if not text:
        return None
    if not text.isdigit() or len(text) > 15:
        raise NotAWholeNumber(name)
    return int(text)
