"""/api/auth: register, login, refresh (rotating, with reuse detection), logout, me."""

from __future__ import annotations

import logging
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
from aiohttp import web
from redis.exceptions import RedisError

from webrana_proxy.api.identity import User, current_user
from webrana_proxy.db import Conn
from webrana_proxy.errors import BadRequest, Forbidden, RateLimited, Unauthorized, ValidationFailed
from webrana_proxy.jsonio import json_response, read_json, req_email, req_str
from webrana_proxy.loginguard import LoginGuard
from webrana_proxy.mail.account import read_locale, send_verification
from webrana_proxy.mail.mailer import MAILER
from webrana_proxy.middleware import CLIENT_KEY
from webrana_proxy.passwords import HashingBusy, check_policy
from webrana_proxy.sessions import revoke_all_sign_ins, revoke_sign_in
from webrana_proxy.settings import Settings
from webrana_proxy.state import LIMITER, PASSWORDS, POOL, REDIS, SETTINGS, TOKENS
from webrana_proxy.tokens import ACCESS_TTL_SECONDS, REFRESH_TTL_SECONDS, sha256

log = logging.getLogger("webrana.auth")
routes = web.RouteTableDef()
LOGIN_GUARD = web.AppKey("login_guard", LoginGuard)


def _limit(request: web.Request) -> int:
    settings: Settings = request.app[SETTINGS]
    return settings.api_body_limit


async def issue_tokens(request: web.Request, conn: Conn, user: User,
                       family_id: uuid.UUID | None = None) -> dict[str, Any]:
    tokens = request.app[TOKENS]
    token_id = uuid.uuid4()
    family = family_id or uuid.uuid4()
    now = time.time()
    refresh = tokens.refresh_token(user.id, token_id, family, now)
    await conn.execute(
        """INSERT INTO refresh_tokens (id, user_id, family_id, token_hash, expires_at)
           VALUES ($1, $2, $3, $4, $5)""",
        token_id, user.id, family, sha256(refresh),
        datetime.fromtimestamp(now, UTC) + timedelta(seconds=REFRESH_TTL_SECONDS))
    return {"access_token": tokens.access_token(user.id, user.role, family, now), "refresh_token": refresh,
            "token_type": "bearer", "expires_in": ACCESS_TTL_SECONDS, "user": user.public()}


@routes.post("/api/auth/register")
async def register(request: web.Request) -> web.Response:
    body = await read_json(request, _limit(request))
    email = req_email(body)
    password = req_str(body, "password", max_len=256, min_len=0)
    check_policy(password)
    locale = read_locale(body.get("locale", "id"))  # the console's language at sign-up: the e-mails' language
    await _count_signup(request)
    pool = request.app[POOL]
    # Taken e-mails are answered before hashing, so asking costs no Argon2. This reveals nothing new: the answer
    # already says ``email_taken`` (the console must tell a person), and every question counts against the
    # address's sign-up limit. A registration racing another for the same e-mail still meets the unique index.
    if await pool.fetchval("SELECT 1 FROM users WHERE lower(email) = lower($1)", email):
        raise _email_taken()
    password_hash = await request.app[PASSWORDS].hash(password)
    async with pool.acquire() as conn, conn.transaction():
        try:
            row = await conn.fetchrow(
                """INSERT INTO users (email, password_hash, locale) VALUES ($1, $2, $3)
                   RETURNING id, email, role, plan, status, created_at, burst_per_minute_override,
                             monthly_requests_override, locale,
                             (email_verified_at IS NOT NULL OR role = 'admin') AS email_verified""",
                email, password_hash, locale)
        except asyncpg.UniqueViolationError:
            raise _email_taken() from None
        assert row is not None
        payload = await issue_tokens(request, conn, User.from_row(row))
        await send_verification(conn, request.app[MAILER].links, row["id"], email, datetime.now(UTC))
    return json_response(payload, status=201)


def _email_taken() -> ValidationFailed:
    return ValidationFailed("an account with this e-mail already exists", param="email", code="email_taken")


async def _count_signup(request: web.Request) -> None:
    """One sign-up against the address's hourly limit (an IPv6 client's /64); allowed if Redis is away."""
    limit = request.app[SETTINGS].signup_limit
    try:
        verdict = await request.app[LIMITER].check_signup(request[CLIENT_KEY], limit)
    except (RedisError, OSError):
        log.warning("sign-up limit unavailable (Redis); sign-up allowed", extra={"limits": "degraded"})
        return
    if not verdict.allowed:
        raise RateLimited(f"too many sign-ups from this address: the limit is {limit} an hour",
                          retry_after=verdict.reset_seconds, code="signup_limit_exceeded")


@routes.post("/api/auth/login")
async def login(request: web.Request) -> web.Response:
    body = await read_json(request, _limit(request))
    email = req_email(body)
    password = req_str(body, "password", max_len=256, min_len=0)
    guard = request.app[LOGIN_GUARD]
    ip = request[CLIENT_KEY]  # the address, or its IPv6 /64
    await guard.attempt(email, ip)
    pool = request.app[POOL]
    row = await pool.fetchrow(
        """SELECT id, email, role, plan, status, created_at, burst_per_minute_override,
                  monthly_requests_override, password_hash, locale,
                  (email_verified_at IS NOT NULL OR role = 'admin') AS email_verified
           FROM users WHERE lower(email) = lower($1)""", email)
    passwords = request.app[PASSWORDS]
    try:
        if row is None:
            # Spend the same time as a real check so response timing does not reveal which e-mails exist.
            await passwords.verify_dummy(password)
            raise Unauthorized("wrong e-mail or password", code="invalid_credentials")
        ok, new_hash = await passwords.verify(row["password_hash"], password)
    except HashingBusy:
        await guard.not_checked(email, ip)
        raise
    if not ok:
        raise Unauthorized("wrong e-mail or password", code="invalid_credentials")
    user = User.from_row(row)
    if user.status != "active":
        raise Forbidden("account is suspended; contact support", code="account_suspended")
    await guard.succeeded(email, ip)
    async with pool.acquire() as conn, conn.transaction():
        if new_hash:
            await conn.execute("UPDATE users SET password_hash = $1 WHERE id = $2", new_hash, user.id)
        payload = await issue_tokens(request, conn, user)
    return json_response(payload)


@routes.post("/api/auth/refresh")
async def refresh(request: web.Request) -> web.Response:
    body = await read_json(request, _limit(request))
    token = req_str(body, "refresh_token", max_len=2048)
    claims = request.app[TOKENS].verify_refresh(token)
    pool = request.app[POOL]
    refused: Unauthorized | None = None
    payload: dict[str, Any] = {}
    async with pool.acquire() as conn, conn.transaction():
        # The user's row first (see webrana_proxy.sessions): serialises this rotation with any revocation.
        user_row = await conn.fetchrow(
            """SELECT id, email, role, plan, status, created_at, burst_per_minute_override,
                      monthly_requests_override, locale,
                      (email_verified_at IS NOT NULL OR role = 'admin') AS email_verified
               FROM users WHERE id = $1 FOR NO KEY UPDATE""", claims.user_id)
        if user_row is None:
            raise Unauthorized("account no longer exists", code="invalid_token")
        row = await conn.fetchrow(
            """SELECT id, user_id, family_id, used_at, revoked_at FROM refresh_tokens
               WHERE token_hash = $1 FOR UPDATE""", sha256(token))
        if row is None or row["id"] != claims.token_id or row["user_id"] != claims.user_id:
            raise Unauthorized("unknown refresh token", code="invalid_token")
        if row["used_at"] is not None:
            # A rotated token presented again means one of the user's tokens leaked, and which sign-in the thief
            # also holds is unknown: end every sign-in of the user, access tokens included (committed below).
            await revoke_all_sign_ins(conn, claims.user_id)
            refused = Unauthorized("refresh token was already used; every session of this account is now "
                                   "signed out", code="refresh_token_reused")
        elif row["revoked_at"] is not None:
            refused = Unauthorized("refresh token has been revoked (signed out)", code="refresh_token_revoked")
        else:
            await conn.execute("UPDATE refresh_tokens SET used_at = now() WHERE id = $1", row["id"])
            user = User.from_row(user_row)
            if user.status != "active":
                raise Forbidden("account is suspended; contact support", code="account_suspended")
            payload = await issue_tokens(request, conn, user, family_id=row["family_id"])
    if refused is not None:
        raise refused  # after the commit: the revocation above must stick
    return json_response(payload)


@routes.post("/api/auth/logout")
async def logout(request: web.Request) -> web.Response:
    """End this sign-in: its refresh tokens and its access tokens. The user's other devices stay signed in."""
    body = await read_json(request, _limit(request))
    token = req_str(body, "refresh_token", max_len=2048)
    try:
        claims = request.app[TOKENS].verify_refresh(token)
    except Unauthorized:
        raise BadRequest("refresh_token is not a valid refresh token", param="refresh_token",
                         code="invalid_token") from None
    async with request.app[POOL].acquire() as conn, conn.transaction():
        await revoke_sign_in(conn, claims.user_id, claims.family_id)
    return json_response({"ok": True})


@routes.get("/api/auth/me")
async def me(request: web.Request) -> web.Response:
    user = await current_user(request)
    return json_response(user.public())


async def login_guard_ctx(app: web.Application) -> Any:
    app[LOGIN_GUARD] = LoginGuard(app[REDIS])
    yield
