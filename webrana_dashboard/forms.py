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
