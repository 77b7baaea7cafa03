"""Message catalogues (``locales/<lang>.json``): Indonesian by default, English on request.

Every text the console shows comes from a catalogue; templates and views ask for keys. Catalogues are read
once when the app starts (``load_catalogues``), never at import time.
"""

from __future__ import annotations

from importlib import resources
from typing import Any

import orjson

DEFAULT_LANG = "id"  # the console is for developers in Indonesia
LANGS = ("id", "en")
LANG_COOKIE = "webrana_lang"


def load_catalogues() -> dict[str, dict[str, str]]:
    folder = resources.files("webrana_dashboard").joinpath("locales")
    catalogues: dict[str, dict[str, str]] = {}
    for lang in LANGS:
        data = orjson.loads(folder.joinpath(f"{lang}.json").read_bytes())
        if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
            raise ValueError(f"locales/{lang}.json must be an object of strings")
        catalogues[lang] = data
    return catalogues


def pick_lang(cookie_value: str | None) -> str:
    return cookie_value if cookie_value in LANGS else DEFAULT_LANG


class Translator:
    """``t("key", name=value)``: the text for ``key`` in one language, with ``{name}`` placeholders filled.

    A key missing from the language falls back to Indonesian, then to the key itself (a test checks both
    catalogues have the same keys, so that only happens during development)."""

    def __init__(self, catalogues: dict[str, dict[str, str]], lang: str) -> None:
        self.lang = lang
        self._texts = catalogues[lang]
        self._fallback = catalogues[DEFAULT_LANG]

    def __call__(self, key: str, **values: Any) -> str:
        text = self._texts.get(key) or self._fallback.get(key) or key
        return text.format(**values) if values else text

    def has(self, key: str) -> bool:
        return key in self._texts

    def month_names(self) -> list[str]:
        return [self(f"month.{i}") for i in range(1, 13)]
