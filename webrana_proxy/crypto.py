"""AES-256-GCM for provider keys at rest.

Each encryption uses a fresh random 12-byte nonce and binds the owning workspace and key id as associated data,
so a ciphertext copied to another row does not decrypt. A personal key binds its user id (format v1, as every key
stored before teams); a team key binds its organisation id under format v2, whose label differs, so a team's
ciphertext never opens as a user's or the other way round. The format follows from the row (``org_id`` set or
not): existing rows stay readable as they are. Each row stores the key version it was sealed with;
``Keyring`` holds the current master key and, during a rotation, the previous one for reading.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

NONCE_BYTES = 12  # the GCM standard nonce size


class DecryptionFailed(Exception):
    """The ciphertext, nonce or associated data does not match (tampered, moved or wrong key)."""


def key_version(master_key: bytes) -> int:
    """A stable 31-bit fingerprint of a master key; stored with each row so rotation knows what to redo."""
    return int.from_bytes(hashlib.sha256(b"webrana-key-version:" + master_key).digest()[:4], "big") & 0x7FFFFFFF


def associated_data(user_id: uuid.UUID, key_id: uuid.UUID, org_id: uuid.UUID | None = None) -> bytes:
    if org_id is not None:  # a team's key: bound to the team's workspace, whoever added it
        return b"webrana/api_keys/v2|org|" + org_id.bytes + key_id.bytes
    return b"webrana/api_keys/v1|" + user_id.bytes + key_id.bytes


@dataclass(frozen=True, slots=True)
class Sealed:
    ciphertext: bytes
    nonce: bytes
    key_version: int


class Keyring:
    def __init__(self, current: bytes, previous: bytes | None = None) -> None:
        self._current = AESGCM(current)
        self.current_version = key_version(current)
        self._by_version: dict[int, AESGCM] = {self.current_version: self._current}
        if previous is not None:
            self._by_version[key_version(previous)] = AESGCM(previous)

    def seal(self, plaintext: str, user_id: uuid.UUID, key_id: uuid.UUID, org_id: uuid.UUID | None = None) -> Sealed:
        nonce = os.urandom(NONCE_BYTES)
        ct = self._current.encrypt(nonce, plaintext.encode("utf-8"), associated_data(user_id, key_id, org_id))
        return Sealed(ct, nonce, self.current_version)

    def open(self, sealed: Sealed, user_id: uuid.UUID, key_id: uuid.UUID, org_id: uuid.UUID | None = None) -> str:
        aead = self._by_version.get(sealed.key_version)
        if aead is None:
            raise DecryptionFailed(f"no master key for key version {sealed.key_version}; "
                                   "set MASTER_ENCRYPTION_KEY_PREVIOUS to the key it was sealed with")
        try:
            return aead.decrypt(sealed.nonce, sealed.ciphertext,
                                associated_data(user_id, key_id, org_id)).decode("utf-8")
        except InvalidTag:
            raise DecryptionFailed("provider key failed authentication") from None


def mask_key(key: str) -> str:
    """First 3 + '...' + last 4: enough to recognise a key, never enough to use it."""
    return f"{key[:3]}...{key[-4:]}" if len(key) > 7 else "..."
