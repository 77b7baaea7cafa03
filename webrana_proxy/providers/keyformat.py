"""The one key-format check every provider's ``accepts_key`` is: prefix, length, and characters.

A provider key travels in an HTTP header exactly as stored, so it must be printable ASCII without spaces
(0x21-0x7E): anything else (an accented letter, a no-break or zero-width space, a control character pasted
along with the key) could not be sent, or would be sent as something the provider never issued.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


def printable_ascii(key: str) -> bool:
    """Every character is one of 0x21-0x7E (printable ASCII, no space). Three C-level scans, no Python loop."""
    return key.isascii() and key.isprintable() and " " not in key


@dataclass(frozen=True, slots=True)
class KeyFormat:
    """What a provider's keys look like. ``pattern``, when set, must match the whole key as well."""

    prefixes: tuple[str, ...]
    min_length: int
    max_length: int | None = None
    rejected_prefixes: tuple[str, ...] = ()  # another provider's keys that share a prefix with this one's
    pattern: re.Pattern[str] | None = None
    hint: str = ""  # what the keys look like, for a person, when the prefixes do not say it

    def describe(self) -> str:
        """What to tell a person whose key was refused, e.g. "it should start with 'sk-'"."""
        if self.hint:
            return self.hint
        return f"it should start with {' or '.join(repr(p) for p in self.prefixes)}"

    def accepts(self, key: str) -> bool:
        return (printable_ascii(key) and key.startswith(self.prefixes)
                and not (self.rejected_prefixes and key.startswith(self.rejected_prefixes))
                and self.min_length <= len(key) <= (self.max_length or len(key))
                and (self.pattern is None or self.pattern.fullmatch(key) is not None))
