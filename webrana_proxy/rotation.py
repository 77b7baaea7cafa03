"""Online, resumable re-encryption of every sealed secret (provider keys, webhook signing secrets) under the
current master key.

Rows sealed with another key version are re-sealed in small batches (each its own transaction, rows locked
with SKIP LOCKED so a concurrent run or live traffic never waits long). Interrupted runs resume where they
stopped, because the work left is exactly the rows whose key_version is not the current one.
"""

from __future__ import annotations

import asyncpg

from webrana_proxy.crypto import Keyring, Sealed

BATCH_SIZE = 200  # rows per transaction: short locks, steady progress


async def rotate(pool: asyncpg.Pool, keyring: Keyring, batch_size: int = BATCH_SIZE) -> int:
    """Re-seal what another key version sealed; returns how many secrets were re-sealed."""
    return await _rotate_provider_keys(pool, keyring, batch_size) + await _rotate_webhook_secrets(
        pool, keyring, batch_size)


async def _rotate_provider_keys(pool: asyncpg.Pool, keyring: Keyring, batch_size: int) -> int:
    total = 0
    while True:
        async with pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(
                """SELECT id, user_id, org_id, ciphertext, nonce, key_version FROM api_keys
                   WHERE key_version <> $1 ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED""",
                keyring.current_version, batch_size)
            for row in rows:
                plaintext = keyring.open(Sealed(row["ciphertext"], row["nonce"], row["key_version"]),
                                         row["user_id"], row["id"], row["org_id"])
                sealed = keyring.seal(plaintext, row["user_id"], row["id"], row["org_id"])
                await conn.execute(
                    "UPDATE api_keys SET ciphertext = $1, nonce = $2, key_version = $3 WHERE id = $4",
                    sealed.ciphertext, sealed.nonce, sealed.key_version, row["id"])
        total += len(rows)
        if len(rows) < batch_size:
            return total


async def _rotate_webhook_secrets(pool: asyncpg.Pool, keyring: Keyring, batch_size: int) -> int:
    """The webhook signing secrets (sealed with the user id and the webhook id as associated data)."""
    total = 0
    while True:
        async with pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(
                """SELECT id, user_id, secret_ciphertext, secret_nonce, key_version FROM webhooks
                   WHERE key_version <> $1 ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED""",
                keyring.current_version, batch_size)
            for row in rows:
                secret = keyring.open(Sealed(row["secret_ciphertext"], row["secret_nonce"], row["key_version"]),
                                      row["user_id"], row["id"])
                sealed = keyring.seal(secret, row["user_id"], row["id"])
                await conn.execute(
                    """UPDATE webhooks SET secret_ciphertext = $1, secret_nonce = $2, key_version = $3
                       WHERE id = $4""",
                    sealed.ciphertext, sealed.nonce, sealed.key_version, row["id"])
        total += len(rows)
        if len(rows) < batch_size:
            return total
