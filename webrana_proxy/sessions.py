"""Sign-ins (refresh families) and ending them.

A sign-in is the family of refresh tokens that sign-up or login starts and every refresh extends; its refresh
and access tokens both carry the family id. Revoking the family (``revoked_at`` on all its rows) ends both: the
refresh route refuses its refresh tokens and ``api.identity`` refuses an access token whose family has no live
row left (one probe of ``refresh_tokens_live_family_idx`` inside the user read).

Every change to a user's refresh tokens first locks the user's row (``FOR NO KEY UPDATE``), in the caller's
transaction: a revocation and a concurrent refresh are then serialised, so the refresh either commits first
(and its new token is revoked with the rest) or runs after and sees the revocation. Call these inside a
transaction.
"""

from __future__ import annotations

import uuid

from webrana_proxy.db import Conn


async def lock_user(conn: Conn, user_id: uuid.UUID) -> bool:
    """Lock the user's row for a change of their sign-ins; False when there is no such user."""
    return await conn.fetchval("SELECT true FROM users WHERE id = $1 FOR NO KEY UPDATE", user_id) is not None


async def revoke_sign_in(conn: Conn, user_id: uuid.UUID, family_id: uuid.UUID) -> None:
    """End one sign-in (logout): its refresh tokens and, through ``fam``, its access tokens."""
    await lock_user(conn, user_id)
    await conn.execute(
        """UPDATE refresh_tokens SET revoked_at = now()
           WHERE family_id = $1 AND user_id = $2 AND revoked_at IS NULL""", family_id, user_id)


async def revoke_all_sign_ins(conn: Conn, user_id: uuid.UUID) -> None:
    """End every sign-in of the user, on every device (refresh-token theft, a new password, a promotion)."""
    await lock_user(conn, user_id)
    await conn.execute(
        "UPDATE refresh_tokens SET revoked_at = now() WHERE user_id = $1 AND revoked_at IS NULL", user_id)
