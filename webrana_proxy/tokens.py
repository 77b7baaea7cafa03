"""JWTs for the management API (HS256): access tokens live 24 h, refresh tokens 7 d.

Refresh tokens are JWTs too, but each is also recorded (as its SHA-256) in ``refresh_tokens`` so that it can be
used once: using one rotates it; presenting a rotated one again revokes every sign-in of the user (theft
detection). A sign-in is a refresh *family*; both kinds of token carry its id (``fam``), and an access token is
accepted only while its family is not revoked (``webrana_proxy.sessions``), so logout ends it too.
Proxy keys (``wbr_...``) are not JWTs: 32 random bytes, stored only as SHA-256.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
import uuid
from dataclasses import dataclass
from typing import Any

import jwt

from webrana_proxy.errors import Unauthorized

ACCESS_TTL_SECONDS = 24 * 3600  # product rule: 24 h access tokens
REFRESH_TTL_SECONDS = 7 * 24 * 3600  # product rule: 7 d refresh tokens
ALGORITHM = "HS256"
ISSUER = "webrana"
PROXY_KEY_PREFIX = "wbr_"
PROXY_KEY_DISPLAY_LEN = 12  # "wbr_" + 8 characters: enough to tell keys apart in the console


@dataclass(frozen=True, slots=True)
class AccessClaims:
    user_id: uuid.UUID
    role: str
    family_id: uuid.UUID


@dataclass(frozen=True, slots=True)
class RefreshClaims:
    user_id: uuid.UUID
    token_id: uuid.UUID
    family_id: uuid.UUID


class TokenIssuer:
    def __init__(self, secret: str) -> None:
        self._secret = secret

    def access_token(self, user_id: uuid.UUID, role: str, family_id: uuid.UUID, now: float | None = None) -> str:
        t = int(now if now is not None else time.time())
        payload = {"sub": str(user_id), "role": role, "typ": "access", "fam": str(family_id), "iat": t,
                   "exp": t + ACCESS_TTL_SECONDS, "iss": ISSUER, "jti": secrets.token_hex(8)}
        return jwt.encode(payload, self._secret, algorithm=ALGORITHM)

    def refresh_token(self, user_id: uuid.UUID, token_id: uuid.UUID, family_id: uuid.UUID,
                      now: float | None = None) -> str:
        t = int(now if now is not None else time.time())
        payload = {"sub": str(user_id), "typ": "refresh", "jti": str(token_id), "fam": str(family_id),
                   "iat": t, "exp": t + REFRESH_TTL_SECONDS, "iss": ISSUER}
        return jwt.encode(payload, self._secret, algorithm=ALGORITHM)

    def _decode(self, token: str, typ: str) -> dict[str, Any]:
        try:
            payload: dict[str, Any] = jwt.decode(token, self._secret, algorithms=[ALGORITHM], issuer=ISSUER,
                                                 options={"require": ["exp", "iat", "sub", "typ"]})
        except jwt.ExpiredSignatureError:
            raise Unauthorized("token has expired", code="token_expired") from None
        except jwt.PyJWTError:
            raise Unauthorized("invalid token", code="invalid_token") from None
        if payload.get("typ") != typ:
            raise Unauthorized(f"not an {typ} token", code="invalid_token")
        return payload

    def verify_access(self, token: str) -> AccessClaims:
        p = self._decode(token, "access")
        if "fam" not in p:
            # Issued before sign-ins became revocable: such a token could not be ended by logout, so it is not
            # honoured. Clients get a new one from their (still valid) refresh token; the console does so itself.
            raise Unauthorized("this access token is from an older version; get a new one with "
                               "POST /api/auth/refresh", code="invalid_token")
        try:
            return AccessClaims(uuid.UUID(p["sub"]), str(p.get("role", "user")), uuid.UUID(p["fam"]))
        except (ValueError, TypeError, AttributeError):
            raise Unauthorized("invalid token", code="invalid_token") from None

    def verify_refresh(self, token: str) -> RefreshClaims:
        p = self._decode(token, "refresh")
        try:
            return RefreshClaims(uuid.UUID(p["sub"]), uuid.UUID(p["jti"]), uuid.UUID(p["fam"]))
        except (KeyError, ValueError, TypeError, AttributeError):
            raise Unauthorized("invalid token", code="invalid_token") from None


def sha256(value: str) -> bytes:
    return hashlib.sha256(value.encode("utf-8")).digest()


def new_proxy_key() -> str:
    return PROXY_KEY_PREFIX + base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode("ascii")


def proxy_key_display(key: str) -> str:
    return key[:PROXY_KEY_DISPLAY_LEN]
