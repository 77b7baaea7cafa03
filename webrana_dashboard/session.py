"""The browser session: one cookie holding the API tokens, encrypted and authenticated with AES-256-GCM.

The key is derived (HKDF-SHA256) from ``WEBRANA_SESSION_SECRET``; the cookie name is bound as associated data,
so a value cannot be moved between cookies. The cookie is HttpOnly, SameSite=Lax, and Secure outside dev
mode. Nothing in it is readable or changeable by the browser; a tampered or expired cookie is simply ignored.
"""

from __future__ import annotations

import base64
import binascii
import secrets
import time
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from typing import Any

import orjson
from aiohttp import web
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

COOKIE_NAME = "webrana_session"
SECURE_COOKIE_NAME = "__Host-webrana_session"  # the __Host- prefix pins the cookie to this exact origin
SESSION_MAX_AGE = 7 * 24 * 3600  # as long as the API's refresh token lives; after that, sign in again
NONCE_BYTES = 12  # AES-GCM's standard nonce size; fresh random nonce per cookie write
FORMAT_VERSION = 1
HKDF_INFO = b"webrana-dashboard session cookie v1"
MAX_COOKIE_CHARS = 4000  # browsers drop cookies past ~4 KB; a larger value means a bug, not a session


@dataclass
class Session:
    """What one browser has: a CSRF token always, API tokens and the user once signed in, one-shot flashes."""

    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    access_token: str | None = None
    refresh_token: str | None = None
    access_expires_at: float = 0.0
    user: dict[str, Any] | None = None
    flashes: list[dict[str, str]] = field(default_factory=list)
    # The teams the switcher lists (``workspaces.remember``): a display hint only, never an authority; every team
    # page asks the API, which checks the membership. None: not known yet (a session from before teams).
    teams: list[dict[str, str]] | None = None
    issued_at: float = field(default_factory=time.time)
    changed: bool = False
    new: bool = True

    @property
    def signed_in(self) -> bool:
        return self.refresh_token is not None and self.user is not None

    @property
    def is_admin(self) -> bool:
        return bool(self.user and self.user.get("role") == "admin")

    def sign_in(self, tokens: dict[str, Any], now: float | None = None) -> None:
        """Store a token answer of /api/auth/login, /register or /refresh. A new CSRF token on sign-in."""
        now = time.time() if now is None else now
        self.access_token = str(tokens["access_token"])
        self.refresh_token = str(tokens["refresh_token"])
        self.access_expires_at = now + float(tokens.get("expires_in", 0))
        self.user = dict(tokens["user"])
        self.teams = None  # another identity's teams are not this one's
        self.csrf = secrets.token_urlsafe(32)  # a new identity gets a new token (no fixation across sign-in)
        self.issued_at = now
        self.changed = True

    def update_tokens(self, tokens: dict[str, Any], now: float | None = None) -> None:
        now = time.time() if now is None else now
        self.access_token = str(tokens["access_token"])
        self.refresh_token = str(tokens["refresh_token"])
        self.access_expires_at = now + float(tokens.get("expires_in", 0))
        self.user = dict(tokens["user"])
        self.issued_at = now
        self.changed = True

    def sign_out(self) -> None:
        self.access_token = self.refresh_token = None
        self.user = None
        self.teams = None
        self.access_expires_at = 0.0
        self.csrf = secrets.token_urlsafe(32)
        self.changed = True

    def flash(self, kind: str, text: str) -> None:
        self.flashes.append({"kind": kind, "text": text})
        self.changed = True

    def take_flashes(self) -> list[dict[str, str]]:
        out, self.flashes = self.flashes, []
        if out:
            self.changed = True
        return out

    def to_json(self) -> dict[str, Any]:
        return {"v": FORMAT_VERSION, "c": self.csrf, "a": self.access_token, "r": self.refresh_token,
                "e": self.access_expires_at, "u": self.user, "f": self.flashes, "i": self.issued_at,
                **({"w": self.teams} if self.teams is not None else {})}

    @classmethod
    def from_json(cls, data: Any) -> Session | None:
        if not isinstance(data, dict) or data.get("v") != FORMAT_VERSION or not isinstance(data.get("c"), str):
            return None
        user = data.get("u")
        flashes = data.get("f")
        teams = data.get("w")
        return cls(csrf=data["c"], access_token=data.get("a"), refresh_token=data.get("r"),
                   access_expires_at=float(data.get("e") or 0), user=user if isinstance(user, dict) else None,
                   flashes=flashes if isinstance(flashes, list) else [],
                   teams=teams if isinstance(teams, list) else None,
                   issued_at=float(data.get("i") or 0), new=False)


class SessionCodec:
    """Seal and open session cookies. Pure apart from the random nonce."""

    def __init__(self, secret: bytes, cookie_name: str) -> None:
        key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=HKDF_INFO).derive(secret)
        self._aead = AESGCM(key)
        self._aad = cookie_name.encode()

    def seal(self, session: Session) -> str:
        nonce = secrets.token_bytes(NONCE_BYTES)
        blob = nonce + self._aead.encrypt(nonce, orjson.dumps(session.to_json()), self._aad)
        return base64.urlsafe_b64encode(blob).rstrip(b"=").decode()

    def open(self, value: str, now: float | None = None) -> Session | None:
        if not value or len(value) > MAX_COOKIE_CHARS:
            return None
        try:
            blob = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
            if len(blob) <= NONCE_BYTES:
                return None
            plain = self._aead.decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], self._aad)
            session = Session.from_json(orjson.loads(plain))
        except (InvalidTag, binascii.Error, ValueError, orjson.JSONDecodeError):
            return None
        now = time.time() if now is None else now
        if session is None or session.issued_at < now - SESSION_MAX_AGE:
            return None
        return session


class SessionStore:
    """Reads the session from a request and writes it on the response when it changed."""

    def __init__(self, secret: bytes, secure: bool) -> None:
        self.secure = secure
        self.cookie_name = SECURE_COOKIE_NAME if secure else COOKIE_NAME
        self.codec = SessionCodec(secret, self.cookie_name)

    def load(self, request: web.Request) -> Session:
        raw = request.cookies.get(self.cookie_name, "")
        return self.codec.open(raw) or Session(changed=True)

    def save(self, session: Session, response: web.StreamResponse) -> None:
        """Add the cookie header. Called from ``on_response_prepare``, after aiohttp has turned
        ``response.cookies`` into headers, so the header is added directly."""
        if not session.changed:
            return
        cookie: SimpleCookie = SimpleCookie()
        cookie[self.cookie_name] = self.codec.seal(session)
        morsel = cookie[self.cookie_name]
        morsel["path"] = "/"
        morsel["httponly"] = True
        morsel["samesite"] = "Lax"
        if self.secure:
            morsel["secure"] = True
        if session.signed_in:
            morsel["max-age"] = str(SESSION_MAX_AGE)
        response.headers.add("Set-Cookie", morsel.OutputString())
        session.changed = False
