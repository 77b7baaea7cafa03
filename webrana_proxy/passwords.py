"""Argon2id password hashing, always in a worker thread (never on the event loop)."""

from __future__ import annotations

import asyncio
import re

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from webrana_proxy.errors import ValidationFailed

MIN_PASSWORD_LENGTH = 8  # the product's password policy
MAX_PASSWORD_LENGTH = 256  # bounds the Argon2 input; nobody types more


def check_policy(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValidationFailed(f"password must be at least {MIN_PASSWORD_LENGTH} characters", param="password",
                               code="weak_password")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise ValidationFailed(f"password must be at most {MAX_PASSWORD_LENGTH} characters", param="password",
                               code="weak_password")
    if not re.search(r"[A-Z]", password) or not re.search(r"[0-9]", password):
        raise ValidationFailed("password must contain an upper-case letter and a digit", param="password",
                               code="weak_password")


class Passwords:
    def __init__(self, hasher: PasswordHasher | None = None) -> None:
        self._hasher = hasher or PasswordHasher()
        self._dummy_hash: str | None = None

    async def hash(self, password: str) -> str:
        return await asyncio.to_thread(self._hasher.hash, password)

    async def verify(self, stored_hash: str, password: str) -> tuple[bool, str | None]:
        """(matches, new_hash). ``new_hash`` is set when the stored hash used older parameters."""
        return await asyncio.to_thread(self._verify_sync, stored_hash, password)

    async def verify_dummy(self, password: str) -> None:
        """Spend the time of a real check, so timing does not reveal which e-mails have accounts."""
        if self._dummy_hash is None:
            self._dummy_hash = await self.hash("Webrana-timing-equaliser-0")
        await self.verify(self._dummy_hash, password)

    def _verify_sync(self, stored_hash: str, password: str) -> tuple[bool, str | None]:
        try:
            self._hasher.verify(stored_hash, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False, None
        if self._hasher.check_needs_rehash(stored_hash):
            return True, self._hasher.hash(password)
        return True, None
