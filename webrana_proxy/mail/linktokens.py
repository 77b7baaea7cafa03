"""Single-use links in e-mails (verify the address, reset the password).

A link's token is ``HMAC-SHA256(key, purpose | row id)`` with a key derived from ``JWT_SECRET``, and only its
SHA-256 is stored (``email_tokens.token_hash``). So nothing in the database (the token rows, the outbox, which
holds just the row id) is a usable link, and the mail job can still rebuild the token when it renders the
message, however many times it has to send it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import uuid
from datetime import datetime, timedelta

from webrana_proxy.db import Conn

VERIFY = "verify"
RESET = "reset"
TTL = {VERIFY: timedelta(hours=24), RESET: timedelta(minutes=30)}  # the product rules
MAX_TOKEN_CHARS = 100  # a token is 43 characters; anything much longer is not one of ours
_KEY_LABEL = b"webrana e-mail link tokens v1"


def _hash(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


class LinkTokens:
    def __init__(self, jwt_secret: str) -> None:
        self._key = hmac.new(jwt_secret.encode(), _KEY_LABEL, hashlib.sha256).digest()

    def token_for(self, purpose: str, token_id: uuid.UUID) -> str:
        mac = hmac.new(self._key, purpose.encode() + b"|" + token_id.bytes, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()

    async def create(self, conn: Conn, user_id: uuid.UUID, purpose: str, now: datetime) -> uuid.UUID:
        """A new link for ``user_id`` (inside the caller's transaction); earlier unused ones of the same purpose
        stop working, so only the newest e-mail's link does."""
        await conn.execute("""UPDATE email_tokens SET used_at = $3
                              WHERE user_id = $1 AND purpose = $2 AND used_at IS NULL""", user_id, purpose, now)
        token_id = uuid.uuid4()
        await conn.execute(
            """INSERT INTO email_tokens (id, user_id, purpose, token_hash, expires_at)
               VALUES ($1, $2, $3, $4, $5)""",
            token_id, user_id, purpose, _hash(self.token_for(purpose, token_id)), now + TTL[purpose])
        return token_id

    @staticmethod
    async def consume(conn: Conn, token: str, purpose: str, now: datetime) -> uuid.UUID | None:
        """The user whose live link ``token`` is, marking it used (inside the caller's transaction); ``None`` for
        an unknown, used or expired token."""
        if not token or len(token) > MAX_TOKEN_CHARS:
            return None
        user_id: uuid.UUID | None = await conn.fetchval(
            """UPDATE email_tokens SET used_at = $3
               WHERE token_hash = $1 AND purpose = $2 AND used_at IS NULL AND expires_at > $3
               RETURNING user_id""", _hash(token), purpose, now)
        return user_id

    @staticmethod
    async def peek(conn: Conn, token: str, purpose: str, now: datetime) -> uuid.UUID | None:
        """Like ``consume`` without using the token up (a reset checks the link before hashing the password)."""
        if not token or len(token) > MAX_TOKEN_CHARS:
            return None
        user_id: uuid.UUID | None = await conn.fetchval(
            """SELECT user_id FROM email_tokens
               WHERE token_hash = $1 AND purpose = $2 AND used_at IS NULL AND expires_at > $3""",
            _hash(token), purpose, now)
        return user_id
