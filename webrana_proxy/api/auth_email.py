"""/api/auth routes that work through e-mail: verify the address, resend the link, forgot and reset the
password; and the account's language (the e-mails'), which the console sets from its language switch.

* ``POST /api/auth/verify-email`` ``{token}``: the link in the sign-up e-mail (single use, 24 h).
* ``POST /api/auth/verify-email/resend``: a new link (the old one stops working); rate-limited per account.
* ``POST /api/auth/password/forgot`` ``{email}``: always 202 with the same body, known address or not, in about
  the same time (``FORGOT_MIN_SECONDS``); rate-limited per client address and per e-mail.
* ``POST /api/auth/password/reset`` ``{token, password}``: the link in that e-mail (single use, 30 min). Sets
  the password, ends every sign-in of the account (refresh and access tokens), marks the address verified (the
  link proved it) and sends a "password changed" notice.
* ``PUT /api/auth/locale`` ``{locale}``: ``id`` or ``en``.

``require_verified_email`` is the gate the proxy-key and subscribe routes call: with mail configured, an
account whose address is not verified gets 403 ``email_not_verified`` (admins always count as verified).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime

from aiohttp import web

from webrana_proxy.api.identity import User, current_user
from webrana_proxy.errors import BadRequest, Forbidden, RateLimited
from webrana_proxy.jsonio import json_response, read_json, req_email, req_str
from webrana_proxy.mail.account import read_locale, send_password_changed, send_reset, send_verification
from webrana_proxy.mail.linktokens import MAX_TOKEN_CHARS, RESET, VERIFY, LinkTokens
from webrana_proxy.mail.mailer import MAILER
from webrana_proxy.mail.throttle import Throttle, Window
from webrana_proxy.middleware import CLIENT_KEY
from webrana_proxy.passwords import check_policy
from webrana_proxy.sessions import revoke_all_sign_ins
from webrana_proxy.state import PASSWORDS, POOL, REDIS, SETTINGS

routes = web.RouteTableDef()
THROTTLE = web.AppKey("mail_throttle", Throttle)

RESEND_SOON = Window("resend:user", 1, 60)  # one new verification link a minute: a double click is not two mails
RESEND_DAILY = Window("resend:user:day", 10, 24 * 3600)  # and a handful a day
FORGOT_PER_ADDRESS = Window("forgot:ip", 10, 3600)  # reset requests from one address (IPv6: its /64) an hour
FORGOT_PER_EMAIL = Window("forgot:email", 3, 3600)  # reset e-mails one inbox can be sent an hour
FORGOT_MIN_SECONDS = 0.4  # every forgot answer takes at least this long, so timing does not tell known e-mails


def _now() -> datetime:
    return datetime.now(UTC)


def _limit(request: web.Request) -> int:
    return request.app[SETTINGS].api_body_limit


async def require_verified_email(request: web.Request, user: User) -> None:
    """403 ``email_not_verified`` while mail is on and the account's address is unproven."""
    if not request.app[SETTINGS].mail_enabled or user.email_verified is not False:
        return
    raise Forbidden(f"verify your e-mail address first: open the link we sent to {user.email} (ask for a new one "
                    "with POST /api/auth/verify-email/resend)", code="email_not_verified")


async def _throttled(request: web.Request, window: Window, subject: str, what: str) -> None:
    wait = await request.app[THROTTLE].hit(window, subject)
    if wait:
        raise RateLimited(f"too many {what}; try again in {wait} s", retry_after=wait, code="email_rate_limited")


@routes.post("/api/auth/verify-email")
async def verify_email(request: web.Request) -> web.Response:
    body = await read_json(request, _limit(request))
    token = req_str(body, "token", max_len=MAX_TOKEN_CHARS)
    now = _now()
    async with request.app[POOL].acquire() as conn, conn.transaction():
        user_id = await LinkTokens.consume(conn, token, VERIFY, now)
        if user_id is None:
            raise BadRequest("this verification link is unknown, used or expired; ask for a new one",
                             param="token", code="verification_link_invalid")
        await conn.execute("UPDATE users SET email_verified_at = coalesce(email_verified_at, $2) WHERE id = $1",
                           user_id, now)
    return json_response({"verified": True, "user_id": str(user_id)})


@routes.post("/api/auth/verify-email/resend")
async def resend_verification(request: web.Request) -> web.Response:
    user = await current_user(request)
    if user.email_verified:
        return json_response({"verified": True, "sent": False})
    await _throttled(request, RESEND_SOON, str(user.id), "verification e-mails")
    await _throttled(request, RESEND_DAILY, str(user.id), "verification e-mails")
    async with request.app[POOL].acquire() as conn, conn.transaction():
        await send_verification(conn, request.app[MAILER].links, user.id, user.email, _now())
    return json_response({"verified": False, "sent": True, "mail_enabled": request.app[SETTINGS].mail_enabled},
                         status=202)


@routes.post("/api/auth/password/forgot")
async def forgot_password(request: web.Request) -> web.Response:
    started = time.monotonic()
    body = await read_json(request, _limit(request))
    email = req_email(body)
    await _throttled(request, FORGOT_PER_ADDRESS, request[CLIENT_KEY], "password-reset requests from this address")
    await _throttled(request, FORGOT_PER_EMAIL, email.lower(), "password-reset e-mails for this address")
    async with request.app[POOL].acquire() as conn, conn.transaction():
        row = await conn.fetchrow("SELECT id, email FROM users WHERE lower(email) = lower($1)", email)
        if row is not None:
            await send_reset(conn, request.app[MAILER].links, row["id"], row["email"], _now())
    await asyncio.sleep(max(0.0, FORGOT_MIN_SECONDS - (time.monotonic() - started)))
    return json_response({"ok": True, "message": "if an account uses this address, a reset link is on its way"},
                         status=202)


@routes.post("/api/auth/password/reset")
async def reset_password(request: web.Request) -> web.Response:
    body = await read_json(request, _limit(request))
    token = req_str(body, "token", max_len=MAX_TOKEN_CHARS)
    password = req_str(body, "password", max_len=256, min_len=0)
    check_policy(password)
    pool = request.app[POOL]
    async with pool.acquire() as conn:  # a dead link costs no Argon2
        known = await LinkTokens.peek(conn, token, RESET, _now())
    if known is None:
        raise _reset_link_invalid()
    password_hash = await request.app[PASSWORDS].hash(password)
    now = _now()
    async with pool.acquire() as conn, conn.transaction():
        user_id = await LinkTokens.consume(conn, token, RESET, now)  # a racing reset with the same link loses
        if user_id is None:
            raise _reset_link_invalid()
        await revoke_all_sign_ins(conn, user_id)
        email = await conn.fetchval(
            """UPDATE users SET password_hash = $2, email_verified_at = coalesce(email_verified_at, $3)
               WHERE id = $1 RETURNING email""", user_id, password_hash, now)
        await conn.execute("""UPDATE email_tokens SET used_at = $2
                              WHERE user_id = $1 AND purpose = 'reset' AND used_at IS NULL""", user_id, now)
        await conn.execute(
            "INSERT INTO audit_log (actor_id, action, target_user_id, details) VALUES ($1, $2, $1, $3)",
            user_id, "user.password_reset", {"via": "e-mail link"})
        await send_password_changed(conn, user_id, email, now)
    return json_response({"ok": True})


def _reset_link_invalid() -> BadRequest:
    return BadRequest("this reset link is unknown, used or expired; ask for a new one", param="token",
                      code="reset_link_invalid")


@routes.put("/api/auth/locale")
async def set_locale(request: web.Request) -> web.Response:
    user = await current_user(request)
    body = await read_json(request, _limit(request))
    locale = read_locale(body.get("locale"))
    await request.app[POOL].execute("UPDATE users SET locale = $2 WHERE id = $1", user.id, locale)
    return json_response({"locale": locale})


async def throttle_ctx(app: web.Application) -> AsyncIterator[None]:
    app[THROTTLE] = Throttle(app[REDIS])
    yield
